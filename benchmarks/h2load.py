"""Run h2load (nghttp2's HTTP/2 load generator, pinned to the load-generator CPU) and parse it.

The HTTP/2 scenarios use h2c with prior knowledge: ``h2load -c 64 -m 10`` opens 64
connections with at most 10 streams in flight on each. h2load reports no percentiles, so the
latency fields stay empty. ``apt-get install nghttp2-client`` provides it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from benchmarks.wrk import LOAD_CPU, WrkResult

UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def available() -> bool:
    return shutil.which("h2load") is not None


def h2load_command(
    url: str, duration_s: float, warmup_s: float, connections: int, streams: int
) -> list[str]:
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-c", str(connections), "-m", str(streams)]
    cmd += ["-t", "1", "-D", str(max(1, round(duration_s)))]
    if warmup_s > 0:
        cmd += ["--warm-up-time", f"{max(1, round(warmup_s))}s"]
    return [*cmd, url]


def run_h2load(
    url: str, duration_s: float, warmup_s: float, connections: int = 64, streams: int = 10
) -> WrkResult:
    cmd = h2load_command(url, duration_s, warmup_s, connections, streams)
    timeout = duration_s + warmup_s + 30
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"h2load failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
        )
    return parse_h2load(proc.stdout)


def parse_h2load(text: str) -> WrkResult:
    done = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not done or not counts:
        raise RuntimeError(f"cannot parse h2load output:\n{text}")
    failed, errored, timeout = (int(counts.group(i)) for i in (5, 6, 7))
    return WrkResult(
        requests=int(counts.group(4)),
        seconds=float(done.group(1)) * UNITS_S[done.group(2)],
        rps=float(done.group(3)),
        p50_ms=None,
        p99_ms=None,
        socket_errors=failed + errored + timeout,
        non_2xx=sum(int(codes.group(i)) for i in (3, 4)) if codes else 0,
        raw=text,
    )
