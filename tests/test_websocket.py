"""WebSocket sessions against a real gunicorn process, for both parsers.

Two long-lived servers per worker class carry most tests (one with default settings, one with
small limits); shutdown, recycling and keepalive tests start their own. Clients are websockets'
asyncio client, aiohttp (an independent implementation) and raw sockets for what a well-behaved
client would never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import WORKERS, GunicornServer
from tests.rawhttp import read_until_close, status_of

APP = "tests.apps.ws:app"
MIB = 1024 * 1024
KEY_REQUEST = (b"GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


# -- servers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _module_server(tmp: Path, worker_class: str, env: dict[str, str]) -> GunicornServer:
    return GunicornServer(["-k", worker_class, "-w", "1", "-b", "127.0.0.1:0",
                           "--graceful-timeout", "5", APP], tmp, env=env)


@pytest.fixture(scope="module")
def srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """Default settings: 16 MiB messages, permessage-deflate on, pings every 20 s."""
    server = _module_server(tmp_path_factory.mktemp("ws"), worker_class, {})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tuned(worker_class: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """Small limits: 64 KiB messages, no compression, no pings, 1 s send timeout."""
    server = _module_server(tmp_path_factory.mktemp("ws-tuned"), worker_class, {
        "ASGI_WORKER_WS_MAX_MESSAGE_SIZE": "65536",
        "ASGI_WORKER_WS_PER_MESSAGE_DEFLATE": "off",
        "ASGI_WORKER_WS_PING_INTERVAL": "0",
        "ASGI_WORKER_SEND_TIMEOUT": "1",
    })
    yield server
    server.stop()


def ws_url(server: GunicornServer, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}/{path}"


def wait_for_lines(marker: Path, pattern: str, timeout: float = 10.0) -> list[str]:
    """The marker file's lines once one of them matches ``pattern``."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = marker.read_text().splitlines() if marker.exists() else []
        if any(re.search(pattern, line) for line in lines):
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} not in {marker}: {lines}")


# -- raw WebSocket framing for clients that misbehave --------------------------------------------


