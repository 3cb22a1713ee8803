"""One HTTP/2 connection: bytes into h2's sans-I/O ``H2Connection``, events into streams.

An HTTP/1.1 connection (http/connection.py) takes every new connection; it hands the transport
here when TLS ALPN picked ``h2`` or a trusted peer opened with the cleartext preface. What the
HTTP/1.1 connection learnt (peer, PROXY header, trust, scheme) stays with it and builds the
scopes, so a stream's scope follows the same rules as an HTTP/1.1 request's. h2 decides
everything about the protocol (HPACK, flow-control accounting, stream states, frame errors);
this module acts on its events, writes what it queued once per event-loop iteration, and keeps
Gunicorn's operational model: GOAWAY on drain, ``keepalive`` idle close, per-stream deadlines.
"""

from __future__ import annotations

import asyncio
import time
import types
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from ..http.cycle import RequestCycle
from ..http.errors import RequestError
from .fastpath import (
    at_frame_boundary,
    available,
    next_frame,
    opens_stream,
    receive_request,
)
from .fastpath import send_response as fast_response
from .hpack_cache import CachingDecoder, CachingEncoder
from .request import REQUEST_FLAGS, TRAILER_FLAGS, malformed, read_head
from .stream import H2Stream
from .websocket import H2WebSocket, open_websocket

if TYPE_CHECKING:
    from ..http.connection import HTTPConnection

_NO_ERROR, _PROTOCOL_ERROR, _INTERNAL_ERROR, _REFUSED_STREAM, _CANCEL = 0, 1, 2, 7, 8
# Bytes of a request body read and dropped after its response is complete, before RST_STREAM.
_DISCARD_ALLOWANCE = 65_535
_ENHANCE_YOUR_CALM = 11
# Frames that cost the worker work but carry no request (PING, SETTINGS, PRIORITY, empty DATA,
# unknown frames, RST_STREAM of a stream being served: CVE-2023-44487 and the floods of
# CVE-2019-9512/9515/9518): more than this many within one second and the connection is cut
# with ENHANCE_YOUR_CALM. Browsers and proxies send a handful.
FLOOD_LIMIT = 1000
# Client resets of streams still being served within one second, as a multiple of
# http2_max_concurrent_streams (a legitimate client cancels a page's requests at most).
RESET_FACTOR = 2
_ERRORS = (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError, KeyError)


# h2's ``logger``: h2 calls it about ten times per request; its default, a Python no-op
# method, costs a Python call each time, ``"".format`` (any arguments, returns ``""``) a C call.
_SILENT: Any = types.SimpleNamespace(debug="".format, trace="".format)


