"""WebSocket clients that break the protocol, and the close code a client sees when a worker
stops, against a real gunicorn for both parsers.

- A valid message, then a bad frame in the same write: the echo of the message comes back
  before the close (1002), as Autobahn's cases 3.2-3.4, 4.1.3-4.1.5, 4.2.3-4.2.5 and 5.15
  expect ("Echo for first message is received, but then connection is failed immediately").
- Invalid UTF-8 in a text frame that has not arrived whole: the close (1007) comes before the
  rest of the frame is sent (RFC 6455 8.1; Autobahn 6.4.3 and 6.4.4).
- Shutdown: 1012 (service restart) on a reload, a SIGTERM or ``max_requests``; 1001 (going
  away) when the arbiter is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import WORKERS, GunicornServer
from tests.rawhttp import status_of
from tests.test_websocket import (
    APP,
    KEY_REQUEST,
    _module_server,
    client_frame,
    raw_handshake,
    read_frame,
    run,
    wait_for_lines,
    ws_url,
)


@pytest.fixture(scope="module", params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    server = _module_server(tmp_path_factory.mktemp("ws-errors"), worker_class, {})
    yield server
    server.stop()


def with_first_byte(frame: bytes, first: int) -> bytes:
    """``frame`` with its first byte (FIN, RSV bits, opcode) replaced."""
    return bytes([first]) + frame[1:]


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0])


def frames_until_close(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Server frames up to and including the close frame; then the server must close TCP."""
    frames = [read_frame(sock)]
    while frames[-1][0] != 0x8:
        frames.append(read_frame(sock))
    assert sock.recv(10) == b""
    return frames


# -- a valid message, then a bad frame in the same write ------------------------------------------

HELLO = b"Hello, world!"
BAD_AFTER_HELLO = {
    # Autobahn 3.2 / 3.3: RSV bits without an extension that defines them.
    "rsv2": with_first_byte(client_frame(0x1, HELLO), 0x81 | 0x20),
    "rsv1-rsv3": with_first_byte(client_frame(0x1, HELLO), 0x81 | 0x50),
    # 4.1.3 / 4.2.3: a reserved data opcode, a reserved control opcode.
    "opcode-5": client_frame(0x5, b""),
    "opcode-0xB": client_frame(0xB, b"reserved"),
    # 5.x: a continuation frame with no message to continue.
    "lone-continuation": client_frame(0x0, b"fragment", fin=False),
    # 6.x: a whole text frame that is not UTF-8 (1007).
    "invalid-utf8": client_frame(0x1, b"ok \xff"),
}


