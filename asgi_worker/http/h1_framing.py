"""HTTP/1.1 response framing: how the shared ASGI cycle's responses look on an HTTP/1.1 wire.

The cycle (http/cycle.py) owns the ASGI side of a request; it hands the response to the framing
its connection provides. This is the HTTP/1.1 one, one per connection (an HTTP/1.1
connection answers one request at a time, in order): the status line and header block,
Content-Length, chunked or close-delimited bodies, ``100 Continue``, whether the connection
stays alive, and coalescing writes (a whole response leaves in one write, streamed chunks sent
back to back share one write per loop iteration); and the HTTP/1.1 side of the ASGI
extensions: ``103 Early Hints``, the chunked trailer block (when the request said
``TE: trailers``) and file bodies (http/sendfile.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .cycle import HIGH_WATER, describe_request
from .errors import reason_phrase
from .sendfile import send_range

if TYPE_CHECKING:
    from .connection import HTTPConnection
    from .cycle import RequestCycle
    from .files import FileRange

# A body larger than this is written beside its head rather than copied onto it.
_COPY_MAX = 4096

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+").fullmatch
_BAD_VALUE = re.compile(rb"[\x00\r\n]").search
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_SERVER = b"server: gunicorn\r\n"
# The end of a response head: what keep-alive needs said, then the blank line.
_END = b"\r\n"
_END_CLOSE = b"connection: close\r\n\r\n"
_END_KEEP_ALIVE_10 = b"connection: keep-alive\r\n\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_NO_BODY_STATUS = frozenset({204, 304})
# What start() does with a response header name: copy it, or read it first.
_ORDINARY, _CONTENT_LENGTH, _CONNECTION, _TRANSFER_ENCODING, _DATE, _SERVER_NAME = range(6)
_SPECIAL_NAMES = {b"content-length": _CONTENT_LENGTH, b"connection": _CONNECTION,
                  b"transfer-encoding": _TRANSFER_ENCODING, b"date": _DATE,
                  b"server": _SERVER_NAME}
# (name, value) pairs already validated -> (kind, encoded line, Content-Length); see
# _encode_header.
_KNOWN_HEADERS: dict[tuple[bytes, bytes], tuple[int, bytes, int]] = {}
_MAX_KNOWN_HEADERS = 1024
_STATUS_LINES: dict[int, bytes] = {}
_EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\n"
# Fields that frame or route a message: never a trailer (RFC 9110 section 6.5.1).
_NOT_TRAILERS = frozenset({_CONTENT_LENGTH, _CONNECTION, _TRANSFER_ENCODING})


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\\r\\n``, cached per status code."""
    line = _STATUS_LINES.get(status)
    if line is None:
        phrase = reason_phrase(status).encode("ascii")
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return line


