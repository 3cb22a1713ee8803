"""Failures that must stay local: a worker killed under load, an app exception in a request.

(Lifespan startup failure stopping gunicorn is in tests/test_worker.py.)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

from tests.rawhttp import Conn, connect, exchange, read_response, status_of
from tests.waiting import wait_until

CLIENTS = 8
BOUND = 60.0  # seconds any one phase may take, for a machine far slower than ours


@dataclass
class Client:
    """One keep-alive client: request after request, reconnecting after a failure."""

    port: int
    stop: threading.Event
    ok: list[tuple[float, int]] = field(default_factory=list)  # (time, worker pid)
    failed: list[tuple[float, int]] = field(default_factory=list)  # (time, pid of the conn)

    def run(self) -> None:
        sock: Conn | None = None
        conn_pid = 0
        deadline = time.monotonic() + 3 * BOUND
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if sock is None:
                    sock = connect(self.port, timeout=5)
                    conn_pid = 0
                sock.sendall(b"GET /pid?0.02 HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body = read_response(sock, timeout=5)
                assert status == 200
                conn_pid = int(body)
                self.ok.append((time.monotonic(), conn_pid))
            except (OSError, ConnectionError, ValueError):
                self.failed.append((time.monotonic(), conn_pid))
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()


def test_kill_9_of_one_worker_loses_only_its_in_flight_requests(start_server,  # type: ignore[no-untyped-def]
                                                                 worker_class) -> None:
    srv = start_server("tests.apps.hardening:app", worker=worker_class, workers=2)
    before = srv.worker_pids()
    assert len(before) == 2
    stop = threading.Event()
    clients = [Client(srv.port, stop) for _ in range(CLIENTS)]
    threads = [threading.Thread(target=client.run) for client in clients]
    for thread in threads:
        thread.start()
    try:
        # Every client has a connection to a worker and is busy on it.
        assert wait_until(lambda: all(len(c.ok) >= 5 for c in clients), BOUND)
        # The worker most clients are on, so the kill certainly hits requests in flight.
        counts = {pid: sum(1 for c in clients if c.ok[-1][1] == pid) for pid in before}
        victim = max(counts, key=lambda pid: counts[pid])
        survivor = next(pid for pid in before if pid != victim)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        def after_kill() -> list[tuple[float, int]]:
            return [entry for c in clients for entry in c.ok if entry[0] > killed_at]

        # Served on: by the survivor, and by the replacement once the arbiter started it.
        assert wait_until(lambda: len([pid for pid in srv.worker_pids() if pid not in before])
                          == 1 and len(after_kill()) >= CLIENTS * 20, BOUND)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    ok = [entry for client in clients for entry in client.ok]
    failed = [entry for client in clients for entry in client.failed]
    after = srv.worker_pids()
    replacement = [pid for pid in after if pid not in before]
    served_after = {pid for t, pid in ok if t > killed_at}
    print(f"\n[{worker_class}] {len(ok) + len(failed)} requests, {len(failed)} failed "
          f"({counts[victim]} clients were on the killed worker), "
          f"served after the kill by {sorted(served_after)}; replacement {replacement}")
    # Only the requests in flight on the killed worker failed: at most one per client that
    # was on it, each on a connection to it (or on one accepted by it but not yet answered).
    assert len(failed) <= counts[victim], failed
    assert all(pid in (victim, 0) for _, pid in failed), failed
    assert all(t >= killed_at for t, _ in failed), "a failure before the kill"
    # The other worker kept serving throughout, and the arbiter replaced the dead one.
    assert survivor in served_after
    assert len(replacement) == 1 and survivor in after and victim not in after
    assert exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    ).endswith(b"Hello, world!")


def test_an_app_exception_never_touches_a_concurrent_request(start_server,  # type: ignore[no-untyped-def]
                                                            worker_class) -> None:
    srv = start_server("tests.apps.hardening:app", worker=worker_class)
    slow = []
    for _ in range(10):
        sock = connect(srv.port)
        sock.sendall(b"GET /sleep?0.6 HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.append(sock)
    time.sleep(0.1)  # the slow requests are in flight in the same worker
    failures = [b"/error-before", b"/error-after", b"/error-after-chunked", b"/no-response",
                b"/bad-header", b"/too-long"]
    for target in failures * 3:
        data = exchange(srv.port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        % target)
        assert status_of(data) in (200, 500), data[:100]
    # A keep-alive connection that got a 500 still serves its next request.
    with connect(srv.port) as sock:
        sock.sendall(b"GET /error-before HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 500
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[2] == b"Hello, world!"
    for sock in slow:
        status, _, body = read_response(sock)
        sock.close()
        assert (status, body) == (200, b"slept 0.6")
    assert len(srv.worker_pids()) == 1
    log = srv.log()
    assert log.count("Booting worker") == 1  # the worker never restarted
    # error-before, error-after, error-after-chunked, bad-header; plus the keep-alive one
    assert log.count("Exception in ASGI application") == 3 * 4 + 1
