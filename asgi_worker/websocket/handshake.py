"""The WebSocket opening handshake: validation, the ASGI websocket scope and the HTTP answers.

The HTTP connection already parsed the request; here it is checked once more by websockets'
sans-I/O :class:`~websockets.server.ServerProtocol` (key, version, extensions, subprotocols),
the websocket scope is derived from the HTTP scope, and every HTTP/1.1 response the handshake
can end with (101, a denial chosen by the app, 403, 500, 503) is encoded as plain bytes by
:class:`H1Opening`. An HTTP/2 extended CONNECT (RFC 8441) is negotiated by :func:`negotiate_h2`
with the same websockets code (extensions, subprotocols); http2/websocket.py answers it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader, InvalidHeaderValue
from websockets.extensions import ServerExtensionFactory
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ..http.h1_framing import status_line
from ..settings import Settings
from .transport import Transport

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+").fullmatch
_BAD_VALUE = re.compile(rb"[\x00\r\n]").search
_SERVER = b"server: gunicorn\r\n"
# The app may not set these on a 101: they belong to the handshake itself.
_HANDSHAKE_HEADERS = frozenset({
    b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-extensions",
    b"sec-websocket-protocol", b"content-length", b"transfer-encoding",
})

# Where websockets keeps the size of a fragmented message being received: cur_size up to 15,
# current_size from 16.
_FRAGMENTED_SIZE = ("current_size", "cur_size")


class WebSocketProtocol(ServerProtocol):
    """websockets' server protocol, recording the subprotocols the client offered.

    The ASGI app, not the server, picks the subprotocol (in ``websocket.accept``), so the
    selection hook only remembers the offer, already parsed and validated by websockets.
    """

    offered: list[str]

    def select_subprotocol(self, subprotocols: Any) -> Subprotocol | None:
        self.offered = [str(name) for name in subprotocols]
        return None

    def recv_frame(self, frame: Frame) -> None:
        # RFC 6455 5.4 lets control frames, close included, come between the fragments of a
        # message. websockets fails such a close with 1002; a clean close (Autobahn 7.1.5)
        # drops the unfinished message instead, which the session does too.
        if frame.opcode is Opcode.CLOSE:
            for name in _FRAGMENTED_SIZE:
                if getattr(self, name, None) is not None:
                    setattr(self, name, None)
        super().recv_frame(frame)


@lru_cache(maxsize=2)
def _extensions(per_message_deflate: bool) -> tuple[ServerExtensionFactory, ...] | None:
    # websockets' own server defaults: 12-bit windows and memLevel 5 keep a compressed
    # connection at ~64 KiB of zlib state instead of ~300 KiB.
    return tuple(enable_server_permessage_deflate(None)) if per_message_deflate else None


def new_protocol(settings: Settings) -> WebSocketProtocol:
    """A server protocol for one connection, built from the worker's settings.

    It starts in the OPEN state: the request was parsed by the HTTP layer, so websockets'
    parser must go straight to frames once the handshake response is written.
    """
    protocol = WebSocketProtocol(
        extensions=_extensions(settings.ws_per_message_deflate),
        max_size=settings.ws_max_message_size or None,
        state=OPEN,
    )
    protocol.offered = []
    return protocol


def handshake_request(scope: dict[str, Any]) -> Request:
    """The request as websockets sees it, rebuilt from the HTTP scope."""
    path = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        path += "?" + scope["query_string"].decode("latin-1")
    headers = Headers([(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in scope["headers"]])
    # Only an HTTP/1.1 GET is upgraded (HTTPConnection.on_head): websockets 17 checks both,
    # as its Request's defaults; older releases (16 is the newest on Python 3.10) have neither.
    return Request(path, headers)


def negotiate_h2(protocol: WebSocketProtocol,
                 headers: list[tuple[bytes, bytes]]) -> str | None:
    """An RFC 8441 CONNECT's handshake (section 5: no key, no Upgrade; version 13, extensions
    and subprotocols as in RFC 6455), negotiated by websockets' own code. Returns the
    ``sec-websocket-extensions`` value to answer with; raises ``InvalidHandshake``."""
    request = Headers([(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in headers])
    versions = request.get_all("Sec-WebSocket-Version")
    if not versions:
        raise InvalidHeader("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise InvalidHeaderValue("Sec-WebSocket-Version", ", ".join(versions))
    extensions_header, protocol.extensions = protocol.process_extensions(request)
    protocol.process_subprotocol(request)  # select_subprotocol records the offer
    return extensions_header


def websocket_scope(scope: dict[str, Any], subprotocols: list[str]) -> dict[str, Any]:
    """The ASGI websocket scope: the HTTP scope's fields, minus method, plus what ASGI adds."""
    ws_scope = dict(scope)
    del ws_scope["method"]
    ws_scope["type"] = "websocket"
    ws_scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    ws_scope["subprotocols"] = subprotocols
    ws_scope["extensions"] = {"websocket.http.response": {}}
    return ws_scope


