"""One HTTP/1.1 connection: request heads to scopes, pipelining, keep-alive and deadlines.

The parser adapters (httptools, h11) subclass :class:`HTTPConnection` and only turn bytes into
calls of :meth:`on_head`, :meth:`on_body` and :meth:`on_message_end`. Everything else about the
connection is here, once: validating the head, building the scope, running one
:class:`~asgi_worker.http.cycle.RequestCycle` at a time in request order, keep-alive, the
header/idle/body/send deadlines that the server's tick enforces, and error responses. What a
connection speaks before its first request (a PROXY header, HTTP/2 by ALPN or preface) and the
switch of an ``Upgrade: h2c`` request are decided in :mod:`asgi_worker.http.negotiate`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..proxy import ProxyHeaderError, apply_forwarded, forwarded_root_path
from ..tlsinfo import tls_extension
from .cycle import ASGI_VERSION, RequestCycle, describe_request
from .errors import RESPONSES, RequestError, body_limit_detail
from .extensions import scope_extensions
from .h1_framing import H1Framing
from .negotiate import H2CUpgrade, Preamble, negotiate, start_h2c_upgrade

if TYPE_CHECKING:
    from ..server import Server

# Pipelined requests parsed ahead of the one being answered before reading pauses.
MAX_PIPELINE = 16
# Request body bytes the app left unread that we read and drop to keep the connection alive.
MAX_DISCARD = 1024 * 1024
MAX_CONTENT_LENGTH = (1 << 64) - 1

# RFC 9112 section 3.2: Host is uri-host [":" port]; anything else is answered 400.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~%!$&'()*+,;=]*)(?::[0-9]*)?").fullmatch

# Host values already validated (see _check_host).
_GOOD_HOSTS: set[bytes] = set()
# Header names on_head validates; every other name costs one set lookup.
_SPECIAL_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"expect",
                              b"upgrade", b"connection", b"proxy-connection"})
_HASH = ord("#")  # `int in bytes` is a memchr; `bytes in bytes` first tries the needle as an int
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class HTTPConnection(asyncio.Protocol):
    """Parser-independent half of an HTTP/1.1 server connection."""

    __slots__ = (
        "app", "body_received", "client", "closed", "cycle", "deadline", "discarded",
        "extensions", "extensions_other", "forwarded_trusted", "framing", "h2c_upgrade",
        "head_bytes", "head_keep_alive", "head_pending", "input_done", "log", "loop", "parsing",
        "pending_error", "pipeline", "preamble", "read_paused", "scheme", "server", "settings",
        "sockname", "special_headers", "transport", "upgrade_scope", "write_paused",
        "write_waiter",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.settings = server.settings
        self.app = server.app
        self.loop = server.loop
        self.log = server.log
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | tuple[str, None] | None = None
        self.scheme = "http"
        self.cycle: RequestCycle | None = None  # the request being answered
        self.framing = H1Framing(self)  # the framing of its response
        self.parsing: RequestCycle | None = None  # the request whose body is being read
        self.pipeline: deque[RequestCycle] = deque()
        self.read_paused = False
        self.write_paused = False
        self.write_waiter: asyncio.Future[None] | None = None
        self.deadline = 0.0
        self.head_bytes = 0
        self.discarded = 0
        self.body_received = 0
        self.upgrade_scope: dict[str, Any] | None = None
        self.closed = False
        # Set once a request that ends the connection was read: later bytes are not parsed.
        self.input_done = False
        self.head_keep_alive = True
        self.pending_error = ""  # an error to answer once the requests before it are answered
        self.forwarded_trusted = False
        self.head_pending = False
        self.special_headers = _SPECIAL_HEADERS
        # What reads the bytes before HTTP/1.1 while it is undecided (a PROXY header, the h2c
        # preface, the rest of an Upgrade: h2c request's body: http/negotiate.py); None once
        # the parser gets every byte.
        self.preamble: Preamble | H2CUpgrade | None = None
        # An Upgrade: h2c request being read, answered over HTTP/2 once it is.
        self.h2c_upgrade: H2CUpgrade | None = None
        # The scopes' "extensions" dicts per HTTP version, built once per connection when first
        # needed (see http/extensions.py).
        self.extensions: dict[str, Any] = {}  # HTTP/1.1's, built in connection_made
        self.extensions_other: dict[str, dict[str, Any]] | None = None  # by HTTP version

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple) and len(sock) >= 2:
            self.sockname = (str(sock[0]), int(sock[1]))
        elif isinstance(sock, str) and sock:
            self.sockname = (sock, None)
        tls = None
        context = transport.get_extra_info("sslcontext")
        if context is not None:
            self.scheme = "https"
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                tls = tls_extension(ssl_object, context, self.settings.tls_server_cert)
        self.extensions = scope_extensions("1.1", tls)
        server = self.server
        host = self.client[0] if self.client else None
        self.forwarded_trusted = server.forwarded_peers.is_trusted(host)
        self.update_special_headers()
        if (server.proxy_peers is not None or server.http2 is not None) and negotiate(self):
            return  # TLS ALPN chose h2: the connection is HTTP/2's
        first_wait = self.settings.keepalive or self.settings.header_timeout
        self.deadline = self.loop.time() + first_wait
        self.server.connection_made(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connection_lost(self)
        for cycle in (self.cycle, self.parsing, *self.pipeline):
            if cycle is not None:
                cycle.on_disconnect()
        self.pipeline.clear()
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
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
        self.set_deadline(self.settings.send_timeout)
        try:
            await asyncio.shield(self.write_waiter)
        finally:
            self.clear_deadline()

    # -- flow control and deadlines ------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def set_deadline(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds

    def clear_deadline(self) -> None:
        self.deadline = 0.0

    def on_deadline(self) -> None:
        """Called by the server's tick when :attr:`deadline` has passed."""
        self.deadline = 0.0
        if self.transport is None or self.closed:
            return
        if self.cycle is None and self.parsing is None:
            # Idle keep-alive, or a head that did not arrive in time (slow sender).
            self.transport.close()
        else:
            self.log.info("Closing connection from %s: client too slow", self.peer())
            self.transport.abort()

    # -- the server's requests of us -------------------------------------------------------------

    def shutdown(self, grace: float) -> None:
        """Graceful shutdown began: finish what is in flight, then close; close idle soon."""
        if self.cycle is None and self.parsing is None and not self.pipeline:
            deadline = self.loop.time() + grace
            if not self.deadline or self.deadline > deadline:
                self.deadline = deadline

    def force_close(self) -> None:
        """The graceful period ran out: apps see http.disconnect, the socket closes."""
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def describe(self) -> list[str]:
        """The requests in flight on this connection, for the blocked-loop report."""
        cycles = [c for c in (self.cycle, *self.pipeline) if c is not None]
        return [f"{describe_request(c.scope)} from {self.peer()}" for c in cycles]

    # -- called by the parser adapters --------------------------------------------------------

    def on_message_begin(self) -> None:
        # The header deadline is armed after the parser returns, and only when the head did not
        # arrive whole (the common case costs no clock read).
        self.deadline = 0.0
        self.head_pending = True

    def arm_head_deadline(self) -> None:
        """After feeding the parser: bound the time a partly received head may take."""
        if self.head_pending and not self.deadline:
            self.deadline = self.loop.time() + self.settings.header_timeout

    def on_head(self, method: bytes, target: bytes, http_version: str | None,
                headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        """A complete request head: validate it, build the scope, queue its cycle.

        ``http_version`` None: a keep-alive request without a Connection header is HTTP/1.1
        (RFC 9112 section 9.3), else :meth:`parsed_http_version` tells.
        """
        self.head_bytes = 0
        self.deadline = 0.0
        self.head_pending = False
        connection = False
        expect_100 = False
        host_seen = False
        chunked = False
        content_length = -1
        upgrade = b""
        forwarded = False
        special = self.special_headers
        for name, value in headers:
            if name not in special:
                continue
            if name == b"host":
                if host_seen:
                    raise RequestError("bad_host", "more than one Host header")
                if value not in _GOOD_HOSTS:
                    _check_host(value)
                host_seen = True
            elif name == b"content-length":
                # Above 2**64 - 1 llhttp refuses it and h11 (20 digits) would wait for it.
                if (not value.isdigit() or len(value) > 20 or int(value) > MAX_CONTENT_LENGTH
                        or 0 <= content_length != int(value)):
                    raise RequestError("content_length", f"Content-Length {value[:32]!r}")
                content_length = int(value)
            elif name == b"transfer-encoding":
                if chunked:
                    raise RequestError("bad_header", "more than one Transfer-Encoding header")
                if value.strip(b" \t").lower() != b"chunked":
                    raise RequestError("unsupported_te", f"Transfer-Encoding {value[:32]!r}")
                chunked = True
            elif name == b"expect":
                if value.lower() != b"100-continue":
                    raise RequestError("expectation_failed", f"Expect: {value[:32]!r}")
                expect_100 = True
            elif name == b"upgrade":
                upgrade = value.lower()
            elif name == b"connection" or name == b"proxy-connection":
                connection = True
            else:
                forwarded = True
        if http_version is None:
            http_version = ("1.1" if keep_alive and not connection
                            else self.parsed_http_version())
        if http_version != "1.1":
            if http_version != "1.0":
                # llhttp accepts 0.9 and 2.0, h11 any digit.digit; 400 as llhttp answers 1.2.
                raise RequestError("bad_version", f"HTTP/{http_version}")
            expect_100 = False  # no 100 Continue for HTTP/1.0 (RFC 9110 section 10.1.1)
        if not host_seen and http_version == "1.1":
            raise RequestError("missing_host")
        if chunked:
            if content_length >= 0:
                raise RequestError("te_and_cl")
            if http_version == "1.0":
                # RFC 9112 section 6.1: the framing of such a message is faulty (h11 accepted
                # it).
                raise RequestError("bad_header", "Transfer-Encoding in an HTTP/1.0 request")
            has_body = True
        else:
            has_body = content_length > 0
            if has_body and 0 < self.settings.max_body_size < content_length:
                raise RequestError("body_too_large", body_limit_detail(
                    f"Content-Length {content_length}", self.settings.max_body_size)
                    + "; answered 413 Content Too Large")
        self.body_received = 0
        scope = self.build_scope(method, target, http_version, headers, forwarded)
        if upgrade:
            keep_alive = False
            # RFC 9110 section 7.8: an Upgrade header in an HTTP/1.0 request is ignored.
            if (upgrade == b"websocket" and scope["method"] == "GET" and http_version == "1.1"
                    and self.settings.ws_enabled and self._websocket_available()):
                self.head_keep_alive = False
                self.upgrade_scope = scope
                return
            if (upgrade == b"h2c" and self.server.h2c_upgrade and self.forwarded_trusted
                    and http_version == "1.1" and not chunked
                    and start_h2c_upgrade(self, scope, headers, content_length, expect_100)):
                return
        self.head_keep_alive = keep_alive
        cycle = RequestCycle(self, scope, keep_alive and self.settings.keepalive > 0, expect_100,
                             has_body)
        if self.server.access_log_enabled:
            cycle.start_time = time.time()
        self.parsing = cycle if has_body else None
        if self.cycle is None:
            self._run(cycle)
        else:
            self.pipeline.append(cycle)
            if len(self.pipeline) >= MAX_PIPELINE:
                self.pause_reading()

    def parsed_http_version(self) -> str:
        """The request's HTTP version as the parser read it (see :meth:`on_head`)."""
        raise NotImplementedError

    def on_body(self, data: bytes) -> None:
        cycle = self.parsing
        if cycle is None:
            return
        max_body = self.settings.max_body_size
        if max_body:
            self.body_received += len(data)
            if self.body_received > max_body:
                raise RequestError("body_too_large", body_limit_detail(
                    "the request body", max_body))
        if cycle.complete:
            self._discard(len(data))
        else:
            cycle.feed_body(data)

    def on_message_end(self) -> None:
        if not self.head_keep_alive:
            # RFC 9112 section 9.6: no request after this one is processed, so the bytes that
            # follow are dropped unparsed; refusing them would replace this request's answer.
            self.input_done = True
        cycle = self.parsing
        if cycle is None:
            return
        self.parsing = None
        cycle.end_body()
        if cycle.complete and self.cycle is None and not self.pipeline:
            self._become_idle()

    def on_bad_request(self, exc: RequestError) -> None:
        """Answer a request we refuse with a short error and close the connection.

        Requests read before the bad bytes are still answered, in order, and the error goes
        after them: answering now would hand the client the 400 as the reply to an earlier
        request, and whether that happened would depend on how the bytes were split.
        """
        self.log.warning("Invalid request from ip=%s: %s", self.peer(), exc.detail or exc.key)
        transport = self.transport
        if transport is None or self.closed:
            return
        self.input_done = True
        broken = self.parsing  # its body is what was bad: it can never complete
        if broken is not None and broken.complete:
            # Already answered (the app did not wait for the body): one response per request,
            # so the connection just closes.
            transport.close()
            self.closed = True
            return
        if broken is not None:
            self.parsing = None
            broken.on_disconnect()
            if broken in self.pipeline:
                self.pipeline.remove(broken)
        answering = self.cycle
        if answering is not None and answering is not broken:
            self.pending_error = exc.key  # written by on_response_complete
            self.clear_deadline()  # the header deadline must not cut the answers short
            return
        if answering is None or not answering.started:
            transport.write(RESPONSES[exc.key])
        transport.close()
        self.closed = True

    # -- internals ---------------------------------------------------------------------------

    def build_scope(self, method: bytes, target: bytes, http_version: str,
                     headers: list[tuple[bytes, bytes]], forwarded: bool) -> dict[str, Any]:
        if _HASH in target:
            # RFC 9112 section 3.2: no form of request-target has a fragment; both parsers
            # passed it on as part of the path.
            raise RequestError("bad_target", f"fragment in {target[:64]!r}")
        raw_path, _, query = target.partition(b"?")
        if raw_path[:1] != b"/":
            raw_path = _origin_path(raw_path, method)
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            raise RequestError("bad_target", "non-ASCII bytes in the request target") from None
        if "%" in path:
            path = unquote(path)
        client = self.client
        scheme = self.scheme
        root_path = self.settings.root_path
        forwarded_root = None
        if forwarded:
            try:
                client, scheme = apply_forwarded(headers, client, scheme, self.server.forwarded)
                forwarded_root = forwarded_root_path(headers, self.server.forwarded, path)
            except ProxyHeaderError as exc:
                key = "bad_scheme_headers" if exc.status == 400 else "internal"
                raise RequestError(key, exc.reason) from None
        if forwarded_root is not None:
            # The proxy forwarded the full path and told us where the app is mounted.
            root_path = forwarded_root
        elif root_path:
            path = root_path + path
            raw_path = root_path.encode() + raw_path
        method_name = _METHODS.get(method)
        if method_name is None:
            method_name = method.decode("ascii")
        return {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": http_version,
            "server": self.sockname,
            "client": client,
            "scheme": scheme,
            "method": method_name,
            "root_path": root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "state": self.server.state.copy(),
            "extensions": (self.extensions if http_version == "1.1"
                           else self._other_extensions(http_version)),
        }

    def _other_extensions(self, http_version: str) -> dict[str, Any]:
        """The extensions dict of HTTP/1.0 (no early hints: an HTTP/1.0 client cannot read a
        1xx response) and HTTP/2 scopes (what its framing does), built once per connection."""
        other = self.extensions_other
        if other is None:
            other = self.extensions_other = {}
        extensions = other.get(http_version)
        if extensions is None:
            extensions = other[http_version] = scope_extensions(
                http_version, self.extensions.get("tls"))
        return extensions

    def _run(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        server = self.server
        if server.hooks is not None:
            server.hooks.pre_request(cycle)
        start_task = server.start_task  # (a call through the attribute is not specialized)
        task = start_task(cycle.run(self.app))
        if not task.done():
            cycle.task = task
            server.tasks.add(task)

    def on_response_complete(self, cycle: RequestCycle) -> None:
        """The cycle wrote its whole response: account for it, then serve the next request."""
        self.server.on_response_complete(cycle)
        if self.cycle is cycle:
            self.cycle = None
        transport = self.transport
        if transport is None or self.closed:
            return
        if not cycle.keep_alive:
            transport.close()
            self.closed = True
            return
        if self.pending_error and not self.pipeline:
            transport.write(RESPONSES[self.pending_error])
            transport.close()
            self.closed = True
            return
        if self.pipeline:
            self._run(self.pipeline.popleft())
            if len(self.pipeline) < MAX_PIPELINE // 2 and self.parsing is None:
                self.resume_reading()
        elif self.parsing is cycle:
            # The app answered without reading the whole body: read the rest and drop it.
            cycle.body = b""
            self.resume_reading()
            self.set_deadline(self.settings.body_timeout)
        else:
            self._become_idle()

    def _become_idle(self) -> None:
        self.head_bytes = 0
        if self.server.draining:
            self.shutdown(self.server.drain_idle_grace)
            if self.deadline == 0.0:
                self.transport.close()  # type: ignore[union-attr]
                return
        else:
            self.deadline = self.loop.time() + self.settings.keepalive
        if self.read_paused:
            self.resume_reading()

    def _discard(self, size: int) -> None:
        self.discarded += size
        if self.discarded > MAX_DISCARD and self.transport is not None:
            self.transport.close()
            self.closed = True

    def _websocket_available(self) -> bool:
        return self.server.websocket_upgrade is not None

    def start_upgrade(self, leftover: bytes) -> None:
        """Hand the transport to the WebSocket protocol (or HTTP/2 for Upgrade: h2c) with the
        bytes after the request."""
        h2c_upgrade = self.h2c_upgrade
        if h2c_upgrade is not None:
            h2c_upgrade.switch(leftover)
            return
        scope = self.upgrade_scope
        upgrade = self.server.websocket_upgrade
        assert scope is not None and upgrade is not None and self.transport is not None
        self.server.connection_lost(self)
        upgrade(self.server, self.transport, scope, leftover)

    def update_special_headers(self) -> None:
        """The header names on_head looks at: forwarded ones only from a trusted peer."""
        self.special_headers = (_SPECIAL_HEADERS | self.server.forwarded.names
                                if self.forwarded_trusted else _SPECIAL_HEADERS)

    def read_preamble(self, data: bytes) -> bytes:
        """What comes before HTTP/1.1 (http/negotiate.py): returns the bytes for the parser."""
        preamble = self.preamble
        return preamble.read(data) if preamble is not None else data

    def peer(self) -> str:
        return self.client[0] if self.client else "unix"


def _check_host(value: bytes) -> None:
    """Validate a Host value not seen before; remember it (a server sees few distinct ones)."""
    if _HOST(value) is None:
        raise RequestError("bad_host", f"Host {value[:64]!r}")
    if len(value) <= 255:  # a DNS name has at most 253 bytes: long values are not kept
        if len(_GOOD_HOSTS) >= 256:
            _GOOD_HOSTS.clear()
        _GOOD_HOSTS.add(value)


def _origin_path(raw_path: bytes, method: bytes) -> bytes:
    """The path of an absolute-form or asterisk-form target (RFC 9112 section 3.2)."""
    if raw_path == b"*" and method == b"OPTIONS":
        return b"*"
    scheme_end = raw_path.find(b"://")
    if scheme_end > 0 and raw_path[:scheme_end].lower() in (b"http", b"https"):
        slash = raw_path.find(b"/", scheme_end + 3)
        return raw_path[slash:] if slash >= 0 else b"/"
    raise RequestError("bad_target", f"request target {raw_path[:64]!r}")
