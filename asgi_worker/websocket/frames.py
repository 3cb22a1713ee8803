"""WebSocket frames and ASGI messages: received data frames in, ``websocket.receive`` out,
and the header of the frames the server writes itself."""

from __future__ import annotations

import codecs
import struct
from typing import Any

from websockets.frames import Frame, Opcode

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
