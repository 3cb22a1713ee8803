"""Nothing is lost across max_requests recycling, SIGHUP reloads and SIGTTOU, under load.

Each load runs until the events the test is about have happened under it (so many recycles,
reloads, requests), with a generous time bound for a slow machine, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.load import LoadResult, run_load

# Load tests: CI runs them once, on the compiled build (-m 'not slow' for the pure one).
pytestmark = pytest.mark.slow

T = TypeVar("T")

LOAD_BOUND = 90.0  # seconds: only a machine far slower than any we know gets near it


def _while_repeating(action, interval: float, load: Callable[[], T]) -> T:  # type: ignore[no-untyped-def]
    """Run ``load()``; meanwhile call ``action()`` (if any) every ``interval`` seconds."""
    stop = threading.Event()

    def repeat() -> None:
        while not stop.wait(interval):
            action()

    thread = threading.Thread(target=repeat, daemon=True)
    if action is not None:
        thread.start()
    try:
        return load()
    finally:
        stop.set()
        if action is not None:
            thread.join(5)


def _load_with(port: int, until: Callable[[LoadResult], bool], action, interval: float  # type: ignore[no-untyped-def]
               ) -> LoadResult:
    """Run the load until ``until(result)``; call ``action()`` every ``interval`` seconds."""
    return _while_repeating(action, interval, lambda: asyncio.run(
        run_load(port, connections=64, duration=LOAD_BOUND, until=until)))


def test_max_requests_recycling_loses_nothing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--max-requests", "200",
                       "--max-requests-jitter", "50", worker=worker_class, workers=2)

    def recycles() -> int:
        return srv.log().count("Autorestarting worker")

    result = _load_with(srv.port, lambda r: r.ok >= 10_000 and recycles() >= 40, None, 1.0)
    recycled = recycles()
    print(f"\nmax_requests {worker_class}: {result}, {recycled} recycles")
    assert result.failed == 0, (result, srv.log()[-3000:])
    assert recycled >= 40, f"only {recycled} recycles in {result.sent} requests"
    assert result.ok >= 10_000


def test_sighup_reload_under_load_loses_nothing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class, workers=2)

    def reloads() -> int:
        return srv.log().count("Handling signal: hup")

    # Stop at the fourth HUP: the first three reloads ran their course under load.
    result = _load_with(srv.port, lambda r: r.ok >= 1000 and reloads() >= 4,
                        lambda: srv.signal(signal.SIGHUP), 2.0)
    print(f"\nsighup {worker_class}: {result}")
    assert reloads() >= 4
    assert result.failed == 0, (result, srv.log()[-3000:])
    assert result.ok >= 1000


def test_ttin_adds_and_ttou_drains_a_worker_without_loss(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class, workers=2)
    srv.signal(signal.SIGTTIN)
    srv.wait_ready(workers=3)
    assert len(srv.worker_pids()) == 3
    shrunk: list[int] = []  # requests answered when TTOU was sent

    def shrink(result: LoadResult) -> bool:
        """TTOU once 2000 requests went to three workers; done 2000 requests after the third
        worker left."""
        if not shrunk:
            if result.ok >= 2000:
                shrunk.append(result.ok)
                srv.signal(signal.SIGTTOU)
            return False
        if len(srv.worker_pids()) != 2:
            shrunk[1:] = []
            return False
        if len(shrunk) == 1:
            shrunk.append(result.ok)
        return result.ok >= shrunk[1] + 2000

    result = _load_with(srv.port, shrink, None, 1.0)
    print(f"\nttin/ttou {worker_class}: {result}")
    assert len(shrunk) == 2 and result.done, (shrunk, result)
    assert len(srv.worker_pids()) == 2
    assert result.failed == 0, (result, srv.log()[-3000:])


def _h2_load_with(port: int, until: Callable[[LoadResult], bool], action,  # type: ignore[no-untyped-def]
                  interval: float) -> tuple[LoadResult, int]:
    from tests.load_h2 import run_h2_load

    return _while_repeating(action, interval, lambda: asyncio.run(
        run_h2_load(port, connections=16, duration=LOAD_BOUND, until=until)))


def _h2c_server(start_server, worker_class, *args: str):  # type: ignore[no-untyped-def]
    pytest.importorskip("h2")
    return start_server("tests.apps.basic:app", "--http-protocols", "h2,h1",
                        "--http2-cleartext", "prior-knowledge", *args, worker=worker_class,
                        workers=2)


def test_http2_max_requests_recycling_loses_nothing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    """``max_requests`` counts streams; a recycling worker's GOAWAY names the last stream it
    answers, and what the client sent after it is retried elsewhere (RFC 9113 8.7)."""
    srv = _h2c_server(start_server, worker_class, "--max-requests", "200",
                      "--max-requests-jitter", "50")

    def recycles() -> int:
        return srv.log().count("Autorestarting worker")

    result, retried = _h2_load_with(srv.port, lambda r: r.ok >= 5_000 and recycles() >= 20,
                                    None, 1.0)
    recycled = recycles()
    print(f"\nh2 max_requests {worker_class}: {result}, {recycled} recycles, {retried} retried")
    assert result.failed == 0, (result, srv.log()[-3000:])
    assert recycled >= 20, f"only {recycled} recycles in {result.sent} requests"
    assert result.ok >= 5_000


def test_http2_sighup_reload_under_load_loses_nothing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = _h2c_server(start_server, worker_class)

    def reloads() -> int:
        return srv.log().count("Handling signal: hup")

    result, retried = _h2_load_with(srv.port, lambda r: r.ok >= 1000 and reloads() >= 4,
                                    lambda: srv.signal(signal.SIGHUP), 2.0)
    print(f"\nh2 sighup {worker_class}: {result}, {retried} retried")
    assert reloads() >= 4
    assert result.failed == 0, (result, srv.log()[-3000:])
    assert result.ok >= 1000