def raw_handshake(port: int, path: str = "echo", timeout: float = 5.0) -> socket.socket:
    """Open a socket and complete the handshake by hand; the socket answers nothing by itself."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(KEY_REQUEST % path.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert status_of(head) == 101, head
    return sock


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    def exact(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed mid-frame")
            data += chunk
        return data

    first, second = exact(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exact(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exact(8))
    return first & 0x0F, exact(length)


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame (the zero mask keeps the payload readable)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + b"\x00\x00\x00\x00" + payload


# -- messages --------------------------------------------------------------------------------------


def test_echo_text_and_bytes(srv: GunicornServer) -> None:
    async def session() -> list[Any]:
        async with ws_connect(ws_url(srv, "echo")) as ws:
            got = []
            for message in ("hello", "héllo ✓", b"\x00\xffbinary", "", b""):
                await ws.send(message)
                got.append(await ws.recv())
            return got

    assert run(session()) == ["hello", "héllo ✓", b"\x00\xffbinary", "", b""]


def test_scope(srv: GunicornServer) -> None:
    async def session() -> Any:
        async with ws_connect(ws_url(srv, "scope?a=1"), subprotocols=["x", "y"]) as ws:
            return json.loads(await ws.recv())

    scope = run(session())
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "a=1"
    assert scope["subprotocols"] == ["x", "y"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["asgi"]["spec_version"] == "2.4"
    assert "method" not in scope
    assert scope["client"][0] == "127.0.0.1"
    assert ["upgrade", "websocket"] in [[k, v.lower()] for k, v in scope["headers"]]


@pytest.mark.parametrize("size", [MIB, 16 * MIB], ids=["1MiB", "16MiB"])
def test_large_messages_echo(srv: GunicornServer, size: int) -> None:
    payload = os.urandom(size)

    async def session() -> bytes:
        async with ws_connect(ws_url(srv, "echo"), max_size=None, compression=None) as ws:
            await ws.send(payload)
            return await ws.recv()  # type: ignore[return-value]

    assert run(session()) == payload


def test_compressed_text_echo(srv: GunicornServer) -> None:
    text = "compressible " * 100_000

    async def session() -> tuple[str | None, Any]:
        async with ws_connect(ws_url(srv, "echo"), max_size=None) as ws:
            await ws.send(text)
            return ws.response.headers.get("Sec-WebSocket-Extensions"), await ws.recv()

    extensions, echoed = run(session())
    assert extensions is not None and extensions.startswith("permessage-deflate")
    assert echoed == text


def test_many_fragments_within_the_limit(tuned: GunicornServer) -> None:
    fragments = [b"%04d" % index for index in range(5000)]  # 20000 bytes in 5000 frames

    async def session() -> Any:
        async with ws_connect(ws_url(tuned, "echo")) as ws:
            await ws.send(fragments)
            return await ws.recv()

    assert run(session()) == b"".join(fragments)


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
def test_message_above_the_limit_closes_1009(tuned: GunicornServer, fragmented: bool,
                                             tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = b"x" * 65537

    async def session() -> int | None:
        async with ws_connect(ws_url(tuned, f"echo?{marker}"), max_size=None) as ws:
            await ws.send([payload[:40000], payload[40000:]] if fragmented else payload)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.protocol.close_code

    assert run(session()) == 1009
    assert wait_for_lines(marker, "disconnect")[0].startswith("disconnect 1009 ")


def test_invalid_utf8_closes_1007(srv: GunicornServer) -> None:
    with raw_handshake(srv.port) as sock:
        sock.sendall(client_frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"))
        opcode, payload = read_frame(sock)
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1007


def test_frames_in_any_segments_echo_in_order(srv: GunicornServer) -> None:
    # Whole small frames skip websockets' parser; fragments, pings and frames split across
    # segments go through it. Mixed in one stream, and cut at every awkward place, the echo
    # must come back complete and in order.
    stream = b"".join([
        client_frame(0x1, b"one"), client_frame(0x2, b"two" * 50),
        client_frame(0x1, b"thr", fin=False), client_frame(0x9, b"ping"),
        client_frame(0x0, b"ee"), client_frame(0x2, b"x" * 300), client_frame(0x1, b"four"),
        client_frame(0x2, b"y" * 70000), client_frame(0x1, "fünf".encode()),
    ])
    # The pong is written as the ping is parsed, the echoes when the app runs: only the
    # order of the echoes is defined.
    echoes = [(0x1, b"one"), (0x2, b"two" * 50), (0x1, b"three"), (0x2, b"x" * 300),
              (0x1, b"four"), (0x2, b"y" * 70000), (0x1, "fünf".encode())]
    for cuts in ([], [1], [2, 5, 7], [13, 200], list(range(3, 400, 37)), [len(stream) - 1]):
        with raw_handshake(srv.port) as sock:
            start = 0
            for cut in [*cuts, len(stream)]:
                sock.sendall(stream[start:cut])
                start = cut
                time.sleep(0.005)  # separate segments
            frames = [read_frame(sock) for _ in range(len(echoes) + 1)]
        assert [f for f in frames if f[0] != 0xA] == echoes, cuts
        assert [f for f in frames if f[0] == 0xA] == [(0xA, b"ping")], cuts


def test_subprotocol_and_extra_headers(srv: GunicornServer) -> None:
    async def session() -> tuple[Any, ...]:
        async with ws_connect(ws_url(srv, "subprotocol"), subprotocols=["chat", "json"]) as ws:
            return ws.subprotocol, ws.response.headers.get("x-chosen-by"), await ws.recv()

    assert run(session()) == ("json", "app", "chat,json")


def test_ping_from_client_is_answered(srv: GunicornServer) -> None:
    with raw_handshake(srv.port) as sock:
        sock.sendall(client_frame(0x9, b"are you there"))
        assert read_frame(sock) == (0xA, b"are you there")


# -- handshake answers -----------------------------------------------------------------------------


def test_denial_response(srv: GunicornServer) -> None:
    async def session() -> Any:
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(ws_url(srv, "deny")):
                pass
        return info.value.response

    response = run(session())
    assert response.status_code == 401
    assert response.headers["x-denied"] == "yes"
    assert bytes(response.body) == b"no entry"


def test_close_before_accept_is_403(srv: GunicornServer) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(KEY_REQUEST % b"reject")
        assert status_of(read_until_close(sock)) == 403


def test_app_error_before_accept_is_500(srv: GunicornServer) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(KEY_REQUEST % b"error-before")
        assert status_of(read_until_close(sock)) == 500


@pytest.mark.parametrize("request_bytes", [
    KEY_REQUEST.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""),
    KEY_REQUEST.replace(b"Version: 13", b"Version: 8"),
    KEY_REQUEST.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"tooshort"),
    KEY_REQUEST.replace(b"Connection: Upgrade\r\n", b""),
], ids=["no-key", "version-8", "bad-key", "no-connection-upgrade"])
def test_invalid_handshake_is_400(srv: GunicornServer, request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(request_bytes % b"echo")
        response = read_until_close(sock, timeout=3)
    assert status_of(response) == 400, response
    assert response.endswith(b"Invalid WebSocket handshake\n")


def test_plain_http_still_served(srv: GunicornServer) -> None:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_close(sock).endswith(b"plain HTTP")


def test_upgrade_in_http_10_is_plain_http(srv: GunicornServer) -> None:
    """RFC 9110 section 7.8: a server ignores Upgrade in an HTTP/1.0 request."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(KEY_REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0") % b"echo")
        response = read_until_close(sock, timeout=3)
    assert status_of(response) == 200, response
    assert response.endswith(b"plain HTTP")


