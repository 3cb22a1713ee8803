"""Scenario definitions and the code that measures one (scenario, server) pair."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import apps, h2load, idle, servers
from benchmarks.paths import LUA, REPO, VENV_PYTHON
from benchmarks.servers import RunningServer, ServerOptions, ServerSpec
from benchmarks.wrk import LOAD_CPU, WrkResult, parse_wrk, run_wrk, wrk_command
from benchmarks.wsclient import WINDOW_END, WINDOW_START

Measurement = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    duration_s: float = 4.0
    warmup_s: float = 1.0
    rounds: int = 3
    connections: int = 64
    threads: int = 2
    ws_connections: int = 50
    idle_connections: int = 1000
    quiet_wait_s: float = 5.0  # per measurement: wait up to this long for a quiet machine
    quiet_budget_s: float = 90.0  # total quiet waiting allowed in one run
    soak_duration_s: float = 120.0  # length of the soak's mixed load
    soak_interval_s: float = 5.0  # the soak samples the worker's VmRSS this often


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    needs: str
    kind: str  # "wrk" | "ws" | "idle" | "soak" | "h2load"
    unit: str = "req/s"
    path: str = "/"
    script: str | None = None
    connections: int | None = None  # None: Settings.connections
    ws_size: int = 0
    fresh: ServerOptions | None = None  # start a dedicated server with these options
    logged: bool = False  # fresh server gets an access-log file
    once: bool = False  # measured in the first round only (long runs)
    mib: int = 0  # a file download of this many MiB: the value is MiB/s, plus CPU ms per MiB


MAX_REQ = ServerOptions(workers=2, max_requests=200, max_requests_jitter=50)
H2C = ServerOptions(http2=True)
H2_STREAMS = 10  # h2load -m: streams in flight per connection

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hello", "hello, 64 conns", servers.RAW_HELLO, "wrk"),
        Scenario("json", "JSON, 64 conns", servers.HTTP, "wrk", path="/json"),
        Scenario("post64k", "POST echo 64 KiB", servers.HTTP, "wrk", script="post64k.lua"),
        Scenario("stream", "stream 100x1 KiB", servers.HTTP, "wrk", path="/stream"),
        Scenario(
            "static1m",
            "Starlette FileResponse 1 MiB",
            servers.HTTP,
            "wrk",
            unit="MiB/s",
            path="/static/1m",
            connections=16,
            mib=1,
        ),
        Scenario(
            "static100m",
            "Starlette FileResponse 100 MiB",
            servers.HTTP,
            "wrk",
            unit="MiB/s",
            path="/static/100m",
            connections=4,
            mib=100,
        ),
        Scenario("latency1", "hello, 1 conn", servers.RAW_HELLO, "wrk", connections=1),
        Scenario("h2hello", "HTTP/2 hello, 64 conns x 10", servers.HTTP2, "h2load", fresh=H2C),
        Scenario(
            "h2json", "HTTP/2 JSON, 64 conns x 10", servers.HTTP2, "h2load", path="/json", fresh=H2C
        ),
        Scenario("ws32", "WS echo 32 B", servers.WS, "ws", unit="msg/s", ws_size=32),
        Scenario("ws64k", "WS echo 64 KiB", servers.WS, "ws", unit="msg/s", ws_size=65536),
        Scenario(
            "accesslog",
            "hello + access log",
            servers.ACCESS_LOG,
            "wrk",
            fresh=ServerOptions(),
            logged=True,
        ),
        Scenario(
            "maxreq", "max-requests recycling (-w 2)", servers.MAX_REQUESTS, "wrk", fresh=MAX_REQ
        ),
        Scenario(
            "idle",
            "idle keep-alive memory",
            servers.RAW_HELLO,
            "idle",
            unit="KiB/conn",
            fresh=ServerOptions(),
        ),
        Scenario(
            "soak",
            "soak, mixed load (RSS growth)",
            servers.HTTP,
            "soak",
            unit="KiB/min",
            script="soak.lua",
            fresh=ServerOptions(),
            once=True,
        ),
    )
}


def _url(server: RunningServer, path: str) -> str:
    return f"http://{servers.HOST}:{server.port}{path}"


def _wrk(server: RunningServer, sc: Scenario, st: Settings, seconds: float) -> WrkResult:
    conns = sc.connections or st.connections
    script = LUA / sc.script if sc.script else None
    return run_wrk(_url(server, sc.path), seconds, conns, st.threads, script)


def measure_h2load(server: RunningServer, sc: Scenario, st: Settings) -> Measurement:
    """h2load over h2c prior knowledge: ``-c 64 -m 10``, warm-up inside the same run."""
    if not h2load.available():
        raise RuntimeError("h2load not found (apt-get install nghttp2-client)")
    conns = sc.connections or st.connections
    boots_before = server.boots()
    meter = CpuMeter(server)
    result = h2load.run_h2load(_url(server, sc.path), st.duration_s, st.warmup_s, conns, H2_STREAMS)
    cpu, wall, other = meter.stop()
    # The meter spans the warm-up too: scale the server's CPU to the measured part.
    measured = result.seconds / wall if wall and result.seconds < wall else 1.0
    boots = server.boots() - boots_before
    return {
        "worker_boots": boots,
        "value": result.rps,
        **_load_fields(result, cpu * measured, other),
    }


def _harness_seconds(client_pid: int | None) -> float:
    """CPU of this process, its reaped children (wrk) and a running client process."""
    t = os.times()
    running = servers.cpu_ticks(client_pid, False) / servers.CLK_TCK if client_pid else 0.0
    return t.user + t.system + t.children_user + t.children_system + running


class CpuMeter:
    """Server CPU time over a window, plus CPU used by anything that is neither the
    server nor our load generators (the noise check: foreign processes on the box)."""

    def __init__(self, server: RunningServer, client_pid: int | None = None) -> None:
        self.server, self.client_pid = server, client_pid
        self.wall = time.monotonic()
        self.own = server.cpu_seconds()
        self.mine = _harness_seconds(client_pid)
        self.machine = servers.machine_task_seconds()

    def stop(self) -> tuple[float, float, float]:
        """(server CPU seconds, wall seconds, foreign CPU as a fraction of one CPU)."""
        own = self.server.cpu_seconds() - self.own
        wall = time.monotonic() - self.wall
        mine = _harness_seconds(self.client_pid) - self.mine
        machine = servers.machine_task_seconds() - self.machine
        return own, wall, max(0.0, machine - own - mine) / wall if wall else 0.0


def measure_wrk(server: RunningServer, sc: Scenario, st: Settings) -> Measurement:
    if sc.mib:
        apps.static_file(sc.mib)  # made before the clock starts, not by the first request
    if st.warmup_s > 0:
        _wrk(server, sc, st, st.warmup_s)
    boots_before = server.boots()
    meter = CpuMeter(server)
    result = _wrk(server, sc, st, st.duration_s)
    cpu, _, other = meter.stop()
    boots = server.boots() - boots_before
    fields = _load_fields(result, cpu, other)
    if sc.mib:
        mib = result.requests * sc.mib
        fields["cpu_ms_per_mib"] = 1e3 * cpu / mib if mib else None
        return {"worker_boots": boots, "value": result.rps * sc.mib, **fields}
    return {"worker_boots": boots, "value": result.rps, **fields}


def _load_fields(result: Any, cpu: float, other: Any) -> dict[str, Any]:
    """What every wrk-driven measurement records: latency, counts, CPU and errors."""
    return {
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "ops": result.requests,
        "cpu_us_per_op": 1e6 * cpu / result.requests if result.requests else None,
        "cpu_util": cpu / result.seconds if result.seconds else None,
        "foreign_cpu": other,
        "errors": result.errors,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
    }


def run_ws_client(
    cmd: list[str], server: RunningServer, timeout: float
) -> tuple[tuple[float, float, float], dict[str, Any]]:
    """Run the WS client; sample server CPU exactly at its measuring-window markers."""
    meter: CpuMeter | None = None
    window: tuple[float, float, float] | None = None
    data: dict[str, Any] | None = None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == WINDOW_START:
                    meter = CpuMeter(server, proc.pid)
                elif line.strip() == WINDOW_END and meter is not None:
                    window = meter.stop()
                elif line.startswith("{"):
                    data = json.loads(line)
            proc.wait()
        finally:
            killer.cancel()
        err.seek(0)
        stderr = err.read().decode(errors="replace").strip()
    if proc.returncode != 0 or data is None or window is None:
        last = (stderr.splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise RuntimeError(f"ws client failed: {last}")
    return window, data


def measure_ws(server: RunningServer, sc: Scenario, st: Settings) -> Measurement:
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        str(VENV_PYTHON),
        "-m",
        "benchmarks.wsclient",
        "--port",
        str(server.port),
        "--conns",
        str(st.ws_connections),
        "--size",
        str(sc.ws_size),
        "--duration",
        str(st.duration_s),
        "--warmup",
        str(st.warmup_s),
    ]
    timeout = st.duration_s + st.warmup_s + 60
    window, data = run_ws_client(cmd, server, timeout)
    cpu, wall, other = window
    rate = data["msg_per_s"]
    util = cpu / wall if wall else None
    return {
        "value": rate,
        "p50_ms": data["p50_ms"],
        "p99_ms": data["p99_ms"],
        "ops": data["messages"],
        "cpu_us_per_op": 1e6 * util / rate if util is not None and rate else None,
        "cpu_util": util,
        "foreign_cpu": other,
        "errors": data["errors"],
    }


def measure_idle(server: RunningServer, sc: Scenario, st: Settings) -> Measurement:
    if st.warmup_s > 0:
        run_wrk(_url(server, "/"), st.warmup_s, 8, 1, None)
    time.sleep(0.3)
    pid = server.worker_pid()
    before = servers.rss_kib(pid)
    opened, after = idle.idle_connections(
        server.port, st.idle_connections, 1.0, lambda: servers.rss_kib(pid)
    )
    per_conn = (after - before) / opened if opened else None
    return {
        "value": per_conn,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "ops": opened,
        "errors": st.idle_connections - opened,
    }


SOAK_WARMUP_FRACTION = 0.10  # samples before 10% of the run are warm-up
SOAK_END_MARGIN_S = 1.0  # no sample closer than this to wrk's end: the load must still run
SOAK_WRK_GRACE_S = 30.0  # wrk gets this long past -d before it is killed


class WorkerRss:
    """VmRSS of the server's worker; finds the worker again if the arbiter replaced it."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.pid = server.worker_pid()
        self.has_master = self.pid != server.proc.pid
        self.changes = 0

    def _rss(self) -> int:
        try:
            return servers.rss_kib(self.pid)  # 0 for a zombie (no VmRSS line)
        except OSError:
            return 0

    def read(self) -> int | None:
        if (rss := self._rss()) > 0:
            return rss
        pid = self.server.worker_pid()
        if pid == self.pid or (self.has_master and pid == self.server.proc.pid):
            return None  # no (new) worker right now
        self.pid, self.changes = pid, self.changes + 1
        return self._rss() or None


