"""One HTTP/2 stream: the owner and the framing of one shared ASGI request cycle.

The cycle (http/cycle.py) is the same one HTTP/1.1 runs; a stream gives it what an HTTP/1.1
connection gives it (flow control, write waits, completion) and turns its response into
HEADERS and DATA through h2's state machine, which stays the authority on the protocol. Flow
control both ways: request DATA is acknowledged (WINDOW_UPDATE) as the app consumes it, and a
response body waits for the peer's window, so neither side makes the worker hold more than one
window plus one ASGI message per stream.

The ASGI extensions (http/extensions.py) are frames here: an early hint is an interim HEADERS
frame (``:status 103``), trailers are a last HEADERS frame with END_STREAM (sent when the
request said ``TE: trailers``, as the spec asks; else the stream ends with an empty DATA
frame), and a ``pathsend``/``zerocopysend`` file is read in bounded chunks into DATA frames
as the peer's window opens.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from h2.exceptions import FlowControlError

from ..disconnected import ClientDisconnected
from ..http.cycle import RequestCycle, describe_request
from ..http.files import FileRange
from ..http.h1_framing import (
    _CONNECTION,
    _CONTENT_LENGTH,
    _KNOWN_HEADERS,
    _TRANSFER_ENCODING,
    _encode_header,
    accepts_trailers,
)
from ..http.sendfile import COPY_CHUNK

if TYPE_CHECKING:
    from ..server import Server
    from ..settings import Settings
    from .connection import H2Connection

_NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE_HEADERS = [(b":status", b"100")]
_EARLY_HINTS_STATUS = (b":status", b"103")
_SERVER_HEADER = (b"server", b"gunicorn")
# RFC 9113 section 8.2.2: connection-specific fields are never sent over HTTP/2.
_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                  b"transfer-encoding", b"upgrade"})
# Never a trailer: fields that frame or route a message (RFC 9110 section 6.5.1), and the
# connection-specific ones (with TE, which only a request may carry).
_NOT_TRAILERS = frozenset({_CONTENT_LENGTH, _CONNECTION, _TRANSFER_ENCODING})
_NOT_TRAILER_NAMES = _CONNECTION_SPECIFIC | {b"te"}
# (name, value) pairs already validated -> (kind, (lower-case name, value)).
_KNOWN_H2: dict[tuple[bytes, bytes], tuple[int, tuple[bytes, bytes]]] = {}
_MAX_KNOWN = 1024
_STATUS_VALUES = {status: str(status).encode() for status in range(100, 600)}
# RFC 9113 section 6.5.2: no peer's SETTINGS_MAX_FRAME_SIZE is below this.
_MIN_MAX_FRAME_SIZE = 16384


class H2Stream:
    """A request stream: implements the cycle's ``Owner`` and ``Framing``."""

    __slots__ = (
        "blocked", "conn", "cycle", "deadline", "framing", "length_left", "log", "loop",
        "no_body", "pending", "pending_end", "read_paused", "request_done", "response", "server",
        "settings", "stream_id", "trailer_fields", "trailers_send", "unacked", "waiter",
    )

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.server: Server = conn.server
        self.settings: Settings = conn.settings
        self.loop: asyncio.AbstractEventLoop = conn.loop
        self.log: Any = conn.log
        self.framing = self
        self.cycle: RequestCycle | None = None
        self.response: list[tuple[bytes, bytes]] | None = None
        self.no_body = False
        self.length_left = -1
        self.pending = b""  # response body waiting for the peer's window
        self.pending_end = False
        self.blocked = False
        self.read_paused = False
        self.request_done = False
        self.unacked = 0  # request body bytes consumed by nobody yet: not acknowledged
        self.waiter: asyncio.Future[None] | None = None
        # A response with trailers (set by expect_trailers, read only for such a response).
        self.trailers_send = False
        self.trailer_fields: list[tuple[bytes, bytes]] = []
        self.deadline = 0.0  # while it waits on the client (connection.on_deadline)

    # -- the cycle's owner ---------------------------------------------------------------------

    @property
    def write_paused(self) -> bool:
        return self.blocked or self.conn.write_paused

    async def wait_writable(self) -> None:
        """Wait for the peer's window (and the socket's buffer); return at once if reset."""
        conn = self.conn
        while not conn.closed and self.cycle is not None and not self.cycle.disconnected:
            if self.blocked:
                waiter = self.waiter = self.loop.create_future()
                await waiter
            elif conn.write_paused:
                self.set_deadline(self.settings.send_timeout)
                await conn.wait_writable()
                self.deadline = 0.0
            else:
                return

    def pause_reading(self) -> None:
        self.read_paused = True

    def resume_reading(self) -> None:
        """The app took the body held so far: let the peer send more."""
        self.read_paused = False
        if self.unacked:
            unacked, self.unacked = self.unacked, 0
            self.conn.acknowledge(self.stream_id, unacked)

    def set_deadline(self, seconds: float) -> None:
        """This stream waits on the client: for the next of the request's body
        (``body_timeout``) or to take the response (``send_timeout``), as HTTP/1.1 waits."""
        self.deadline = deadline = self.loop.time() + seconds
        self.conn.arm_deadline(deadline)

    def clear_deadline(self) -> None:
        self.deadline = 0.0

    def on_response_complete(self, cycle: RequestCycle) -> None:
        """The app's response is all sent, or handed to the stream: what is left of it goes
        as the peer's window opens, bounded by the send deadline."""
        if not self.pending:
            self.conn.stream_complete(self)
        self.server.on_response_complete(cycle)

    # -- events from the connection ------------------------------------------------------------

    def feed(self, data: bytes, flow_length: int) -> None:
        """Request DATA: to the app; acknowledged now unless the app is behind."""
        cycle = self.cycle
        if cycle is None or cycle.complete or cycle.disconnected:
            self.conn.acknowledge(self.stream_id, flow_length)
            return
        cycle.feed_body(data)
        if self.read_paused:
            self.unacked += flow_length
        else:
            self.conn.acknowledge(self.stream_id, flow_length)

    def window_opened(self) -> None:
        """The peer's window grew: send what waits, wake the app's ``send()``."""
        if not self.blocked:
            return
        body, self.pending = self.pending, b""
        self._send_body(body, not self.pending_end)
        if self.pending:
            if len(self.pending) < len(body):
                self._block(True)  # progress: a new wait begins
            return
        self.blocked = False
        self.deadline = 0.0
        self._wake()
        cycle = self.cycle
        if cycle is not None and cycle.complete:
            self.conn.stream_complete(self)

    def on_reset(self) -> None:
        """RST_STREAM from the peer, or the connection went away."""
        self.blocked = False
        self.pending = b""
        cycle = self.cycle
        if cycle is not None:
            cycle.on_disconnect()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the cycle's framing -------------------------------------------------------------------

    def send_continue(self) -> None:
        self.conn.h2.send_headers(self.stream_id, _CONTINUE_HEADERS)
        self.conn.schedule_flush()

    def start(self, cycle: RequestCycle, status: int, headers: Any) -> None:
        """Validate the app's headers into an HTTP/2 header list; sent with the first body."""
        response = [(b":status", _STATUS_VALUES.get(status) or str(status).encode())]
        content_length = -1
        has_date = has_server = False
        known = _KNOWN_H2
        for header in headers:
            try:
                entry = known.get(header)
            except TypeError:  # a list, or a bytearray inside: not cached
                entry = None
            if entry is None:
                entry = _h2_header(header)
            kind, pair = entry
            if kind:
                if kind == _CONTENT_LENGTH:
                    content_length = int(pair[1])
                elif kind == _CONNECTION or pair[0] in _CONNECTION_SPECIFIC:
                    continue
            name = pair[0]
            if name == b"date":
                has_date = True
            elif name == b"server":
                has_server = True
            elif name in _CONNECTION_SPECIFIC:
                continue
            response.append(pair)
        if not has_date:
            response.append((b"date", self.server.date_header[6:-2]))
        if not has_server:
            response.append(_SERVER_HEADER)
        self.response = response
        self.length_left = content_length
        self.no_body = status in _NO_BODY_STATUS or cycle.scope["method"] == "HEAD"

    def data(self, cycle: RequestCycle, body: bytes, more_body: bool) -> None:
        """Send one body message within the peer's window; the rest waits for WINDOW_UPDATE."""
        conn = self.conn
        response = self.response
        if response is not None:
            if (not more_body and not self.no_body and self.length_left in (-1, len(body))
                    and conn.send_whole(self.stream_id, response, body)):
                self.response = None
                cycle.bytes_sent += len(body)
                cycle.finish()
                return
            self.response = None
            end = self.no_body or (not body and not more_body)
            conn.h2.send_headers(self.stream_id, response, end_stream=end)
            if end:
                conn.schedule_flush()
                if not more_body:
                    cycle.finish()
                return
        elif self.no_body:
            if not more_body:
                cycle.finish()
            return
        if self.length_left >= 0:
            if len(body) > self.length_left:
                self.log.error("ASGI app sent more body than its Content-Length: %s",
                               describe_request(cycle.scope))
                body = body[:self.length_left]
                more_body = False
            self.length_left -= len(body)
            if not more_body and self.length_left:
                self.log.error("ASGI app sent less body than its Content-Length: %s",
                               describe_request(cycle.scope))
                conn.reset(self.stream_id, 2)  # INTERNAL_ERROR: the client sees a truncation
                cycle.bytes_sent += len(body)
                cycle.finish()
                return
        cycle.bytes_sent += len(body)
        self._send_body(body, more_body)
        if len(body) > _MIN_MAX_FRAME_SIZE:
            # Written now, not at the end of the loop iteration: the transport must see a
            # large body before the app's next send(), or a peer with wide windows that does
            # not read would have every message of the response queued in h2.
            conn._flush()
        else:
            conn.schedule_flush()
        if self.pending:
            self.pending_end = not more_body
            self._block(True)
        if not more_body:
            cycle.finish()

    def abort(self, cycle: RequestCycle) -> None:
        """The response cannot complete: reset the stream (INTERNAL_ERROR)."""
        self.pending = b""
        self.blocked = False
        self.conn.reset(self.stream_id, 2)

    def head_pending(self) -> bool:
        return self.response is not None

    # -- ASGI extensions ---------------------------------------------------------------------

    def early_hint(self, links: list[bytes]) -> None:
        """``103 Early Hints`` (RFC 8297): an interim HEADERS frame, one ``link`` field per
        (checked) link; the final response's HEADERS follow (h2 allows any number of 1xx)."""
        self.conn.h2.send_headers(
            self.stream_id, [_EARLY_HINTS_STATUS, *[(b"link", link) for link in links]])
        self.conn.schedule_flush()

    def expect_trailers(self, cycle: RequestCycle) -> None:
        """The trailers are sent when the request said ``TE: trailers`` (the ASGI spec: only
        then); else they are checked and dropped, and an empty DATA frame ends the stream."""
        self.trailers_send = not self.no_body and accepts_trailers(cycle.scope["headers"])
        self.trailer_fields = []

    def last_data(self, cycle: RequestCycle, body: bytes) -> None:
        """The last body message of a response with trailers: the stream stays open for them
        (:meth:`trailers` ends it). A whole body in one message gets its Content-Length."""
        response = self.response
        if response is not None and self.length_left < 0 and not self.no_body:
            response.append((b"content-length", b"%d" % len(body)))
            self.length_left = len(body)
        self.data(cycle, body, True)

    def trailers(self, cycle: RequestCycle, headers: Any, more: bool) -> None:
        """Check the trailer fields like response headers; the last message sends them as a
        HEADERS frame with END_STREAM (or ends the stream without them) and completes the
        response."""
        fields = self.trailer_fields
        for header in headers:
            kind, pair = _h2_header(header)
            if kind in _NOT_TRAILERS or pair[0] in _NOT_TRAILER_NAMES:
                raise RuntimeError(f"invalid response trailer {pair[0]!r}")
            fields.append(pair)
        if more:
            return
        conn = self.conn
        # Without a body (HEAD, 204, 304) the HEADERS frame ended the stream already.
        if not self.no_body and not cycle.disconnected:
            if self.length_left > 0:
                self.log.error("ASGI app sent less body than its Content-Length: %s",
                               describe_request(cycle.scope))
                conn.reset(self.stream_id, 2)  # INTERNAL_ERROR: the client sees a truncation
            elif self.trailers_send and fields:
                conn.h2.send_headers(self.stream_id, fields, end_stream=True)
            else:
                conn.h2.end_stream(self.stream_id)
            conn.schedule_flush()
        cycle.finish()

    async def send_file(self, cycle: RequestCycle, file: FileRange, last: bool) -> None:
        """A file's range as (the rest of) the body: DATA frames read from the file as the
        peer's window allows (no ``sendfile``: every frame needs its header). Content-Length
        from the file when the app gave none; HEAD and 304 read nothing."""
        count = file.count
        trailers = bool(cycle.trailers)
        response = self.response
        if response is not None:  # the first body bytes: HEADERS first
            if last and self.length_left < 0 and cycle.status not in _NO_BODY_STATUS:
                response.append((b"content-length", b"%d" % count))
                self.length_left = count
            self.data(cycle, b"", True)
        if self.no_body:
            if last and not trailers:
                self.data(cycle, b"", False)
            return
        if 0 <= self.length_left < count:
            self.log.error("ASGI app sent more body than its Content-Length: %s",
                           describe_request(cycle.scope))
            count = self.length_left
            last = True
            trailers = False  # the response ends here; trailers that follow are ignored
        # END_STREAM on the file's last frame when nothing is to follow it.
        end = last and not trailers and count > 0 and self.length_left in (-1, count)
        sent = await self._send_range(cycle, file, count, end)
        file.done(sent)
        if self.length_left >= 0:
            self.length_left -= sent
        if sent < count:
            # The file is shorter than it was (truncated meanwhile): the body cannot complete.
            self.log.error("File ended %d bytes early in a response: %s", count - sent,
                           describe_request(cycle.scope))
            cycle._abort_response()
            return
        if not last or trailers:
            return  # more body, or the trailers end the stream
        if end:
            cycle.finish()
        else:
            self.data(cycle, b"", False)  # an empty file, or less than the Content-Length

    async def _send_range(self, cycle: RequestCycle, file: FileRange, count: int,
                          end: bool) -> int:
        """Send ``count`` bytes of ``file`` as DATA frames; the number sent (less if the file
        ended). Reads at most one window (and 128 KiB) at a time and only once the transport
        has room, so a client that does not read holds the worker to that, whatever the file's
        size; waits for the window under the send deadline, as :meth:`data` does."""
        conn = self.conn
        h2 = conn.h2
        stream_id = self.stream_id
        offset = file.offset
        left = count
        progress = True  # since the last wait for the window
        while left > 0:
            if conn.closed and not cycle.disconnected:
                cycle.on_disconnect()  # closing: its streams are reset once it is lost
            if cycle.disconnected:
                raise ClientDisconnected("the client closed the connection")
            window = h2.local_flow_control_window(stream_id)
            if window <= 0 or conn.write_paused:
                if window <= 0:
                    self.pending_end = False
                    self._block(progress)
                    progress = False
                await cycle._wait_writable()
                continue
            data = file.read(offset, min(left, window, COPY_CHUNK))
            size = len(data)
            if not size:
                break
            view = memoryview(data)
            frame = h2.max_outbound_frame_size
            last = end and size == left
            done = 0
            while done < size:
                step = min(frame, size - done)
                h2.send_data(stream_id, view[done:done + step],
                             end_stream=last and done + step == size)
                done += step
            offset += size
            left -= size
            cycle.bytes_sent += size
            progress = True
            conn.schedule_flush()
            if left:
                await asyncio.sleep(0)  # the flush writes it; other streams run meanwhile
        return count - left

    def _block(self, fresh: bool) -> None:
        """Wait for the peer's window. Each wait that follows progress gets the whole send
        deadline (as an HTTP/1.1 connection's wait for its socket does); one woken without
        progress (a WINDOW_UPDATE of the connection only) keeps what was left of it. The
        connection resets the stream when its deadline passes (``H2Connection.on_deadline``)."""
        self.blocked = True
        if fresh or not self.deadline:
            self.set_deadline(self.settings.send_timeout)

    def _send_body(self, body: bytes, more_body: bool) -> None:
        """Send as much of ``body`` as the windows allow; keep the rest in :attr:`pending`."""
        h2 = self.conn.h2
        stream_id = self.stream_id
        if not body:
            if not more_body:
                h2.end_stream(stream_id)
            return
        size = len(body)
        if size <= _MIN_MAX_FRAME_SIZE:
            # h2 checks the windows before it changes any state: a body too large for them
            # raises and takes the windowed path below.
            try:
                h2.send_data(stream_id, body, end_stream=not more_body)
                return
            except FlowControlError:
                pass
        window = h2.local_flow_control_window(stream_id)
        view = memoryview(body)
        sent = 0
        frame = h2.max_outbound_frame_size
        while sent < size and window > 0:
            step = min(window, frame, size - sent)
            last = sent + step == size
            h2.send_data(stream_id, view[sent:sent + step], end_stream=last and not more_body)
            sent += step
            window = h2.local_flow_control_window(stream_id)
        if sent < size:
            self.pending = body[sent:]

    def describe(self) -> str:
        cycle = self.cycle
        return describe_request(cycle.scope) if cycle is not None else f"stream {self.stream_id}"


def _h2_header(header: Any) -> tuple[int, tuple[bytes, bytes]]:
    """Validate one response header as for HTTP/1.1 and lower-case its name for HTTP/2."""
    try:
        known = _KNOWN_HEADERS.get(header)
    except TypeError:  # a list, or a bytearray inside
        known = None
    kind = (known or _encode_header(header))[0]
    name, value = header
    entry = (kind, (bytes(name).lower(), bytes(value)))
    if type(header) is tuple and type(name) is bytes and type(value) is bytes:
        if len(_KNOWN_H2) >= _MAX_KNOWN:
            _KNOWN_H2.clear()
        _KNOWN_H2[header] = entry
    return entry
