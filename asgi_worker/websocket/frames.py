"""WebSocket frames and ASGI messages: received data frames in, ``websocket.receive`` out,
and the header of the frames the server writes itself."""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

from ..types import Message

_TEXT = Opcode.TEXT
_CONT = Opcode.CONT
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
# FIN + opcode and a 7-bit length, for the frames small enough to use one (RFC 6455 5.2).
_SMALL_HEADERS = {op: [bytes((0x80 | op, size)) for size in range(126)] for op in (0x1, 0x2)}


def frame_header(opcode: int, size: int) -> bytes:
    """The header of an unmasked, unfragmented server frame carrying ``size`` bytes."""
    if size < 126:
        return _SMALL_HEADERS[opcode][size]
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, size)
    return struct.pack("!BBQ", 0x80 | opcode, 127, size)


class MessageAssembler:
    """Joins data frames into ASGI ``websocket.receive`` messages.

    websockets has already checked the frames' order and the message size limit. Text in
    fragments is decoded as it arrives, so invalid UTF-8 fails the connection at once
    (:meth:`feed` raises ``UnicodeDecodeError``), not when the last fragment comes.
    """

    __slots__ = ("decoder", "fragments", "size")

    def __init__(self) -> None:
        self.fragments: list[Any] = []
        self.size = 0
        self.decoder: Any = None

    def feed(self, frame: Frame) -> tuple[Message, int] | None:
        """A data frame: the complete message and its size in bytes, or None for a fragment."""
        data = frame.data
        opcode = frame.opcode
        if frame.fin and opcode is not _CONT:
            if opcode is _TEXT:
                return {"type": "websocket.receive", "text": str(data, "utf-8")}, len(data)
            if type(data) is not bytes:
                data = bytes(data)
            return {"type": "websocket.receive", "bytes": data}, len(data)
        if opcode is not _CONT:
            self.decoder = _Utf8Decoder() if opcode is _TEXT else None
            self.fragments = []
            self.size = 0
        decoder = self.decoder
        self.fragments.append(decoder.decode(data, frame.fin) if decoder is not None else data)
        self.size += len(data)
        if not frame.fin:
            return None
        fragments = self.fragments
        self.fragments = []
        if decoder is not None:
            self.decoder = None
            return {"type": "websocket.receive", "text": "".join(fragments)}, self.size
        return {"type": "websocket.receive", "bytes": b"".join(fragments)}, self.size


# -- UTF-8 in a text frame that has not arrived whole ---------------------------------------------


class FrameTracker:
    """Follows the frames in the bytes given to websockets' parser, so that a text frame still
    incomplete at the end of a read can be UTF-8 checked as far as it has come.

    websockets hands a frame over only once its whole payload has arrived, and RFC 6455
    section 8.1 asks to fail the connection as soon as the bytes are not UTF-8 (Autobahn
    6.4.3/6.4.4 send a bad byte, then wait with the frame unfinished). So this walks the frame
    headers itself (no payload is copied or decoded for frames that end within the read:
    those reach :class:`MessageAssembler`) and decodes only the payload of a text frame, or of
    a continuation of a text message, that a read leaves unfinished, continuing from the
    message's decoder. Only used without extensions (a compressed payload is not UTF-8 until
    the frame is inflated); websockets still checks everything else about each frame.
    """

    __slots__ = ("decoder", "head", "mask", "offset", "opcode", "remaining")

    def __init__(self) -> None:
        self.head = b""  # the start of a header that a read cut short
        self.remaining = 0  # payload bytes of the current frame still to come
        self.opcode = -1  # the current frame's opcode, -1 when it needs no check
        self.mask = b""
        self.offset = 0  # payload bytes of the current frame already seen
        self.decoder: Any = None  # decodes the current frame's payload once a read cut it

    def feed(self, data: bytes, message_decoder: Any) -> None:
        """Follow ``data``, the bytes just given to websockets, after the frames completed
        in it went to the assembler (whose text decoder is ``message_decoder``, or None).

        Raises ``UnicodeDecodeError`` when an unfinished text frame is not UTF-8 so far.
        """
        pos = 0
        end = len(data)
        if self.head:
            data = self.head + data
            end = len(data)
            self.head = b""
        while pos < end:
            remaining = self.remaining
            if remaining:
                take = end - pos
                if take >= remaining:  # the frame ends in this read: the assembler checks it
                    pos += remaining
                    self.remaining = 0
                    self.decoder = None
                    continue
                if self.opcode >= 0:
                    self._check(data[pos:], message_decoder)
                self.remaining = remaining - take
                self.offset += take
                return
            pos = self._header(data, pos, end)
            if pos < 0:
                return

    def _header(self, data: bytes, pos: int, end: int) -> int:
        """Read the frame header at ``pos``: where its payload starts, or -1 when the header
        is not all there yet (it is kept for the next read)."""
        if end - pos < 2:
            self.head = data[pos:]
            return -1
        first = data[pos]
        second = data[pos + 1]
        size = second & 0x7F
        start = pos + 2
        if size == 126:
            start += 2
        elif size == 127:
            start += 8
        masked = second & 0x80
        if masked:
            start += 4
        if start > end:
            self.head = data[pos:]
            return -1
        if size == 126:
            size = int.from_bytes(data[pos + 2:pos + 4], "big")
        elif size == 127:
            size = int.from_bytes(data[pos + 2:pos + 10], "big")
        opcode = first & 0x0F
        # Text, or a continuation (of a text message if the assembler has a decoder); an
        # unmasked client frame or a set RSV bit is websockets' to refuse.
        checked = (opcode == 0x1 or opcode == 0x0) and masked and not first & 0x70
        self.opcode = opcode if checked else -1
        self.mask = data[start - 4:start] if masked else b""
        self.remaining = size
        self.offset = 0
        self.decoder = None
        return start

    def _check(self, payload: bytes, message_decoder: Any) -> None:
        decoder = self.decoder
        if decoder is None:
            decoder = _Utf8Decoder()
            if self.opcode == 0x0:
                if message_decoder is None:  # a continuation of a binary message
                    self.opcode = -1
                    return
                decoder.setstate(message_decoder.getstate())
            self.decoder = decoder
        offset = self.offset % 4
        mask = self.mask[offset:] + self.mask[:offset] if offset else self.mask
        decoder.decode(apply_mask(payload, mask))


