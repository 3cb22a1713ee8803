"""Per-stream limits and deadlines on HTTP/2, and streams named when the loop is blocked.

Gunicorn's ``limit_request_*`` hold each stream as they hold an HTTP/1.1 request; a stalled
request body or a response the peer's window holds back ends its own stream after the
HTTP/1.1 timeouts, and the connection's other streams go on. Real workers, a raw HTTP/2 client
built on h2's state machine (frames the test controls), and httpx for the HTTP/1.1 side.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
from gunicorn.config import Config

pytest.importorskip("h2")
import h2.config
import h2.connection
import h2.events
import h2.settings

pytestmark = pytest.mark.skipif("http2_cleartext" not in Config().settings,
                                reason="this Gunicorn has no http2_cleartext (26.2+)")

CANCEL = 8


class Client:
    """An h2c prior-knowledge connection: requests, body pieces and windows as a test says."""

    def __init__(self, port: int, window: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        self.h2.initiate_connection()
        if window is not None:
            # Each stream's window starts at ``window``; the connection's is made large, so
            # only the stream windows the test opens let the worker send.
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
            self.h2.increment_flow_control_window(1 << 30)
        self.manual_windows = window is not None
        self.flush()
        self.events: list[tuple[float, Any]] = []  # (arrival, event)
        self.closed = False

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", end: bool = True,
                headers: list[tuple[bytes, bytes]] | None = None) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [(b":method", method.encode()), (b":path", path.encode()),
                                         (b":scheme", b"http"), (b":authority", b"localhost"),
                                         *(headers or [])], end_stream=end)
        self.flush()
        return stream_id

    def send(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self.h2.send_data(stream_id, data, end_stream=end)
        self.flush()

    def open_window(self, stream_id: int, size: int) -> None:
        self.h2.increment_flow_control_window(size, stream_id)
        self.flush()

    def read(self, until: Any, timeout: float = 10.0) -> None:
        """Read events until ``until(self)`` is true, the worker closes, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not until(self) and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(min(left, 0.1))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            now = time.monotonic()
            for event in self.h2.receive_data(data):
                self.events.append((now, event))
                if isinstance(event, h2.events.DataReceived) and not self.manual_windows:
                    self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
            self.flush()

    def of(self, kind: type, stream_id: int | None = None) -> list[tuple[float, Any]]:
        return [(at, e) for at, e in self.events if isinstance(e, kind)
                and (stream_id is None or getattr(e, "stream_id", None) == stream_id)]

    def status(self, stream_id: int) -> int | None:
        for _, event in self.of(h2.events.ResponseReceived, stream_id):
            return int(dict(event.headers)[b":status"])
        return None

    def body(self, stream_id: int) -> bytes:
        return b"".join(e.data for _, e in self.of(h2.events.DataReceived, stream_id))

    def ended(self, *stream_ids: int) -> bool:
        done = {e.stream_id for _, e in self.events
                if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))}
        return done >= set(stream_ids)

    def reset_at(self, stream_id: int) -> float | None:
        for at, _ in self.of(h2.events.StreamReset, stream_id):
            return at
        return None

    def goaway(self) -> bool:
        return bool(self.of(h2.events.ConnectionTerminated))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def h2c(start_server, worker_class):  # type: ignore[no-untyped-def]
    def start(*args: str, app: str = "tests.apps.http2:app",
              env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return start_server(app, "--http-protocols", "h2,h1", "--http2-cleartext", "both",
                            *args, worker=worker_class, env=env)
    return start


# -- limit_request_*: per stream, as on HTTP/1.1 -----------------------------------------------


def test_limit_request_field_size_answers_431_on_that_stream(h2c) -> None:  # type: ignore[no-untyped-def]
    srv = h2c("--limit-request-field_size", "200")
    # The size of a field is that of its HTTP/1.1 line: name, ": ", value, CRLF.
    at_limit = [(b"x-big", b"v" * (200 - 4 - 5))]
    over = [(b"x-big", b"v" * (200 - 4 - 5 + 1))]
    # HTTP/1.1 on the same port draws the line at the same byte.
    for fields, status in ((at_limit, 200), (over, 431)):
        assert httpx.get(f"{srv.url}/", headers=fields).status_code == status
    client = Client(srv.port)
    try:
        slow = client.request("/sleep?1")  # in flight while the others are answered
        fits = client.request("/", headers=at_limit)
        refused = client.request("/", headers=over)
        cookie = client.request("/", headers=[(b"cookie", b"c" * 180), (b"cookie", b"d" * 180)])
        client.read(lambda c: c.ended(slow, fits, refused, cookie))
        assert client.status(refused) == 431
        assert b"x-big" in client.body(refused)
        # Each cookie crumb is a field as sent; the app sees them joined (RFC 9113 8.2.3).
        assert [client.status(s) for s in (slow, fits, cookie)] == [200] * 3
        assert client.body(slow) == b"slept"
        assert not client.goaway() and not client.closed
        # The refused header list is refused again when its block repeats (HPACK indexed).
        again = client.request("/", headers=over)
        client.read(lambda c: c.ended(again))
        assert client.status(again) == 431
    finally:
        client.close()
    assert "Invalid HTTP/2 request from ip=127.0.0.1: header field b'x-big' too large" in srv.log()
    assert "Traceback" not in srv.log()


def test_limit_request_fields_counts_as_http11_would(h2c) -> None:  # type: ignore[no-untyped-def]
    srv = h2c("--limit-request-fields", "4")
    # Host (from :authority) and three more fields; cookie crumbs are one field.
    four = [(b"a", b"1"), (b"b", b"2"), (b"cookie", b"x=1"), (b"cookie", b"y=2")]
    five = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"cookie", b"x=1")]
    client = Client(srv.port)
    try:
        ok = client.request("/scope", headers=four)
        refused = client.request("/", headers=five)
        after = client.request("/")
        client.read(lambda c: c.ended(ok, refused, after))
        assert (client.status(ok), client.status(refused), client.status(after)) == (
            200, 431, 200)
        assert b"too many header fields" in client.body(refused)
        assert b'["cookie", "x=1; y=2"]' in client.body(ok)
        assert not client.goaway()
    finally:
        client.close()