class H2Connection(asyncio.Protocol):
    """An HTTP/2 server connection; one :class:`H2Stream` and one ``RequestCycle`` per request."""

    __slots__ = (
        "app", "closed", "deadline", "discarding", "fast", "flood", "flood_start",
        "flush_scheduled",
        "forwarded_names", "goaway_sent", "h2", "log", "loop", "origin", "reset_limit",
        "resets", "server", "settings", "streams", "transport", "valid_headers", "websockets",
        "write_paused",
        "write_waiter",
    )

    def __init__(self, origin: HTTPConnection) -> None:
        self.origin = origin
        self.server = origin.server
        self.settings = origin.settings
        self.app = origin.app
        self.loop = origin.loop
        self.log = origin.log
        self.transport = origin.transport
        self.forwarded_names = (self.server.forwarded.names if origin.forwarded_trusted
                                else frozenset())
        self.streams: dict[int, H2Stream] = {}
        self.websockets: dict[int, H2WebSocket] = {}  # RFC 8441 streams (websocket.py)
        self.valid_headers: set[tuple[Any, ...]] = set()
        self.discarding: dict[int, int] = {}  # answered streams still sending: bytes allowed
        self.closed = False
        self.deadline = 0.0
        self.flush_scheduled = False
        self.goaway_sent = False
        self.write_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        self.flood = 0
        self.resets = 0
        self.flood_start = self.loop.time()
        self.reset_limit = RESET_FACTOR * self.settings.http2_max_concurrent_streams
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False,
                                           validate_inbound_headers=False,
                                           normalize_inbound_headers=False,
                                           logger=_SILENT)
        conn = self.h2 = h2.connection.H2Connection(config=config)
        settings = self.settings
        codes = h2.settings.SettingCodes
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            codes.MAX_CONCURRENT_STREAMS: settings.http2_max_concurrent_streams,
            codes.INITIAL_WINDOW_SIZE: settings.http2_initial_window_size,
            codes.MAX_FRAME_SIZE: settings.http2_max_frame_size,
            codes.MAX_HEADER_LIST_SIZE: settings.http2_max_header_list_size,
            codes.ENABLE_CONNECT_PROTOCOL: int(self.server.websocket_upgrade is not None),
        })
        # hpack's coders, remembering blocks that repeat (hpack_cache.py). The decoder's bound
        # applies from the first HEADERS, not only once SETTINGS is acked.
        conn.encoder = CachingEncoder()
        conn.decoder = CachingDecoder(settings.http2_max_header_list_size)
        # fastpath.py, where h2 is a version it was checked against and has the internals it
        # calls; ASGI_WORKER_HTTP2_FASTPATH=off keeps every frame on h2's public API.
        self.fast = settings.http2_fastpath and available(conn)

    def start(self, data: bytes, upgrade: tuple[bytes, RequestCycle] | None = None) -> None:
        """Take over the transport from the HTTP/1.1 connection; ``data`` was read already.

        ``upgrade``: the HTTP2-Settings and the cycle of an ``Upgrade: h2c`` request, which
        becomes stream 1 (RFC 7540 section 3.2).
        """
        transport = self.transport
        assert transport is not None
        transport.set_protocol(self)
        conn = self.h2
        if upgrade is None:
            conn.initiate_connection()
        else:
            conn.initiate_upgrade_connection(upgrade[0])
        extra = self.settings.http2_initial_window_size - 65535
        if extra > 0:  # the connection window starts at 65535 whatever SETTINGS say
            conn.increment_flow_control_window(extra)
        self._flush()  # our SETTINGS go first, before a GOAWAY from a draining server
        self._idle()
        self.server.connection_made(self)
        if upgrade is not None:
            self._run_upgraded(upgrade[1])
        if data:
            self.data_received(data)

    # -- asyncio.Protocol --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        conn = self.h2
        if self.fast and at_frame_boundary(conn):
            self._receive_fast(data)
        else:
            self._receive(data)
        if not self.closed:
            self._flush()

    def _receive_fast(self, data: bytes) -> None:
        """Whole HEADERS frames that open a stream go through fastpath.py, runs of other
        frames (and a frame not complete yet) to h2's ``receive_data``, in the order they
        came. h2 sees each run before the next fast frame is judged, so that frame is judged
        on h2's state after everything before it."""
        conn = self.h2
        pos = slow = 0  # frames from ``slow`` to ``pos`` are for h2
        while True:
            length, kind, flags, stream_id = next_frame(data, pos)
            if length < 0:
                break
            start = pos + 9
            if opens_stream(kind, flags, stream_id):
                if slow < pos:
                    if not self._receive(data[slow:pos]) or self.closed:
                        return
                    slow = pos
                    if not at_frame_boundary(conn):  # h2 waits for CONTINUATION
                        break
                if stream_id > conn.highest_inbound_stream_id and (
                        length <= conn.max_inbound_frame_size):
                    end_stream = bool(flags & 1)
                    try:
                        headers = receive_request(conn, stream_id, data[start:start + length],
                                                  end_stream)
                    except h2.exceptions.ProtocolError as exc:
                        self._protocol_error(exc)
                        return
                    self._on_request(stream_id, headers, end_stream)
                    if self.closed:
                        return
                    slow = start + length
            pos = start + length
        if slow < len(data):
            self._receive(data[slow:] if slow else data)

    def _protocol_error(self, exc: Exception) -> None:
        # h2 queued the GOAWAY with the error code RFC 9113 gives this error.
        self.log.debug("HTTP/2 protocol error from %s: %s", self.origin.peer(), exc)
        self._flush()
        self._close()

    def _receive(self, data: bytes) -> bool:
        """Feed h2 and act on its events; False once the connection is being closed."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return False
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                self._on_request_event(event)  # type: ignore[arg-type]
            elif kind is h2.events.DataReceived:
                stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.feed(event.data, event.flow_controlled_length)  # type: ignore[attr-defined]
                elif event.stream_id in self.websockets:  # type: ignore[attr-defined]
                    self.websockets[event.stream_id].feed(  # type: ignore[attr-defined]
                        event.data, event.flow_controlled_length)  # type: ignore[attr-defined]
                else:
                    self._discard(event.stream_id,  # type: ignore[attr-defined]
                                  event.flow_controlled_length)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamEnded:
                stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.request_done = True
                    if stream.cycle is not None:
                        stream.cycle.end_body()
                elif event.stream_id in self.websockets:  # type: ignore[attr-defined]
                    self.websockets[event.stream_id].end_received()  # type: ignore[attr-defined]
                elif self.discarding:
                    self.discarding.pop(event.stream_id, None)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamReset:
                stream = self.streams.pop(event.stream_id, None)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.on_reset()
                    self.resets += 1
                    if self.resets > self.reset_limit and self._flooded():
                        return False
                    self._maybe_idle()
                elif self.discarding and event.stream_id in self.discarding:  # type: ignore[attr-defined]
                    del self.discarding[event.stream_id]  # type: ignore[attr-defined]
                elif event.stream_id in self.websockets:  # type: ignore[attr-defined]
                    self.websockets[event.stream_id].on_reset()  # type: ignore[attr-defined]
                    self.resets += 1
                    if self.resets > self.reset_limit and self._flooded():
                        return False
            elif kind is h2.events.TrailersReceived:
                stream_id = event.stream_id  # type: ignore[attr-defined]
                reason = malformed(self.valid_headers, event.headers,  # type: ignore[attr-defined]
                                   TRAILER_FLAGS, None)
                if reason:
                    self._malformed(stream_id, reason)
            elif kind is h2.events.WindowUpdated:
                self._window_opened(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.RemoteSettingsChanged:
                if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:  # type: ignore[attr-defined]
                    self._window_opened(0)
            elif kind is h2.events.ConnectionTerminated:
                self._flush()
                self._close()
                return False
            if kind in _CONTROL or (kind is h2.events.DataReceived
                                    and not event.data):  # type: ignore[attr-defined]
                self.flood += 1
                if self.flood > FLOOD_LIMIT and self._flooded():
                    return False
        return True

    def _flooded(self) -> bool:
        """Over a flood limit: within the second since counting began, cut the connection."""
        now = self.loop.time()
        if now - self.flood_start >= 1.0:
            self.flood_start = now
            self.flood = self.resets = 0
            return False
        self.log.warning("Closing HTTP/2 connection from %s: too many control frames or "
                         "stream resets (ENHANCE_YOUR_CALM)", self.origin.peer())
        self._goaway(_ENHANCE_YOUR_CALM)
        self._close()
        if self.transport is not None:  # a flooding client may never read the GOAWAY
            self.loop.call_later(1.0, self.transport.abort)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connection_lost(self)
        self._disconnect_streams()
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        # A client that does not read what it asks for (PING and SETTINGS acks, responses)
        # is not read either, so it cannot make the worker buffer without bound.
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        waiter = self.write_waiter
        if waiter is not None:
            self.write_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait_writable(self) -> None:
        """Wait until the transport's buffer drains (or the connection is lost)."""
        if self.closed:
            return
        if self.write_waiter is None:
            self.write_waiter = self.loop.create_future()
        await asyncio.shield(self.write_waiter)

    # -- requests ------------------------------------------------------------------------------

    def _on_request_event(self, event: h2.events.RequestReceived) -> None:
        self._on_request(event.stream_id or 0, event.headers or [], event.stream_ended is not None)

    def _on_request(self, stream_id: int, request_headers: list[Any], ended: bool) -> None:
        try:
            reason = malformed(self.valid_headers, request_headers, REQUEST_FLAGS, self.settings)
        except RequestError as exc:  # over a limit_request_* setting (limits.py)
            if self.goaway_sent:
                self.reset(stream_id, _REFUSED_STREAM)
            else:
                self.refuse(stream_id, exc.status, exc.detail)
            return
        if reason:
            self._malformed(stream_id, reason)
            return
        if self.goaway_sent:
            self.reset(stream_id, _REFUSED_STREAM)  # after our GOAWAY: the client retries
            return
        method, path, protocol, headers, forwarded, expect_100 = read_head(
            request_headers, self.forwarded_names)
        if method == b"CONNECT":
            open_websocket(self, stream_id, protocol, path, headers, forwarded, ended)
            return
        try:
            scope = self.origin.build_scope(method, path, "2", headers, forwarded)
        except RequestError as exc:
            self.refuse(stream_id, 400, exc.detail or exc.key)
            return
        stream = H2Stream(self, stream_id)
        stream.request_done = ended
        cycle = RequestCycle(stream, scope, True, expect_100, not ended)
        stream.cycle = cycle
        server = self.server
        if server.access_log_enabled:
            cycle.start_time = time.time()
        self._start_stream(stream, cycle)

    def _malformed(self, stream_id: int, reason: str) -> None:
        """RFC 9113 section 8.1.1: a malformed request is a stream error (PROTOCOL_ERROR)."""
        self.log.debug("Malformed HTTP/2 request from %s: %s", self.origin.peer(), reason)
        stream = self.streams.pop(stream_id, None)
        self.reset(stream_id, _PROTOCOL_ERROR)
        if stream is not None:
            stream.on_reset()
            self._maybe_idle()

    def _run_upgraded(self, cycle: RequestCycle) -> None:
        """The request that asked for Upgrade: h2c, body read, answered on stream 1."""
        stream = H2Stream(self, 1)
        stream.request_done = True
        stream.cycle = cycle
        cycle.conn = stream
        cycle.framing = stream
        cycle.scope["http_version"] = "2"
        self._start_stream(stream, cycle)

    def _start_stream(self, stream: H2Stream, cycle: RequestCycle) -> None:
        if not self.streams:
            self.deadline = 0.0  # no longer idle: only streams waiting on the client arm it
        self.streams[stream.stream_id] = stream
        server = self.server
        if server.hooks is not None:
            server.hooks.pre_request(cycle)
        task = server.start_task(cycle.run(self.app))
        if not task.done():
            cycle.task = task
            server.tasks.add(task)

    def refuse(self, stream_id: int, status: int, reason: str) -> None:
        """Answer a request we will not serve with a short plain-text error."""
        self.log.warning("Invalid HTTP/2 request from ip=%s: %s", self.origin.peer(), reason)
        body = f"{reason}\n".encode()
        try:
            self.h2.send_headers(stream_id, [
                (b":status", str(status).encode()), (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode())])
            self.h2.send_data(stream_id, body, end_stream=True)
        except _ERRORS:
            self.reset(stream_id, _PROTOCOL_ERROR)
        self.schedule_flush()

    def send_whole(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> bool:
        """A whole response (HEADERS, at most one DATA) at once through fastpath.py; False,
        with nothing sent, where the windows or the peer's frame size do not admit ``body``."""
        if not self.fast or not fast_response(self.h2, stream_id, headers, body):
            return False
        self.schedule_flush()
        return True

    def stream_complete(self, stream: H2Stream) -> None:
        """A stream's response is sent (or abandoned): forget it."""
        self.streams.pop(stream.stream_id, None)
        if not stream.request_done:
            # RFC 9113 section 8.1: the response is complete; the rest of the request is not
            # wanted. What is already on its way (up to one default window) is read and
            # dropped, still checked by h2 (a content-length it contradicts, a bad trailer
            # block is the client's error, as the RFC says); past that, RST_STREAM NO_ERROR
            # asks the client to stop. The stream keeps counting toward the client's
            # concurrency limit meanwhile, and an idle connection still closes.
            self.discarding[stream.stream_id] = _DISCARD_ALLOWANCE
        self._maybe_idle()

    def _discard(self, stream_id: int, size: int) -> None:
        """Request body nobody will read: acknowledged and dropped, within the allowance."""
        self.acknowledge(stream_id, size)
        left = self.discarding.get(stream_id)
        if left is not None:
            left -= size
            if left > 0:
                self.discarding[stream_id] = left
            else:
                del self.discarding[stream_id]
                self.reset(stream_id, _NO_ERROR)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Request body bytes were consumed: let the peer send as many more."""
        if size and not self.closed:
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except _ERRORS:
                return
            self.schedule_flush()

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except _ERRORS:
            return
        self.schedule_flush()

    def _window_opened(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.window_opened()
            elif stream_id in self.websockets:
                self.websockets[stream_id].window_opened()
        else:
            for stream in tuple(self.streams.values()):
                stream.window_opened()
            for websocket in tuple(self.websockets.values()):
                websocket.window_opened()
        self.schedule_flush()

    # -- writing ---------------------------------------------------------------------------------

    def schedule_flush(self) -> None:
        """Write what h2 queued once this event-loop iteration is done."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        data = self.h2.data_to_send()
        if data and not self.closed and self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
            # h2's state refuses every frame now: the apps in flight see http.disconnect
            # (rather than h2's ProtocolError on their next send).
            self._disconnect_streams()

    def _disconnect_streams(self) -> None:
        streams = tuple(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.on_reset()
        for websocket in tuple(self.websockets.values()):
            websocket.on_reset()

    # -- deadlines, drain, the server's requests ---------------------------------------------

    def arm_deadline(self, deadline: float) -> None:
        """A stream waits on the client until ``deadline`` (its own): the server's tick calls
        :meth:`on_deadline` at the earliest stream's."""
        if not self.deadline or self.deadline > deadline:
            self.deadline = deadline

    def _idle(self) -> None:
        seconds = self.settings.keepalive or self.settings.header_timeout
        self.deadline = self.loop.time() + seconds

    def _maybe_idle(self) -> None:
        if self.streams or self.websockets:
            return
        if self.goaway_sent or self.server.draining:
            # Drained: close after the same short grace an idle HTTP/1.1 connection gets, so
            # a request already on the wire meets our GOAWAY rather than a reset.
            self._goaway()
            self._flush()
            self.deadline = self.loop.time() + self.server.drain_idle_grace
        else:
            self._idle()

    def on_deadline(self) -> None:
        """Idle for ``keepalive``: GOAWAY and close. A stream whose own deadline passed (its
        request body stalled, or its response waited for the peer's window): reset, while the
        other streams go on. A client that stopped reading the connection: closed."""
        self.deadline = 0.0
        if self.closed:
            return
        if not self.streams and not self.websockets:
            self._goaway()
            self._flush()
            self._close()
            return
        now = self.loop.time()
        earliest = 0.0
        for stream in tuple(self.streams.values()):
            deadline = stream.deadline
            if not deadline:
                continue
            if deadline > now:
                if not earliest or deadline < earliest:
                    earliest = deadline
                continue
            if self.write_paused and not stream.blocked and self.transport is not None:
                # It waited for the socket to drain, not for its window; nothing is read from
                # the socket meanwhile either: no stream can go on.
                self.log.info("Closing HTTP/2 connection from %s: client too slow",
                              self.origin.peer())
                self.transport.abort()
                return
            self.log.info("Resetting HTTP/2 stream %d from %s: client too slow",
                          stream.stream_id, self.origin.peer())
            self.streams.pop(stream.stream_id, None)
            self.reset(stream.stream_id, _CANCEL)
            stream.on_reset()
        if self.streams:
            self.deadline = earliest
        else:
            self._maybe_idle()

    def _goaway(self, code: int = _NO_ERROR) -> None:
        """Tell the client which streams we will still answer (the ones it opened so far).

        Written beside h2, whose state machine refuses every frame after its own GOAWAY,
        while the streams in flight must still finish.
        """
        if self.goaway_sent or self.closed or self.transport is None:
            return
        self.goaway_sent = True
        self._flush()
        frame = GoAwayFrame(0, last_stream_id=self.h2.highest_inbound_stream_id,
                            error_code=code)
        self.transport.write(frame.serialize())

    def shutdown(self, grace: float) -> None:
        """Graceful shutdown: GOAWAY now, finish the streams in flight, then close."""
        self._goaway()
        if not self.streams and not self.websockets:
            deadline = self.loop.time() + grace
            if not self.deadline or self.deadline > deadline:
                self.deadline = deadline

    def force_close(self) -> None:
        """The graceful period ran out: reset what is left (apps see http.disconnect)."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def describe(self) -> list[str]:
        peer = self.origin.peer()
        return [f"{stream.describe()} (HTTP/2 stream {stream.stream_id}) from {peer}"
                for stream in self.streams.values()]

    def peer(self) -> str:
        return self.origin.peer()


_CONTROL = frozenset({h2.events.PingReceived, h2.events.RemoteSettingsChanged,
                      h2.events.PriorityUpdated, h2.events.UnknownFrameReceived})


def upgrade_factory(origin: HTTPConnection, data: bytes,
                    upgrade: tuple[bytes, RequestCycle] | None = None) -> Any:
    """Hand ``origin``'s transport to a new HTTP/2 connection (see HTTPConnection)."""
    conn = H2Connection(origin)
    conn.start(data, upgrade)
    return conn
