"""Run wrk (pinned to the load-generator CPU) and parse its report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

LOAD_CPU = "1"
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    socket_errors: int
    non_2xx: int
    raw: str

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


def wrk_command(
    url: str, duration_s: float, connections: int, threads: int, script: Path | None
) -> list[str]:
    threads = max(1, min(threads, connections))
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if script is not None:
        cmd += ["-s", str(script)]
    return [*cmd, url]


def run_wrk(
    url: str, duration_s: float, connections: int = 64, threads: int = 2, script: Path | None = None
) -> WrkResult:
    cmd = wrk_command(url, duration_s, connections, threads, script)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    return parse_wrk(proc.stdout)


def _latency_ms(text: str, percentile: str) -> float | None:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * UNITS_MS[match.group(2)] if match else None


def parse_wrk(text: str) -> WrkResult:
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not done or not rps:
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * UNITS_MS[done.group(3)] / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        socket_errors=sum(int(n) for n in sock.groups()) if sock else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        raw=text,
    )
