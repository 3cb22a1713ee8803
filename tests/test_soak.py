"""Soak: load with max_requests recycling every few seconds and SIGHUP reloads; nothing lost,
memory flat. Bounded (about 40 s per worker class); benchmarks/ has the longer run."""

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

DURATION = 40.0


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
    stop = threading.Event()
    arbiter: list[int] = []
    workers: list[tuple[float, int]] = []  # (seconds since start, worker RSS)
    started = time.monotonic()

    def watch() -> None:
        next_hup = 10.0
        while not stop.wait(0.5):
            elapsed = time.monotonic() - started
            arbiter.append(rss_kib(srv.pid))
            for pid in srv.worker_pids():
                workers.append((elapsed, rss_kib(pid)))
            if elapsed >= next_hup:
                srv.signal(signal.SIGHUP)
                next_hup += 10.0

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = asyncio.run(run_load(srv.port, connections=32, duration=DURATION))
    finally:
        stop.set()
        watcher.join(5)
    log = srv.log()
    recycled = log.count("Autorestarting worker")
    reloads = log.count("Handling signal: hup")
    print(f"\nsoak {worker_class}: {result.sent} requests, {result.failed} failed, "
          f"{recycled} recycles, {reloads} reloads, arbiter RSS {arbiter[0]}->{arbiter[-1]} KiB")
    assert result.failed == 0, (result, log[-3000:])
    assert result.ok > 10_000
    assert recycled >= 3 and reloads >= 3
    # Flat memory: the arbiter across reloads, the workers from the first to the last quarter.
    assert arbiter[-1] - arbiter[1] < 8 * 1024, arbiter
    quarter = DURATION / 4
    early = max(rss for at, rss in workers if at < quarter)
    late = max(rss for at, rss in workers if at > DURATION - quarter)
    assert late - early < 16 * 1024, (early, late)
