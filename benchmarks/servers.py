"""Server definitions and process management (start, readiness, /proc stats, stop)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.paths import APPDIR, OURS_VENV, REPO, VENV_BIN, VENV_PYTHON, WORK

APP = "benchmarks.apps:app"
HOST = "127.0.0.1"
SERVER_CPU = "0"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 8.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Features a server may support; a scenario names the one it needs.
HTTP, RAW_HELLO, WS, ACCESS_LOG, MAX_REQUESTS = "http", "hello", "ws", "access_log", "max_requests"
HTTP2 = "http2"  # h2c with prior knowledge, when started with ServerOptions(http2=True)
FULL = frozenset({HTTP, RAW_HELLO, WS, ACCESS_LOG})


@dataclass(frozen=True)
class ServerOptions:
    """Per-measurement knobs; the default is the plain 1-worker server."""

    workers: int = 1
    max_requests: int = 0
    max_requests_jitter: int = 0
    access_log: Path | None = None
    http2: bool = False  # serve h2c (prior knowledge); readiness is then probed over HTTP/2


@dataclass(frozen=True)
class ServerSpec:
    name: str
    build: Callable[[int, ServerOptions], list[str]]
    features: frozenset[str]
    is_ours: bool = False
    optional: bool = False
    # Our servers run the installed wheel (paths.OURS_VENV) from APPDIR, never the checkout;
    # ``env`` picks its build (ASGI_WORKER_PURE=1 for ours-pure), ``build_says`` is what the
    # worker's ready line must then say.
    env: tuple[tuple[str, str], ...] = ()
    build_says: str = ""


def _gunicorn_has_flag(flag: str) -> bool:
    gunicorn = VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        return False
    out = subprocess.run([str(gunicorn), "--help"], capture_output=True, text=True, timeout=30)
    return flag in out.stdout


_NO_CONTROL_SOCKET: list[bool] = []


def no_control_socket_args() -> list[str]:
    """``--no-control-socket`` when the installed gunicorn knows it (gunicorn 24+)."""
    if not _NO_CONTROL_SOCKET:
        _NO_CONTROL_SOCKET.append(_gunicorn_has_flag("--no-control-socket"))
    return ["--no-control-socket"] if _NO_CONTROL_SOCKET[0] else []


def gunicorn_cmd(
    worker_class: str, bin_dir: Path = VENV_BIN
) -> Callable[[int, ServerOptions], list[str]]:
    def build(port: int, opts: ServerOptions) -> list[str]:
        cmd = [
            str(bin_dir / "gunicorn"),
            "-k",
            worker_class,
            "-w",
            str(opts.workers),
            "-b",
            f"{HOST}:{port}",
            "--keep-alive",
            "75",
            "--worker-connections",
            "4096",
            "--graceful-timeout",
            "3",
            "--backlog",
            "4096",
            *no_control_socket_args(),
        ]
        if opts.max_requests:
            cmd += ["--max-requests", str(opts.max_requests)]
            cmd += ["--max-requests-jitter", str(opts.max_requests_jitter)]
        if opts.access_log is not None:
            cmd += ["--access-logfile", str(opts.access_log)]
        if opts.http2:  # 127.0.0.1 is in Gunicorn's default forwarded_allow_ips: trusted
            cmd += ["--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge"]
        return [*cmd, APP]

    return build


def granian_cmd(port: int, opts: ServerOptions) -> list[str]:
    cmd = [
        str(VENV_BIN / "granian"),
        "--interface",
        "asgi",
        "--workers",
        str(opts.workers),
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--backlog",
        "4096",
    ]
    if opts.access_log is not None:
        cmd.append("--access-log")  # granian logs access lines to stdout (our log file)
    if opts.http2:
        cmd += ["--http", "2"]
    return [*cmd, APP]


def hypercorn_cmd(port: int, opts: ServerOptions) -> list[str]:
    cmd = [
        str(VENV_BIN / "hypercorn"),
        "-w",
        str(opts.workers),
        "-k",
        "uvloop",
        "-b",
        f"{HOST}:{port}",
        "--keep-alive",
        "75",
        "--backlog",
        "4096",
    ]
    if opts.max_requests:
        cmd += ["--max-requests", str(opts.max_requests)]
        cmd += ["--max-requests-jitter", str(opts.max_requests_jitter)]
    if opts.access_log is not None:
        cmd += ["--access-logfile", str(opts.access_log)]
    return [*cmd, APP]


def raw_cmd(port: int, opts: ServerOptions) -> list[str]:
    return [str(VENV_PYTHON), "-m", "benchmarks.raw_floor", HOST, str(port)]


OURS_WORKER = gunicorn_cmd("asgi_worker.Worker", OURS_VENV / "bin")
COMPILED_SAYS = "compiled (mypyc)"
PURE_SAYS = "pure Python (ASGI_WORKER_PURE=1)"

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "ours", OURS_WORKER, FULL | {MAX_REQUESTS, HTTP2}, True, build_says=COMPILED_SAYS
        ),
        ServerSpec(
            "ours-pure",
            OURS_WORKER,
            FULL | {MAX_REQUESTS, HTTP2},
            True,
            env=(("ASGI_WORKER_PURE", "1"),),
            build_says=PURE_SAYS,
        ),
        ServerSpec(
            "ours-h11",
            gunicorn_cmd("asgi_worker.H11Worker", OURS_VENV / "bin"),
            FULL | {MAX_REQUESTS, HTTP2},
            True,
            True,
            build_says=COMPILED_SAYS,
        ),
        ServerSpec(
            "uvicorn-worker", gunicorn_cmd("uvicorn_worker.UvicornWorker"), FULL | {MAX_REQUESTS}
        ),
        ServerSpec("gunicorn-asgi", gunicorn_cmd("asgi"), FULL | {MAX_REQUESTS, HTTP2}),
        ServerSpec("granian", granian_cmd, FULL | {HTTP2}),
        ServerSpec("hypercorn", hypercorn_cmd, FULL | {MAX_REQUESTS, HTTP2}),
        ServerSpec("raw", raw_cmd, frozenset({RAW_HELLO})),
    )
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_ok(port: int, timeout: float = 1.0) -> bool:
    """True once a full ``GET /`` round trip returns 200 (workers booted, app loaded)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# The client preface and an empty SETTINGS frame; a server speaking HTTP/2 answers with its
