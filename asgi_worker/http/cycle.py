"""The ASGI HTTP request/response cycle: one per request, the same for every protocol.

A cycle owns the ASGI side of one request: the scope, ``receive()`` (request body chunks, then
``http.disconnect``), ``send()`` (response start and body), flow control both ways, and what
happens when the app fails. It never writes protocol syntax: the response goes through the
:class:`Framing` its owner provides (HTTP/1.1 bytes: http/h1_framing.py). The owner that
created it (an HTTP/1.1 connection) owns the socket, the parser and what comes after the
response.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..accessformat import escape_text
from ..disconnected import ClientDisconnected
from ..types import ASGIApp, Message
from .extensions import (
    ADVERTISED,
    EARLY_HINT,
    MESSAGES,
    PATHSEND,
    TRAILERS,
    TRAILERS_DUE,
    TRAILERS_EXPECTED,
    ZEROCOPYSEND,
    check_links,
)
from .files import FileRange, from_descriptor, open_path

if TYPE_CHECKING:
    from ..server import Server
    from ..settings import Settings

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# Buffered request body above which reading from the socket pauses until the app receives.
HIGH_WATER = 64 * 1024
_ERROR_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"),)
_NO_BODY_STATUS = frozenset({204, 304})

def describe_request(scope: dict[str, Any]) -> str:
    """``METHOD path`` for a log line; the decoded path may hold control characters from the
    client, escaped here as in the access log (CVE-2020-7694: no forged lines or escapes)."""
    return f"{scope['method']} {escape_text(scope['path'])}"


class Framing(Protocol):
    """How a cycle's response reaches the wire: HTTP/1.1 bytes, or an HTTP/2 stream's frames.

    The cycle calls :meth:`start` once, then :meth:`data` (or :meth:`send_file`) until
    ``more_body`` is false; the framing calls ``cycle.finish()`` once the last of it is written
    (or handed to the transport), as its last step. It counts body bytes in
    ``cycle.bytes_sent`` and may end the connection's keep-alive (``cycle.keep_alive``).

    The ASGI extensions (http/extensions.py) are further methods, called only for a scope that
    advertised the extension and in an order the cycle has checked: :meth:`early_hint` (an
    interim response, like :meth:`send_continue`), and for a response started with
    ``"trailers": True``: :meth:`expect_trailers` after :meth:`start`, :meth:`last_data` (or a
    last :meth:`send_file`) for the last body message, which does not end the message, then
    :meth:`trailers` until its ``more`` is false, which ends it.
    """

    def send_continue(self) -> None: ...
    def start(self, cycle: RequestCycle, status: int, headers: Any) -> None: ...
    def data(self, cycle: RequestCycle, body: bytes, more_body: bool) -> None: ...
    def abort(self, cycle: RequestCycle) -> None: ...
    def head_pending(self) -> bool:
        """The response started and nothing of it is on the wire yet."""
    def early_hint(self, links: list[bytes]) -> None: ...
    def expect_trailers(self, cycle: RequestCycle) -> None: ...
    def last_data(self, cycle: RequestCycle, body: bytes) -> None: ...
    def trailers(self, cycle: RequestCycle, headers: Any, more: bool) -> None: ...
    async def send_file(self, cycle: RequestCycle, file: FileRange, last: bool) -> None:
        """A file's range as (the rest of) the body; ``last``: the last body message."""


