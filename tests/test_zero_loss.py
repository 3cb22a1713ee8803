"""Nothing is lost across max_requests recycling, SIGHUP reloads and SIGTTOU, under load."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest

from tests.load import LoadResult, run_load

# Load tests: CI runs them once, on the compiled build (-m 'not slow' for the pure one).
pytestmark = pytest.mark.slow


def _load_with(port: int, duration: float, action, interval: float) -> LoadResult:  # type: ignore[no-untyped-def]
    """Run the load; call ``action()`` every ``interval`` seconds meanwhile."""
    stop = threading.Event()

    def repeat() -> None:
        while not stop.wait(interval):
            action()

    thread = threading.Thread(target=repeat, daemon=True)
    if action is not None:
        thread.start()
    try:
        return asyncio.run(run_load(port, connections=64, duration=duration))
    finally:
        stop.set()


def test_max_requests_recycling_loses_nothing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--max-requests", "200",
                       "--max-requests-jitter", "50", worker=worker_class, workers=2)
    result = _load_with(srv.port, 8.0, None, 1.0)
    recycled = srv.log().count("Autorestarting worker")
    print(f"\nmax_requests {worker_class}: {result}, {recycled} recycles")
    assert recycled >= 4, f"only {recycled} recycles in {result.sent} requests"
    assert result.failed == 0, (result, srv.log()[-3000:])
    assert result.ok > 1000


def test_sighup_reload_under_load_loses_nothing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class, workers=2)
    result = _load_with(srv.port, 8.0, lambda: srv.signal(signal.SIGHUP), 2.0)
    print(f"\nsighup {worker_class}: {result}")
    assert srv.log().count("Handling signal: hup") >= 3
    assert result.failed == 0, (result, srv.log()[-3000:])
    assert result.ok > 1000


def test_ttin_adds_and_ttou_drains_a_worker_without_loss(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class, workers=2)
    srv.signal(signal.SIGTTIN)
    srv.wait_ready(workers=3)
    assert len(srv.worker_pids()) == 3
    signals = iter([signal.SIGTTOU])

    def shrink() -> None:
        sig = next(signals, None)
        if sig is not None:
            srv.signal(sig)

    result = _load_with(srv.port, 5.0, shrink, 1.5)
    deadline = time.monotonic() + 10
    while len(srv.worker_pids()) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(srv.worker_pids()) == 2
    print(f"\nttin/ttou {worker_class}: {result}")
    assert result.failed == 0, (result, srv.log()[-3000:])
