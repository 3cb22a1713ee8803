"""Create the peers venv for an interpreter (benchmarks/.peers/venv-<X.Y>-<hash>) and make sure
wrk is installed.

Uses only the standard library: it runs under whatever Python started run.py, before the venv
exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from benchmarks.paths import APPDIR, LEGACY_VENV, PEERS, REPO

PEER_PACKAGES = [
    "gunicorn",
    "uvicorn-worker",
    "uvicorn[standard]",
    "granian",
    "hypercorn",
    "uvloop",
    "httptools",
    "websockets",
    "starlette",  # the static-file scenarios serve Starlette's FileResponse
    "matplotlib",
    "ruff",
]
MARKER = ".bench-installed"
MIN_PYTHON = (3, 11)  # the harness itself runs in the venv: tomllib, datetime.UTC
# Runs under the candidate interpreter, so it must stay valid Python 2 and old Python 3.
PROBE = """\
import json, platform, sys
try:
    import venv
    err = ""
except Exception as exc:
    err = repr(exc)
print(json.dumps({
    "executable": sys.executable,
    "version": platform.python_version(),
    "version_info": list(sys.version_info[:2]),
    "implementation": platform.python_implementation(),
    "venv_error": err,
}))
"""


class SetupError(Exception):
    """The environment cannot be prepared; the message says why and what to do."""


@dataclass(frozen=True)
class Interpreter:
    given: str  # the path as requested (absolute), e.g. a pyenv shim or /usr/bin/python3.11
    executable: str  # sys.executable as the interpreter reports it
    realpath: str  # all symlinks resolved: what identifies the venv
    version: str  # "3.12.1"
    major_minor: str  # "3.12"
    implementation: str  # "CPython"

    @property
    def tag(self) -> str:
        """Result file suffix, e.g. ``py3.12.1`` (``pypy3.10.14`` for PyPy)."""
        prefix = "py" if self.implementation == "CPython" else self.implementation.lower()
        return f"{prefix}{self.version}"


def resolve_path(python: str) -> str:
    """An absolute path for ``python``; a bare name is looked up on PATH."""
    if os.sep not in python:
        found = shutil.which(python)
        if found is None:
            raise SetupError(f"--python {python}: not found on PATH")
        return found
    return str(Path(python).absolute())


def probe(python: str) -> Interpreter:
    """Ask the interpreter for its identity; check it can run the harness and create venvs."""
    path = resolve_path(python)
    try:
        proc = subprocess.run(
            [path, "-E", "-s", "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"--python {python}: cannot run it: {exc}") from exc
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        detail = (proc.stderr or proc.stdout).strip()
        raise SetupError(f"--python {python}: not a working Python interpreter:\n{detail}") from exc
    version_info = tuple(info["version_info"])
    if version_info < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        raise SetupError(
            f"--python {python} is Python {info['version']}; the harness needs {need}+"
        )
    major_minor = "{}.{}".format(*version_info)
    if info["venv_error"]:
        raise SetupError(
            f"--python {python} cannot create virtual environments (import venv: "
            f"{info['venv_error']}).{_venv_hint(major_minor)}"
        )
    executable = info["executable"] or path
    return Interpreter(
        given=path,
        executable=executable,
        realpath=os.path.realpath(executable),
        version=info["version"],
        major_minor=major_minor,
        implementation=info["implementation"],
    )


def _venv_hint(major_minor: str) -> str:
    return f" On Debian/Ubuntu: apt-get install python{major_minor}-venv."


def venv_dir(interp: Interpreter) -> Path:
    """``.peers/venv-<X.Y>-<8 hex of sha256(realpath)>``, one per interpreter binary.

    The single ``.peers/venv`` of earlier versions is still used for the interpreter it was
    built from, as long as that interpreter has no venv of the new kind.
    """
    digest = hashlib.sha256(interp.realpath.encode()).hexdigest()[:8]
    impl = "" if interp.implementation == "CPython" else interp.implementation.lower()
    venv = PEERS / f"venv-{impl}{interp.major_minor}-{digest}"
    legacy_python = LEGACY_VENV / "bin" / "python"
    if (
        not venv.exists()
        and (LEGACY_VENV / MARKER).exists()
        and os.path.realpath(legacy_python) == interp.realpath
    ):
        return LEGACY_VENV
    return venv


def project_dependencies() -> list[str]:
    """Our worker runs from this venv with PYTHONPATH=<repo>, so it needs its deps here."""
    with (REPO / "pyproject.toml").open("rb") as fh:
        return list(tomllib.load(fh).get("project", {}).get("dependencies", []))


def ensure_venv(interp: Interpreter, venv: Path, upgrade: bool) -> None:
    marker = venv / MARKER
    packages = [*PEER_PACKAGES, *project_dependencies()]
    # The marker lists what was installed: a package added to the list since reinstalls.
    if marker.exists() and not upgrade and marker.read_text().splitlines() == packages:
        return
    python = venv / "bin" / "python"
    if not python.exists():
        create_venv(interp, venv)
    print(f"[setup] pip install -U {' '.join(packages)}", flush=True)
    for args in (["pip"], packages):
        cmd = [str(python), "-m", "pip", "install", "-q", "-U", *args]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise SetupError(
                f"`{' '.join(cmd)}` failed (see pip's output above). Fix it and re-run, or "
                f"delete {venv} to start from a fresh venv."
            )
    marker.write_text("\n".join(packages) + "\n")


def create_venv(interp: Interpreter, venv: Path) -> None:
    print(f"[setup] creating {venv} with {interp.executable} (Python {interp.version})", flush=True)
    existed = venv.exists()
    proc = subprocess.run(
        [interp.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
    )
    if proc.returncode == 0 and (venv / "bin" / "python").exists():
        return
    if not existed:
        shutil.rmtree(venv, ignore_errors=True)
    output = (proc.stderr or proc.stdout).strip()
    raise SetupError(
        f"{interp.given} cannot create a virtual environment (`-m venv` exited with "
        f"{proc.returncode}):\n{output}\n{_venv_hint(interp.major_minor).strip()}"
    )


def ensure_wrk() -> bool:
    if shutil.which("wrk"):
        return True
    print("[setup] wrk not found; trying: apt-get install -y wrk", flush=True)
    if shutil.which("apt-get"):
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            if subprocess.run(cmd, check=False).returncode != 0:
                break
    if shutil.which("wrk"):
        return True
    print(
        "[setup] ERROR: wrk is not installed and could not be installed automatically.\n"
        "        Install it (Debian/Ubuntu: `apt-get install wrk`) and re-run.",
        file=sys.stderr,
    )
    return False


# What the wheel is installed with: part of the digest, so that a change reinstalls.
OURS_EXTRAS = "[http2] starlette"


def _ours_sources_digest() -> str:
    """What the wheel of our worker is built from: the package, setup.py, pyproject.toml."""
    digest = hashlib.sha256(OURS_EXTRAS.encode())
    files = [
        REPO / "setup.py",
        REPO / "pyproject.toml",
        *sorted((REPO / "asgi_worker").rglob("*.py")),
    ]
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_ours(interp: Interpreter, peers_venv: Path) -> Path:
    """A venv beside ``peers_venv`` with this checkout's compiled wheel installed; its path.

    The wheel is built (``pip wheel``, ``ASGI_WORKER_BUILD=compiled``: a failed compile is an
    error, never a silently pure wheel) when the sources changed since the last build. The
    servers ``ours``/``ours-h11`` run it as it is, ``ours-pure`` with ``ASGI_WORKER_PURE=1``.
    """
    venv = peers_venv.with_name(peers_venv.name + "-ours")
    marker = venv / MARKER
    digest = _ours_sources_digest()
    _write_appdir()
    if marker.exists() and marker.read_text().strip() == digest:
        return venv
    python = venv / "bin" / "python"
    if not python.exists():
        create_venv(interp, venv)
    wheels = venv / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    print(f"[setup] building our wheel (compiled) into {wheels}", flush=True)
    env = {**os.environ, "ASGI_WORKER_BUILD": "compiled"}
    env.pop("PYTHONPATH", None)
    steps = [
        [str(python), "-m", "pip", "install", "-q", "-U", "pip"],
        [str(python), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
    ]
    for cmd in steps:
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            raise SetupError(f"`{' '.join(cmd)}` failed (see the output above)")
    wheel = next(wheels.glob("asgi_worker-*.whl"))
    for cmd in (
        # [http2] for the h2 scenarios, Starlette for the static-file ones (its FileResponse).
        [str(python), "-m", "pip", "install", "-q", "--force-reinstall", f"{wheel}[http2]"],
        [str(python), "-m", "pip", "install", "-q", "starlette"],
        [str(python), "-c", "import asgi_worker, sys; sys.exit(not asgi_worker.COMPILED)"],
    ):
        if subprocess.run(cmd, env=env, cwd=APPDIR, check=False).returncode != 0:
            raise SetupError(f"`{' '.join(cmd)}` failed: {wheel.name} is not a compiled build")
    print(f"[setup] {wheel.name} installed in {venv}", flush=True)
    marker.write_text(digest + "\n")
    return venv


def _write_appdir() -> None:
    """APPDIR/benchmarks/apps.py: the app, importable as ``benchmarks.apps`` without the repo."""
    package = APPDIR / "benchmarks"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    shutil.copyfile(REPO / "benchmarks" / "apps.py", package / "apps.py")