# -- the common client frame, without websockets' parser ------------------------------------------

_AT_EOF = StreamReader.at_eof.__code__


def fast_path_limit(protocol: Any) -> int | None:
    """The payload limit for :func:`read_simple_frame` on this connection, or None when the
    fast path cannot be used (an extension is on, or websockets' internals are not the ones
    :func:`at_frame_boundary` knows)."""
    if protocol.extensions or not hasattr(protocol, "current_size"):
        return None
    if not hasattr(protocol.parser, "gi_yieldfrom") or not hasattr(protocol.reader, "buffer"):
        return None
    limits = [size for size in (getattr(protocol, "max_message_size", -1),
                                getattr(protocol, "max_fragment_size", -1)) if size is not None]
    if -1 in limits:
        return None
    return min(limits, default=1 << 63)


def at_frame_boundary(protocol: Any) -> bool:
    """Whether websockets' parser waits for the first byte of a frame, with nothing buffered:
    then bytes may go past it, frame by frame, as long as each frame is a whole one."""
    inner = protocol.parser  # the server's parser delegates to the frame parser, and so on
    while (delegate := inner.gi_yieldfrom) is not None:
        inner = delegate
    return (inner.gi_code is _AT_EOF and not protocol.reader.buffer
            and protocol.current_size is None)


def receive_simple_frames(protocol: Any, data: bytes, limit: int,
                          enqueue: Callable[[Message, int], None]) -> bytes:
    """Hand the whole small data frames at the start of ``data`` to ``enqueue`` while
    websockets' parser waits at a frame boundary; return the bytes left for websockets."""
    if not at_frame_boundary(protocol):
        return data
    pos = 0
    while (got := read_simple_frame(data, pos, limit)) is not None:
        message, size, pos = got
        enqueue(message, size)
    return data[pos:] if pos else data


def read_simple_frame(data: bytes, pos: int, limit: int) -> tuple[Message, int, int] | None:
    """The frame at ``data[pos:]`` as an ASGI message if it is the common kind, else None.

    The common kind: complete, final, text or binary, masked (as client frames must be),
    no RSV bits, under 64 KiB, within ``limit``, and valid UTF-8 for text. Returns the message,
    its payload size and where the next frame starts. Anything else, including every protocol
    error, is left to websockets, which parses it as if this function did not exist.
    """
    end = len(data)
    if end - pos < 6:
        return None
    first = data[pos]
    second = data[pos + 1]
    if (first != 0x81 and first != 0x82) or second < 0x80:
        return None
    size = second & 0x7F
    start = pos + 6
    if size == 126:
        if end - pos < 8:
            return None
        size = (data[pos + 2] << 8) | data[pos + 3]
        start = pos + 8
    elif size == 127:
        return None
    stop = start + size
    if stop > end or size > limit:
        return None
    payload = apply_mask(data[start:stop], data[start - 4:start])
    if first == 0x82:
        return {"type": "websocket.receive", "bytes": payload}, size, stop
    try:
        text = str(payload, "utf-8")
    except UnicodeDecodeError:
        return None
    return {"type": "websocket.receive", "text": text}, size, stop
