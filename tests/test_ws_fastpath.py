"""The WebSocket receive fast path (websocket/frames.py) against websockets' own parser.

Whole small data frames skip websockets' parser; every other frame must reach it exactly as
if the fast path did not exist. These tests drive a real websockets ServerProtocol (the one
the worker builds) with client frames and compare.
"""

from __future__ import annotations

import os
import struct

import pytest
from websockets.frames import Frame, Opcode

from asgi_worker.settings import Settings
from asgi_worker.websocket.frames import (
    FrameTracker,
    MessageAssembler,
    at_frame_boundary,
    fast_path_limit,
    read_simple_frame,
)
from asgi_worker.websocket.handshake import new_protocol


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None,
                 rsv1: bool = False, ext16: bool = False) -> bytes:
    """A masked client frame, built by hand so that odd forms can be made too."""
    mask = os.urandom(4) if mask is None else mask
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126 and not ext16:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def test_whole_small_frames_become_messages() -> None:
    data = client_frame(0x1, "héllo".encode()) + client_frame(0x2, b"\x00\xff" * 100)
    first = read_simple_frame(data, 0, 1 << 20)
    assert first is not None
    message, size, pos = first
    assert message == {"type": "websocket.receive", "text": "héllo"} and size == 6
    second = read_simple_frame(data, pos, 1 << 20)
    assert second is not None
    assert second[0] == {"type": "websocket.receive", "bytes": b"\x00\xff" * 100}
    assert second[2] == len(data)


def test_a_16_bit_length_even_when_not_minimal() -> None:
    # websockets accepts a non-minimal length encoding: so does the fast path.
    got = read_simple_frame(client_frame(0x2, b"abc", ext16=True), 0, 100)
    assert got is not None and got[0]["bytes"] == b"abc"


@pytest.mark.parametrize("data", [
    client_frame(0x1, b"\xff\xfe"),                       # invalid UTF-8: websockets -> 1007
    client_frame(0x2, b"x", fin=False),                   # a fragment
    client_frame(0x0, b"x"),                              # a continuation
    client_frame(0x9, b"ping"),                           # control frames
    client_frame(0x8, b"\x03\xe8"),
    client_frame(0x2, b"x", rsv1=True),                   # RSV bit without an extension
    client_frame(0x2, b"x" * 70000),                      # 64-bit length
    client_frame(0x2, b"x" * 200)[:-1],                   # incomplete
    b"\x82\x03abc",                                       # unmasked client frame
    b"\x82",
], ids=["invalid-utf8", "fragment", "continuation", "ping", "close", "rsv1", "64-bit-length",
        "incomplete", "unmasked", "one-byte"])  # ids, not the random masks: the same every run
def test_every_other_frame_is_left_to_websockets(data: bytes) -> None:
    assert read_simple_frame(data, 0, 1 << 20) is None


def test_the_size_limit_is_left_to_websockets() -> None:
    data = client_frame(0x2, b"x" * 11)
    assert read_simple_frame(data, 0, 10) is None
    assert read_simple_frame(data, 0, 11) is not None


def test_boundary_tracks_websockets_parser() -> None:
    protocol = new_protocol(Settings())
    if not hasattr(protocol, "current_size"):
        # websockets 13-15: internals at_frame_boundary does not know, so the fast path is off.
        assert fast_path_limit(protocol) is None
        return
    assert fast_path_limit(protocol) == 1 << 24  # the default 16 MiB message limit
    assert at_frame_boundary(protocol)
    frame = client_frame(0x2, b"abc")
    protocol.receive_data(frame[:3])           # a partial frame: websockets must finish it
    assert not at_frame_boundary(protocol)
    protocol.receive_data(frame[3:])
    assert at_frame_boundary(protocol)
    assert protocol.events_received() == [Frame(Opcode.BINARY, b"abc")]
    protocol.receive_data(client_frame(0x2, b"ab", fin=False))  # a fragmented message
    assert not at_frame_boundary(protocol)
    protocol.receive_data(client_frame(0x0, b"c"))
    assert at_frame_boundary(protocol)