# -- closing --------------------------------------------------------------------------------------


def test_app_closes_with_code_and_reason(srv: GunicornServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    async def session() -> tuple[int | None, str | None]:
        async with ws_connect(ws_url(srv, f"close?{marker}")) as ws:
            await ws.send("4001 see you")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.protocol.close_code, ws.protocol.close_reason

    assert run(session()) == (4001, "see you")
    lines = wait_for_lines(marker, "^after close ")
    # ASGI 2.4: send() on a closed connection raises an OSError subclass.
    assert "send after close: WebSocketDisconnected OSError" in lines
    assert "after close websocket.disconnect 4001" in lines


def test_client_close_code_reaches_the_app(srv: GunicornServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    async def session() -> None:
        async with ws_connect(ws_url(srv, f"echo?{marker}")) as ws:
            await ws.send("hi")
            await ws.recv()
            await ws.close(4002, "done here")

    run(session())
    assert wait_for_lines(marker, "disconnect") == ["disconnect 4002 done here"]


def test_dropped_connection_is_1006(srv: GunicornServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with raw_handshake(srv.port, f"echo?{marker}") as sock:
        sock.sendall(client_frame(0x1, b"hi"))
        assert read_frame(sock) == (0x1, b"hi")
    assert wait_for_lines(marker, "disconnect") == ["disconnect 1006 "]


def test_app_error_after_accept_closes_1011(srv: GunicornServer) -> None:
    async def session() -> int | None:
        async with ws_connect(ws_url(srv, "error-after")) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.protocol.close_code

    assert run(session()) == 1011


def test_aiohttp_client(srv: GunicornServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker"

    async def session() -> list[Any]:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                ws_url(srv, f"echo?{marker}"), compress=15) as ws:
            got: list[Any] = [ws.compress]
            await ws.send_str("from aiohttp")
            got.append((await ws.receive()).data)
            await ws.send_bytes(b"\x01" * 100_000)
            got.append(len((await ws.receive()).data))
            await ws.close(code=4003, message=b"aiohttp bye")
            return got

    # Compression is negotiated, with our 12-bit window (websockets' server default).
    assert run(session()) == [12, "from aiohttp", 100_000]
    assert wait_for_lines(marker, "disconnect") == ["disconnect 4003 aiohttp bye"]


# -- flow control ---------------------------------------------------------------------------------


def test_slow_reader_is_cut_off(tuned: GunicornServer, tmp_path: Path) -> None:
    """A client that stops reading: send() blocks, and after send_timeout the session ends."""
    marker = tmp_path / "marker"
    with raw_handshake(tuned.port, f"flood?{marker}") as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        lines = wait_for_lines(marker, "stopped|finished", timeout=15)
    last = lines[-1].split()
    assert last[0] == "stopped" and last[2] == "WebSocketDisconnected", lines
    # Only what the kernel buffers hold got out of the app: no unbounded queue in the worker.
    assert int(last[1]) < 200, lines
    assert "too slow to read" in tuned.log()


def test_app_that_does_not_receive_pauses_reading(srv: GunicornServer) -> None:
    """Inbound flow control: while the app sleeps, the client's sends back up."""
    chunk = b"y" * 65536
    count = 400  # 25 MiB: more than the kernel's socket buffers on loopback

    async def session() -> tuple[float, Any]:
        async with ws_connect(ws_url(srv, "slow-consumer"), compression=None) as ws:
            started = time.monotonic()
            for _ in range(count):
                await ws.send(chunk)
            elapsed = time.monotonic() - started
            await ws.send("done")
            return elapsed, await ws.recv()

    elapsed, received = run(session())
    assert received == str(count + 1)
    assert elapsed > 0.8  # the app sleeps 1.5 s before its first receive()


# -- keepalive ------------------------------------------------------------------------------------


def test_ping_timeout_closes_a_silent_client(start_server: Any, worker_class: str) -> None:
    # The pong of a polite client on a busy machine gets 1.5 s; the silent one is closed at
    # about interval + timeout (2 s), well before the 10 s bound below.
    server = start_server(APP, worker=worker_class, env={
        "ASGI_WORKER_WS_PING_INTERVAL": "0.5", "ASGI_WORKER_WS_PING_TIMEOUT": "1.5"})

    async def polite() -> str:
        # websockets' client answers pings: it outlives several ping intervals.
        async with ws_connect(ws_url(server, "echo")) as ws:
            await asyncio.sleep(3.0)
            await ws.send("still here")
            return await ws.recv()  # type: ignore[return-value]

    assert run(polite()) == "still here"
    with raw_handshake(server.port, timeout=15.0) as sock:
        started = time.monotonic()
        frames = [read_frame(sock)]
        while frames[-1][0] != 0x8 and time.monotonic() - started < 15.0:
            frames.append(read_frame(sock))
        assert sock.recv(10) == b""  # the server closed the TCP connection
        elapsed = time.monotonic() - started
    assert frames[0][0] == 0x9  # a ping first
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 1011
    assert elapsed < 10.0


# -- lifecycle ------------------------------------------------------------------------------------


def test_sigterm_closes_with_1012(start_server: Any, worker_class: str, tmp_path: Path) -> None:
    """A worker cannot tell the arbiter's graceful stop from a reload: both send SIGTERM, and
    1012 (service restart) is what a client should hear in a reload (docs/websocket.md)."""
    # graceful_timeout 30, so "closed at once" and "closed at graceful_timeout" stay far apart.
    server = start_server(APP, "--graceful-timeout", "30", worker=worker_class)
    marker = tmp_path / "marker"

    async def session() -> tuple[int | None, float]:
        async with ws_connect(ws_url(server, f"echo?{marker}")) as ws:
            await ws.send("hi")
            await ws.recv()
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.protocol.close_code, time.monotonic() - started

    code, elapsed = run(session())
    assert code == 1012
    assert elapsed < 10.0  # not the graceful timeout (30 s)
    assert wait_for_lines(marker, "disconnect") == ["disconnect 1012 server restarting"]
    assert server.proc.wait(10) == 0


def test_upgrade_while_draining_is_503(start_server: Any, worker_class: str) -> None:
    # An idle keep-alive connection gets a short grace (0.5 s) to deliver a request once
    # draining began. A machine that stalls the test longer than that between seeing the log
    # line and sending sees the connection closed unanswered (allowed): try again, three
    # times at most. Any answer at all must be the 503.
    outcomes = []
    for _ in range(3):
        server = start_server(APP, worker=worker_class)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).endswith(b"plain HTTP")
            server.signal(signal.SIGTERM)
            server.wait_for_log("Worker draining", timeout=5)
            with contextlib.suppress(OSError):
                sock.sendall(KEY_REQUEST % b"echo")
            outcomes.append(read_until_close(sock))
        if outcomes[-1]:
            break
    assert status_of(outcomes[-1]) == 503, outcomes


def test_max_requests_recycles_a_websocket_only_worker(start_server: Any, worker_class: str,
                                                       tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    server = start_server(APP, "--max-requests", "3", "--access-logfile", str(access_log),
                          worker=worker_class)
    first = server.worker_pids()

    async def session(index: int) -> None:
        async with ws_connect(ws_url(server, "echo")) as ws:
            await ws.send(f"session {index}")
            assert await ws.recv() == f"session {index}"

    for index in range(3):
        run(session(index))
    server.wait_for_log("Autorestarting worker after 3 requests")
    server.wait_ready(workers=2)
    deadline = time.monotonic() + 10
    while server.worker_pids() == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.worker_pids() != first
    run(session(4))  # the new worker serves WebSockets
    lines = [line for line in access_log.read_text().splitlines() if "/echo" in line]
    assert len(lines) >= 3
    assert all('"GET /echo HTTP/1.1" 101' in line for line in lines), lines


# -- TLS -------------------------------------------------------------------------------------------


def test_wss_scheme_over_tls(start_server: Any, worker_class: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = start_server(APP, "--certfile", str(cert), "--keyfile", str(key),
                          worker=worker_class)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False

    async def session() -> tuple[Any, Any]:
        url = f"wss://127.0.0.1:{server.port}"
        async with ws_connect(url + "/scope", ssl=context) as ws:
            scope = json.loads(await ws.recv())
        async with ws_connect(url + "/echo", ssl=context) as ws:
            await ws.send("secure")
            return scope["scheme"], await ws.recv()

    assert run(session()) == ("wss", "secure")


# -- the chat example ----------------------------------------------------------------------------


def test_chat_example(start_server: Any, worker_class: str) -> None:
    server = start_server("examples.chat.app:app", worker=worker_class)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"new WebSocket(" in read_until_close(sock)

    async def session() -> list[str]:
        async with ws_connect(ws_url(server, "ws?name=ann")) as ann, \
                ws_connect(ws_url(server, "ws?name=bob")) as bob:
            await ann.send("hello bob")
            seen = []
            for _ in range(5):
                message = json.loads(await bob.recv())
                seen.append(f"{message['name']}: {message['text']}")
                if message["name"] == "ann":
                    break
            return seen

    assert run(session())[-1] == "ann: hello bob"