def least_squares_slope(points: list[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y); None for fewer than 2 distinct x."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def soak_stats(loaded: list[tuple[float, int]], duration_s: float) -> dict[str, Any]:
    """From the samples taken under load: the RSS after warm-up (first sample at or after 10%
    of the run), at the end, the max, and the growth rate fitted over the post-warm-up ones."""
    warm_at = SOAK_WARMUP_FRACTION * duration_s
    fit = [(t, rss) for t, rss in loaded if t >= warm_at]
    if not fit:
        return {}
    warm, end = fit[0][1], fit[-1][1]
    slope = least_squares_slope([(t, float(rss)) for t, rss in fit])  # KiB per second
    growth = 60 * slope if slope is not None else None
    return {
        "rss_warm_kib": warm,
        "rss_end_kib": end,
        "rss_max_kib": max(rss for _, rss in loaded),
        "rss_end_minus_warm_kib": end - warm,
        "growth_kib_per_min": growth,
        "growth_pct_per_min": 100 * growth / warm if growth is not None else None,
        "fit_samples": len(fit),
    }


def measure_soak(server: RunningServer, sc: Scenario, st: Settings) -> Measurement:
    """A long mixed-load wrk run on a fresh server, sampling the worker's VmRSS meanwhile."""
    duration = float(max(1, round(st.soak_duration_s)))  # what wrk -d will run
    interval = max(0.1, st.soak_interval_s)
    conns = sc.connections or st.connections
    script = LUA / sc.script if sc.script else None
    cmd = wrk_command(_url(server, "/"), duration, conns, st.threads, script)
    rss = WorkerRss(server)
    boots_before = server.boots()
    loaded: list[tuple[float, int]] = []
    meter = CpuMeter(server)
    rss_start = rss.read()  # before any request
    started = time.monotonic()
    deadline = started + duration + SOAK_WRK_GRACE_S
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        k = 1
        while (due := k * interval) <= duration - SOAK_END_MARGIN_S and proc.poll() is None:
            time.sleep(max(0.0, started + due - time.monotonic()))
            if proc.poll() is not None:
                break
            if (value := rss.read()) is not None:
                loaded.append((round(time.monotonic() - started, 2), value))
            k += 1
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    cpu, _, other = meter.stop()
    rss_after = rss.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip() or out}")
    result = parse_wrk(out)
    samples = ([[0.0, rss_start]] if rss_start is not None else []) + [[t, v] for t, v in loaded]
    stats = soak_stats(loaded, duration)
    return {
        "value": stats.get("growth_kib_per_min"),
        "rps": result.rps,
        **_load_fields(result, cpu, other),
        "worker_boots": server.boots() - boots_before,
        "worker_changes": rss.changes,
        "soak_duration_s": duration,
        "soak_interval_s": interval,
        "rss_start_kib": rss_start,
        **stats,
        "rss_after_load_kib": rss_after,
        "rss_samples": samples,  # [seconds since the load started, VmRSS KiB]; first: before it
    }


MEASURE: dict[str, Callable[[RunningServer, Scenario, Settings], Measurement]] = {
    "wrk": measure_wrk,
    "ws": measure_ws,
    "idle": measure_idle,
    "soak": measure_soak,
    "h2load": measure_h2load,
}


def measure(server: RunningServer, sc: Scenario, st: Settings) -> Measurement:
    return MEASURE[sc.kind](server, sc, st)


def start_fresh(spec: ServerSpec, sc: Scenario, logdir: Path) -> RunningServer:
    assert sc.fresh is not None
    opts = sc.fresh
    if sc.logged:
        opts = ServerOptions(
            opts.workers,
            opts.max_requests,
            opts.max_requests_jitter,
            logdir / f"access-{spec.name}.log",
        )
    return servers.start(spec, opts)
