"""Real gunicorn processes for the tests: start on a free loopback port, stop by PID.

Every server gets its own HOME (Gunicorn's control socket defaults to ``$HOME/.gunicorn``)
and ``--no-control-socket`` where the installed Gunicorn has it, so servers never collide.
Servers and clients get none of the settings a developer's shell may carry (Gunicorn's and the
worker's environment variables, HTTP proxies), and the suite imports the same however pytest is
started (``pytest``, ``python -m pytest``, from any directory).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import gunicorn
import pytest
from gunicorn.config import Config

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `from tests.x import ...` without `python -m` from the root
    sys.path.insert(0, str(ROOT))
# Settings read from the environment that would change what a test server does: removed in
# pytest_configure, once (test modules import this file again as tests.conftest, which must
# not remove the ASGI_WORKER_PURE that --build pure set).
_FOREIGN_ENV = ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS",
                "GUNICORN_DIRTY_SOCKET")
# Loopback traffic never goes through a proxy (httpx and websockets' client honour these).
_LOOPBACK = "127.0.0.1,localhost,::1"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(
    filter(None, [os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), _LOOPBACK]))
BUILDS = ("compiled", "pure", "any")
WORKERS = ["asgi_worker.Worker", "asgi_worker.H11Worker"]
GUNICORN_MAJOR = int(gunicorn.__version__.split(".")[0])
# The control socket came in Gunicorn 25.x (24.1 and 25.0 have no --no-control-socket).
NO_CONTROL_SOCKET = (["--no-control-socket"] if "control_socket_disable" in Config().settings
                     else [])
_LISTENING = re.compile(r"Listening at: \S+?://[^\s:]+:(\d+)")
# How often a wait for a server's log line looks again: reading a small file is cheap, and a
# server start is waited for hundreds of times in a run.
_POLL = 0.01


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--build", choices=BUILDS, default="any",
                     help="compiled: the mypyc-compiled modules must be what runs (else stop); "
                          "pure: run the .py sources (ASGI_WORKER_PURE=1, inherited by every "
                          "server the tests start); any: whatever is installed (default)")


def pytest_configure(config: pytest.Config) -> None:
    """Choose the build before anything imports asgi_worker (servers inherit the choice)."""
    for name in [name for name in os.environ if name.startswith("ASGI_WORKER_")
                 or name in _FOREIGN_ENV]:
        del os.environ[name]
    build = config.getoption("--build")
    if build == "pure":
        os.environ["ASGI_WORKER_PURE"] = "1"
    elif build == "compiled":
        os.environ.pop("ASGI_WORKER_PURE", None)
        import asgi_worker

        if not asgi_worker.COMPILED:
            pytest.exit("--build compiled, but asgi_worker is not compiled here: "
                        f"{asgi_worker.__file__} has no extension modules beside it (see "
                        "docs/building.md: a C compiler, then pip install -e .)", returncode=4)


def pytest_report_header(config: pytest.Config) -> str:
    import asgi_worker
    from asgi_worker._build import describe

    modules = ", ".join(name.removeprefix("asgi_worker.")
                        for name in asgi_worker.COMPILED_MODULES) or "none"
    return (f"asgi_worker build: {describe('asgi_worker')} from {Path(asgi_worker.__file__).parent}"
            f"; compiled modules: {modules}")


class GunicornServer:
    """A running ``gunicorn -k <worker>`` process and its log."""

    def __init__(self, args: list[str], tmp: Path, env: dict[str, str] | None = None,
                 workers: int = 1, ready_timeout: float = 20.0, wait_ready: bool = True,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / "gunicorn.log"
        self.args = args
        full_env = dict(os.environ)
        full_env.update({"HOME": str(self.home), "PYTHONPATH": str(ROOT),
                         "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "gunicorn", *args]
        if "--control-socket" not in args:
            command.extend(NO_CONTROL_SOCKET)
        self.proc = subprocess.Popen(command, cwd=str(ROOT), env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, pass_fds=pass_fds)
        self.pid = self.proc.pid
        self.port = 0
        self._workers_at_stop: list[int] | None = None
        if wait_ready:
            self.wait_ready(workers, ready_timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 20.0) -> str:
        """Wait until ``pattern`` (a regex) appears ``count`` times in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(_POLL)
        raise AssertionError(f"{pattern!r} x{count} not in log within {timeout}s "
                             f"(exit={self.proc.poll()}):\n{self.log()[-4000:]}")

    def wait_ready(self, workers: int = 1, timeout: float = 20.0) -> None:
        text = self.wait_for_log(r"asgi_worker ready", count=workers, timeout=timeout)
        match = _LISTENING.search(text)
        if match:
            self.port = int(match.group(1))

    def worker_pids(self) -> list[int]:
        """PIDs of the arbiter's live children (its workers)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.pid and fields[0] != "Z":
                pids.append(int(entry.name))
        return sorted(pids)

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def terminate(self) -> None:
        """Ask the arbiter to stop (SIGTERM, once); ``stop()`` waits for it."""
        if self._workers_at_stop is None and self.proc.poll() is None:
            self._workers_at_stop = self.worker_pids()
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the server and wait for its exit; kill it (and its workers) after ``timeout``."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                for pid in self._workers_at_stop or []:  # a killed arbiter leaves its workers
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


class _Stopper:
    """Finishes the stop of servers a test is done with while the next tests run.

    A test's servers get SIGTERM together when it ends; waiting for their exit (Gunicorn's
    arbiter polls its workers every 0.1 s while it stops) happens on a thread, so the next test
    does not wait for it. Nothing is lost: the fixture never looked at the exit status, and
    ``drain()`` waits for every server (killing what outlives its timeout) before the session
    ends. A test that asserts how a server stops calls ``stop()`` itself, as before.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[int | None]] = []

    def submit(self, servers: list[GunicornServer]) -> None:
        for server in servers:
            server.terminate()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stop-server")
        self._pending = [future for future in self._pending if not future.done()]
        self._pending.extend(self._pool.submit(server.stop) for server in servers)

    def drain(self) -> None:
        for future in self._pending:
            future.result()
        self._pending = []


