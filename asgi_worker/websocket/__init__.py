"""WebSocket support: the upgrade hand-off from the HTTP connection to a WebSocket session.

The HTTP connection calls :func:`upgrade` once it has parsed a ``GET`` with
``Upgrade: websocket``. The handshake is validated by websockets' sans-I/O protocol
(:mod:`.handshake`), and the connection becomes a :class:`~.session.WebSocketSession` that
runs the ASGI app over ASGI websocket messages.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..disconnected import WebSocketDisconnected
from ..http.errors import ERRORS
from .handshake import H1Opening, handshake_request, new_protocol, websocket_scope
from .session import CONNECTING, WebSocketSession

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["WebSocketDisconnected", "WebSocketSession", "upgrade"]


def upgrade(server: Server, transport: asyncio.Transport, scope: dict[str, Any],
            leftover: bytes) -> None:
    """Take over ``transport`` for a WebSocket session, or refuse the handshake over HTTP."""
    protocol = new_protocol(server.settings)
    response = protocol.accept(handshake_request(scope))
    accepted = response.status_code == 101
    opening = H1Opening(transport, response.headers if accepted else None, server)
    session = WebSocketSession(server, transport, scope, protocol, opening)
    transport.set_protocol(session)
    if server.draining:
        session.refuse(503, "Server is shutting down\n")
    elif not accepted:
        client = scope.get("client")
        server.log.warning("Invalid WebSocket handshake from ip=%s: %s",
                           client[0] if client else "unix", protocol.handshake_exc)
        status, text = ERRORS["bad_websocket"]
        session.refuse(status, text + "\n")
    server.connection_made(session)
    if session.state == CONNECTING:  # not refused: the app decides
        session.start(server.app, websocket_scope(scope, protocol.offered), leftover)
