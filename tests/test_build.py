"""The build under test: compiled (mypyc) or pure Python, as the run asked, in tests and servers.

``pytest --build compiled`` and ``pytest --build pure`` (the README's test command runs both)
must really test what they name; a server started by the tests says which build it runs in
its ready line. A user's subclass of the worker class works on either build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import asgi_worker
from tests.conftest import ROOT

HOT_PATH = ["asgi_worker.http.connection", "asgi_worker.http.cycle",
            "asgi_worker.http.httptools_protocol"]


def test_the_build_is_the_one_asked_for(pytestconfig: pytest.Config) -> None:
    build = pytestconfig.getoption("--build")
    if build == "any":
        pytest.skip("no --build given: the run tests whatever is installed")
    assert asgi_worker.COMPILED is (build == "compiled")
    for name in HOT_PATH:
        module = sys.modules[name]
        assert str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES)) is (build == "compiled")


def test_compiled_modules_are_named() -> None:
    assert bool(asgi_worker.COMPILED_MODULES) == asgi_worker.COMPILED
    assert set(asgi_worker.COMPILED_MODULES) <= set(sys.modules)
    # The classes users subclass stay interpreted on every build.
    assert "asgi_worker.worker" not in asgi_worker.COMPILED_MODULES
    assert "asgi_worker" not in asgi_worker.COMPILED_MODULES


def _import_in_child(env_pure: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ASGI_WORKER_PURE"}
    env["PYTHONPATH"] = str(ROOT)
    if env_pure is not None:
        env["ASGI_WORKER_PURE"] = env_pure
    return subprocess.run(
        [sys.executable, "-c", "import asgi_worker; print(asgi_worker.COMPILED)"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_asgi_worker_pure_loads_the_sources() -> None:
    """ASGI_WORKER_PURE=1 runs the pure build even where compiled modules are installed."""
    package = Path(asgi_worker.__file__).parent
    installed = any(path.name.endswith(tuple(EXTENSION_SUFFIXES)) for path in package.rglob("*"))
    assert _import_in_child("1") == "False"
    assert _import_in_child("0") == str(installed)
    assert _import_in_child(None) == str(installed)


def test_ready_line_says_which_build_runs(start_server) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app")
    expected = "compiled (mypyc)" if asgi_worker.COMPILED else "pure Python"
    assert f"lifespan auto, {expected}" in srv.log()


def test_a_user_subclass_of_the_worker_runs(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``class MyWorker(asgi_worker.Worker)`` with overrides, on the compiled build too."""
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "myworker.py").write_text(
        "import asgi_worker\n\n\n"
        "class MyWorker(asgi_worker.Worker):\n"
        "    def init_process(self):\n"
        "        self.log.info('MyWorker init_process override ran')\n"
        "        super().init_process()\n\n"
        "    def handle_abort(self, sig, frame):\n"
        "        super().handle_abort(sig, frame)\n")
    srv = start_server("tests.apps.basic:app", worker="userpkg.myworker.MyWorker",
                       env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    import httpx

    response = httpx.get(srv.url + "/", timeout=10)
    assert response.status_code == 200
    assert "MyWorker init_process override ran" in srv.log()


def test_the_error_log_shows_the_apps_frames(start_server) -> None:  # type: ignore[no-untyped-def]
    """Compiled functions have no Python frames; the app's own must still be in the log."""
    srv = start_server("tests.apps.basic:app")
    import httpx

    assert httpx.get(srv.url + "/error-before", timeout=10).status_code == 500
    log = srv.wait_for_log(r"RuntimeError: boom before the response")
    assert "Traceback (most recent call last)" in log
    assert 'tests/apps/basic.py", line' in log and "in error_before" in log
    assert 'raise RuntimeError("boom before the response")' in log
