"""The interleaved measurement loop: rounds x scenarios x servers (rotated per round)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import interpreter, servers
from benchmarks.paths import APPDIR, OURS_VENV, REPO, WORK
from benchmarks.scenarios import SCENARIOS, Measurement, Scenario, Settings, measure, start_fresh
from benchmarks.servers import SERVERS, RunningServer, ServerSpec, StartError

HARNESS_CPU = 1
PACKAGES = [
    "gunicorn",
    "uvicorn",
    "uvicorn-worker",
    "granian",
    "hypercorn",
    "uvloop",
    "httptools",
    "h11",
    "websockets",
    "asgi-worker",
]
MAX_RESTARTS = 3
# Steal (CPU the hypervisor gave other guests, as a fraction of one CPU) above which a
# measurement is repeated, at most STEAL_RETRIES times.
STEAL_MAX = 0.10
STEAL_RETRIES = 2
# Soak figures summarized (median over the rounds that ran it; the soak runs in round 1 only).
SOAK_FIELDS = (
    "rps",
    "rss_start_kib",
    "rss_warm_kib",
    "rss_end_kib",
    "rss_max_kib",
    "rss_end_minus_warm_kib",
    "rss_after_load_kib",
    "growth_kib_per_min",
    "growth_pct_per_min",
    "worker_changes",
)
QUIET_WINDOW_S = 0.5
QUIET_MAX_CPU = 0.10  # fraction of one CPU used machine-wide while our servers are idle


@dataclass
class Plan:
    servers: list[str]
    scenarios: list[str]
    settings: Settings
    quick: bool = False
    python: str = ""  # the --python path as given (the venv's base interpreter)


@dataclass
class State:
    plan: Plan
    samples: dict[str, dict[str, list[Measurement]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, RunningServer] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    quiet_spent_s: float = 0.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rotated(items: list[str], shift: int) -> list[str]:
    if not items:
        return items
    shift %= len(items)
    return items[shift:] + items[:shift]


def ours_importable(worker_class: str) -> str | None:
    """None if ``asgi_worker.<Class>`` imports from our wheel's venv, else the error text."""
    module, _, name = worker_class.rpartition(".")
    code = f"import {module}; {module}.{name}"
    env = {**os.environ, "PYTHONPATH": str(APPDIR)}
    proc = subprocess.run(
        [str(OURS_VENV / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=APPDIR,
        timeout=60,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


def precheck(state: State) -> None:
    checks = {
        "ours": "asgi_worker.Worker",
        "ours-pure": "asgi_worker.Worker",
        "ours-h11": "asgi_worker.H11Worker",
    }
    for name in state.plan.servers:
        if name in checks and (err := ours_importable(checks[name])):
            skip(state, name, f"{checks[name]} does not import: {err}")


def skip(state: State, name: str, reason: str) -> None:
    if name not in state.skipped:
        log(f"SKIP {name}: {reason}")
        state.skipped[name] = reason


def get_persistent(state: State, spec: ServerSpec) -> RunningServer | None:
    server = state.running.get(spec.name)
    if server is not None and server.alive:
        return server
    if server is not None:
        log(f"WARNING {spec.name} died (exit {server.proc.returncode}):\n{server.log_tail()}")
        state.failures.append({"server": spec.name, "error": "died", "log": server.log_tail()})
        server.stop()
        del state.running[spec.name]
        # Only deaths count: every round starts each server afresh (more than 3 rounds
        # used to skip every server from round 4 on).
        state.restarts[spec.name] = state.restarts.get(spec.name, 0) + 1
        if state.restarts[spec.name] > MAX_RESTARTS:
            skip(state, spec.name, "too many restarts")
            return None
    try:
        state.running[spec.name] = servers.start(spec)
    except StartError as exc:
        skip(state, spec.name, f"failed to start: {exc}")
        return None
    return state.running[spec.name]


@contextlib.contextmanager
def fresh_server(state: State, spec: ServerSpec, sc: Scenario) -> Iterator[RunningServer | None]:
    try:
        server = start_fresh(spec, sc, WORK)
    except StartError as exc:
        log(f"ERROR {spec.name}/{sc.name}: failed to start: {exc}")
        state.failures.append({"server": spec.name, "scenario": sc.name, "error": str(exc)})
        yield None
        return
    try:
        yield server
    finally:
        server.stop()
        if server.opts.access_log is not None:
            server.opts.access_log.unlink(missing_ok=True)


def run_one(state: State, rnd: int, sc: Scenario, spec: ServerSpec) -> None:
    if sc.fresh is not None:
        with fresh_server(state, spec, sc) as server:
            if server is not None:
                record(state, rnd, sc, server)
    elif (server := get_persistent(state, spec)) is not None:
        record(state, rnd, sc, server)


def wait_quiet(state: State) -> float:
    """Wait (bounded) until the machine is quiet: other work on the box skews results."""
    st = state.plan.settings
    limit = min(st.quiet_wait_s, st.quiet_budget_s - state.quiet_spent_s)
    waited = 0.0
    while waited < limit:
        before = servers.machine_task_seconds()
        time.sleep(QUIET_WINDOW_S)
        waited += QUIET_WINDOW_S
        if servers.machine_task_seconds() - before < QUIET_MAX_CPU * QUIET_WINDOW_S:
            break
    state.quiet_spent_s += waited
    return waited


def record(state: State, rnd: int, sc: Scenario, server: RunningServer) -> None:
    name = server.spec.name
    waited = wait_quiet(state)
    st = state.plan.settings
    if sc.kind == "soak":
        log(
            f"r{rnd} {sc.name:<9} {name:<15} {max(1, round(st.soak_duration_s))}s of mixed load, "
            f"VmRSS every {st.soak_interval_s:g}s ..."
        )
    # A measurement that lost CPU to other guests is taken again (a server kept running
    # between measurements only: a fresh server's state, or a soak, cannot be repeated).
    retries = STEAL_RETRIES if sc.fresh is None and sc.kind != "soak" else 0
    for attempt in range(retries + 1):
        steal, started = servers.machine_steal_seconds(), time.monotonic()
        try:
            result = measure(server, sc, st)
        except Exception as exc:  # a broken server must not stop the run
            tail = server.log_tail(8)
            log(f"ERROR {name}/{sc.name}: {exc}\n{tail}")
            state.failures.append(
                {"round": rnd, "server": name, "scenario": sc.name, "error": str(exc), "log": tail}
            )
            return
        elapsed = time.monotonic() - started
        stolen = (servers.machine_steal_seconds() - steal) / elapsed if elapsed else 0.0
        result["steal_cpu"] = stolen
        result["steal_retries"] = attempt
        if stolen <= STEAL_MAX or attempt == retries:
            break
        log(f"r{rnd} {sc.name:<9} {name:<15} {stolen:.0%} of a CPU stolen by other guests: again")
        wait_quiet(state)
    result["round"] = rnd
    result["quiet_wait_s"] = waited
    if server.opts.access_log is not None:
        result["access_log_bytes"] = access_log_bytes(server)
    if not server.alive:
        result["server_died"] = True
    state.samples.setdefault(sc.name, {}).setdefault(name, []).append(result)
    value = result.get("value")
    shown = f"{value:,.1f}" if isinstance(value, float | int) else str(value)
    log(f"r{rnd} {sc.name:<9} {name:<15} {shown} {sc.unit}  errors={result.get('errors', 0)}")
    if sc.kind == "soak":
        log(f"    {soak_line(result)}")


def soak_line(m: Measurement) -> str:
    def num(key: str, spec: str = ",") -> str:
        v = m.get(key)
        return format(v, spec) if isinstance(v, int | float) else "-"

    return (
        f"VmRSS KiB: start {num('rss_start_kib')}, warm {num('rss_warm_kib')}, "
        f"end {num('rss_end_kib')}, max {num('rss_max_kib')}, after load "
        f"{num('rss_after_load_kib')}; growth {num('value', ',.1f')} KiB/min "
        f"({num('growth_pct_per_min', '.2f')}%/min over {num('fit_samples')} samples); "
        f"{num('ops')} requests ({num('rps', ',.0f')}/s); worker changes "
        f"{num('worker_changes')}"
    )


def access_log_bytes(server: RunningServer) -> int:
    """Proof the access log was written (granian logs to stdout, i.e. the server log)."""
    log = server.opts.access_log
    path = log if log is not None and log.exists() else server.log_path
    return path.stat().st_size if path.exists() else 0


def applicable(sc: Scenario, spec: ServerSpec) -> bool:
    return sc.needs in spec.features


def run_round(state: State, rnd: int) -> None:
    order = rotated(state.plan.servers, rnd)
    for sc_name in state.plan.scenarios:
        sc = SCENARIOS[sc_name]
        if sc.once and rnd > 0:
            continue
        for name in order:
            spec = SERVERS[name]
            if name not in state.skipped and applicable(sc, spec):
                run_one(state, rnd, sc, spec)
    stop_all(state)


def stop_all(state: State) -> None:
    for server in state.running.values():
        server.stop()
    state.running.clear()


def run_plan(plan: Plan) -> dict[str, Any]:
    os.sched_setaffinity(0, {HARNESS_CPU})  # wrk/ws/idle clients inherit CPU 1
    state = State(plan)
    started = dt.datetime.now(dt.UTC)
    precheck(state)
    try:
        for rnd in range(plan.settings.rounds):
            log(f"=== round {rnd + 1}/{plan.settings.rounds}")
            run_round(state, rnd)
    finally:
        stop_all(state)
    return {
        "date": started.date().isoformat(),
        "started_at": started.isoformat(timespec="seconds"),
        "quick": plan.quick,
        "settings": asdict(plan.settings),
        "machine": machine_info(plan.python),
        "versions": versions(),
        "servers": plan.servers,
        "scenarios": {n: SCENARIOS[n].title for n in plan.scenarios},
        "units": {n: SCENARIOS[n].unit for n in plan.scenarios},
        "quiet_wait_total_s": state.quiet_spent_s,
        "skipped": state.skipped,
        "failures": state.failures,
        "summary": summarize(state.samples),
        "samples": state.samples,
    }


def _median(values: list[Any]) -> float | None:
    nums = [v for v in values if isinstance(v, int | float)]
    return statistics.median(nums) if nums else None


def summarize(samples: dict[str, dict[str, list[Measurement]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sc_name, by_server in samples.items():
        for name, runs in by_server.items():
            row = out.setdefault(sc_name, {})[name] = {
                "value": _median([r.get("value") for r in runs]),
                "p50_ms": _median([r.get("p50_ms") for r in runs]),
                "p99_ms": _median([r.get("p99_ms") for r in runs]),
                "cpu_us_per_op": _median([r.get("cpu_us_per_op") for r in runs]),
                "cpu_util": _median([r.get("cpu_util") for r in runs]),
                "foreign_cpu": _median([r.get("foreign_cpu") for r in runs]),
                "steal_cpu": _median([r.get("steal_cpu") for r in runs]),
                "errors": sum(int(r.get("errors") or 0) for r in runs),
                "worker_boots": _median([r.get("worker_boots") for r in runs]),
                "requests": _median([r.get("ops") for r in runs]),
                "rounds": len(runs),
            }
            for key in (*SOAK_FIELDS, "cpu_ms_per_mib"):
                if any(key in r for r in runs):
                    row[key] = _median([r.get(key) for r in runs])
    return out


def machine_info(python: str) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_lines = (wrk.stdout or wrk.stderr).strip().splitlines()
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "interpreter": interpreter.describe(python or sys.executable),
        "wrk": wrk_lines[0] if wrk_lines else "",
        "git_commit": _git_commit(),
        "pinning": {"servers": servers.SERVER_CPU, "load": str(HARNESS_CPU)},
    }


def _git_commit() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            found[pkg] = None
    if found.get("asgi-worker") is None:
        found["asgi-worker"] = _ours_version()
    return found


def _ours_version() -> str | None:
    init = REPO / "asgi_worker" / "__init__.py"
    with contextlib.suppress(OSError):
        for line in init.read_text().splitlines():
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'") + " (work tree)"
    return None
