"""WebSockets over HTTP/2 (RFC 8441 extended CONNECT), against real workers.

No Python client speaks RFC 8441, so the client here is h2's client state machine for the
stream and websockets' sans-I/O ``ClientProtocol`` for the RFC 6455 frames inside its DATA.
The app is tests/apps/ws.py, the one the HTTP/1.1 WebSocket tests use.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WORKERS, GunicornServer
from tests.h2frames import whole_frames
from tests.test_http2 import _tls_client, needs_http2_settings
from tests.test_websocket import wait_for_lines

h2_events = pytest.importorskip("h2.events")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.settings  # noqa: E402
from websockets.client import ClientProtocol  # noqa: E402
from websockets.datastructures import Headers  # noqa: E402
from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory,
)
from websockets.frames import Close, Frame, Opcode  # noqa: E402
from websockets.protocol import OPEN  # noqa: E402
from websockets.uri import parse_uri  # noqa: E402

pytestmark = needs_http2_settings

APP = "tests.apps.ws:app"
H2C = ("--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge")
MIB = 1024 * 1024
_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


@pytest.fixture(scope="module", params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server(tmp: Path, worker_class: str, env: dict[str, str], *args: str) -> GunicornServer:
    return GunicornServer(["-k", worker_class, "-w", "1", "-b", "127.0.0.1:0",
                           "--graceful-timeout", "5", *H2C, *args, APP], tmp, env=env)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    server = _server(tmp_path_factory.mktemp("h2ws"), worker_class, {})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tuned(worker_class: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """64 KiB messages, no compression, no pings, 1 s send timeout (as test_websocket's)."""
    server = _server(tmp_path_factory.mktemp("h2ws-tuned"), worker_class, {
        "ASGI_WORKER_WS_MAX_MESSAGE_SIZE": "65536",
        "ASGI_WORKER_WS_PER_MESSAGE_DEFLATE": "off",
        "ASGI_WORKER_WS_PING_INTERVAL": "0",
        "ASGI_WORKER_SEND_TIMEOUT": "1",
    })
    yield server
    server.stop()


class Closed(Exception):
    """The WebSocket ended: ``code`` of the server's close frame (None: none came)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class H2WebSocketClient:
    """One HTTP/2 connection (h2, client side) with WebSocket streams opened by extended
    CONNECT; frames by websockets' ClientProtocol. ``acknowledge=False`` never sends
    WINDOW_UPDATE for what the server sends (a client that stops reading)."""

    def __init__(self, port: int, *, window: int | None = None, acknowledge: bool = True,
                 timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock)
            assert self.sock.selected_alpn_protocol() == "h2"
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.acknowledge = acknowledge
        self.events: list[Any] = []
        self.buffer = b""
        self.early: dict[int, bytes] = {}
        self.ws: dict[int, ClientProtocol] = {}
        self.frames: dict[int, list[Frame]] = {}
        self.out: dict[int, bytes] = {}  # WebSocket bytes waiting for the server's window
        self.end_after: set[int] = set()
        self.closed = False
        self._write()
        self.read(lambda: any(isinstance(e, h2_events.RemoteSettingsChanged)
                              for e in self.events))

    # -- HTTP/2 ------------------------------------------------------------------------------

    def _write(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def read(self, until: Any, timeout: float = 10.0) -> bool:
        """Read and handle events until ``until()`` is true; False on timeout or close."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return False
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(262144)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return bool(until())
            self.buffer += data
            frames, self.buffer = whole_frames(self.buffer)
            for frame in frames:
                for event in self.h2.receive_data(frame):
                    self._on_event(event)
                    if isinstance(event, h2_events.ConnectionTerminated):
                        machine = self.h2.state_machine
                        machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            self._write()
        return True

    def _on_event(self, event: Any) -> None:
        self.events.append(event)
        stream_id = getattr(event, "stream_id", None)
        ws = self.ws.get(stream_id) if stream_id is not None else None
        if isinstance(event, h2_events.DataReceived):
            if self.acknowledge:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if ws is not None:
                ws.receive_data(event.data)
                self._take_frames(event.stream_id)
            else:  # may come with the response, before open() made the stream's protocol
                self.early[event.stream_id] = self.early.get(event.stream_id, b"") + event.data
        elif isinstance(event, h2_events.StreamEnded) and ws is not None:
            ws.receive_eof()
            self._take_frames(event.stream_id)
        elif isinstance(event, h2_events.WindowUpdated | h2_events.RemoteSettingsChanged):
            for sid in tuple(self.out):
                self._pump(sid)

    def _take_frames(self, stream_id: int) -> None:
        ws = self.ws[stream_id]
        self.frames[stream_id].extend(ws.events_received())  # type: ignore[arg-type]
        self._queue(stream_id)

    def response(self, stream_id: int) -> Any:
        """The stream's response headers (or its reset)."""
        def answered() -> Any:
            return next((e for e in self.events if getattr(e, "stream_id", None) == stream_id
                         and isinstance(e, h2_events.ResponseReceived | h2_events.StreamReset)),
                        None)
        assert self.read(answered), self.events
        return answered()

    def ended(self, stream_id: int, timeout: float = 10.0) -> Any:
        """Wait for the stream's END_STREAM or reset; the event."""
        def end() -> Any:
            return next((e for e in self.events if getattr(e, "stream_id", None) == stream_id
                         and isinstance(e, h2_events.StreamEnded | h2_events.StreamReset)),
                        None)
        self.read(end, timeout)
        return end()

    def body(self, stream_id: int) -> bytes:
        return b"".join(e.data for e in self.events
                        if isinstance(e, h2_events.DataReceived) and e.stream_id == stream_id)

    def connect(self, path: str, headers: list[tuple[bytes, bytes]] | None = None, *,
                protocol: bytes | None = b"websocket", deflate: bool = False,
                version: bytes = b"13") -> int:
        """Send an extended CONNECT (no ``protocol``: an ordinary one)."""
        stream_id = self.h2.get_next_available_stream_id()
        block = [(b":method", b"CONNECT")]
        if protocol is not None:
            block += [(b":protocol", protocol), (b":scheme", b"http"),
                      (b":path", b"/" + path.encode())]
        block += [(b":authority", f"127.0.0.1:{self.port}".encode())]
        if protocol is not None:
            block.append((b"sec-websocket-version", version))
        if deflate:
            block.append((b"sec-websocket-extensions",
                          b"permessage-deflate; client_max_window_bits"))
        block += headers or []
        self.h2.send_headers(stream_id, block)
        self._write()
        return stream_id

    def open(self, path: str, headers: list[tuple[bytes, bytes]] | None = None,
             deflate: bool = False, max_size: int | None = None) -> tuple[int, dict[bytes, bytes]]:
        """An accepted WebSocket stream: its id and the 200's headers."""
        stream_id = self.connect(path, headers, deflate=deflate)
        event = self.response(stream_id)
        assert isinstance(event, h2_events.ResponseReceived), event
        answer = dict(event.headers)
        assert answer[b":status"] == b"200", answer
        extensions = [ClientPerMessageDeflateFactory(client_max_window_bits=True)] \
            if deflate else None
        ws = ClientProtocol(parse_uri("ws://127.0.0.1/"), extensions=extensions, state=OPEN,
                            max_size=max_size)
        if deflate:
            ws.extensions = ws.process_extensions(Headers(
                [(k.decode(), v.decode()) for k, v in event.headers if not k.startswith(b":")]))
        self.ws[stream_id] = ws
        self.frames[stream_id] = []
        early = self.early.pop(stream_id, b"")
        if early:
            ws.receive_data(early)
            if any(isinstance(e, h2_events.StreamEnded) and e.stream_id == stream_id
                   for e in self.events):
                ws.receive_eof()
            self._take_frames(stream_id)
        return stream_id, answer

    # -- WebSocket -----------------------------------------------------------------------------

    def _queue(self, stream_id: int) -> None:
        """What websockets has to send goes to the stream, within the server's window."""
        for chunk in self.ws[stream_id].data_to_send():
            if chunk:
                self.out[stream_id] = self.out.get(stream_id, b"") + chunk
            else:
                self.end_after.add(stream_id)  # websockets: "close the connection"
        self._pump(stream_id)

    def _pump(self, stream_id: int) -> None:
        data = self.out.pop(stream_id, b"")
        try:
            while data:
                window = self.h2.local_flow_control_window(stream_id)
                if window <= 0:
                    break
                step = min(window, self.h2.max_outbound_frame_size, len(data))
                self.h2.send_data(stream_id, data[:step])
                data = data[step:]
            if data:
                self.out[stream_id] = data
            elif stream_id in self.end_after:
                self.end_after.discard(stream_id)
                self.h2.end_stream(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.out.pop(stream_id, None)
        self._write()

    def send(self, stream_id: int, message: str | bytes, fragments: int = 1) -> None:
        ws = self.ws[stream_id]
        data = message.encode() if isinstance(message, str) else message
        size = -(-len(data) // fragments)
        parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if index:
                ws.send_continuation(part, fin=last)
            elif isinstance(message, str):
                ws.send_text(part, fin=last)
            else:
                ws.send_binary(part, fin=last)
        self._queue(stream_id)
        self.flush_out(stream_id)

    def flush_out(self, stream_id: int, timeout: float = 10.0) -> None:
        """Read (window updates) until what waits for the server's window is sent."""
        assert self.read(lambda: stream_id not in self.out, timeout), "window never opened"

    def recv(self, stream_id: int, timeout: float = 10.0) -> str | bytes:
        """The next whole message; raises Closed at the server's close frame or the end."""
        frames = self.frames[stream_id]
        parts: list[Frame] = []

        def ready() -> bool:
            while frames:
                frame = frames[0]
                if frame.opcode in (Opcode.PING, Opcode.PONG):
                    frames.pop(0)
                    continue
                if frame.opcode is Opcode.CLOSE:
                    return True
                parts.append(frames.pop(0))
                if frame.fin:
                    return True
            return self.closed or any(
                getattr(e, "stream_id", None) == stream_id
                and isinstance(e, h2_events.StreamReset | h2_events.StreamEnded)
                for e in self.events)

        assert self.read(ready, timeout), f"no message within {timeout}s"
        if not parts or not parts[-1].fin:
            close = frames[0] if frames and frames[0].opcode is Opcode.CLOSE else None
            if close is not None:
                parsed = Close.parse(close.data)
                raise Closed(parsed.code, parsed.reason)
            raise Closed(None, "")
        data = b"".join(frame.data for frame in parts)
        return data.decode() if parts[0].opcode is Opcode.TEXT else data

    def close_ws(self, stream_id: int, code: int = 1000, reason: str = "") -> None:
        self.ws[stream_id].send_close(code, reason)
        self._queue(stream_id)

    def http_get(self, path: str) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [
            (b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"),
            (b":authority", b"127.0.0.1")], end_stream=True)
        self._write()
        return stream_id

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(srv: GunicornServer) -> Iterator[H2WebSocketClient]:
    conn = H2WebSocketClient(srv.port)
    yield conn
    conn.close()


# -- SETTINGS and the handshake -------------------------------------------------------------


def test_settings_enable_the_connect_protocol(client: H2WebSocketClient) -> None:
    settings = next(e for e in client.events if isinstance(e, h2_events.RemoteSettingsChanged))
    assert settings.changed_settings[_CONNECT_PROTOCOL].new_value == 1


def test_echo_text_and_bytes(client: H2WebSocketClient) -> None:
    stream_id, answer = client.open("echo")
    assert b"sec-websocket-accept" not in answer  # RFC 8441 section 5: no key, no accept
    client.send(stream_id, "héllo")
    assert client.recv(stream_id) == "héllo"
    client.send(stream_id, b"\x00\xffbytes")
    assert client.recv(stream_id) == b"\x00\xffbytes"


def test_scope(client: H2WebSocketClient) -> None:
    stream_id, _ = client.open("scope?x=1", [(b"sec-websocket-protocol", b"chat, superchat"),
                                             (b"x-custom", b"yes")])
    scope = json.loads(client.recv(stream_id))
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/scope", "/scope",
                                                                         "x=1")
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert "method" not in scope
    assert scope["client"][0] == "127.0.0.1" and scope["server"][1] == client.port
    headers = dict(scope["headers"])
    assert headers["host"] == f"127.0.0.1:{client.port}"
    assert headers["x-custom"] == "yes"
    assert not any(name.startswith(":") for name in headers)
    assert "websocket.http.response" in scope["extensions"]
    with pytest.raises(Closed) as closed:
        client.recv(stream_id)
    assert closed.value.code == 1000
    assert isinstance(client.ended(stream_id), h2_events.StreamEnded)


def test_forwarded_scheme_makes_wss(client: H2WebSocketClient) -> None:
    # h2c comes from trusted peers only (here 127.0.0.1): their scheme headers count.
    stream_id, _ = client.open("scope", [(b"x-forwarded-proto", b"https")])
    assert json.loads(client.recv(stream_id))["scheme"] == "wss"


def test_tls_alpn_h2_scope_is_wss(start_server: Any, worker_class: str,
                                  tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server = start_server(APP, "--certfile", str(cert), "--keyfile", str(key),
                          "--http-protocols", "h2,h1", worker=worker_class)
    conn = H2WebSocketClient(server.port, tls=_tls_client(["h2"]))
    try:
        stream_id, _ = conn.open("scope")
        scope = json.loads(conn.recv(stream_id))
        assert (scope["scheme"], scope["http_version"]) == ("wss", "2")
        echo, _ = conn.open("echo")
        conn.send(echo, "over TLS")
        assert conn.recv(echo) == "over TLS"
    finally:
        conn.close()


def test_fragmented_and_large_messages_within_flow_control(client: H2WebSocketClient) -> None:
    # Each is larger than the 65,535-byte windows both ways: the client's send waits for the
    # worker's WINDOW_UPDATEs, the worker's echo for the client's.
    stream_id, _ = client.open("echo")
    text = "".join(chr(0x41 + i % 26) for i in range(300_000)) + "é"
    client.send(stream_id, text, fragments=7)
    assert client.recv(stream_id, timeout=20) == text
    blob = bytes(range(256)) * 4096  # 1 MiB
    client.send(stream_id, blob, fragments=3)
    assert client.recv(stream_id, timeout=20) == blob
    client.send(stream_id, blob)
    assert client.recv(stream_id, timeout=20) == blob


def test_subprotocol_and_extra_headers(client: H2WebSocketClient) -> None:
    stream_id, answer = client.open("subprotocol", [(b"sec-websocket-protocol", b"one, two")])
    assert answer[b"sec-websocket-protocol"] == b"two"
    assert answer[b"x-chosen-by"] == b"app"
    assert client.recv(stream_id) == "one,two"


def test_permessage_deflate(client: H2WebSocketClient) -> None:
    stream_id, answer = client.open("echo", deflate=True)
    assert answer[b"sec-websocket-extensions"].startswith(b"permessage-deflate")
    text = "compress me " * 20_000  # 240 KB that deflate shrinks to a few hundred bytes
    client.send(stream_id, text)
    assert client.recv(stream_id) == text
    assert len(client.body(stream_id)) < 10_000  # the worker's frame was compressed


def test_denial_response(client: H2WebSocketClient) -> None:
    stream_id = client.connect("deny")
    event = client.response(stream_id)
    headers = dict(event.headers)
    assert headers[b":status"] == b"401" and headers[b"x-denied"] == b"yes"
    assert isinstance(client.ended(stream_id), h2_events.StreamEnded)
    assert client.body(stream_id) == b"no entry"


@pytest.mark.parametrize(("path", "status"), [("reject", b"403"), ("error-before", b"500")])
def test_no_accept_answers_with_an_error(client: H2WebSocketClient, path: str,
                                         status: bytes) -> None:
    stream_id = client.connect(path)
    assert dict(client.response(stream_id).headers)[b":status"] == status
    assert isinstance(client.ended(stream_id), h2_events.StreamEnded)


def test_second_stream_serves_http_meanwhile(client: H2WebSocketClient) -> None:
    stream_id, _ = client.open("echo")
    client.send(stream_id, "before")
    assert client.recv(stream_id) == "before"
    http = client.http_get("/")
    assert isinstance(client.ended(http), h2_events.StreamEnded)
    assert dict(client.response(http).headers)[b":status"] == b"200"
    assert client.body(http) == b"plain HTTP"
    client.send(stream_id, "after")
    assert client.recv(stream_id) == "after"


# -- requests that are not a WebSocket ------------------------------------------------------


def test_other_protocol_and_ordinary_connect_are_501(client: H2WebSocketClient) -> None:
    other = client.connect("echo", protocol=b"webtransport")
    assert dict(client.response(other).headers)[b":status"] == b"501"
    ordinary = client.connect("echo", protocol=None)
    assert dict(client.response(ordinary).headers)[b":status"] == b"501"
    assert b"not supported" in client.body(ordinary)
    stream_id, _ = client.open("echo")  # the connection goes on
    client.send(stream_id, "still")
    assert client.recv(stream_id) == "still"


def test_rapid_reset_of_websocket_streams_is_cut_off(srv: GunicornServer,
                                                     client: H2WebSocketClient) -> None:
    # CVE-2023-44487 with extended CONNECT: each stream starts a session and an app task, so
    # its resets count as a request's do (more than 2 x 100 within a second: GOAWAY 11).
    for _ in range(10):
        for _ in range(50):
            stream_id = client.connect("echo")
            client.h2.reset_stream(stream_id, 8)
        client._write()
        if client.closed:
            break
    client.read(lambda: any(isinstance(e, h2_events.ConnectionTerminated)
                            for e in client.events))
    # The GOAWAY may be lost to the TCP reset of a close with the attacker's bytes unread.
    goaway = next((e for e in client.events if isinstance(e, h2_events.ConnectionTerminated)),
                  None)
    assert client.closed or goaway is not None
    assert goaway is None or goaway.error_code == 11  # ENHANCE_YOUR_CALM
    assert "(ENHANCE_YOUR_CALM)" in srv.log()
    fresh = H2WebSocketClient(srv.port)  # the worker goes on serving
    try:
        stream_id, _ = fresh.open("echo")
        fresh.send(stream_id, "fine")
        assert fresh.recv(stream_id) == "fine"
    finally:
        fresh.close()


def test_wrong_version_is_400(client: H2WebSocketClient) -> None:
    stream_id = client.connect("echo", version=b"8")
    assert dict(client.response(stream_id).headers)[b":status"] == b"400"


def test_websockets_off_no_setting_and_connect_is_malformed(start_server: Any,
                                                           worker_class: str) -> None:
    server = start_server(APP, *H2C, worker=worker_class, env={"ASGI_WORKER_WS": "off"})
    conn = H2WebSocketClient(server.port)
    try:
        settings = next(e for e in conn.events
                        if isinstance(e, h2_events.RemoteSettingsChanged))
        changed = settings.changed_settings.get(_CONNECT_PROTOCOL)
        assert changed is None or changed.new_value == 0
        stream_id = conn.connect("echo")
        event = conn.response(stream_id)
        assert isinstance(event, h2_events.StreamReset) and event.error_code == 1
    finally:
        conn.close()


# -- closing --------------------------------------------------------------------------------


def test_app_closes_with_code_and_reason(client: H2WebSocketClient, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    stream_id, _ = client.open(f"close?{marker}")
    client.send(stream_id, "4001 bye now")
    with pytest.raises(Closed) as closed:
        client.recv(stream_id)
    assert (closed.value.code, closed.value.reason) == (4001, "bye now")
    # The client's websockets echoed the close; then the worker ends the stream.
    assert isinstance(client.ended(stream_id), h2_events.StreamEnded)
    lines = wait_for_lines(marker, "^after close")
    assert "send after close: WebSocketDisconnected OSError" in lines
    assert "after close websocket.disconnect 4001" in lines


def test_client_close_code_reaches_the_app(client: H2WebSocketClient, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    stream_id, _ = client.open(f"echo?{marker}")
    client.close_ws(stream_id, 4002, "done here")
    with pytest.raises(Closed) as closed:
        client.recv(stream_id)
    assert closed.value.code == 4002  # the worker's echo
    assert isinstance(client.ended(stream_id), h2_events.StreamEnded)
    assert wait_for_lines(marker, "disconnect") == ["disconnect 4002 done here"]


@pytest.mark.parametrize("how", ["reset", "connection lost"])
def test_client_reset_is_1006(client: H2WebSocketClient, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "marker"
    stream_id, _ = client.open(f"echo?{marker}")
    client.send(stream_id, "x")
    assert client.recv(stream_id) == "x"
    if how == "reset":
        client.h2.reset_stream(stream_id, 8)
        client._write()
    else:
        client.sock.close()
    assert wait_for_lines(marker, "disconnect") == ["disconnect 1006 "]


def test_sigterm_closes_with_1012(start_server: Any, worker_class: str, tmp_path: Path) -> None:
    server = start_server(APP, *H2C, "--graceful-timeout", "30", worker=worker_class)
    marker = tmp_path / "marker"
    conn = H2WebSocketClient(server.port)
    try:
        stream_id, _ = conn.open(f"echo?{marker}")
        conn.send(stream_id, "hi")
        assert conn.recv(stream_id) == "hi"
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        with pytest.raises(Closed) as closed:
            conn.recv(stream_id, timeout=15)
        assert closed.value.code == 1012
        assert time.monotonic() - started < 10.0  # not the graceful timeout (30 s)
        assert isinstance(conn.ended(stream_id), h2_events.StreamEnded)
        assert any(isinstance(e, h2_events.ConnectionTerminated) for e in conn.events)
    finally:
        conn.close()
    assert wait_for_lines(marker, "disconnect") == ["disconnect 1012 server restarting"]
    assert server.proc.wait(10) == 0


# -- settings that hold for HTTP/1.1 WebSockets ---------------------------------------------


def test_message_above_the_limit_closes_1009(tuned: GunicornServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    conn = H2WebSocketClient(tuned.port)
    try:
        stream_id, _ = conn.open(f"echo?{marker}")
        conn.send(stream_id, b"a" * 65536)
        assert conn.recv(stream_id) == b"a" * 65536
        conn.send(stream_id, b"b" * 70000, fragments=2)
        with pytest.raises(Closed) as closed:
            conn.recv(stream_id)
        assert closed.value.code == 1009
    finally:
        conn.close()
    assert wait_for_lines(marker, "disconnect")[0].startswith("disconnect 1009 ")


def test_server_pings(start_server: Any, worker_class: str) -> None:
    server = start_server(APP, *H2C, worker=worker_class,
                          env={"ASGI_WORKER_WS_PING_INTERVAL": "0.5"})
    conn = H2WebSocketClient(server.port)
    try:
        stream_id, _ = conn.open("echo")
        frames = conn.frames[stream_id]
        assert conn.read(lambda: any(f.opcode is Opcode.PING for f in frames), timeout=5)
        # websockets answered with a pong: the session stays open past the ping timeout.
        conn.send(stream_id, "alive")
        assert conn.recv(stream_id) == "alive"
    finally:
        conn.close()


# -- flow control ---------------------------------------------------------------------------


def test_client_that_stops_reading_is_cut_off(tuned: GunicornServer, tmp_path: Path) -> None:
    """The app sends 64 KiB messages as fast as send() lets it; the client never opens its
    window: the worker holds at most one message, then resets the stream at send_timeout."""
    marker = tmp_path / "marker"
    conn = H2WebSocketClient(tuned.port, acknowledge=False)
    try:
        stream_id, _ = conn.open(f"flood?{marker}")
        lines = wait_for_lines(marker, "stopped|finished", timeout=15)
        last = lines[-1].split()
        assert last[0] == "stopped" and last[2] == "WebSocketDisconnected", lines
        assert int(last[1]) <= 2, lines  # one window's worth, not a growing buffer
        event = conn.ended(stream_id)
        assert isinstance(event, h2_events.StreamReset) and event.error_code == 8
    finally:
        conn.close()
    assert "too slow to read" in tuned.log()


def test_client_with_a_large_window_that_stops_reading_is_cut_off(tuned: GunicornServer,
                                                                  tmp_path: Path) -> None:
    """The client's windows admit 2 GiB but it never reads its socket: the socket's buffer,
    not the window, bounds what the worker holds, and send_timeout ends the stream."""
    marker = tmp_path / "marker"
    conn = H2WebSocketClient(tuned.port, window=2**31 - 1)
    try:
        conn.h2.increment_flow_control_window(2**31 - 1 - 65535)
        conn._write()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        conn.open(f"flood?{marker}")  # the last read: from here on the client reads nothing
        lines = wait_for_lines(marker, "stopped|finished", timeout=15)
    finally:
        conn.close()
    last = lines[-1].split()
    assert last[0] == "stopped" and last[2] == "WebSocketDisconnected", lines
    # What the kernel's buffers hold got out of the app, not a growing buffer in the worker.
    assert int(last[1]) < 200, lines
    assert "too slow to read" in tuned.log()


def test_app_that_does_not_receive_holds_the_window(client: H2WebSocketClient) -> None:
    """Inbound: while the app sleeps (1.5 s), WINDOW_UPDATE stops once its queue is full."""
    stream_id, _ = client.open("slow-consumer")
    chunk = b"y" * 16000  # four fit in the worker's 65,535-byte stream window
    sent = 0
    started = time.monotonic()
    # Bounded by count and time: 4,096 messages at most, within 1 s of the app's 1.5 s sleep.
    while sent < 4096 and time.monotonic() - started < 1.0:
        if client.h2.local_flow_control_window(stream_id) < len(chunk) + 8:
            client.read(lambda: client.h2.local_flow_control_window(stream_id)
                        >= len(chunk) + 8, timeout=0.1)
            continue
        client.send(stream_id, chunk)
        sent += 1
    # At most the app's queue (16 messages) plus one window (4 more), not what 1 s of
    # loopback takes (about 70 here when every DATA frame is acknowledged at once).
    assert sent <= 21, sent
    client.send(stream_id, "done")
    assert client.recv(stream_id, timeout=20) == str(sent + 1)
