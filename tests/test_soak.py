"""Soak: load with max_requests recycling and SIGHUP reloads; nothing lost, memory flat.

The load lasts until three reloads and three recycles have happened (and at least
``MIN_DURATION``), not for a fixed time: a fixed time with a request cap ended before the third
reload on a fast machine, and would end before the third recycle on a slow one. ``MAX_DURATION``
only bounds a run whose events never come (the assertions then say which). About 35 s per worker
class; benchmarks/ has the longer run.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.load import run_load

# Load tests: CI runs them once, on the compiled build (-m 'not slow' for the pure one).
pytestmark = pytest.mark.slow

MIN_DURATION = 30.0  # long enough to compare the first and the last quarter's memory
MAX_DURATION = 150.0
RELOADS = 3
RECYCLES = 3
HUP_SPACING = 8.0  # after a reload is handled, before the next (the new workers serve a while)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_soak_recycling_and_reloads(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--max-requests", "3000",
                       "--max-requests-jitter", "500", worker=worker_class, workers=2)
    stop_load = threading.Event()
    stop_watch = threading.Event()
    arbiter: list[int] = []
    workers: list[tuple[float, int]] = []  # (seconds since start, worker RSS)
    started = time.monotonic()

    def watch() -> None:
        sent = 0
        next_hup = HUP_SPACING
        while not stop_watch.wait(0.5):
            elapsed = time.monotonic() - started
            arbiter.append(rss_kib(srv.pid))
            for pid in srv.worker_pids():
                workers.append((elapsed, rss_kib(pid)))
            log = srv.log()
            handled = log.count("Handling signal: hup")
            if sent < RELOADS and handled == sent and elapsed >= next_hup:
                srv.signal(signal.SIGHUP)
                sent += 1
                next_hup = elapsed + HUP_SPACING
            if (handled >= RELOADS and log.count("Autorestarting worker") >= RECYCLES
                    and elapsed >= max(MIN_DURATION, next_hup)):
                stop_load.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = asyncio.run(run_load(srv.port, connections=32, duration=MAX_DURATION,
                                      max_requests=100_000_000,
                                      until=lambda _: stop_load.is_set()))
    finally:
        stop_watch.set()
        watcher.join(5)
    duration = time.monotonic() - started
    log = srv.log()
    recycled = log.count("Autorestarting worker")
    reloads = log.count("Handling signal: hup")
    print(f"\nsoak {worker_class}: {result.sent} requests in {duration:.0f}s, {result.failed} "
          f"failed, {recycled} recycles, {reloads} reloads, arbiter RSS "
          f"{arbiter[0]}->{arbiter[-1]} KiB")
    assert result.failed == 0, (result, log[-3000:])
    assert reloads >= RELOADS and recycled >= RECYCLES, (reloads, recycled, duration)
    # Each recycle takes at least max_requests - jitter requests of one worker.
    assert result.ok >= RECYCLES * 2500, result
    assert stop_load.is_set(), f"the events did not come within {MAX_DURATION:g}s"
    # Flat memory: the arbiter across reloads, the workers from the first to the last quarter.
    assert arbiter[-1] - arbiter[1] < 8 * 1024, arbiter
    quarter = duration / 4
    early = max(rss for at, rss in workers if at < quarter)
    late = max(rss for at, rss in workers if at > duration - quarter)
    assert late - early < 16 * 1024, (early, late)
