"""HTTP/2 attacks from the CVE record against a real worker, with raw frames.

For each: the abusive connection is cut off (GOAWAY with the error code RFC 9113 gives it, or
closed), and a well-behaved client on the same worker keeps getting answers.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time

import httpx
import pytest
from gunicorn.config import Config

pytest.importorskip("h2")
from hpack import Encoder  # installed with h2

pytestmark = pytest.mark.skipif("http2_cleartext" not in Config().settings,
                                reason="this Gunicorn has no http2_cleartext (26.2+)")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, END_HEADERS = 0x1, 0x4
PROTOCOL_ERROR, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 1, 8, 9, 11


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(
        ">I", stream_id) + payload


def request_block(encoder: Encoder, path: str = "/", method: str = "GET") -> bytes:
    return encoder.encode([(":method", method), (":path", path), (":scheme", "http"),
                           (":authority", "localhost")])


class Attacker:
    """A cleartext HTTP/2 connection that writes whatever frames a test builds."""

    def __init__(self, port: int, settings: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))
        self.encoder = Encoder()
        self.buffer = b""

    def send(self, data: bytes) -> None:
        # The worker may cut us off half-way: that is what is being tested.
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def frames(self, until: object, timeout: float = 10.0) -> list[tuple[int, int, int, bytes]]:
        """Frames the worker sent, until ``until(frames)`` holds, it closes, or ``timeout``."""
        seen: list[tuple[int, int, int, bytes]] = []
        deadline = time.monotonic() + timeout
        while not until(seen) and time.monotonic() < deadline:  # type: ignore[operator]
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                seen.append((-1, 0, 0, b""))  # closed
                break
            self.buffer += data
            while len(self.buffer) >= 9:
                size = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) < 9 + size:
                    break
                head, self.buffer = self.buffer[:9 + size], self.buffer[9 + size:]
                seen.append((head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF,
                             head[9:]))
        return seen

    def close(self) -> None:
        self.sock.close()


def goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


def cut_off(frames: list[tuple[int, int, int, bytes]]) -> bool:
    return any(kind in (GOAWAY, -1) for kind, _, _, _ in frames)


def well_behaved(srv) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        for _ in range(5):
            response = client.get(f"{srv.url}/")
            assert (response.status_code, response.text) == (200, "Hello, world!")


@pytest.fixture
def h2c(start_server, worker_class):  # type: ignore[no-untyped-def]
    def start(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                            "--http2-cleartext", "prior-knowledge", *args,
                            worker=worker_class, env=env)
    return start


def test_rapid_reset(h2c) -> None:  # type: ignore[no-untyped-def]
    # CVE-2023-44487: open streams and reset them at once, as fast as the socket takes it.
    srv = h2c()
    attacker = Attacker(srv.port)
    try:
        stream_id = 1
        for _ in range(40):
            burst = []
            for _ in range(50):
                burst.append(frame(HEADERS, END_HEADERS | END_STREAM, stream_id,
                                   request_block(attacker.encoder, "/sleep?5")))
                burst.append(frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL)))
                stream_id += 2
            attacker.send(b"".join(burst))
        frames = attacker.frames(cut_off)
        assert goaway_code(frames) == ENHANCE_YOUR_CALM
    finally:
        attacker.close()
    well_behaved(srv)
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data"])
def test_control_frame_floods(h2c, kind: str) -> None:  # type: ignore[no-untyped-def]
    # CVE-2019-9512 (PING), -9515 (SETTINGS), -9518 (empty frames): the attacker never reads.
    srv = h2c()
    attacker = Attacker(srv.port)
    try:
        if kind == "ping":
            flood = frame(PING, 0, 0, b"12345678") * 5000
        elif kind == "settings":
            flood = frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 100)) * 5000
        else:
            flood = frame(HEADERS, END_HEADERS, 1, request_block(attacker.encoder, "/echo",
                                                                  "POST"))
            flood += frame(DATA, 0, 1) * 5000
        attacker.send(flood)
        frames = attacker.frames(cut_off)
        assert goaway_code(frames) == ENHANCE_YOUR_CALM
    finally:
        attacker.close()
    well_behaved(srv)


def test_continuation_flood(h2c) -> None:  # type: ignore[no-untyped-def]
    # CVE-2024-27316 class: a header block that never ends.
    srv = h2c()
    attacker = Attacker(srv.port)
    try:
        attacker.send(frame(HEADERS, 0, 1, request_block(attacker.encoder)))
        attacker.send(b"".join(frame(CONTINUATION, 0, 1, b"\x00\x01a\x01b" * 1000)
                               for _ in range(200)))
        frames = attacker.frames(cut_off)
        assert goaway_code(frames) == PROTOCOL_ERROR
    finally:
        attacker.close()
    well_behaved(srv)


def test_hpack_bomb(h2c) -> None:  # type: ignore[no-untyped-def]
    # One 4 KiB header in the dynamic table, then a frame of one-byte references to it:
    # 64 MiB decoded from 16 KiB, stopped at http2_max_header_list_size.
    srv = h2c()
    attacker = Attacker(srv.port)
    try:
        value = b"v" * 4000
        literal = b"\x40\x01x" + bytes((0x7F,)) + _hpack_int(len(value) - 127) + value
        block = request_block(attacker.encoder) + literal + b"\xbe" * 16000
        attacker.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block[:16384]))
        frames = attacker.frames(cut_off)
        assert goaway_code(frames) in (ENHANCE_YOUR_CALM, COMPRESSION_ERROR, PROTOCOL_ERROR)
    finally:
        attacker.close()
    well_behaved(srv)


def test_more_streams_than_allowed(h2c) -> None:  # type: ignore[no-untyped-def]
    srv = h2c("--http2-max-concurrent-streams", "5")
    attacker = Attacker(srv.port)
    try:
        settings = attacker.frames(lambda frames: any(f[0] == SETTINGS for f in frames))
        payload = next(f[3] for f in settings if f[0] == SETTINGS)
        advertised = dict(struct.unpack(">HI", payload[i:i + 6])
                          for i in range(0, len(payload), 6))
        assert advertised[3] == 5  # SETTINGS_MAX_CONCURRENT_STREAMS
        attacker.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i,
                                     request_block(attacker.encoder, "/sleep?3"))
                               for i in range(6)))
        frames = attacker.frames(cut_off)
        assert goaway_code(frames) in (PROTOCOL_ERROR, 7) or any(
            f[0] == RST_STREAM and f[2] == 11 for f in frames)
    finally:
        attacker.close()
    well_behaved(srv)


def test_zero_window_slow_reader_on_many_streams(h2c) -> None:  # type: ignore[no-untyped-def]
    # The client announces a zero window and never opens it: the worker holds one message per
    # stream, then resets the streams when the send deadline passes.
    srv = h2c(env={"ASGI_WORKER_SEND_TIMEOUT": "1"})
    attacker = Attacker(srv.port, settings=struct.pack(">HI", 4, 0))
    try:
        ids = [1 + 2 * i for i in range(20)]
        attacker.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, i,
                                     request_block(attacker.encoder, "/big?1000000"))
                               for i in ids))
        well_behaved(srv)  # answered while the slow reader's streams wait
        frames = attacker.frames(
            lambda frames: {f[2] for f in frames if f[0] == RST_STREAM} >= set(ids),
            timeout=15)
        resets = {f[2]: int.from_bytes(f[3], "big") for f in frames if f[0] == RST_STREAM}
        assert set(resets) >= set(ids)
        assert set(resets.values()) == {CANCEL}
    finally:
        attacker.close()
    srv.wait_for_log(r"client too slow")


def test_invalid_preface_from_a_trusted_peer_closes(h2c) -> None:  # type: ignore[no-untyped-def]
    srv = h2c()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
        assert sock.recv(65536) == b""  # RFC 9113 section 3.4: closed, no HTTP/1.1 answer
    well_behaved(srv)


def test_malformed_request_is_a_stream_error(h2c) -> None:  # type: ignore[no-untyped-def]
    # RFC 9113 section 8.1.1: a malformed request (here an upper-case field name, section
    # 8.2) is a stream error; the connection goes on. Each block is sent twice, so the second
    # time every field is indexed and the worker has seen the block before: a repeated
    # malformed block is refused again, a repeated good one answered.
    srv = h2c()
    attacker = Attacker(srv.port)
    good = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "localhost")]
    bad = [*good, ("X-Upper", "1")]
    try:
        plan = {1: good, 3: good, 5: bad, 7: bad, 9: good}
        for stream_id, fields in plan.items():
            attacker.send(frame(HEADERS, END_HEADERS | END_STREAM, stream_id,
                                attacker.encoder.encode(fields)))

        def done(frames: list[tuple[int, int, int, bytes]]) -> bool:
            ended = {sid for kind, flags, sid, _ in frames
                     if kind == RST_STREAM or (kind == DATA and flags & END_STREAM)}
            return ended >= set(plan) or cut_off(frames)

        frames = attacker.frames(done)
        resets = {sid: int.from_bytes(payload, "big") for kind, _, sid, payload in frames
                  if kind == RST_STREAM}
        answered = {sid for kind, flags, sid, _ in frames if kind == DATA and flags & END_STREAM}
        assert resets == {5: PROTOCOL_ERROR, 7: PROTOCOL_ERROR}
        assert answered == {1, 3, 9}
        assert not cut_off(frames)
    finally:
        attacker.close()
    assert "Traceback" not in srv.log()


def _hpack_int(value: int) -> bytes:
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
