"""HTTP/2 and its negotiation, against real workers with real clients."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from gunicorn.config import Config

from tests.conftest import ROOT
from tests.h2frames import whole_frames


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


_SETTINGS = Config().settings
needs_http2_settings = pytest.mark.skipif(
    "http_protocols" not in _SETTINGS or "http2_cleartext" not in _SETTINGS,
    reason="this Gunicorn has no http_protocols / http2_cleartext (25.0 / 26.2 and newer do)")


def _tls_client(alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    return context


# -- ALPN offers only what the worker serves ---------------------------------------------------


def test_alpn_set_by_an_ssl_context_hook_is_narrowed(  # type: ignore[no-untyped-def]
        start_server, worker_class, certificate, tmp_path: Path) -> None:
    # HTTP/1.1 only (the default): a hook that offers h2 must not make clients pick it.
    cert, key = certificate
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def ssl_context(conf, default_ssl_context_factory):\n"
        "    context = default_ssl_context_factory()\n"
        "    context.set_alpn_protocols(['h2', 'http/1.1'])\n"
        "    return context\n")
    srv = start_server("tests.apps.basic:app", "-c", str(conf), "--certfile", str(cert),
                       "--keyfile", str(key), worker=worker_class)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw, \
            _tls_client(["h2", "http/1.1"]).wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
    with httpx.Client(http2=True, verify=False, timeout=10) as client:
        response = client.get(f"https://127.0.0.1:{srv.port}/")
        assert (response.status_code, response.http_version) == (200, "HTTP/1.1")


# -- the h2 package: loaded only for HTTP/2 ----------------------------------------------------


def test_an_http11_worker_never_loads_h2(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.http2:app", worker=worker_class)
    assert httpx.get(f"{srv.url}/modules").json() == []


@needs_http2_settings
def test_http2_without_the_h2_package_stops_with_what_to_install(  # type: ignore[no-untyped-def]
        start_server, worker_class, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "h2.py").write_text("raise ImportError('No module named h2')\n")
    srv = start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                       "--http2-cleartext", "prior-knowledge", worker=worker_class,
                       env={"PYTHONPATH": f"{shadow}:{ROOT}"}, wait_ready=False)
    assert srv.proc.wait(20) != 0
    log = srv.log()
    # Gunicorn 27 refuses this configuration itself, before any worker starts; older ones
    # leave it to the worker.
    assert "[http2]" in log
    assert "asgi_worker ready" not in log


# -- HTTP/2 served: TLS + ALPN, and cleartext prior knowledge for trusted peers ----------------


class RawH2:
    """An HTTP/2 client over a plain socket with h2's state machine: frames a test controls."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        import h2.config
        import h2.connection

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                        header_encoding=None))
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())
        self.events: list[object] = []
        self.buffer = b""

    def request(self, path: str, body: bytes = b"") -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [(b":method", b"POST" if body else b"GET"),
                                         (b":path", path.encode()), (b":scheme", b"http"),
                                         (b":authority", b"localhost")],
                             end_stream=not body)
        if body:
            self.h2.send_data(stream_id, body, end_stream=True)
        self.sock.sendall(self.h2.data_to_send())
        return stream_id

    def read(self, until: object, timeout: float = 10.0) -> list[object]:
        """Read events until ``until(events)`` is true, the peer closes, or ``timeout``."""
        import h2.connection
        import h2.events

        self.sock.settimeout(timeout)
        while not until(self.events):  # type: ignore[operator]
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                self.events.append("closed")
                break
            self.buffer += data
            frames, self.buffer = whole_frames(self.buffer)
            for frame in frames:
                for event in self.h2.receive_data(frame):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                          event.stream_id)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        machine = self.h2.state_machine
                        machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            try:
                self.sock.sendall(self.h2.data_to_send())
            except OSError:  # the server closed after its last frame
                self.events.append("closed")
                break
        return self.events

    def close(self) -> None:
        self.sock.close()


def _ended(stream_id: int) -> object:
    import h2.events

    return lambda events: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id
                              for e in events)


def _body(events: list[object], stream_id: int) -> bytes:
    import h2.events

    return b"".join(e.data for e in events  # type: ignore[attr-defined]
                    if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id)


def _goaway(events: list[object]) -> object:
    import h2.events

    return next((e for e in events if isinstance(e, h2.events.ConnectionTerminated)), None)


