"""The ASGI HTTP request/response cycle: one per request, the same for every parser.

A cycle owns the ASGI side of one request: the scope, ``receive()`` (request body chunks, then
``http.disconnect``), ``send()`` (response start and body, framed as Content-Length, chunked or
close-delimited), flow control both ways, and what happens when the app fails. The connection
that created it owns the socket, the parser and what comes after the response.
"""

from __future__ import annotations

import asyncio
import re
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..accessformat import escape_text
from ..disconnected import ClientDisconnected
from ..types import ASGIApp, Message

if TYPE_CHECKING:
    from .connection import HTTPConnection

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# Buffered request body above which reading from the socket pauses until the app receives.
HIGH_WATER = 64 * 1024
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
_ERROR_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"),)
_NO_BODY_STATUS = frozenset({204, 304})
# What _start_response does with a response header name: copy it, or read it first.
_ORDINARY, _CONTENT_LENGTH, _CONNECTION, _TRANSFER_ENCODING, _DATE, _SERVER_NAME = range(6)
_SPECIAL_NAMES = {b"content-length": _CONTENT_LENGTH, b"connection": _CONNECTION,
                  b"transfer-encoding": _TRANSFER_ENCODING, b"date": _DATE,
                  b"server": _SERVER_NAME}
# (name, value) pairs already validated -> (kind, encoded line, Content-Length); see
# _encode_header.
_KNOWN_HEADERS: dict[tuple[bytes, bytes], tuple[int, bytes, int]] = {}
_MAX_KNOWN_HEADERS = 1024
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\\r\\n``, cached per status code."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            phrase = b""
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return line


def describe_request(scope: dict[str, Any]) -> str:
    """``METHOD path`` for a log line; the decoded path may hold control characters from the
    client, escaped here as in the access log (CVE-2020-7694: no forged lines or escapes)."""
    return f"{scope['method']} {escape_text(scope['path'])}"


