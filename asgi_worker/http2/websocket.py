"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream carrying one WebSocket session.

The worker's SETTINGS carry ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`` when it serves WebSockets
(connection.py). A ``CONNECT`` with ``:protocol websocket`` is handed here: the handshake is
negotiated by websockets' own code (version, extensions, subprotocols: websocket/handshake.py),
and the same :class:`~asgi_worker.websocket.session.WebSocketSession` as on HTTP/1.1 runs the
app. :class:`H2WebSocket` is its transport and its opening: RFC 6455 frames travel in DATA
frames within the peer's window, ``websocket.accept`` is ``:status 200``, any other answer an
HTTP/2 response; the session's close is END_STREAM, an abort RST_STREAM; the peer's
END_STREAM is the end of its byte stream, its RST_STREAM (or the connection's loss) the
session's ``connection_lost``. Flow control both ways: received DATA is acknowledged
(WINDOW_UPDATE) while the session reads, and held while it has paused (its queue of messages
the app has not taken is full, or its writes wait), so a peer can send at most one window more;
what the session writes beyond the peer's window waits here, and the session's ``send()``
waits for it (its send timeout aborts a peer that never opens the window).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

import h2.exceptions
from websockets.exceptions import InvalidHandshake

from ..http.errors import RequestError
from ..websocket.handshake import (
    check_accept_headers,
    check_subprotocol,
    negotiate_h2,
    new_protocol,
    websocket_scope,
)
from ..websocket.session import CONNECTING, WebSocketSession

if TYPE_CHECKING:
    from .connection import H2Connection

_NO_ERROR, _PROTOCOL_ERROR, _INTERNAL_ERROR, _CANCEL = 0, 1, 2, 8
# What h2 raises for a stream the peer reset meanwhile.
_ERRORS = (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError)
_SERVER_HEADER = (b"server", b"gunicorn")
# RFC 9113 section 8.2.2: never sent over HTTP/2.
_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                  b"transfer-encoding", b"upgrade"})


def open_websocket(conn: H2Connection, stream_id: int, protocol: bytes, path: bytes,
                   headers: list[tuple[bytes, bytes]], forwarded: bool, ended: bool) -> None:
    """A CONNECT request on ``stream_id`` (its headers checked by h2's rules already)."""
    server = conn.server
    if protocol and server.websocket_upgrade is None:
        # RFC 8441 section 3: we never sent SETTINGS_ENABLE_CONNECT_PROTOCOL, so a :protocol
        # makes the request malformed, a stream error (RFC 9113 section 8.1.1).
        conn.log.debug("HTTP/2 extended CONNECT from %s while WebSockets are off", conn.peer())
        conn.reset(stream_id, _PROTOCOL_ERROR)
        return
    if protocol.lower() != b"websocket":
        # An ordinary CONNECT asks for a tunnel, which an origin server does not make; any
        # other :protocol is not one this server speaks (501, as RFC 9220 section 3 asks of
        # HTTP/3 for the same extension; RFC 8441 says nothing).
        what = f":protocol {protocol.decode('latin-1')!r}" if protocol else "CONNECT"
        conn.refuse(stream_id, 501, f"{what} is not supported")
        return
    if ended:
        conn.refuse(stream_id, 400, "a WebSocket CONNECT must leave its stream open")
        return
    try:
        scope = conn.origin.build_scope(b"CONNECT", path, "2", headers, forwarded)
    except RequestError as exc:
        conn.refuse(stream_id, 400, exc.detail or exc.key)
        return
    ws = new_protocol(server.settings)
    try:
        extensions = negotiate_h2(ws, headers)
    except InvalidHandshake as exc:
        conn.log.warning("Invalid WebSocket handshake from ip=%s: %s", conn.peer(), exc)
        conn.refuse(stream_id, 400, "Invalid WebSocket handshake")
        return
    if not conn.streams and not conn.websockets:
        conn.deadline = 0.0  # no longer idle: the session keeps its own deadlines
    stream = H2WebSocket(conn, stream_id, extensions)
    session = stream.session = WebSocketSession(server, stream, scope, ws, stream)
    conn.websockets[stream_id] = stream
    if server.draining:
        session.refuse(503, "Server is shutting down\n")
    # Registered as HTTP/1.1 sessions are: the server's tick runs its deadlines (pings,
    # close and send timeouts) and a drain closes it with 1012.
    server.connection_made(session)
    if session.state == CONNECTING:
        session.start(conn.app, websocket_scope(scope, ws.offered), b"")


