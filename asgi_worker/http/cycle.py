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
from ..types import ASGIApp, Message

if TYPE_CHECKING:
    from ..server import Server
    from ..settings import Settings

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
# Buffered request body above which reading from the socket pauses until the app receives.
HIGH_WATER = 64 * 1024
_ERROR_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"),)

def describe_request(scope: dict[str, Any]) -> str:
    """``METHOD path`` for a log line; the decoded path may hold control characters from the
    client, escaped here as in the access log (CVE-2020-7694: no forged lines or escapes)."""
    return f"{scope['method']} {escape_text(scope['path'])}"


class ClientDisconnected(OSError):
    """``send()`` was called after the client went away (ASGI spec 2.4: an OSError)."""


class Framing(Protocol):
    """How a cycle's response reaches the wire: HTTP/1.1 bytes, or an HTTP/2 stream's frames.

    The cycle calls :meth:`start` once, then :meth:`data` until ``more_body`` is false; the
    framing calls ``cycle.finish()`` once the last of it is written (or handed to the
    transport), as its last step. It counts body bytes in ``cycle.bytes_sent`` and may end the
    connection's keep-alive (``cycle.keep_alive``). Interim responses (``100 Continue``; 103
    Early Hints would be a sibling of :meth:`send_continue`), response trailers (announced at
    :meth:`start`, a method that ends the message after the last :meth:`data`) and file bodies
    (a method beside :meth:`data` that writes a file's range) fit the same shape.
    """

    def send_continue(self) -> None: ...
    def start(self, cycle: RequestCycle, status: int, headers: Any) -> None: ...
    def data(self, cycle: RequestCycle, body: bytes, more_body: bool) -> None: ...
    def abort(self, cycle: RequestCycle) -> None: ...


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
        "start_time", "started", "status", "task", "waiter",
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
            self.framing.data(self, message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start" and not self.started:
            status = message["status"]
            if type(status) is not int or not 200 <= status <= 999:
                raise RuntimeError(f"invalid response status {status!r}")
            headers = message.get("headers") or ()
            self.framing.start(self, status, headers)
            self.started = True
            self.status = status
            self.response_headers = headers
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
        framing = self.framing
        framing.start(self, 500, _ERROR_HEADERS)
        self.started = True
        self.status = 500
        self.response_headers = _ERROR_HEADERS
        framing.data(self, b"Internal Server Error\n", False)

    def _abort_response(self) -> None:
        """The response started but cannot complete: close so the client sees it is truncated."""
        self.framing.abort(self)
        self.complete = True
        self._wake()
        self.conn.on_response_complete(self)