def _h2c(start_server, worker_class, *args: str):  # type: ignore[no-untyped-def]
    pytest.importorskip("h2")
    return start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                        "--http2-cleartext", "prior-knowledge", *args, worker=worker_class)


@needs_http2_settings
def test_tls_alpn_serves_http2(start_server, worker_class, certificate) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("h2")
    cert, key = certificate
    srv = start_server("tests.apps.http2:app", "--certfile", str(cert), "--keyfile", str(key),
                       "--http-protocols", "h2,h1", worker=worker_class)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw, \
            _tls_client(["h2", "http/1.1"]).wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "h2"
    base = f"https://127.0.0.1:{srv.port}"
    with httpx.Client(http2=True, verify=False, timeout=20) as client:
        response = client.get(f"{base}/scope?q=1", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        assert (response.status_code, response.http_version) == (200, "HTTP/2")
        scope = response.json()
        assert (scope["http_version"], scope["scheme"], scope["method"]) == ("2", "https", "GET")
        assert (scope["path"], scope["query_string"]) == ("/scope", "q=1")
        headers = dict(scope["headers"])
        assert headers["host"] == f"127.0.0.1:{srv.port}"  # from :authority
        assert not [name for name, _ in scope["headers"] if name.startswith(":")]
        assert headers["cookie"] == "a=1; b=2"  # RFC 9113 section 8.2.3
        assert scope["client"][0] == "127.0.0.1"
        # Flow control both ways: a body larger than every window, echoed back.
        payload = bytes(range(256)) * 8192
        echoed = client.post(f"{base}/echo", content=payload)
        assert echoed.content == payload
        big = client.get(f"{base}/big?1000001")
        assert len(big.content) == 1000001
        assert response.headers["server"] == "gunicorn" and "date" in response.headers
    # HTTP/1.1 clients on the same port are still served.
    with httpx.Client(verify=False, timeout=10) as client:
        response = client.get(f"{base}/")
        assert (response.status_code, response.http_version) == (200, "HTTP/1.1")
    assert "Traceback" not in srv.log()


@needs_http2_settings
def test_h2c_prior_knowledge_from_a_trusted_peer(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = _h2c(start_server, worker_class)
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        response = client.get(f"{srv.url}/scope")
        assert (response.status_code, response.http_version) == (200, "HTTP/2")
        assert response.json()["scheme"] == "http"
        payload = b"p" * 300_000
        assert client.post(f"{srv.url}/echo", content=payload).content == payload
    # A trusted peer on a prior-knowledge port that speaks HTTP/1.x: 400, as Gunicorn does.
    assert httpx.get(f"{srv.url}/").status_code == 400


@needs_http2_settings
def test_h2c_from_an_untrusted_peer_is_http11(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = _h2c(start_server, worker_class, "--forwarded-allow-ips", "10.1.2.3")
    response = httpx.get(f"{srv.url}/")
    assert (response.status_code, response.http_version) == (200, "HTTP/1.1")
    # Served as HTTP/1.x, the preface is a bad request: the worker answers 400 and closes. The
    # client then fails reading that answer as HTTP/2, or (the rest of its preface unread by the
    # closing server) on the connection's reset; either way no HTTP/2 is served.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)), \
            httpx.Client(http1=False, http2=True, timeout=10) as client:
        client.get(f"{srv.url}/")


@needs_http2_settings
def test_streams_on_one_connection_and_max_requests(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = _h2c(start_server, worker_class, "--max-requests", "5")
    client = RawH2(srv.port)
    try:
        ids = [client.request("/") for _ in range(5)]
        events = client.read(lambda events: all(_ended(i)(events) for i in ids))
        assert [_body(events, i) for i in ids] == [b"Hello, world!"] * 5
        # The fifth stream used the budget: the worker drains with a GOAWAY naming the last
        # stream it took, then closes.
        events = client.read(lambda events: "closed" in events, timeout=15)
        goaway = _goaway(events)
        assert goaway is not None and goaway.last_stream_id == ids[-1]  # type: ignore[attr-defined]
        assert goaway.error_code == 0  # type: ignore[attr-defined]
    finally:
        client.close()
    srv.wait_for_log(r"Autorestarting worker after 5 requests")


@needs_http2_settings
def test_sigterm_sends_goaway_and_lets_open_streams_finish(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    import signal

    srv = _h2c(start_server, worker_class)
    client = RawH2(srv.port)
    try:
        slow = client.request("/sleep?1.5")
        fast = client.request("/")
        client.read(_ended(fast))
        srv.signal(signal.SIGTERM)
        events = client.read(lambda events: _ended(slow)(events) and _goaway(events),
                             timeout=15)
        assert _body(events, slow) == b"slept"
        assert _goaway(events).last_stream_id == fast  # the highest it took  # type: ignore[union-attr]
    finally:
        client.close()


@needs_http2_settings
def test_keepalive_closes_an_idle_connection_with_goaway(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = _h2c(start_server, worker_class, "--keep-alive", "1")
    client = RawH2(srv.port)
    try:
        stream = client.request("/")
        client.read(_ended(stream))
        started = time.monotonic()
        events = client.read(lambda events: "closed" in events, timeout=10)
        assert "closed" in events and _goaway(events) is not None
        assert time.monotonic() - started < 5
    finally:
        client.close()


@needs_http2_settings
def test_access_log_has_one_line_per_stream(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "access.log"
    srv = _h2c(start_server, worker_class, "--access-logfile", str(log))
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        for path in ("/a", "/b", "/c"):
            assert client.get(f"{srv.url}{path}").status_code == 200
    from tests.waiting import wait_until

    assert wait_until(lambda: log.exists() and log.read_text().count("HTTP/2") == 3)
    lines = log.read_text().splitlines()
    # Gunicorn's protocol for an HTTP/2 request is HTTP/2.0 (its version is (2, 0)).
    assert [line.split('"')[1].split() for line in lines] == [
        ["GET", path, "HTTP/2.0"] for path in ("/a", "/b", "/c")]
    assert all(' 200 13 ' in line for line in lines)


@needs_http2_settings
@pytest.mark.parametrize("body", [b"", b"upgrade body " * 500], ids=["GET", "POST"])
def test_upgrade_h2c_answers_the_request_on_stream_1(  # type: ignore[no-untyped-def]
        start_server, worker_class, body: bytes) -> None:
    pytest.importorskip("h2")
    import h2.config
    import h2.connection
    import h2.events

    srv = start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                       "--http2-cleartext", "both", worker=worker_class)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                   header_encoding=None))
    settings = client.initiate_upgrade_connection()
    head = (b"%s /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: %s\r\nContent-Length: %d\r\n\r\n"
            % (b"POST" if body else b"GET", settings, len(body)))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        switching, _, rest = received.partition(b"\r\n\r\n")
        assert switching.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: h2c" in switching.lower()
        sock.sendall(client.data_to_send())
        events: list[object] = []
        deadline = time.monotonic() + 10
        while not any(isinstance(e, h2.events.StreamEnded) for e in events):
            assert time.monotonic() < deadline
            events.extend(client.receive_data(rest))
            sock.sendall(client.data_to_send())
            rest = sock.recv(65536)
            assert rest or any(isinstance(e, h2.events.StreamEnded) for e in events)
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert response.stream_id == 1 and (b":status", b"200") in response.headers
    assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == body


@needs_http2_settings
def test_upgrade_h2c_from_an_untrusted_peer_is_answered_over_http11(  # type: ignore[no-untyped-def]
        start_server, worker_class) -> None:
    pytest.importorskip("h2")
    srv = start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                       "--http2-cleartext", "upgrade", "--forwarded-allow-ips", "10.1.2.3",
                       worker=worker_class)
    response = httpx.get(f"{srv.url}/", headers={"Connection": "Upgrade, HTTP2-Settings",
                                                 "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABk"})
    assert (response.status_code, response.http_version) == (200, "HTTP/1.1")


def _reset(events: list[object], stream_id: int) -> object:
    import h2.events

    return next((e for e in events if isinstance(e, h2.events.StreamReset)
                 and e.stream_id == stream_id), None)


def _open_post(client: RawH2, headers: list[tuple[bytes, bytes]] = ()) -> int:  # type: ignore[assignment]
    """HEADERS of a POST to ``/`` (answered without reading the body), no END_STREAM."""
    stream_id = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream_id, [(b":method", b"POST"), (b":path", b"/"),
                                       (b":scheme", b"http"), (b":authority", b"localhost"),
                                       *headers])
    client.sock.sendall(client.h2.data_to_send())
    return stream_id


@needs_http2_settings
def test_a_body_that_contradicts_its_content_length_after_the_response_is_an_error(  # type: ignore[no-untyped-def]
        start_server, worker_class) -> None:
    """RFC 9113 section 8.1.1: DATA that contradicts content-length makes the request
    malformed, also when the app answered before the body came (an early response must not
    turn the client's protocol error into a silently dropped body)."""
    import h2.errors

    srv = _h2c(start_server, worker_class)
    client = RawH2(srv.port)
    try:
        stream_id = _open_post(client, [(b"content-length", b"10")])
        client.read(_ended(stream_id))  # answered before any of the body
        assert _reset(client.events, stream_id) is None, client.events
        client.h2.send_data(stream_id, b"x" * 20, end_stream=True)  # 20 bytes, not 10
        client.sock.sendall(client.h2.data_to_send())
        events = client.read(lambda ev: _reset(ev, stream_id) is not None or _goaway(ev)
                             is not None or "closed" in ev)
        reset, goaway = _reset(events, stream_id), _goaway(events)
        codes = {getattr(reset, "error_code", None), getattr(goaway, "error_code", None)}
        assert h2.errors.ErrorCodes.PROTOCOL_ERROR in codes, events
    finally:
        client.close()


@needs_http2_settings
def test_an_unread_upload_after_the_response_is_dropped_then_stopped(  # type: ignore[no-untyped-def]
        start_server, worker_class) -> None:
    """The rest of a request nobody reads is acknowledged and dropped up to one window, then
    RST_STREAM NO_ERROR asks the client to stop; the connection goes on."""
    import h2.errors

    srv = _h2c(start_server, worker_class)
    client = RawH2(srv.port)
    try:
        stream_id = _open_post(client)
        client.read(_ended(stream_id))
        sent = 0
        while sent < 1 << 20 and _reset(client.events, stream_id) is None:
            window = min(client.h2.local_flow_control_window(stream_id), 16384)
            if window > 0:
                client.h2.send_data(stream_id, b"u" * window)
                client.sock.sendall(client.h2.data_to_send())
                sent += window
            client.read(lambda ev: _reset(ev, stream_id) is not None, timeout=0.2)
        reset = _reset(client.events, stream_id)
        assert reset is not None, f"no reset after {sent} bytes"
        assert reset.error_code == h2.errors.ErrorCodes.NO_ERROR  # type: ignore[attr-defined]
        assert 65_535 <= sent < 1 << 20
        again = client.request("/scope")
        client.read(_ended(again))
        assert b'"http_version": "2"' in _body(client.events, again)
    finally:
        client.close()


def _h2load(url: str, requests: int) -> str:
    """nghttp2's h2load (Debian's nghttp2-client): 8 connections x 10 streams, ``requests``
    requests in all; its summary."""
    h2load = shutil.which("h2load")
    if h2load is None:
        pytest.skip("h2load not installed (apt-get install nghttp2-client)")
    done = subprocess.run([h2load, "-c", "8", "-m", "10", "-n", str(requests), url],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.stdout + done.stderr


@needs_http2_settings
@pytest.mark.parametrize(("transport", "fastpath"), [("h2c", "on"), ("tls", "on"),
                                                     ("h2c", "off"), ("tls", "off")])
def test_h2load_gets_every_answer(start_server, worker_class, certificate,  # type: ignore[no-untyped-def]
                                  transport: str, fastpath: str) -> None:
    """A real HTTP/2 client under load: every request answered 2xx, over h2c prior knowledge
    and over TLS with ALPN h2; with the fast path (http2/fastpath.py) and with every frame on
    h2's public API (``ASGI_WORKER_HTTP2_FASTPATH=off``, what an unchecked h2 release gets)."""
    env = {"ASGI_WORKER_HTTP2_FASTPATH": fastpath}
    if transport == "tls":
        cert, key = certificate
        srv = start_server("tests.apps.http2:app", "--certfile", str(cert), "--keyfile",
                           str(key), "--http-protocols", "h2,h1", worker=worker_class, env=env)
        url = f"https://127.0.0.1:{srv.port}/"
    else:
        srv = start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                           "--http2-cleartext", "prior-knowledge", worker=worker_class, env=env)
        url = f"{srv.url}/"
    summary = _h2load(url, 4000)
    assert "Application protocol: h2" in summary, summary  # h2c, or h2 by ALPN
    assert re.search(r"requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, "
                     r"0 failed, 0 errored, 0 timeout", summary), summary
    assert re.search(r"status codes: 4000 2xx", summary), summary
    assert "Traceback" not in srv.log()