@pytest.mark.parametrize("bad", list(BAD_AFTER_HELLO.values()), ids=list(BAD_AFTER_HELLO))
def test_message_then_bad_frame_echo_then_close(srv: GunicornServer, bad: bytes,
                                                tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    code = 1007 if bad == BAD_AFTER_HELLO["invalid-utf8"] else 1002
    with raw_handshake(srv.port, f"echo?{marker}") as sock:
        # One write: the server reads the message and the bad frame together. The ping after
        # the bad frame must not be answered: nothing after the error is read.
        sock.sendall(client_frame(0x1, HELLO) + bad + client_frame(0x9, b""))
        frames = frames_until_close(sock)
    assert frames[:-1] == [(0x1, HELLO)]
    assert close_code(frames[-1][1]) == code
    assert wait_for_lines(marker, "disconnect")[0].startswith(f"disconnect {code} ")


def test_busy_app_does_not_hold_the_close_for_long(srv: GunicornServer, tmp_path: Path) -> None:
    """The close frame waits for the app's reply only about a second (FAIL_GRACE): an app
    still busy 6 s later finds the connection closed."""
    marker = tmp_path / "marker"
    with raw_handshake(srv.port, f"busy?{marker}", timeout=10) as sock:
        sock.sendall(client_frame(0x1, HELLO) + client_frame(0x3, b""))
        frames = frames_until_close(sock)
    assert [opcode for opcode, _ in frames] == [0x8]
    assert close_code(frames[0][1]) == 1002
    assert wait_for_lines(marker, "late reply") == ["late reply: WebSocketDisconnected"]


def test_fragmented_message_then_bad_continuation(srv: GunicornServer) -> None:
    """Autobahn 5.15: two fragments make a message; then a continuation with nothing to
    continue, and a text frame, all in one write."""
    with raw_handshake(srv.port) as sock:
        sock.sendall(client_frame(0x1, b"fragment1", fin=False) + client_frame(0x0, b"fragment2")
                     + client_frame(0x0, b"fragment3", fin=False) + client_frame(0x1, b"fragment4"))
        frames = frames_until_close(sock)
    assert frames[:-1] == [(0x1, b"fragment1fragment2")]
    assert close_code(frames[-1][1]) == 1002


def test_several_messages_then_bad_frame_echo_in_order(srv: GunicornServer) -> None:
    messages = [b"one", b"two" * 100, "drei ✓".encode(), b"four" * 1000]
    stream = b"".join(client_frame(0x1 if index % 2 else 0x2, message)
                      for index, message in enumerate(messages))
    with raw_handshake(srv.port) as sock:
        sock.sendall(stream + client_frame(0x3, b""))
        frames = frames_until_close(sock)
    assert frames[:-1] == [(0x1 if index % 2 else 0x2, message)
                           for index, message in enumerate(messages)]
    assert close_code(frames[-1][1]) == 1002


def test_echo_before_1002_with_compression(srv: GunicornServer) -> None:
    """With permessage-deflate negotiated, the reply is compressed and still comes first."""
    request = KEY_REQUEST.replace(b"\r\n\r\n",
                                  b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(request % b"echo")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert status_of(head) == 101 and b"permessage-deflate" in head.lower(), head
        # A message sent uncompressed (RSV1 clear) is allowed; then a reserved opcode.
        sock.sendall(client_frame(0x1, HELLO) + client_frame(0x3, b""))
        first = sock.recv(1, socket.MSG_PEEK)[0]
        frames = frames_until_close(sock)
    assert frames[0][0] == 0x1 and len(frames) == 2
    payload = frames[0][1]
    if first & 0x40:  # RSV1: compressed (RFC 7692 7.2.2)
        payload = zlib.decompressobj(-zlib.MAX_WBITS).decompress(payload + b"\x00\x00\xff\xff")
    assert payload == HELLO
    assert close_code(frames[1][1]) == 1002


# -- invalid UTF-8 before a text frame is complete ------------------------------------------------

# Autobahn 6.4.x's payload: "κόσμε", then U+110000 (f4 90 80 80, beyond Unicode), then "edited".
KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")
INVALID = bytes.fromhex("f4908080")
PAYLOAD = KOSME + INVALID + b"edited"


def header_size(frame: bytes) -> int:
    size = frame[1] & 0x7F
    return 2 + 4 + (2 if size == 126 else 8 if size == 127 else 0)


@pytest.mark.parametrize("cut", [
    (11, 15),  # 6.4.3: the valid part; then the four invalid bytes
    (12, 13),  # 6.4.4: the valid part and f4; then 90, invalid after f4
], ids=["6.4.3", "6.4.4"])
def test_invalid_utf8_in_unfinished_frame_fails_at_once(srv: GunicornServer, tmp_path: Path,
                                                        cut: tuple[int, int]) -> None:
    marker = tmp_path / "marker"
    frame = client_frame(0x1, PAYLOAD)
    start = header_size(frame)
    with raw_handshake(srv.port, f"echo?{marker}") as sock:
        sock.sendall(frame[:start + cut[0]])
        time.sleep(0.05)  # a read of its own, where the server can (it need not be)
        sock.sendall(frame[start + cut[0]:start + cut[1]])
        # The rest of the frame is never sent: the close must come without it.
        frames = frames_until_close(sock)
    assert [opcode for opcode, _ in frames] == [0x8]
    assert close_code(frames[0][1]) == 1007
    assert wait_for_lines(marker, "disconnect")[0].startswith("disconnect 1007 ")


def test_invalid_utf8_in_unfinished_continuation_fails_at_once(srv: GunicornServer) -> None:
    """The first fragment ends inside a character (valid so far); the second, unfinished,
    goes on with a byte that cannot follow it."""
    first = client_frame(0x1, KOSME + INVALID[:1], fin=False)
    second = client_frame(0x0, INVALID[1:] + b"edited")
    start = header_size(second)
    with raw_handshake(srv.port) as sock:
        sock.sendall(first + second[:start])
        time.sleep(0.05)
        sock.sendall(second[start:start + 1])
        frames = frames_until_close(sock)
    assert [opcode for opcode, _ in frames] == [0x8]
    assert close_code(frames[0][1]) == 1007


def test_text_and_binary_cut_anywhere_echo_intact(srv: GunicornServer) -> None:
    """No false alarm: characters cut between reads and between fragments, and binary
    payloads that are not UTF-8, arrive whole."""
    text = "κόσμε ✓ 𝄞 edited".encode()
    stream = b"".join([
        client_frame(0x1, text),
        client_frame(0x1, text[:3], fin=False), client_frame(0x9, b"p"),
        client_frame(0x0, text[3:10], fin=False), client_frame(0x0, text[10:]),
        client_frame(0x2, INVALID * 50),
        client_frame(0x2, INVALID, fin=False), client_frame(0x0, INVALID * 40),
        client_frame(0x1, text * 20),
    ])
    with raw_handshake(srv.port) as sock:
        for index in range(0, len(stream), 7):
            sock.sendall(stream[index:index + 7])
            time.sleep(0.002)
        frames = [read_frame(sock) for _ in range(6)]
    # The pong is written when the ping is parsed, the echoes when the app runs.
    assert [frame for frame in frames if frame[0] != 0xA] == [
        (0x1, text), (0x1, text), (0x2, INVALID * 50), (0x2, INVALID * 41), (0x1, text * 20)]
    assert (0xA, b"p") in frames


# -- the close code when a worker stops -----------------------------------------------------------


async def _closed_by_server(server: GunicornServer, marker: Path, action: Any) -> int | None:
    async with ws_connect(ws_url(server, f"echo?{marker}")) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        action()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 15)
        return ws.protocol.close_code


def test_reload_closes_with_1012(start_server: Any, worker_class: str, tmp_path: Path) -> None:
    """SIGHUP: new workers start, the old ones drain. A client told 1012 (service restart)
    may reconnect, and a new worker serves it."""
    server = start_server(APP, worker=worker_class)
    marker = tmp_path / "marker"
    code = run(_closed_by_server(server, marker, lambda: server.signal(signal.SIGHUP)))
    assert code == 1012
    assert wait_for_lines(marker, "disconnect") == ["disconnect 1012 server restarting"]

    async def again() -> Any:
        async with ws_connect(ws_url(server, "echo")) as ws:
            await ws.send("back")
            return await ws.recv()

    assert run(again()) == "back"


def test_max_requests_closes_with_1012(start_server: Any, worker_class: str,
                                       tmp_path: Path) -> None:
    server = start_server(APP, "--max-requests", "1", worker=worker_class)
    marker = tmp_path / "marker"

    def one_request() -> None:  # the worker's only request: it is recycled after it
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")

    assert run(_closed_by_server(server, marker, one_request)) == 1012
    assert wait_for_lines(marker, "disconnect") == ["disconnect 1012 server restarting"]


def test_arbiter_gone_closes_with_1001(start_server: Any, worker_class: str,
                                       tmp_path: Path) -> None:
    """Nothing will replace the worker: 1001 (going away)."""
    server = start_server(APP, worker=worker_class)
    marker = tmp_path / "marker"
    workers = server.worker_pids()
    try:
        code = run(_closed_by_server(server, marker, server.proc.kill))
        assert code == 1001
        assert wait_for_lines(marker, "disconnect") == ["disconnect 1001 server shutting down"]
    finally:
        server.proc.wait(5)
        for pid in workers:  # the orphaned worker exits after its drain; make sure of it
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _running(pid):
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (an exited worker may stay a zombie until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
