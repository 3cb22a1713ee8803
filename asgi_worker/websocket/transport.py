"""What a WebSocket session needs from what carries it: an HTTP/1.1 socket or an HTTP/2 stream.

A session (session.py) writes and reads RFC 6455 frames; it does not know whether they travel
on an upgraded HTTP/1.1 connection (the transport is asyncio's own, and the session is its
protocol) or inside the DATA frames of an RFC 8441 stream (http2/websocket.py, which calls the
session's ``data_received``/``eof_received``/``connection_lost``/``pause_writing``/
``resume_writing`` as asyncio would). The opening handshake is answered through an
:class:`Opening`: ``handshake.H1Opening`` writes HTTP/1.1 bytes, the HTTP/2 stream sends
HEADERS.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Transport(Protocol):
    """The bytes of the WebSocket connection (asyncio's ``Transport`` is one)."""

    def write(self, data: bytes) -> None: ...

    def writelines(self, list_of_data: Iterable[bytes]) -> None: ...

    def close(self) -> None:
        """End the connection once what was written is sent (FIN; END_STREAM)."""

    def abort(self) -> None:
        """End it now (RST; RST_STREAM)."""

    def pause_reading(self) -> None:
        """Stop taking bytes from the peer (TCP backpressure; no WINDOW_UPDATE)."""

    def resume_reading(self) -> None: ...


class Opening(Protocol):
    """The HTTP answer to the opening handshake."""

    def accept(self, subprotocol: str | None, extra: list[tuple[bytes, bytes]]) -> int:
        """Accept (101 on HTTP/1.1, 200 on HTTP/2); returns the status."""

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                more_body: bool) -> None:
        """Part of an HTTP response instead (the head with the first part); the session
        closes the transport after the last."""