def check_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The app's headers as a list, refused when a name or value could split the response."""
    checked = []
    for name, value in headers:
        if not _TOKEN(name) or _BAD_VALUE(value):
            raise RuntimeError(f"invalid response header {name!r}: {value!r}")
        checked.append((name, value))
    return checked


def check_subprotocol(subprotocol: str | None) -> bytes:
    """The subprotocol the app chose, as a header value (empty: none)."""
    if not subprotocol:
        return b""
    value = subprotocol.encode("latin-1")
    if _BAD_VALUE(value) or "," in subprotocol:
        raise RuntimeError(f"invalid subprotocol {subprotocol!r}")
    return value


def check_accept_headers(extra: list[tuple[bytes, bytes]]) -> bool:
    """Refuse the handshake's own headers among the app's; whether it set ``server``."""
    has_server = False
    for name, _value in extra:
        lowered = name.lower()
        if lowered in _HANDSHAKE_HEADERS:
            raise RuntimeError(f"websocket.accept may not set the {name!r} header")
        if lowered == b"server":
            has_server = True
    return has_server


def accept_head(handshake: Headers, subprotocol: str | None,
                extra: list[tuple[bytes, bytes]], date_header: bytes) -> bytes:
    """The 101 response: websockets' handshake headers, the subprotocol, the app's headers."""
    lines = [b"HTTP/1.1 101 Switching Protocols\r\n"]
    for key, text in handshake.raw_items():
        if key != "Date":
            lines.append(b"%s: %s\r\n" % (key.encode("latin-1"), text.encode("latin-1")))
    chosen = check_subprotocol(subprotocol)
    if chosen:
        lines.append(b"sec-websocket-protocol: %s\r\n" % chosen)
    has_server = check_accept_headers(extra)
    for name, value in extra:
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(date_header)
    if not has_server:
        lines.append(_SERVER)
    lines.append(b"\r\n")
    return b"".join(lines)


def response_head(status: int, headers: list[tuple[bytes, bytes]], date_header: bytes,
                  framing: bytes) -> bytes:
    """A denial response's head; it always ends the connection."""
    lines = [status_line(status)]
    has_date = has_server = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in (b"connection", b"transfer-encoding"):
            continue
        if lowered == b"date":
            has_date = True
        elif lowered == b"server":
            has_server = True
        lines.append(b"%s: %s\r\n" % (name, value))
    if not has_date:
        lines.append(date_header)
    if not has_server:
        lines.append(_SERVER)
    lines.append(framing)
    lines.append(b"connection: close\r\n\r\n")
    return b"".join(lines)


def plain_response(status: int, text: str, date_header: bytes) -> bytes:
    """A complete short plain-text response that ends the connection."""
    body = text.encode("utf-8")
    head = response_head(status, [(b"content-type", b"text/plain; charset=utf-8")],
                         date_header, b"content-length: %d\r\n" % len(body))
    return head + body


class H1Opening:
    """How a session answers an HTTP/1.1 upgrade request: the 101, or an HTTP response (a
    denial, 403, 500, 503) written to the socket. The session ends the connection after a
    response by closing its transport."""

    __slots__ = ("handshake", "length", "server", "started", "transport")

    def __init__(self, transport: Transport, handshake: Headers | None, server: Any) -> None:
        self.transport = transport
        self.handshake = handshake  # websockets' 101 headers; None once used or when refused
        self.server = server
        self.length = -1  # the app's Content-Length of a denial response, -1 when unknown
        self.started = False

    def accept(self, subprotocol: str | None, extra: list[tuple[bytes, bytes]]) -> int:
        """Write the 101; returns its status for the access log."""
        assert self.handshake is not None
        head = accept_head(self.handshake, subprotocol, extra, self.server.date_header)
        self.handshake = None
        self.transport.write(head)
        return 101

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                more_body: bool) -> None:
        """One part of an HTTP response; the first carries the head, framed by length when
        the app gave one or the whole body is known (else by the connection's end)."""
        if not self.started:
            self.started = True
            for name, value in headers:
                if name.lower() == b"content-length":
                    self.length = int(value) if value.isdigit() else -1
            framing = b""
            if self.length < 0 and not more_body:
                framing = b"content-length: %d\r\n" % len(body)
            body = response_head(status, headers, self.server.date_header, framing) + body
        if body:
            self.transport.write(body)
