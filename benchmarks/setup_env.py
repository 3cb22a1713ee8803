"""Create the peers venv (benchmarks/.peers/venv) and make sure wrk is installed.

Uses only the standard library: it runs under the system Python before the venv exists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

from benchmarks.paths import REPO, VENV, VENV_PYTHON

PEERS = [
    "gunicorn",
    "uvicorn-worker",
    "uvicorn[standard]",
    "granian",
    "hypercorn",
    "uvloop",
    "httptools",
    "websockets",
    "matplotlib",
    "ruff",
]
MARKER = VENV / ".bench-installed"


def project_dependencies() -> list[str]:
    """Our worker runs from this venv with PYTHONPATH=<repo>, so it needs its deps here."""
    with (REPO / "pyproject.toml").open("rb") as fh:
        return list(tomllib.load(fh).get("project", {}).get("dependencies", []))


def ensure_venv(upgrade: bool) -> None:
    if MARKER.exists() and not upgrade:
        return
    if not VENV_PYTHON.exists():
        print(f"[setup] creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    packages = [*PEERS, *project_dependencies()]
    print(f"[setup] pip install -U {' '.join(packages)}", flush=True)
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", "-U", *packages], check=True)
    MARKER.write_text("\n".join(packages) + "\n")


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