_STOPPER = _Stopper()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _STOPPER.drain()


@pytest.fixture
def socket_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for Unix sockets: ``tmp_path`` when a socket path under it fits the kernel's
    limit (104 bytes on macOS, 108 on Linux), else a short one under /tmp (a long $TMPDIR, as on
    macOS, or a deep --basetemp)."""
    if len(str(tmp_path)) <= 80:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="aw-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    """Factory: ``start_server("tests.apps.basic:app", "-k", worker, ...)``."""
    servers: list[GunicornServer] = []
    counter = iter(range(1000))

    def start(app: str, *args: str, worker: str = "asgi_worker.Worker",
              env: dict[str, str] | None = None, workers: int = 1, bind: str | None = None,
              wait_ready: bool = True, ready_timeout: float = 20.0,
              pass_fds: tuple[int, ...] = ()) -> GunicornServer:
        directory = tmp_path / f"server{next(counter)}"
        directory.mkdir()
        argv = ["-k", worker, "-w", str(workers), "-b", bind or "127.0.0.1:0",
                "--graceful-timeout", "5", *args, app]
        server = GunicornServer(argv, directory, env=env, workers=workers,
                                wait_ready=wait_ready, ready_timeout=ready_timeout,
                                pass_fds=pass_fds)
        servers.append(server)
        return server

    yield start
    _STOPPER.submit(servers)


@pytest.fixture
def server(start_server, worker_class):  # type: ignore[no-untyped-def]
    """The basic test app served by each worker class."""
    return start_server("tests.apps.basic:app", worker=worker_class)


@pytest.hookimpl(optionalhook=True)  # pytest without pytest-xdist still runs the suite
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the README's command): two test processes per core. A test spends most of
    its time waiting on the servers it started (start-up, replies, timeouts it provokes), so
    one process per core leaves the cores idle half the time."""
    return 2 * (os.cpu_count() or 1)