class Owner(Protocol):
    """What a cycle needs from the connection (or HTTP/2 stream) that created it."""

    @property
    def framing(self) -> Framing: ...
    @property
    def server(self) -> Server: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def log(self) -> Any: ...
    @property
    def write_paused(self) -> bool: ...

    async def wait_writable(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def set_deadline(self, seconds: float) -> None: ...
    def clear_deadline(self) -> None: ...
    def on_response_complete(self, cycle: RequestCycle) -> None: ...


class RequestCycle:
    """One request: its scope, ``receive()``/``send()``, and what the access log records."""

    __slots__ = (
        "body", "bytes_sent", "complete", "conn", "disconnected", "duration", "expect_100",
        "final_sent", "framing", "keep_alive", "more_body", "response_headers", "scope",
        "start_time", "started", "status", "task", "trailers", "waiter",
    )

    def __init__(self, conn: Owner, scope: dict[str, Any], keep_alive: bool,
                 expect_100: bool, more_body: bool) -> None:
        self.conn = conn
        self.framing = conn.framing
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
        self.trailers = 0  # TRAILERS_EXPECTED, TRAILERS_DUE (http/extensions.py)
        # status and response_headers are set when the response starts.
        self.bytes_sent = 0
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
                self.framing.send_continue()
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
            if self.trailers:
                self._body_before_trailers(message.get("body", b""),
                                           message.get("more_body", False))
            else:
                self.framing.data(self, message.get("body", b""),
                                  message.get("more_body", False))
        elif kind == "http.response.start" and not self.started:
            status = message["status"]
            if type(status) is not int or not 200 <= status <= 999:
                raise RuntimeError(f"invalid response status {status!r}")
            headers = message.get("headers") or ()
            self.framing.start(self, status, headers)
            self.started = True
            self.status = status
            self.response_headers = headers
            # A key test, not message.get(): about 100 instructions fewer per response.
            if "trailers" in message and message["trailers"]:  # noqa: RUF019
                self._expect_trailers()
        elif kind in MESSAGES:
            await self._send_extension(kind, message)
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

    def finish(self) -> None:
        """Called by the framing once the whole response is written."""
        self.complete = True
        if self.start_time:
            self.duration = time.time() - self.start_time
        if self.waiter is not None:
            self._wake()
        self.conn.on_response_complete(self)

    # -- extensions (http/extensions.py) --------------------------------------------------------

    async def _send_extension(self, kind: str, message: Message) -> None:
        """An extension message: refused unless this scope advertised it."""
        if kind not in ADVERTISED.get(self.scope["http_version"], ()):
            raise RuntimeError(f"ASGI message {kind!r}: the scope did not advertise it")
        if kind == EARLY_HINT:
            self._send_early_hint(message)
        elif kind == TRAILERS:
            self._send_trailers(message)
        else:
            await self._send_file(kind, message)

    def _send_early_hint(self, message: Message) -> None:
        """``103 Early Hints`` before the final response's head (the spec allows it after
        ``http.response.start`` too, as long as the head was not written)."""
        if self.started and not self.framing.head_pending():
            raise RuntimeError("http.response.early_hint after the response head was sent")
        links = check_links(message.get("links"))
        if links and not self.disconnected:
            self.framing.early_hint(links)

    def _expect_trailers(self) -> None:
        """``"trailers": True``: the response ends with ``http.response.trailers``. Ignored
        where the scope did not advertise trailers (the app cannot send them there)."""
        if TRAILERS in ADVERTISED.get(self.scope["http_version"], ()):
            self.trailers = TRAILERS_EXPECTED
            self.framing.expect_trailers(self)

    def _body_before_trailers(self, body: bytes, more_body: bool) -> None:
        """A body message of a response with trailers: the last one does not complete it."""
        if self.trailers & TRAILERS_DUE:
            raise RuntimeError("unexpected ASGI message 'http.response.body' after the last "
                               "body message (http.response.trailers expected)")
        if more_body:
            self.framing.data(self, body, True)
        else:
            self.trailers |= TRAILERS_DUE
            self.framing.last_data(self, body)

    def _send_trailers(self, message: Message) -> None:
        trailers = self.trailers
        if self.complete and trailers:
            return  # the response was cut short (more body than its Content-Length): ignored
        if not trailers & TRAILERS_DUE:
            raise RuntimeError("unexpected ASGI message 'http.response.trailers': it must follow "
                               "the last body message of a response started with "
                               "'trailers': True")
        more = bool(message.get("more_trailers", False))
        self.framing.trailers(self, message.get("headers") or (), more)
        if not more:
            self.trailers = 0

    async def _send_file(self, kind: str, message: Message) -> None:
        """A pathsend or zerocopysend message: the file's bytes as (the rest of) the body."""
        if not self.started:
            raise RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
        if self.complete or self.trailers & TRAILERS_DUE:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the last body message")
        last = kind == PATHSEND or not message.get("more_body", False)
        if self.status in _NO_BODY_STATUS:
            file = FileRange(-1, 0, 0, False, False)  # no body, no length: the file is not read
        elif kind == ZEROCOPYSEND:
            file = from_descriptor(message)
        else:
            try:
                file = open_path(message)
            except OSError as exc:
                self.conn.log.error("ASGI app's http.response.pathsend of %r failed: %s (%s)",
                                    message.get("path"), exc, describe_request(self.scope))
                self._abort_response()
                return
        try:
            await self.framing.send_file(self, file, last)
        finally:
            file.close()
        if last and self.trailers and not self.complete:
            self.trailers |= TRAILERS_DUE

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
        self.trailers = 0
        framing = self.framing
        framing.start(self, 500, _ERROR_HEADERS)
        self.started = True
        self.status = 500
        self.response_headers = _ERROR_HEADERS
        framing.data(self, b"Internal Server Error\n", False)

    def _abort_response(self) -> None:
        """The response started but cannot complete: close so the client sees it is truncated.

        When nothing of it was written yet (its head waits for the first body), a 500 can
        still be.
        """
        if self.framing.head_pending() and not self.disconnected:
            self._respond_500()
            return
        self.framing.abort(self)
        self.complete = True
        self._wake()
        self.conn.on_response_complete(self)

