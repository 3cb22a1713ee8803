"""Slow and greedy clients: deadlines, body limits and a thousand slowloris sockets.

Two servers per worker class: ``strict`` with one-second header/body/send deadlines and a
64 KiB body limit, and ``crowded`` with the default deadlines and ``--worker-connections
2000``, to hold a thousand slow clients on one worker while a normal client is served.
Measured figures are printed (run with ``-s``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WORKERS, GunicornServer
from tests.rawhttp import Conn, connect, read_response, read_until_close, status_of

MAX_BODY = 64 * 1024
SLOW_CLIENTS = 1000


@pytest.fixture(scope="module", params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server(worker: str, tmp: Path, *args: str, env: dict[str, str] | None = None
            ) -> GunicornServer:
    return GunicornServer(["-k", worker, "-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout",
                           "5", *args, "tests.apps.basic:app"], tmp, env=env)


@pytest.fixture(scope="module")
def strict(worker_class: str, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GunicornServer]:
    # keep-alive 30: no idle deadline comes near the one-second ones these tests time.
    server = _server(worker_class, tmp_path_factory.mktemp("strict"), "--keep-alive", "30",
                     env={"ASGI_WORKER_HEADER_TIMEOUT": "1", "ASGI_WORKER_BODY_TIMEOUT": "1",
                          "ASGI_WORKER_SEND_TIMEOUT": "1",
                          "ASGI_WORKER_MAX_BODY_SIZE": str(MAX_BODY)})
    yield server
    server.stop()


def wait_closed(sock: Conn, timeout: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection (or reset it), and what it sent."""
    started = time.monotonic()
    data = read_until_close(sock, timeout)
    return time.monotonic() - started, data


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- deadlines ----------------------------------------------------------------------------------


def test_slowloris_head_is_dropped_at_the_header_deadline(strict: GunicornServer) -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 100
    with connect(strict.port, timeout=10) as sock:
        started = time.monotonic()
        sock.settimeout(0.25)
        closed_at = None
        for byte in request:  # one byte every 0.25 s: each byte resets no deadline
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    closed_at = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed_at = time.monotonic() - started
                break
    assert closed_at is not None, "a trickled head kept the connection for 25 s"
    # ASGI_WORKER_HEADER_TIMEOUT=1 from the first byte, not from the last (that would be 25 s);
    # a busy machine gets seconds of slack.
    assert 0.9 < closed_at < 1 + 5, closed_at


def test_slow_body_is_dropped_at_the_body_deadline(strict: GunicornServer) -> None:
    cuts = strict.log().count("client too slow")
    with connect(strict.port, timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        elapsed, data = wait_closed(sock, timeout=30)
    # Closed at ASGI_WORKER_BODY_TIMEOUT=1 (not at keep-alive's 30 s or never), with seconds
    # of slack for a busy machine, and by the body deadline.
    assert data == b"" and 0.9 < elapsed < 1 + 5, (elapsed, data[:100])
    strict.wait_for_log("client too slow", count=cuts + 1)


def test_a_client_that_never_reads_is_dropped_and_costs_no_memory(strict: GunicornServer
                                                                  ) -> None:
    pid = strict.worker_pids()[0]
    before = rss_kib(pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", strict.port))
    cuts = strict.log().count("client too slow")
    sock.sendall(b"GET /big?256 HTTP/1.1\r\nHost: x\r\n\r\n")  # 256 MiB, never read
    time.sleep(0.6)
    grown = rss_kib(pid) - before
    # ASGI_WORKER_SEND_TIMEOUT=1: wait for the cut itself before reading anything.
    strict.wait_for_log("client too slow", count=cuts + 1, timeout=20)
    received = 0
    sock.settimeout(3)
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    sock.close()
    print(f"\n[{strict.args[1]}] unread 256 MiB response: worker RSS +{grown} KiB, "
          f"{received // 1024} KiB reached the client before the send deadline cut it")
    assert grown < 32 * 1024, f"worker RSS grew {grown} KiB"
    assert received < 64 * 1024 * 1024, f"{received} bytes: the response was not cut off"
    assert "client too slow" in strict.log()
    with connect(strict.port) as other:
        other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(other)[0] == 200


# -- body size limit ------------------------------------------------------------------------


def test_content_length_over_the_limit_gets_413(strict: GunicornServer) -> None:
    with connect(strict.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % (MAX_BODY + 1))
        data = read_until_close(sock)
    assert status_of(data) == 413 and b"connection: close" in data


def test_body_at_the_limit_is_accepted(strict: GunicornServer) -> None:
    with connect(strict.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % MAX_BODY + b"y" * MAX_BODY)
        status, _, body = read_response(sock)
    assert status == 200 and len(body) == MAX_BODY


def test_chunked_body_growing_over_the_limit_gets_413(strict: GunicornServer) -> None:
    chunk = b"z" * 8192
    with connect(strict.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for _ in range(MAX_BODY // len(chunk) + 4):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                time.sleep(0.002)
        data = read_until_close(sock)
    assert status_of(data) == 413 and b"connection: close" in data


# -- a thousand slow clients on one worker -----------------------------------------------------


@pytest.fixture(scope="module")
def crowded(worker_class: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[GunicornServer]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * SLOW_CLIENTS + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    server = _server(worker_class, tmp_path_factory.mktemp("crowded"),
                     "--worker-connections", "2000")
    yield server
    server.stop()


def test_slow_clients_do_not_stop_a_worker_answering(crowded: GunicornServer,
                                                     worker_class: str) -> None:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * SLOW_CLIENTS + 256:
        pytest.skip("not enough file descriptors for the slow clients")
    slow: list[socket.socket] = []
    try:
        for index in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", crowded.port), timeout=5)
            # Half a head, and the body of a POST that never comes: both kinds of slow.
            if index % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            else:
                sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
            slow.append(sock)
        latencies = []
        for _ in range(30):
            for sock in slow[::50]:
                sock.sendall(b"a" if sock is not slow[0] else b"b")  # still trickling
            started = time.monotonic()
            with connect(crowded.port) as client:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body = read_response(client)
            latencies.append(time.monotonic() - started)
            assert (status, body) == (200, b"Hello, world!")
        still_open = sum(1 for sock in slow if _is_open(sock))
    finally:
        for sock in slow:
            sock.close()
    print(f"\n[{worker_class}] {SLOW_CLIENTS} slow clients ({still_open} still connected): "
          f"normal request: first {latencies[0] * 1000:.1f} ms, then p50 "
          f"{statistics.median(latencies[1:]) * 1000:.1f} ms, max {max(latencies[1:]) * 1000:.1f}"
          f" ms over {len(latencies) - 1} requests")
    assert still_open >= SLOW_CLIENTS * 0.95, "the slow clients were not all held open"
    # A worker that served the normal client only once the slow ones left would take the
    # 10 s header deadline; half of it leaves a busy machine room (speed is benchmarks' job).
    assert max(latencies) < 5.0, latencies


def _is_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