def test_no_fast_path_with_compression() -> None:
    protocol = new_protocol(Settings(ws_per_message_deflate=True))
    protocol.extensions = [object()]  # as after a handshake that negotiated an extension
    assert fast_path_limit(protocol) is None


def test_close_between_fragments_is_a_clean_close() -> None:
    # RFC 6455 5.4: a control frame may come between the fragments of a message. websockets
    # alone fails the connection (1002); ours drops the unfinished message and echoes the close.
    protocol = new_protocol(Settings())
    protocol.receive_data(client_frame(0x1, b"part", fin=False))
    protocol.receive_data(client_frame(0x8, struct.pack("!H", 4000) + b"bye"))
    assert protocol.close_rcvd is not None and protocol.close_rcvd.code == 4000
    assert protocol.close_sent is not None and protocol.close_sent.code == 4000
    assert protocol.data_to_send()[0][:4] == b"\x88\x05\x0f\xa0"  # the close echoed, unmasked


# -- FrameTracker: UTF-8 of a text frame that has not arrived whole ------------------------------


def deliver(chunks: list[bytes]) -> list[object]:
    """Feed ``chunks`` as the session does, one read each: websockets parses, the assembler
    joins complete data frames, then the tracker checks what the read left unfinished."""
    protocol = new_protocol(Settings())
    assembler = MessageAssembler()
    tracker = FrameTracker()
    messages: list[object] = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        for frame in protocol.events_received():
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                got = assembler.feed(frame)
                if got is not None:
                    messages.append(got[0].get("text", got[0].get("bytes")))
        tracker.feed(chunk, assembler.decoder)
    return messages


TEXT = "κόσμε ✓ 𝄞 ".encode() * 20  # 16-bit length: over 125 bytes
VALID_STREAM = b"".join([
    client_frame(0x1, TEXT),
    client_frame(0x1, TEXT[:5], fin=False), client_frame(0x9, b"ping"),
    client_frame(0x0, TEXT[5:9], fin=False), client_frame(0x0, TEXT[9:]),
    client_frame(0x2, b"\xf4\x90\x80\x80" * 40),
    client_frame(0x2, b"\xff", fin=False), client_frame(0x0, b"\xfe\xfd"),
    client_frame(0x1, b""),
])
VALID_MESSAGES = [TEXT.decode(), TEXT.decode(), b"\xf4\x90\x80\x80" * 40, b"\xff\xfe\xfd", ""]


def test_tracker_accepts_valid_text_cut_anywhere() -> None:
    assert deliver([bytes([byte]) for byte in VALID_STREAM]) == VALID_MESSAGES
    for cut in range(1, len(VALID_STREAM)):
        assert deliver([VALID_STREAM[:cut], VALID_STREAM[cut:]]) == VALID_MESSAGES, cut


@pytest.mark.parametrize(("frames", "bad_at"), [
    # One text frame: "κόσμε", then f4 90 80 80 (above U+10FFFF): invalid at 90.
    ([client_frame(0x1, bytes.fromhex("cebae1bdb9cf83cebcceb5f4908080") + b"edited")], 6 + 12),
    # A first fragment ends with f4 (valid so far); the continuation goes on with 90.
    ([client_frame(0x1, b"ok\xf4", fin=False), client_frame(0x0, b"\x90\x80\x80rest")],
     9 + 6),
    # A 16-bit length frame.
    ([client_frame(0x1, b"a" * 200 + b"\xc0\xafrest")], 8 + 200),
], ids=["6.4.4", "continuation", "16-bit"])
def test_tracker_fails_at_the_first_bad_byte(frames: list[bytes], bad_at: int) -> None:
    stream = b"".join(frames)
    assert len(stream) > bad_at + 1  # the frame is unfinished when the bad byte arrives
    deliver([bytes([byte]) for byte in stream[:bad_at]])  # valid so far
    with pytest.raises(UnicodeDecodeError):
        deliver([bytes([byte]) for byte in stream[:bad_at + 1]])
