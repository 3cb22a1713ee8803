"""One WebSocket session: ASGI websocket messages over websockets' sans-I/O protocol.

The session takes over the transport from the HTTP connection after the upgrade request (or
an HTTP/2 stream after an RFC 8441 CONNECT: transport.py is all it asks of either). It
feeds received bytes to :class:`~websockets.server.ServerProtocol`, turns data frames into
``websocket.receive`` messages, writes whatever the protocol has to send in one write per
event, and carries the app's ``send()`` calls back the other way. Flow control is the
transport's: reading pauses while the app has not consumed queued messages or while the
write buffer is full, and ``send()`` waits for the write buffer to drain. Keepalive pings, the
pong timeout, the close handshake timeout and the slow-reader timeout are deadlines that the
server's tick enforces, so the session arms no timers of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final, cast

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN as PROTOCOL_OPEN

from ..disconnected import WebSocketDisconnected
from ..types import ASGIApp, Message
from . import failure
from .frames import (
    FrameTracker,
    MessageAssembler,
    fast_path_limit,
    frame_header,
    receive_simple_frames,
)
from .handshake import WebSocketProtocol, check_headers

if TYPE_CHECKING:
    from ..server import Server
    from .transport import Opening, Transport

# Received messages the app has not taken yet before reading pauses (websockets' max_queue),
# and the bytes they may hold: together they bound memory per connection at one read past
# whichever limit is hit first.
MAX_QUEUE = 16
MAX_QUEUE_BYTES = 1024 * 1024
# Bytes a client may send before the app accepted (it should send none) before reading pauses.
MAX_PENDING = 64 * 1024
# How long the peer gets to answer our close frame (and the socket to flush) before an abort.
CLOSE_TIMEOUT = 5.0

# The ASGI side of the session.
CONNECTING = 0  # the app has not answered the handshake yet
DENYING = 1  # the app is sending an HTTP response instead of accepting
OPEN = 2  # accepted; messages flow both ways
CLOSED = 3  # the app may no longer send: closed by either side, or the socket is gone
# The client broke the protocol; the close frame waits for the app (failure.py).
FAILING: Final = failure.FAILING

# Why reading is paused; reading resumes when no reason is left.
_PAUSE_QUEUE = 1
_PAUSE_WRITE = 2
_PAUSE_PENDING = 4

_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_PING = Opcode.PING
_PONG = Opcode.PONG
_CLOSE = Opcode.CLOSE
_CONNECT: Message = {"type": "websocket.connect"}
# Close codes on a graceful shutdown (RFC 6455 7.4.1 and the IANA registry).
_RESTART = (1012, "server restarting")
_GOING_AWAY = (1001, "server shutting down")


class WebSocketSession(asyncio.Protocol):
    """The protocol of an upgraded connection, and the ASGI ``receive``/``send`` of its app.

    It also stands for the session's single request in the server's bookkeeping: ``scope``
    (the HTTP scope of the upgrade request), ``status``, ``response_headers``, ``bytes_sent``,
    ``start_time`` and ``duration`` are what the access log and the request hooks read.
    """

    def __init__(self, server: Server, transport: Transport, scope: dict[str, Any],
                 protocol: WebSocketProtocol, opening: Opening) -> None:
        self.server = server
        self.loop = server.loop
        self.log = server.log
        self.transport = transport
        self.scope = scope
        self.ws_scope: dict[str, Any] = {}
        self.protocol = protocol
        self.opening = opening
        settings = server.settings
        self.ping_interval = settings.ws_ping_interval
        self.ping_timeout = settings.ws_ping_timeout
        self.send_timeout = settings.send_timeout
        self.state = CONNECTING
        self.queue: deque[tuple[Message, int]] = deque()
        self.queued_bytes = 0
        self.waiter: asyncio.Future[None] | None = None
        self.connect_sent = False
        self.disconnect: Message | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.assembler = MessageAssembler()
        self.fast_limit: int | None = None  # set on accept: see _receive
        self.tracker: FrameTracker | None = None  # set on accept, without an extension
        self.paused = 0
        self.write_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.closing = False
        self.going_away = False
        self.failure: tuple[int, str] | None = None
        self.ping_payload = b""
        self.ping_at = 0.0
        self.pong_by = 0.0
        self.write_by = 0.0
        self.close_by = 0.0
        self.fail_by = 0.0
        self.deadline = 0.0
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.bytes_sent = 0
        self.start_time = time.time() if server.access_log_enabled else 0.0
        self.duration = 0.0
        self.completed = False
        self.task: asyncio.Task[None] | None = None

    # -- start -----------------------------------------------------------------------------------

    def refuse(self, status: int, text: str) -> None:
        """Answer the handshake with a short plain-text HTTP error instead of running the app."""
        self.state = CLOSED
        self.status = status
        self.opening.respond(status, [(b"content-type", b"text/plain; charset=utf-8")],
                             text.encode(), False)
        self._end_transport(b"")

    def start(self, app: ASGIApp, ws_scope: dict[str, Any], leftover: bytes) -> None:
        """Run the app; bytes that came with the request wait until it accepts."""
        self.ws_scope = ws_scope
        if leftover:
            self.data_received(leftover)
        self.server.on_request_start(self)
        task = self.task = self.loop.create_task(self.run(app))
        self.server.tasks.add(task)

    async def run(self, app: ASGIApp) -> None:
        """Call the app; whatever it leaves unfinished is finished here."""
        try:
            await app(self.ws_scope, self.receive, self.send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            if self.closed or isinstance(exc, asyncio.CancelledError):
                self.log.debug("ASGI WebSocket app ended after the connection closed: %r", exc)
            else:
                self.log.error("Exception in ASGI WebSocket application (%s)",
                               self.scope["path"], exc_info=exc)
            self._after_app(failed=True)
        else:
            self._after_app(failed=False)
        finally:
            if self.task is not None:
                self.server.task_done(self.task)
                self.task = None

    def _after_app(self, failed: bool) -> None:
        state = self.state
        if state is CLOSED or self.closed:
            return
        if state == FAILING:
            failure.release(self)
            return
        if state == CONNECTING:
            if not failed:
                self.log.error("ASGI app returned without accepting or closing the WebSocket "
                               "(%s)", self.scope["path"])
            self.refuse(500, "Internal Server Error\n")
        elif state == DENYING:
            # A truncated denial body: closing tells the client it is incomplete.
            self.state = CLOSED
            self._end_transport(b"")
        else:
            self._close(1011 if failed else 1000, "")

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state == OPEN or (self.state == CLOSED and not self.closing):
            self._receive(data)
        elif self.state == FAILING:
            return  # the connection failed: nothing the client sends now is read (7.1.7)
        elif not self.closing:
            # Before the app accepts, frames have nowhere to go; a client should send none.
            self.pending.append(data)
            self.pending_bytes += len(data)
            if self.pending_bytes > MAX_PENDING:
                self._pause(_PAUSE_PENDING)

    def eof_received(self) -> bool | None:
        if self.state == FAILING:
            failure.release(self)
        elif self.state == OPEN or self.state == CLOSED:
            self.protocol.receive_eof()
            self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.closing = True
        self.deadline = self.ping_at = self.pong_by = self.write_by = self.close_by = 0.0
        self.fail_by = 0.0
        close = self.protocol.close_rcvd
        if close is not None:
            self._end_for_app(int(close.code), close.reason)
        elif self.failure is not None:
            self._end_for_app(*self.failure)
        else:
            self._end_for_app(1006, "")
        self.state = CLOSED
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.server.connection_lost(self)
        self._complete()

    def pause_writing(self) -> None:
        self.write_paused = True
        # The buffer must drain within send_timeout, whether or not the app is sending:
        # a client that stops reading would otherwise hold the buffer (and pongs) forever.
        self.write_by = self.loop.time() + self.send_timeout
        self._arm()
        self._pause(_PAUSE_WRITE)

    def resume_writing(self) -> None:
        self.write_paused = False
        self.write_by = 0.0
        self._arm()
        self._resume(_PAUSE_WRITE)
        waiter = self.write_waiter
        if waiter is not None:
            self.write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- frames in ---------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        protocol = self.protocol
        limit = self.fast_limit
        if limit is not None and self.state == OPEN and protocol.state is PROTOCOL_OPEN:
            # Whole, small data frames become messages here; websockets' parser (a generator
            # per frame) takes over from the first frame of any other kind.
            data = receive_simple_frames(protocol, data, limit, self._enqueue)
            if not data:
                return
        protocol.receive_data(data)
        pings = 0
        for event in protocol.events_received():
            frame = cast(Frame, event)  # the parser is past the handshake: frames only
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                if self.state == OPEN:
                    try:
                        received = self.assembler.feed(frame)
                    except UnicodeDecodeError as exc:
                        failure.answer_pings_only(self, pings)
                        failure.fail_utf8(self, exc)
                        break  # nothing after the invalid frame counts
                    if received is not None:
                        self._enqueue(*received)
            elif opcode is _PING:
                pings += 1  # websockets queued the pong
            elif opcode is _PONG:
                if self.pong_by and frame.data == self.ping_payload:
                    self.pong_by = 0.0
                    self._arm()
            elif opcode is _CLOSE:
                self._on_close_frame()
        if self.state == OPEN:
            if protocol.state is not PROTOCOL_OPEN:
                # websockets failed the connection (1002 protocol error, 1009 too big, ...)
                # after handing over the frames before the error.
                sent = protocol.close_sent
                if sent is not None:
                    failure.failed(self, int(sent.code), sent.reason, hold=True)
                else:
                    self.state = CLOSED
            elif self.tracker is not None:
                # A text frame still incomplete at the end of this read: its payload so far
                # must be UTF-8 already (RFC 6455 8.1, fail fast).
                try:
                    self.tracker.feed(data, self.assembler.decoder)
                except UnicodeDecodeError as exc:
                    failure.fail_utf8(self, exc)
        self._flush()

    def _on_close_frame(self) -> None:
        # websockets queued the echo and EOF; the app learns the peer's code and reason.
        close = self.protocol.close_rcvd
        assert close is not None
        self._end_for_app(int(close.code), close.reason)
        self.state = CLOSED

    def _enqueue(self, message: Message, size: int) -> None:
        self.queue.append((message, size))
        self.queued_bytes += size
        if len(self.queue) >= MAX_QUEUE or self.queued_bytes >= MAX_QUEUE_BYTES:
            self._pause(_PAUSE_QUEUE)
        self._wake()

    def _end_for_app(self, code: int, reason: str) -> None:
        """The app's next ``receive()`` after the queued messages is ``websocket.disconnect``."""
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self.queue.append((self.disconnect, 0))
            self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- bytes out -------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what the protocol has to send in one write; honour its end-of-stream signal."""
        if self.state == FAILING:
            return  # the close frame waits for the app's replies: see FAILING
        writes = self.protocol.data_to_send()
        if not writes or self.closing:
            return
        if writes[-1]:
            self.transport.write(writes[0] if len(writes) == 1 else b"".join(writes))
            return
        # websockets signals "close the TCP connection" with an empty chunk, always last.
        self._end_transport(b"".join(writes))

    def _end_transport(self, data: bytes) -> None:
        """Write ``data`` and close; abort if the peer does not let the buffer drain."""
        if self.closing:
            return
        self.closing = True
        if data:
            self.transport.write(data)
        self.transport.close()
        self.ping_at = self.pong_by = 0.0
        self.close_by = self.loop.time() + CLOSE_TIMEOUT
        self._arm()

    def _close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the peer has CLOSE_TIMEOUT to answer."""
        self.state = CLOSED
        # Messages the app will never read must not keep the peer's close frame unread.
        self._resume(_PAUSE_QUEUE)
        if self.protocol.state is PROTOCOL_OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
            self.ping_at = self.pong_by = 0.0
            if not self.close_by:
                self.close_by = self.loop.time() + CLOSE_TIMEOUT
            self._arm()

    # -- flow control ----------------------------------------------------------------------------

    def _pause(self, reason: int) -> None:
        if not self.paused and not self.closing:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and not self.closing:
            self.transport.resume_reading()

    async def _writable(self) -> None:
        while self.write_paused and not self.closed:
            if self.write_waiter is None:
                self.write_waiter = self.loop.create_future()
            await asyncio.shield(self.write_waiter)

    # -- ASGI receive ----------------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return dict(_CONNECT)
        queue = self.queue
        while not queue:
            if self.disconnect is not None:
                if self.state == FAILING:
                    failure.release(self)
                return self.disconnect
            waiter = self.waiter = self.loop.create_future()
            await waiter
        message, size = queue.popleft()
        self.queued_bytes -= size
        if (self.paused & _PAUSE_QUEUE and len(queue) <= MAX_QUEUE // 4
                and self.queued_bytes < MAX_QUEUE_BYTES // 4):
            self._resume(_PAUSE_QUEUE)
        return message

    # -- ASGI send -------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.write_paused:
            await self._writable()
        kind = message["type"]
        state = self.state
        if kind == "websocket.send":
            if state != OPEN and state != FAILING:
                self._not_open(kind)
            text = message.get("text")
            if text is not None:
                data = text.encode()
                opcode = 0x1
            else:
                data = message.get("bytes")
                if data is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                opcode = 0x2
            self.bytes_sent += len(data)
            protocol = self.protocol
            if not protocol.extensions and (protocol.state is PROTOCOL_OPEN or state == FAILING):
                # Without an extension a server frame is a header and the payload, unmasked:
                # built here it saves websockets' Frame, serializer and write list per message.
                header = frame_header(opcode, len(data))
                if len(data) > 4096:
                    # Both buffers in one vectored write, without copying a large payload.
                    self.transport.writelines((header, data))
                else:
                    self.transport.write(header + data)
            elif state == FAILING:
                failure.write_reply(self, opcode, data)
            else:
                if opcode == 0x1:
                    protocol.send_text(data)
                else:
                    protocol.send_binary(data)
                self._flush()
        elif kind == "websocket.accept":
            if state != CONNECTING:
                self._not_open(kind)
            self._accept(message)
        elif kind == "websocket.close":
            if state == CONNECTING:
                # ASGI: closing before accepting answers the handshake with 403.
                self.refuse(403, "Forbidden\n")
            elif state == OPEN:
                code = message.get("code")
                self._close(1000 if code is None else code, message.get("reason") or "")
            elif state == FAILING:
                failure.release(self)  # the failure's close code stands
            else:
                self._not_open(kind)
        elif kind == "websocket.http.response.start":
            if state != CONNECTING:
                self._not_open(kind)
            self._start_denial(message)
        elif kind == "websocket.http.response.body":
            if state != DENYING:
                self._not_open(kind)
            self._denial_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"unexpected ASGI WebSocket message {kind!r}")

    def _not_open(self, kind: str) -> None:
        if self.state == CLOSED or self.closed:
            raise WebSocketDisconnected(f"{kind}: the WebSocket is closed")
        expected = {CONNECTING: "'websocket.accept', 'websocket.close' or "
                                "'websocket.http.response.start'",
                    DENYING: "'websocket.http.response.body'",
                    OPEN: "'websocket.send' or 'websocket.close'",
                    FAILING: "'websocket.send' or 'websocket.close'"}[self.state]
        raise RuntimeError(f"unexpected ASGI message {kind!r}; expected {expected}")

    def _accept(self, message: Message) -> None:
        extra = check_headers(message.get("headers") or ())
        self.status = self.opening.accept(message.get("subprotocol"), extra)
        self.state = OPEN
        self.fast_limit = fast_path_limit(self.protocol)
        if not self.protocol.extensions:
            self.tracker = FrameTracker()
        self.response_headers = extra
        if self.ping_interval:
            self.ping_at = self.loop.time() + self.ping_interval
            self._arm()
        if self.going_away:
            self.shutdown(0.0)
            return
        pending = self.pending
        if pending:
            self.pending = []
            self.pending_bytes = 0
            self._resume(_PAUSE_PENDING)
            self._receive(b"".join(pending))

    def _start_denial(self, message: Message) -> None:
        status = message["status"]
        if type(status) is not int or not 100 <= status <= 999:
            raise RuntimeError(f"invalid response status {status!r}")
        self.status = status
        self.response_headers = check_headers(message.get("headers") or ())
        self.state = DENYING

    def _denial_body(self, body: bytes, more_body: bool) -> None:
        if self.closing:
            raise WebSocketDisconnected("the client closed the connection")
        self.bytes_sent += len(body)
        # The head goes with the first body message, when the framing can be decided.
        self.opening.respond(self.status, self.response_headers, body, more_body)
        if not more_body:
            self.state = CLOSED
            self._end_transport(b"")

    # -- what the server asks of every connection ----------------------------------------------

    def on_deadline(self) -> None:
        """The tick found :attr:`deadline` passed: close, fail or ping, whichever is due."""
        now = self.loop.time()
        if self.closed:
            self.deadline = 0.0
            return
        if self.fail_by and now >= self.fail_by:
            failure.release(self)  # the app did not come back for the disconnect in time
            return
        if self.close_by and now >= self.close_by:
            self.close_by = 0.0
            self.transport.abort()
            return
        if self.write_by and now >= self.write_by:
            self.log.info("Closing WebSocket from %s: client too slow to read", self._peer())
            self.write_by = 0.0
            self.transport.abort()
            return
        if self.pong_by and now >= self.pong_by:
            if self.paused & _PAUSE_QUEUE:
                # The pong may be queued behind messages the app has not read: not the
                # peer's fault, so wait for the app.
                self.pong_by = now + self.ping_timeout
            else:
                self.log.info("Closing WebSocket from %s: no pong within %gs", self._peer(),
                              self.ping_timeout)
                self.pong_by = 0.0
                failure.fail(self, 1011, "keepalive ping timeout")
                return
        if self.ping_at and now >= self.ping_at:
            self.ping_at = now + self.ping_interval
            if not self.pong_by and self.protocol.state is PROTOCOL_OPEN:
                self.ping_payload = os.urandom(4)
                self.protocol.send_ping(self.ping_payload)
                self._flush()
                if self.ping_timeout:
                    self.pong_by = now + self.ping_timeout
        self._arm()

    def _arm(self) -> None:
        deadline = 0.0
        for when in (self.ping_at, self.pong_by, self.write_by, self.close_by, self.fail_by):
            if when and (not deadline or when < deadline):
                deadline = when
        self.deadline = deadline

    def shutdown(self, grace: float) -> None:
        """Graceful shutdown: close with 1012 (service restart: another worker takes the
        reconnect) or, when nothing takes over, 1001 (going away); the app receives
        ``websocket.disconnect`` with the same code. See docs/websocket.md."""
        self.going_away = True
        if self.state == FAILING:
            failure.release(self)
        elif self.state == OPEN and not self.closed:
            code, reason = _GOING_AWAY if self.server.final_shutdown else _RESTART
            self._end_for_app(code, reason)
            self._close(code, reason)

    def force_close(self) -> None:
        if not self.closed:
            self.transport.abort()

    def describe(self) -> list[str]:
        return [f"WebSocket {self.scope['path']} from {self._peer()}"]

    # -- internals -------------------------------------------------------------------------------

    def _complete(self) -> None:
        if self.completed:
            return
        self.completed = True
        if self.start_time:
            self.duration = time.time() - self.start_time
        self.server.on_response_complete(self)

    def _peer(self) -> str:
        client = self.scope.get("client")
        return str(client[0]) if client else "unix"