class H1Framing:
    """The framing of the response being written on one HTTP/1.1 connection.

    Implements :class:`~asgi_worker.http.cycle.Framing`. Its state is that of the current
    response, reset by :meth:`start`; :meth:`data` calls ``cycle.finish()`` as its very last
    step, because finishing may start the next pipelined request's response at once.
    """

    __slots__ = (
        "chunked", "close_delimited", "conn", "content_length", "head", "length_left", "no_body",
        "pending", "pending_size", "trailer_lines", "trailers_send",
    )

    def __init__(self, conn: HTTPConnection) -> None:
        self.conn = conn
        self.head = b""
        self.content_length = -1
        self.length_left = -1
        self.chunked = False
        self.close_delimited = False
        self.no_body = False
        self.pending: list[bytes] | None = None
        self.pending_size = 0
        # A response with trailers (set by expect_trailers, read only for such a response).
        self.trailers_send = False
        self.trailer_lines = b""

    def send_continue(self) -> None:
        """``100 Continue``: the app asked for a body the client waits to send."""
        self.conn.transport.write(_CONTINUE)  # type: ignore[union-attr]

    def start(self, cycle: RequestCycle, status: int, headers: Any) -> None:
        """Validate and encode the app's headers; written with the first body message."""
        lines = [_STATUS_LINES.get(status) or status_line(status)]
        content_length = -1
        keep_alive = cycle.keep_alive
        has_date = has_server = chunked = False
        known = _KNOWN_HEADERS
        for header in headers:
            try:
                entry = known.get(header)
            except TypeError:  # a list, or a bytearray inside: not cached
                entry = None
            if entry is None:
                entry = _encode_header(header)
            kind, line, number = entry
            if kind:
                if kind == _CONTENT_LENGTH:
                    content_length = number
                elif kind == _CONNECTION:
                    if b"close" in header[1].lower():
                        keep_alive = False
                    continue
                elif kind == _TRANSFER_ENCODING:
                    chunked = True
                    continue
                elif kind == _DATE:
                    has_date = True
                else:
                    has_server = True
            lines.append(line)
        if not has_date:
            lines.append(self.conn.server.date_header)
        if not has_server:
            lines.append(_SERVER)
        cycle.keep_alive = keep_alive
        self.head = b"".join(lines)
        self.content_length = -1 if chunked else content_length
        self.length_left = -1
        self.chunked = chunked
        self.close_delimited = False
        self.no_body = status in _NO_BODY_STATUS or cycle.scope["method"] == "HEAD"

    def data(self, cycle: RequestCycle, body: bytes, more_body: bool) -> None:
        """Write one body message; the first also completes and writes the response head.

        A whole response (the app's usual two messages) leaves in one write.
        """
        head = self.head
        if head:
            self.head = b""
            conn = self.conn
            # Keep-alive ends for a draining worker, a connection being upgraded, and when the
            # app answered before the client got its 100 Continue (it may never send the body
            # we would skip).
            keep_alive = (cycle.keep_alive and not conn.server.draining
                          and conn.upgrade_scope is None
                          and not (cycle.expect_100 and cycle.more_body))
            http_10 = cycle.scope["http_version"] == "1.0"
            framing = b""
            if self.no_body:
                if (self.content_length < 0 and body and not more_body
                        and cycle.scope["method"] == "HEAD"):
                    framing = b"content-length: %d\r\n" % len(body)
            elif self.content_length >= 0:
                self.length_left = self.content_length
            elif not more_body and not self.chunked:
                framing = b"content-length: %d\r\n" % len(body)
                self.length_left = len(body)
            elif http_10:
                self.close_delimited = True
                keep_alive = False
            else:
                self.chunked = True
                framing = _CHUNKED
            cycle.keep_alive = keep_alive
            end = (_END_KEEP_ALIVE_10 if http_10 else _END) if keep_alive else _END_CLOSE
            head = head + framing + end if framing else head + end
            if self.no_body:
                conn.transport.write(head)  # type: ignore[union-attr]
                if not more_body:
                    cycle.finish()
                return
        elif self.no_body:
            if not more_body:
                cycle.finish()
            return
        size = len(body)
        if self.length_left >= 0:
            if size > self.length_left:
                body, size, more_body = self._overlong(cycle, body)
            self.length_left -= size
            if not more_body and self.length_left:
                self._short(cycle)
        elif self.chunked:
            body = b"%s%x\r\n%s\r\n" % (head, size, body) if size else head
            head = b""
            if not more_body:
                body += _LAST_CHUNK
        cycle.bytes_sent += size
        if head:  # the first body message: nothing is buffered yet
            if size > _COPY_MAX and not more_body:
                # A whole large response: head and body in one vectored write, no copy.
                self.conn.transport.writelines((head, body))  # type: ignore[union-attr]
                cycle.finish()
                return
            body = head + body
        if more_body:
            self._buffer(body)
            return
        if self.pending:
            body = b"".join((*self.pending, body))
            self.pending.clear()
        if body:
            self.conn.transport.write(body)  # type: ignore[union-attr]
        cycle.finish()

    def abort(self, cycle: RequestCycle) -> None:
        """The response cannot complete: what was sent goes out, then the connection closes,
        so the client sees the response is truncated."""
        self.flush()
        cycle.keep_alive = False

    def head_pending(self) -> bool:
        return bool(self.head)

    # -- ASGI extensions -------------------------------------------------------------------------

    def early_hint(self, links: list[bytes]) -> None:
        """``103 Early Hints`` (RFC 8297) with one ``link`` field per (checked) link."""
        lines = [b"link: %s\r\n" % link for link in links]
        self.conn.transport.write(  # type: ignore[union-attr]
            b"".join((_EARLY_HINTS, *lines, b"\r\n")))

    def expect_trailers(self, cycle: RequestCycle) -> None:
        """Trailers go on the wire when the client asked (``TE: trailers``) and the response
        can be chunked; else they are checked and dropped, the body still complete."""
        send = (self.content_length < 0 and not self.no_body
                and cycle.scope["http_version"] == "1.1"
                and accepts_trailers(cycle.scope["headers"]))
        if send:
            self.chunked = True
        self.trailers_send = send
        self.trailer_lines = b""

    def last_data(self, cycle: RequestCycle, body: bytes) -> None:
        """The last body message of a response with trailers: :meth:`trailers` ends it."""
        if self.head and self.content_length < 0 and not self.chunked and not self.no_body:
            # The whole body in one message and the trailers dropped: Content-Length.
            self.content_length = len(body)
            self.head += b"content-length: %d\r\n" % len(body)
        self.data(cycle, body, True)

    def trailers(self, cycle: RequestCycle, headers: Any, more: bool) -> None:
        """Check the trailer fields; the last message writes the trailer block (or the last
        chunk when they are dropped) and completes the response."""
        lines = []
        for header in headers:
            kind, line, _ = _encode_header(header)
            if kind in _NOT_TRAILERS:
                raise RuntimeError(f"invalid response trailer {header[0]!r}")
            lines.append(line)
        send = self.trailers_send
        if send:
            self.trailer_lines += b"".join(lines)
        if more:
            return
        end = b""
        if self.chunked:
            end = b"0\r\n%s\r\n" % self.trailer_lines if send else _LAST_CHUNK
        if self.length_left > 0:
            self._short(cycle)
        pending = self.pending
        if pending:
            end = b"".join((*pending, end))
            pending.clear()
            self.pending_size = 0
        if end and not cycle.disconnected:
            self.conn.transport.write(end)  # type: ignore[union-attr]
        cycle.finish()

    async def send_file(self, cycle: RequestCycle, file: FileRange, last: bool) -> None:
        """A file's range as (the rest of) the body: http/sendfile.py."""
        await send_range(self, cycle, file, last)

    def _overlong(self, cycle: RequestCycle, body: bytes) -> tuple[bytes, int, bool]:
        """The body goes beyond its Content-Length: cut it there; the response is done."""
        self.conn.log.error("ASGI app sent more body than its Content-Length (%d): %s",
                            self.content_length, describe_request(cycle.scope))
        body = body[: self.length_left]
        cycle.keep_alive = False
        return body, len(body), False

    def _short(self, cycle: RequestCycle) -> None:
        self.conn.log.error("ASGI app sent less body than its Content-Length (%d): %s",
                            self.content_length, describe_request(cycle.scope))
        cycle.keep_alive = False

    def _buffer(self, data: bytes) -> None:
        """Hold a streamed chunk until the app yields to the loop (or 64 KiB are held).

        Chunks sent back to back then leave in one write instead of one syscall each, and a
        chunk followed by a real await (SSE, a slow generator) still goes out at once.
        """
        if not data:
            return
        pending = self.pending
        if pending is None:
            pending = self.pending = []
        pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= HIGH_WATER:
            self.flush()
        elif len(pending) == 1:
            self.conn.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what :meth:`_buffer` holds."""
        pending = self.pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.pending_size = 0
        conn = self.conn
        if conn.transport is not None and not conn.closed:
            conn.transport.write(data)


def accepts_trailers(headers: Any) -> bool:
    """Whether the request said ``TE: trailers`` (RFC 9110 section 10.1.4)."""
    for name, value in headers:
        if name == b"te":
            for coding in value.split(b","):
                if coding.split(b";", 1)[0].strip().lower() == b"trailers":
                    return True
    return False


def _parse_content_length(value: bytes) -> int:
    if not value.isdigit():
        raise RuntimeError(f"invalid response Content-Length {value!r}")
    return int(value)


def _encode_header(header: Any) -> tuple[int, bytes, int]:
    """Validate one response header and encode its line; remember it for the next response.

    Most responses repeat the headers of earlier ones (content types, fixed lengths, cache
    policies), so the cache is hit far more often than not; it is emptied when full, which
    bounds it for apps whose header values are all different.
    """
    name, value = header
    cacheable = type(header) is tuple and type(name) is bytes and type(value) is bytes
    if isinstance(name, (bytearray, memoryview)):
        name = bytes(name)
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if (not isinstance(name, bytes) or not _TOKEN(name) or not isinstance(value, bytes)
            or _BAD_VALUE(value)):
        raise RuntimeError(f"invalid response header {name!r}: {value!r}")
    kind = _SPECIAL_NAMES.get(name.lower(), _ORDINARY)
    number = _parse_content_length(value) if kind == _CONTENT_LENGTH else 0
    entry = (kind, b"%s: %s\r\n" % (name, value), number)
    if cacheable:
        if len(_KNOWN_HEADERS) >= _MAX_KNOWN_HEADERS:
            _KNOWN_HEADERS.clear()
        _KNOWN_HEADERS[header] = entry
    return entry