class RequestCycle:
    """One request: its scope, ``receive()``/``send()``, and the response's framing state."""

    __slots__ = (
        "body", "bytes_sent", "chunked", "close_delimited", "complete", "conn",
        "content_length", "disconnected", "duration", "expect_100", "final_sent", "head",
        "keep_alive", "length_left", "more_body", "no_body", "pending", "pending_size",
        "response_headers", "scope", "start_time", "started", "status", "task", "waiter",
    )

    def __init__(self, conn: HTTPConnection, scope: dict[str, Any], keep_alive: bool,
                 expect_100: bool, more_body: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.body = b""
        self.more_body = more_body
        self.final_sent = False
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.started = False
        self.complete = False
        # The response's framing (status, head, content_length, length_left, chunked,
        # close_delimited, no_body, response_headers) is set when it starts: _start_response.
        self.bytes_sent = 0
        self.pending: list[bytes] | None = None
        self.pending_size = 0
        self.start_time = 0.0
        self.duration = 0.0
        self.task: asyncio.Task[None] | None = None

    # -- driven by the connection ---------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Call the app and make sure the client gets a complete response or a closed socket."""
        conn = self.conn
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self._on_app_error(exc)
        else:
            if not self.started:
                if not self.disconnected:
                    conn.log.error("ASGI app returned without starting a response: %s",
                                   describe_request(self.scope))
                    self._respond_500()
            elif not self.complete:
                conn.log.error("ASGI app returned without completing the response: %s",
                               describe_request(self.scope))
                self._abort_response()
        finally:
            task = self.task
            if task is not None:
                self.task = None
                server = conn.server
                server.tasks.discard(task)
                if server.draining:
                    server.check_drained()

    def feed_body(self, data: bytes) -> None:
        """A chunk of request body arrived from the parser."""
        if self.complete or self.disconnected:
            return
        self.body += data
        if len(self.body) > HIGH_WATER:
            self.conn.pause_reading()
        self._wake()

    def end_body(self) -> None:
        """The request message is complete."""
        self.more_body = False
        self._wake()

    def on_disconnect(self) -> None:
        """The client went away: pending and future ``receive()`` calls see ``http.disconnect``."""
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- receive ---------------------------------------------------------------------------------

    async def receive(self) -> Message:
        if self.expect_100:
            self.expect_100 = False
            if not self.started and not self.disconnected:
                self.conn.transport.write(_CONTINUE)  # type: ignore[union-attr]
        while not (self.disconnected or self.complete) and not self.body and (
                self.more_body or self.final_sent):
            await self._wait_for_client()
        if self.disconnected or self.complete:
            return {"type": "http.disconnect"}
        body = self.body
        self.body = b""
        if len(body) > HIGH_WATER:
            self.conn.resume_reading()
        more_body = self.more_body
        if not more_body:
            self.final_sent = True
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def _wait_for_client(self) -> None:
        conn = self.conn
        waiter = self.waiter = conn.loop.create_future()
        reading = self.more_body
        if reading:
            conn.resume_reading()
            conn.set_deadline(conn.settings.body_timeout)
        try:
            await waiter
        finally:
            if reading:
                conn.clear_deadline()

    # -- send ------------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.conn.write_paused or self.disconnected:
            await self._wait_writable()
        kind = message["type"]
        if kind == "http.response.body" and self.started and not self.complete:
            self._write(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start" and not self.started:
            self._start_response(message)
        elif not self.started:
            raise RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
        elif kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the response started")
        else:
            raise RuntimeError("unexpected ASGI message 'http.response.body' after the response "
                               "completed")

    async def _wait_writable(self) -> None:
        """Before writing: wait while the client does not read; refuse once it is gone."""
        if not self.disconnected:
            await self.conn.wait_writable()
        if self.disconnected:
            raise ClientDisconnected("the client closed the connection")

    def _start_response(self, message: Message) -> None:
        """Validate and encode the app's headers; written with the first body message."""
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 999:
            raise RuntimeError(f"invalid response status {status!r}")
        headers = message.get("headers") or ()
        lines = [_STATUS_LINES.get(status) or status_line(status)]
        content_length = -1
        keep_alive = self.keep_alive
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
        self.keep_alive = keep_alive
        self.started = True
        self.status = status
        self.response_headers = headers
        self.head = b"".join(lines)
        self.content_length = -1 if chunked else content_length
        self.length_left = -1
        self.chunked = chunked
        self.close_delimited = False
        self.no_body = status in _NO_BODY_STATUS or self.scope["method"] == "HEAD"

    def _write(self, body: bytes, more_body: bool) -> None:
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
            keep_alive = (self.keep_alive and not conn.server.draining
                          and conn.upgrade_scope is None
                          and not (self.expect_100 and self.more_body))
            http_10 = self.scope["http_version"] == "1.0"
            framing = b""
            if self.no_body:
                if (self.content_length < 0 and body and not more_body
                        and self.scope["method"] == "HEAD"):
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
            self.keep_alive = keep_alive
            end = (_END_KEEP_ALIVE_10 if http_10 else _END) if keep_alive else _END_CLOSE
            head = head + framing + end if framing else head + end
            if self.no_body:
                conn.transport.write(head)  # type: ignore[union-attr]
                if not more_body:
                    self._finish()
                return
        elif self.no_body:
            if not more_body:
                self._finish()
            return
        size = len(body)
        if self.length_left >= 0:
            if size > self.length_left:
                body, size, more_body = self._overlong(body)
            self.length_left -= size
            if not more_body and self.length_left:
                self._short()
        elif self.chunked:
            body = b"%s%x\r\n%s\r\n" % (head, size, body) if size else head
            head = b""
            if not more_body:
                body += _LAST_CHUNK
        self.bytes_sent += size
        if head:  # the first body message: nothing is buffered yet
            if size > _COPY_MAX and not more_body:
                # A whole large response: head and body in one vectored write, no copy.
                self.conn.transport.writelines((head, body))  # type: ignore[union-attr]
                self._finish()
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
        self._finish()

    def _overlong(self, body: bytes) -> tuple[bytes, int, bool]:
        """The body goes beyond its Content-Length: cut it there; the response is done."""
        self.conn.log.error("ASGI app sent more body than its Content-Length (%d): %s",
                            self.content_length, describe_request(self.scope))
        body = body[: self.length_left]
        self.keep_alive = False
        return body, len(body), False

    def _short(self) -> None:
        self.conn.log.error("ASGI app sent less body than its Content-Length (%d): %s",
                            self.content_length, describe_request(self.scope))
        self.keep_alive = False

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
        transport = self.conn.transport
        if transport is not None and not self.disconnected:
            transport.write(data)

    def _finish(self) -> None:
        self.complete = True
        if self.start_time:
            self.duration = time.time() - self.start_time
        if self.waiter is not None:
            self._wake()
        self.conn.on_response_complete(self)

    # -- failures --------------------------------------------------------------------------------

    def _on_app_error(self, exc: BaseException) -> None:
        conn = self.conn
        if self.disconnected or isinstance(exc, asyncio.CancelledError):
            conn.log.debug("ASGI app ended after the client went away: %r", exc)
        else:
            conn.log.error("Exception in ASGI application (%s)", describe_request(self.scope),
                           exc_info=exc)
        if not self.started:
            if not self.disconnected:
                self._respond_500()
        elif not self.complete:
            self._abort_response()

    def _respond_500(self) -> None:
        self.keep_alive = self.keep_alive and not self.more_body
        self._start_response({"type": "http.response.start", "status": 500,
                              "headers": _ERROR_HEADERS})
        self._write(b"Internal Server Error\n", False)

    def _abort_response(self) -> None:
        """The response started but cannot complete: close so the client sees it is truncated."""
        self.flush()
        self.keep_alive = False
        self.complete = True
        self._wake()
        self.conn.on_response_complete(self)


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