# SETTINGS (frame type 4) first.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def h2_ok(port: int, timeout: float = 1.0) -> bool:
    """True once the server answers the HTTP/2 preface with a SETTINGS frame (h2c)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    return False
                head += chunk
            return head[3] == 4
    except OSError:
        return False


class StartError(RuntimeError):
    pass


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 10_000:
        current = todo.pop()
        out.append(current)
        todo += children(current)
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int, include_children: bool) -> int:
    """utime+stime (+ reaped children's cutime+cstime) of one process, in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if include_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def _all_cpus_ticks() -> list[int]:
    """The tick counters of the "cpu" line of /proc/stat (all CPUs summed)."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def machine_task_seconds() -> float:
    """user+nice+system time of all CPUs from /proc/stat (irq/softirq/steal excluded)."""
    return sum(_all_cpus_ticks()[:3]) / CLK_TCK


def machine_steal_seconds() -> float:
    """Steal time of all CPUs from /proc/stat: the VM wanted a CPU and the hypervisor ran
    something else (other guests). Invisible to the per-process noise check."""
    ticks = _all_cpus_ticks()
    return ticks[7] / CLK_TCK if len(ticks) > 7 else 0.0


@dataclass
class RunningServer:
    spec: ServerSpec
    opts: ServerOptions
    port: int
    proc: subprocess.Popen[bytes]
    home: Path
    log_path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def worker_pid(self) -> int:
        """The serving process: the biggest child of the arbiter/master, else the root."""
        kids = children(self.proc.pid)
        if not kids:
            return self.proc.pid
        return max(kids, key=lambda pid: _safe(rss_kib, pid))

    def cpu_seconds(self) -> float:
        """CPU time of the whole process tree, including exited (reaped) workers."""
        ticks = sum(cpu_ticks(pid, True) for pid in descendants(self.proc.pid))
        return ticks / CLK_TCK

    def boots(self) -> int:
        """Workers spawned so far, from gunicorn's "Booting worker" log lines (0 if unknown)."""
        try:
            return self.log_path.read_text(errors="replace").count("Booting worker")
        except OSError:
            return 0

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # group we created with the server
                self.proc.wait(STOP_TIMEOUT_S)
        _kill_leftovers(self.proc.pid)
        shutil.rmtree(self.home, ignore_errors=True)


def _safe(fn: Callable[[int], int], pid: int) -> int:
    try:
        return fn(pid)
    except OSError:
        return 0


def _kill_leftovers(pgid: int) -> None:
    """Workers orphaned by a SIGKILLed master keep the server's process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def start(spec: ServerSpec, opts: ServerOptions | None = None) -> RunningServer:
    opts = opts or ServerOptions()
    port = free_port()
    WORK.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"home-{spec.name}-", dir=WORK))
    log_path = home / "server.log"
    where = APPDIR if spec.is_ours else REPO
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(where), "PYTHONUNBUFFERED": "1"}
    env.pop("ASGI_WORKER_PURE", None)
    env.update(spec.env)
    cmd = ["taskset", "-c", SERVER_CPU, *spec.build(port, opts)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=where,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = RunningServer(spec, opts, port, proc, home, log_path)
    _wait_ready(server, cmd)
    return server


def _wait_ready(server: RunningServer, cmd: list[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive:
            break
        if (h2_ok if server.opts.http2 else http_ok)(server.port):
            _check_build(server, cmd)
            return
        time.sleep(0.1)
    tail = server.log_tail()
    server.stop()
    reason = "exited" if server.proc.returncode is not None else "not ready in time"
    raise StartError(f"{server.spec.name} {reason}: {' '.join(cmd)}\n{tail}")


def _check_build(server: RunningServer, cmd: list[str]) -> None:
    """Ours must run the build it is named for (the worker's ready line says which)."""
    says = server.spec.build_says
    if not says:
        return
    deadline = time.monotonic() + 5
    while "asgi_worker ready" not in server.log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if f", {says}" not in server.log_path.read_text(errors="replace"):
        tail = server.log_tail()
        server.stop()
        raise StartError(f"{server.spec.name} does not run {says}: {' '.join(cmd)}\n{tail}")