class H2WebSocket:
    """One RFC 8441 stream: the session's :class:`~asgi_worker.websocket.transport.Transport`
    and :class:`~asgi_worker.websocket.transport.Opening`."""

    __slots__ = (
        "accepted", "closing", "conn", "done", "end_pending", "extensions", "headers_sent",
        "local_ended", "partial", "pending", "read_paused", "remote_ended", "session",
        "stream_id", "unacked", "waiting_conn", "write_paused",
    )

    def __init__(self, conn: H2Connection, stream_id: int, extensions: str | None) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.extensions = extensions  # the negotiated sec-websocket-extensions, if any
        self.session: WebSocketSession | None = None
        self.pending: list[bytes] = []  # written beyond the peer's window
        self.headers_sent = False
        self.accepted = False
        self.partial = False  # a response's last part has not been sent yet
        self.closing = False
        self.end_pending = False  # END_STREAM goes after what is pending
        self.local_ended = False
        self.remote_ended = False
        self.done = False
        self.read_paused = False
        self.unacked = 0  # DATA received while the session paused reading: not acknowledged
        self.write_paused = False  # the session was told to pause writing
        self.waiting_conn: asyncio.Task[None] | None = None

    # -- the opening ---------------------------------------------------------------------------

    def accept(self, subprotocol: str | None, extra: list[tuple[bytes, bytes]]) -> int:
        """``:status 200`` with the negotiated extension and the app's subprotocol."""
        chosen = check_subprotocol(subprotocol)
        has_server = check_accept_headers(extra)
        headers = [(b":status", b"200")]
        if self.extensions:
            headers.append((b"sec-websocket-extensions", self.extensions.encode("latin-1")))
        if chosen:
            headers.append((b"sec-websocket-protocol", chosen))
        self._add(headers, extra, has_server)
        self.accepted = True
        self._send_headers(headers)
        return 200

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                more_body: bool) -> None:
        """An HTTP/2 response instead of the WebSocket (a denial, 403, 500, 503)."""
        if not self.headers_sent:
            block = [(b":status", str(status).encode())]
            has_server = any(name.lower() == b"server" for name, _ in headers)
            self._add(block, headers, has_server)
            self._send_headers(block)
        self.partial = more_body
        if body:
            self.write(body)

    def _add(self, block: list[tuple[bytes, bytes]], headers: list[tuple[bytes, bytes]],
             has_server: bool) -> None:
        has_date = False
        for name, value in headers:
            lowered = bytes(name).lower()
            if lowered in _CONNECTION_SPECIFIC:
                continue
            if lowered == b"date":
                has_date = True
            block.append((lowered, bytes(value)))
        if not has_date:
            block.append((b"date", self.conn.server.date_header[6:-2]))
        if not has_server:
            block.append(_SERVER_HEADER)

    def _send_headers(self, block: list[tuple[bytes, bytes]]) -> None:
        self.headers_sent = True
        if self.done:
            return
        try:
            self.conn.h2.send_headers(self.stream_id, block)
        except _ERRORS:
            self.abort()
            return
        self.conn.schedule_flush()

    # -- the transport -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        conn = self.conn
        if self.done or self.local_ended or not data:
            return
        if self.pending or conn.write_paused:
            self.pending.append(data)
        else:
            self._send(data)
            # Written now, not at the end of the loop iteration: an app that sends without
            # ever waiting must meet the socket's backpressure (pause_writing) at once, or
            # h2's buffer would grow as far as a large window lets it.
            conn._flush()
        if self.pending or conn.write_paused:
            self._pause_session()

    def _pause_session(self) -> None:
        """The session's next send() waits: for the peer's window, or the socket's buffer."""
        if self.conn.write_paused:
            self._wait_conn()
        if not self.write_paused and self.session is not None:
            self.write_paused = True
            self.session.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes]) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        """END_STREAM once what is pending is sent; the stream ends when the peer's has too
        (or at once after a refused handshake: RFC 9113 section 8.1 lets the server reset
        the rest of a request whose response is complete)."""
        if self.closing or self.done:
            return
        self.closing = True
        if not self.headers_sent or self.partial:
            # No answer at all, or a response cut short: the peer must not take it as whole.
            self._reset(_CANCEL if not self.headers_sent else _INTERNAL_ERROR)
            return
        if self.pending:
            self.end_pending = True
        else:
            self._end_stream()

    def abort(self) -> None:
        if not self.done:
            self._reset(_CANCEL)

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        self.read_paused = False
        if self.unacked:
            unacked, self.unacked = self.unacked, 0
            self.conn.acknowledge(self.stream_id, unacked)

    # -- events from the connection ------------------------------------------------------------

    def feed(self, data: bytes, flow_length: int) -> None:
        """DATA from the peer: WebSocket frames for the session."""
        session = self.session
        if self.done or session is None or self.remote_ended:
            self.conn.acknowledge(self.stream_id, flow_length)
            return
        if data:
            session.data_received(data)
        if self.read_paused:
            self.unacked += flow_length
        else:
            self.conn.acknowledge(self.stream_id, flow_length)

    def end_received(self) -> None:
        """The peer's END_STREAM: the end of its bytes, as a TCP FIN is."""
        if self.done or self.remote_ended:
            return
        self.remote_ended = True
        session = self.session
        if session is not None:
            session.eof_received()
        if self.local_ended:
            self._finish()
        elif not self.closing:
            self.close()  # as asyncio closes a transport whose protocol did not keep it open

    def on_reset(self) -> None:
        """RST_STREAM from the peer, or the connection is gone: the app sees 1006."""
        self.pending = []
        self.conn.websockets.pop(self.stream_id, None)
        self._lost()

    def window_opened(self) -> None:
        """The peer's window grew (or the socket drained): send what waits, then let the
        session write again."""
        if self.done:
            return
        if self.conn.write_paused:
            if self.pending or self.write_paused:
                self._wait_conn()
            return
        if self.pending:
            data = b"".join(self.pending)
            self.pending = []
            self._send(data)
            self.conn.schedule_flush()
            if self.pending:
                return
            if self.end_pending:
                self.end_pending = False
                self._end_stream()
        if self.write_paused and not self.done:
            self.write_paused = False
            if self.session is not None:
                self.session.resume_writing()

    # -- internals -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """Send as much as the windows allow, in frames of the peer's size; keep the rest."""
        h2 = self.conn.h2
        stream_id = self.stream_id
        view = memoryview(data)
        size = len(data)
        sent = 0
        try:
            window = h2.local_flow_control_window(stream_id)
            frame = h2.max_outbound_frame_size
            while sent < size and window > 0:
                step = min(window, frame, size - sent)
                h2.send_data(stream_id, view[sent:sent + step])
                sent += step
                window = h2.local_flow_control_window(stream_id)
        except _ERRORS:
            self.abort()
            return
        if sent < size:
            self.pending.append(data[sent:])

    def _wait_conn(self) -> None:
        """The socket's buffer is full: send the rest once it drains."""
        if self.waiting_conn is None:
            self.waiting_conn = self.conn.loop.create_task(self._conn_writable())

    async def _conn_writable(self) -> None:
        conn = self.conn
        while conn.write_paused and not conn.closed:
            await conn.wait_writable()
        self.waiting_conn = None
        self.window_opened()

    def _end_stream(self) -> None:
        self.local_ended = True
        try:
            self.conn.h2.end_stream(self.stream_id)
        except _ERRORS:
            self.abort()
            return
        self.conn.schedule_flush()
        if self.remote_ended:
            self._finish()
        elif not self.accepted:
            # A refused handshake's response is complete: the rest of the request is not
            # wanted (RFC 9113 section 8.1).
            self._reset(_NO_ERROR)
        # else: the peer ends its side after the close handshake; the session's close
        # timeout aborts the stream if it does not.

    def _reset(self, code: int) -> None:
        self.pending = []
        self.conn.reset(self.stream_id, code)
        self._finish()

    def _finish(self) -> None:
        """Both sides are done: forget the stream; the session learns it soon, as asyncio
        calls ``connection_lost`` soon after a close."""
        if self.done:
            return
        self.done = True
        self.conn.websockets.pop(self.stream_id, None)
        self.conn.loop.call_soon(self._lost)

    def _lost(self) -> None:
        self.done = True
        session = self.session
        if session is None:
            return
        self.session = None
        session.connection_lost(None)
        self.conn._maybe_idle()
