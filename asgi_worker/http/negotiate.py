"""What a connection speaks before its first HTTP/1.1 request, and its switch to HTTP/2.

Every accepted socket starts as an HTTP/1.1 connection (http/connection.py). Before the parser
sees a byte, this module decides what the connection is: a PROXY protocol v1/v2 header first
(``proxy_protocol``), which may change who the peer is; then HTTP/2, by TLS ALPN or, from a
trusted peer on an h2c prior-knowledge port, by the connection preface; else HTTP/1.1. An
``Upgrade: h2c`` request (RFC 7540 section 3.2) is switched here too, once its body is read. A
worker that serves neither a PROXY header nor HTTP/2 runs none of this: its connections never
get a :class:`Preamble` and the parser gets every byte.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import TYPE_CHECKING, Any

from ..proxy import ProxyHeaderError, parse_proxy_header
from .cycle import RequestCycle
from .errors import RequestError

if TYPE_CHECKING:
    from .connection import HTTPConnection

# A PROXY protocol header longer than this is not one (v1 is at most 107 bytes, v2 is bounded).
MAX_PROXY_HEADER = 16 + 4096
# RFC 9113 section 3.4: how a client with prior knowledge opens a cleartext HTTP/2 connection.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP1_REQUEST_LINE = re.compile(rb"[!-~]+ [!-~]+ HTTP/1\.[01]\r?").fullmatch
# Upgrade: h2c (RFC 7540 section 3.2): the request body is read before switching, up to this
# size (Gunicorn's bound); a larger one is served over HTTP/1.1.
H2C_UPGRADE_BODY_LIMIT = 65536
_SWITCHING_TO_H2C = (b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
                     b"upgrade: h2c\r\n\r\n")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def negotiate(conn: HTTPConnection) -> bool:
    """At ``connection_made``, on a worker that reads PROXY headers or serves HTTP/2.

    True: TLS ALPN chose ``h2`` and HTTP/2 took the connection. Otherwise the connection gets
    a :class:`Preamble` when a PROXY header or, from a trusted peer, the h2c preface may come
    before HTTP/1.1.
    """
    server = conn.server
    preamble: Preamble | None = None
    if server.proxy_peers is not None:
        host = conn.client[0] if conn.client else None
        preamble = Preamble(conn, True, server.proxy_peers.is_trusted(host))
    http2 = server.http2
    if http2 is not None:
        if conn.scheme == "https":
            transport = conn.transport
            ssl_object = (transport.get_extra_info("ssl_object") if transport is not None
                          else None)
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                http2(conn, b"")
                return True
        elif server.h2c_prior_knowledge and (preamble is not None or conn.forwarded_trusted):
            # Trusted peers may open with the HTTP/2 preface (decided after any PROXY header,
            # which can change who the peer is).
            if preamble is None:
                preamble = Preamble(conn, False, False)
            preamble.sniff_h2c = True
    conn.preamble = preamble
    return False


class Preamble:
    """The bytes a new connection reads before HTTP/1.1, while what it speaks is undecided."""

    __slots__ = ("buffer", "conn", "proxy_pending", "proxy_trusted", "sniff_h2c")

    def __init__(self, conn: HTTPConnection, proxy_pending: bool, proxy_trusted: bool) -> None:
        self.conn = conn
        self.buffer = b""  # read and not yet decided on
        self.proxy_pending = proxy_pending
        self.proxy_trusted = proxy_trusted
        self.sniff_h2c = False

    def read(self, data: bytes) -> bytes:
        """A PROXY header, then from a trusted h2c peer perhaps the HTTP/2 preface. Returns the
        bytes for the HTTP/1.1 parser (none while undecided, or once the connection became
        HTTP/2 or was refused)."""
        conn = self.conn
        if self.proxy_pending:
            data = self._read_proxy_header(data)
            if self.proxy_pending or conn.closed:
                return b""
        if self.sniff_h2c and conn.forwarded_trusted:
            return self._sniff_h2c(data)
        conn.preamble = None
        return data

    def _sniff_h2c(self, data: bytes) -> bytes:
        conn = self.conn
        buffer = self.buffer + data
        size = min(len(buffer), len(H2_PREFACE))
        if buffer[:size] == H2_PREFACE[:size]:
            if size < len(H2_PREFACE):
                self.buffer = buffer
                return b""
            conn.preamble = None
            conn.server.connection_lost(conn)
            conn.server.http2(conn, buffer)  # type: ignore[misc]  # set when sniffing
            return b""
        if conn.settings.http2_cleartext != "prior-knowledge":
            conn.preamble = None
            return buffer
        # A trusted peer on a prior-knowledge port must speak HTTP/2: an HTTP/1.x request is
        # a 400 (Gunicorn's rule), anything else an invalid preface (RFC 9113 section 3.4: a
        # connection error, so the connection closes).
        line_end = buffer.find(b"\n")
        if line_end < 0 and len(buffer) <= conn.settings.limit_request_line:
            self.buffer = buffer
            return b""
        conn.preamble = None
        if line_end >= 0 and _HTTP1_REQUEST_LINE(buffer[:line_end]):
            conn.on_bad_request(RequestError("bad_request", "HTTP/1.x from a trusted peer on a "
                                             "prior-knowledge HTTP/2 port"))
        else:
            self._refuse("invalid HTTP/2 connection preface")
        return b""

    def _read_proxy_header(self, data: bytes) -> bytes:
        """Consume a PROXY protocol header before HTTP; return the bytes that follow it."""
        conn = self.conn
        buffer = self.buffer + data
        mode = conn.settings.proxy_protocol
        try:
            header = parse_proxy_header(buffer, v1=mode != "v2", v2=mode != "v1", optional=True)
        except ProxyHeaderError as exc:
            self._refuse(exc.reason)
            return b""
        if header is None:
            if len(buffer) > MAX_PROXY_HEADER:
                self._refuse("PROXY header too long")
                return b""
            self.buffer = buffer
            return b""
        self.buffer = b""
        self.proxy_pending = False
        if header.length:
            if not self.proxy_trusted:
                self._refuse("PROXY header from a peer not in proxy_allow_ips")
                return b""
            if header.source is not None:
                conn.client = header.source
                conn.forwarded_trusted = conn.server.forwarded_peers.is_trusted(
                    header.source[0])
                conn.update_special_headers()
            if header.destination is not None:
                conn.sockname = header.destination
        return buffer[header.length:]

    def _refuse(self, reason: str) -> None:
        conn = self.conn
        conn.log.warning("Closing connection from %s: %s", conn.peer(), reason)
        conn.preamble = None
        conn.closed = True
        if conn.transport is not None:
            conn.transport.close()


def start_h2c_upgrade(conn: HTTPConnection, scope: dict[str, Any],
                      headers: list[tuple[bytes, bytes]], content_length: int,
                      expect_100: bool) -> bool:
    """An HTTP/1.1 ``Upgrade: h2c`` request from a trusted peer: read its body here, then
    switch (:meth:`H2CUpgrade.switch`) and answer it over HTTP/2 as stream 1. False: it is
    served over HTTP/1.1 (a body over 64 KiB, or no well-formed HTTP2-Settings)."""
    if content_length > H2C_UPGRADE_BODY_LIMIT:
        return False
    h2_settings = _h2c_settings(headers)
    if h2_settings is None:
        return False
    body_size = max(content_length, 0)
    has_body = body_size > 0
    cycle = RequestCycle(conn, scope, False, False, has_body)
    if conn.server.access_log_enabled:
        cycle.start_time = time.time()
    conn.h2c_upgrade = H2CUpgrade(conn, cycle, h2_settings, body_size)
    conn.upgrade_scope = scope
    conn.head_keep_alive = False
    conn.parsing = cycle if has_body else None
    if expect_100 and has_body and conn.transport is not None:
        conn.transport.write(_CONTINUE)
    return True


class H2CUpgrade:
    """An ``Upgrade: h2c`` request being read: its cycle (not yet run) and HTTP2-Settings."""

    __slots__ = ("body_size", "conn", "cycle", "h2_settings")

    def __init__(self, conn: HTTPConnection, cycle: RequestCycle, h2_settings: bytes,
                 body_size: int) -> None:
        self.conn = conn
        self.cycle = cycle
        self.h2_settings = h2_settings
        self.body_size = body_size

    def switch(self, leftover: bytes) -> None:
        """The request was read (``leftover``: the bytes after it): 101, then HTTP/2."""
        conn = self.conn
        cycle = self.cycle
        if conn.transport is None or conn.closed:
            return
        missing = self.body_size - len(cycle.body)
        if missing > 0:
            # llhttp ends an upgrade request at its head: the body is read here and the
            # bytes after it go to HTTP/2 (h11 reads the body itself).
            take = leftover[:missing]
            leftover = leftover[len(take):]
            cycle.feed_body(take)
            if len(take) < missing:
                conn.preamble = self  # the next bytes come back here (read)
                return
        cycle.end_body()
        conn.h2c_upgrade = None
        conn.parsing = None
        conn.transport.write(_SWITCHING_TO_H2C)
        conn.server.connection_lost(conn)
        conn.server.http2(conn, leftover, (self.h2_settings, cycle))  # type: ignore[misc]

    def read(self, data: bytes) -> bytes:
        """More of the request's body, read before the parser would see it."""
        self.conn.preamble = None
        self.switch(data)
        return b""


def _h2c_settings(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The HTTP2-Settings payload of a well-formed Upgrade: h2c request (RFC 7540 section
    3.2), else None: exactly one such header, named with ``upgrade`` in Connection."""
    settings = [value.strip() for name, value in headers if name == b"http2-settings"]
    tokens = {token.strip().lower() for name, value in headers if name == b"connection"
              for token in value.split(b",")}
    if len(settings) != 1 or not {b"upgrade", b"http2-settings"} <= tokens:
        return None
    payload = settings[0]
    try:
        raw = base64.b64decode(payload + b"=" * (-len(payload) % 4), altchars=b"-_",
                               validate=True)
    except (binascii.Error, ValueError):
        return None
    return payload if len(raw) % 6 == 0 else None