def test_limit_request_line_holds_method_and_path(h2c) -> None:  # type: ignore[no-untyped-def]
    srv = h2c("--limit-request-line", "100")
    # "GET <path> HTTP/1.1" is 100 bytes: served over both protocols, one byte more is 414.
    fits = "/" + "p" * (100 - 10 - 3 - 1)
    longer = fits + "p"
    assert httpx.get(srv.url + fits).status_code == 200
    assert httpx.get(srv.url + longer).status_code == 414
    client = Client(srv.port)
    try:
        ok = client.request(fits)
        refused = client.request(longer)
        client.read(lambda c: c.ended(ok, refused))
        assert (client.status(ok), client.status(refused)) == (200, 414)
    finally:
        client.close()


# -- deadlines per stream -----------------------------------------------------------------------


def test_a_stalled_request_body_ends_only_its_stream(h2c) -> None:  # type: ignore[no-untyped-def]
    timeout = 3.0
    srv = h2c(env={"ASGI_WORKER_BODY_TIMEOUT": str(timeout)})
    client = Client(srv.port)
    try:
        began = time.monotonic()
        stalled = client.request("/echo", "POST", end=False)  # HEADERS, then nothing
        client.read(lambda c: time.monotonic() - began >= timeout / 2, timeout=timeout)
        # A second upload, started later, keeps sending: a piece every 0.3 s, well within
        # the body timeout, until the stalled one is reset.
        trickled = client.request("/echo", "POST", end=False)
        sent = b""
        while client.reset_at(stalled) is None and time.monotonic() - began < 20:
            piece = b"%d;" % len(sent)
            client.send(trickled, piece)
            sent += piece
            client.read(lambda c: c.reset_at(stalled) is not None, timeout=0.3)
        reset_at = client.reset_at(stalled)
        assert reset_at is not None, "the stalled stream was never reset"
        assert reset_at - began >= timeout  # its own deadline, not an earlier one
        assert client.of(h2.events.StreamReset, stalled)[0][1].error_code == CANCEL
        # The trickled upload was not cut with it: it completes, the connection goes on.
        assert client.reset_at(trickled) is None
        client.send(trickled, b"end", end=True)
        after = client.request("/")
        client.read(lambda c: c.ended(trickled, after))
        assert client.reset_at(trickled) is None
        assert (client.status(trickled), client.body(trickled)) == (200, sent + b"end")
        assert client.status(after) == 200
        assert not client.goaway() and not client.closed
    finally:
        client.close()
    srv.wait_for_log(rf"Resetting HTTP/2 stream {stalled} from 127\.0\.0\.1: client too slow")
    assert f"Resetting HTTP/2 stream {trickled} " not in srv.log()


def test_a_response_held_by_the_window_ends_only_its_stream(h2c) -> None:  # type: ignore[no-untyped-def]
    timeout = 3.0
    srv = h2c(env={"ASGI_WORKER_SEND_TIMEOUT": str(timeout)})
    client = Client(srv.port, window=0)  # no stream may receive DATA until the test says
    try:
        began = time.monotonic()
        held = client.request("/big?100000")  # its window never opens
        client.read(lambda c: time.monotonic() - began >= timeout / 2, timeout=timeout)
        # A second download, started later, whose window opens by one ASGI message (100 kB)
        # every 0.3 s: each message waits far less than the send timeout.
        later = client.request("/big?3000000")
        while client.reset_at(held) is None and time.monotonic() - began < 20:
            client.open_window(later, 100000)
            client.read(lambda c: c.reset_at(held) is not None, timeout=0.3)
        reset_at = client.reset_at(held)
        assert reset_at is not None, "the held stream was never reset"
        assert reset_at - began >= timeout  # its own deadline, not an earlier one
        assert client.of(h2.events.StreamReset, held)[0][1].error_code == CANCEL
        assert client.reset_at(later) is None
        client.open_window(later, 3000000)
        client.read(lambda c: c.ended(later), timeout=20)
        assert client.reset_at(later) is None
        assert (client.status(later), len(client.body(later))) == (200, 3000000)
        assert not client.goaway() and not client.closed
    finally:
        client.close()
    srv.wait_for_log(rf"Resetting HTTP/2 stream {held} from 127\.0\.0\.1: client too slow")
    assert f"Resetting HTTP/2 stream {later} " not in srv.log()


def test_a_client_that_stops_reading_the_connection_is_closed(h2c) -> None:  # type: ignore[no-untyped-def]
    # Every window wide open, a large response, and the socket never read: the worker's
    # writes back up, and after the send timeout the connection is closed (as on HTTP/1.1).
    srv = h2c(env={"ASGI_WORKER_SEND_TIMEOUT": "1"})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    conn.increment_flow_control_window((1 << 31) - 1 - 65535)
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [(b":method", b"GET"), (b":path", b"/big?50000000"),
                                  (b":scheme", b"http"), (b":authority", b"localhost")],
                      end_stream=True)
    try:
        sock.sendall(conn.data_to_send())
        srv.wait_for_log(r"Closing HTTP/2 connection from 127\.0\.0\.1: client too slow",
                         timeout=20)
    finally:
        sock.close()
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        assert client.get(f"{srv.url}/").status_code == 200


# -- the timeout kill names the HTTP/2 streams in flight -----------------------------------


def test_a_blocked_loop_report_names_the_http2_streams_in_flight(h2c) -> None:  # type: ignore[no-untyped-def]
    srv = h2c("--timeout", "2", app="tests.apps.first_contact:app")
    client = Client(srv.port)
    try:
        held = [client.request("/held"), client.request("/held?second")]
        client.read(lambda c: all(c.body(s) == b"first;" for s in held))
        client.request("/answer-then-block?8")  # answered, then the app blocks the loop
        log = srv.wait_for_log(r"Worker \(pid:\d+\) exited with code 1", timeout=30)
    finally:
        client.close()
    named = [f"GET /held (HTTP/2 stream {s}) from 127.0.0.1" for s in held]
    warning = log.split("[WARNING] The event loop has been blocked for ", 1)[1]
    kill = log.split("[ERROR] Worker timeout: the event loop was blocked for ", 1)[1]
    for report in (warning, kill):
        in_flight = report.split("Requests in flight: ", 1)[1].split("\n", 1)[0]
        for name in named:
            assert name in in_flight, report[:2000]
