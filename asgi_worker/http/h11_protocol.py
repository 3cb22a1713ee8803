"""h11 adapter: the pure-Python parser, for platforms without httptools or by choice.

h11 is used as a request parser only. Each request gets a fresh ``h11.Connection`` fed with
the bytes left over from the previous one, so h11's own keep-alive and response bookkeeping
never disagree with the shared connection logic (HTTP/1.0 keep-alive, for one, which h11
does not do).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import h11

from .connection import HTTPConnection
from .errors import RequestError

if TYPE_CHECKING:
    from ..server import Server

# What h11 accepts in a request head but llhttp refuses, so both parsers refuse it: bare LF
# line ends (RFC 9112 section 2.2), obs-fold continuation lines (section 5.2, h11 unfolds them)
# and control characters other than HTAB (RFC 9110 section 5.5). h11 already refuses bare CR.
_BAD_HEAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|(?<!\r)\n|\n[ \t]").search
_HEAD_END = re.compile(rb"\n\r?\n").search  # where h11 ends a head
# h11 merges repeated identical Content-Length fields and lists ("3, 3"); llhttp refuses both.
_CONTENT_LENGTHS = re.compile(rb"\ncontent-length:[ \t]*([^\r\n]*)", re.IGNORECASE).findall
# A chunk-size line as llhttp takes it: at most 64 bits of size, extensions of tokens and
# quoted strings (an empty value too), CRLF. h11 reads 20 hex digits, any ';.*' and OWS.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE = re.compile(rb"0*([0-9A-Fa-f]{1,16})(?:;%s(?:=(?:%s|%s)?)?)*\r\n"
                         % (_TOKEN, _TOKEN, _QUOTED)).fullmatch
# Trailer lines: no CTL, no obs-fold, no framing fields (RFC 9110 section 6.5.1; llhttp).
_BAD_TRAILER = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|^[ \t]|"
                          rb"^(?:content-length|transfer-encoding)[ \t]*:", re.IGNORECASE).search


# The methods llhttp (httptools) accepts with an origin-form target; h11 refuses the rest too.
LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH "
    b"UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
    b"UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split())


class H11Protocol(HTTPConnection):
    """An HTTP/1.1 connection parsed by h11."""

    __slots__ = (
        "body_start", "chunk_lines", "h11", "in_head", "limit_field_size", "limit_fields",
        "limit_line", "line_seen", "max_head", "raw_head",
    )

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        settings = self.settings
        self.limit_line = settings.limit_request_line
        self.limit_fields = settings.limit_request_fields
        self.limit_field_size = settings.limit_request_field_size
        self.max_head = settings.max_head_size
        self.h11 = self._new_parser(b"")
        self.in_head = False
        self.line_seen = False
        self.raw_head = bytearray()  # the bytes of the head being parsed, checked at its end
        self.body_start = b""  # the bytes after the head that arrived with it
        self.chunk_lines: ChunkLines | None = None

    def _new_parser(self, data: bytes) -> h11.Connection:
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        if data:
            parser.receive_data(data)
        return parser

    def data_received(self, data: bytes) -> None:
        if self.closed or self.input_done:
            return
        if self.preamble is not None:
            data = self.read_preamble(data)
            if not data:
                return
        if self.parsing is None and not self.in_head:
            self.in_head = True
            self.line_seen = False
            self.on_message_begin()
        if self.in_head:
            if not self.raw_head:
                # RFC 9112 section 2.2: empty lines before a request line are ignored (llhttp
                # does; h11 refuses them, e.g. the CRLF some clients send after a body).
                data = data.lstrip(b"\r\n")
                if not data:
                    return
            self.raw_head += data
        if self.in_head and not self.line_seen:
            self.line_seen = data.find(b"\n") >= 0
            self.head_bytes += len(data)
            if not self.line_seen and self.head_bytes > self.limit_line:
                self.on_bad_request(RequestError("request_line_too_long", "request line"))
                return
        try:
            if self.chunk_lines is not None and not self.in_head:
                self.chunk_lines.feed(data)
            self.h11.receive_data(data)
            self._process_events()
        except RequestError as exc:
            self.on_bad_request(exc)
        except h11.RemoteProtocolError as error:  # not "exc" again: mypyc (docs/architecture.md)
            # Our head rules first, as llhttp checks characters before field semantics.
            self.on_bad_request(self._raw_head_error() or _classify(error))
        else:
            self.arm_head_deadline()

    def _process_events(self) -> None:
        while not self.closed:
            event = self.h11.next_event()
            kind = type(event)
            if kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h11.Data:
                self.on_body(bytes(event.data))  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                leftover, _ = self.h11.trailing_data
                self.chunk_lines = None
                self.on_message_end()
                if self.upgrade_scope is not None:
                    self.start_upgrade(leftover)
                    return
                if self.input_done:
                    return
                leftover = leftover.lstrip(b"\r\n")  # as in data_received
                self.h11 = self._new_parser(leftover)
                self.raw_head = bytearray(leftover)
                if leftover:
                    self.in_head = True
                    self.line_seen = leftover.find(b"\n") >= 0
                    self.head_bytes = len(leftover)
                    self.on_message_begin()
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _on_request(self, event: h11.Request) -> None:
        self.in_head = False
        if event.method not in LLHTTP_METHODS:
            # h11 takes any token; llhttp only the methods it knows. One rule for both.
            raise RequestError("bad_method", f"method {bytes(event.method)[:32]!r}")
        error = self._raw_head_error()
        raw_head = self.raw_head
        self.raw_head = bytearray()
        if error is not None:
            raise error
        method = bytes(event.method)
        target = bytes(event.target)
        line = len(method) + len(target) + 10
        if line > self.limit_line:
            raise RequestError("request_line_too_long", f"request line of {line} bytes")
        raw_headers = event.headers.raw_items()
        if len(raw_headers) > self.limit_fields:
            raise RequestError("headers_too_large", "too many header fields")
        headers: list[tuple[bytes, bytes]] = []
        close = keep_alive_token = chunked = False
        for raw_name, value in raw_headers:
            name = bytes(raw_name).lower()
            value = bytes(value)
            if len(name) + len(value) + 4 > self.limit_field_size:
                raise RequestError("headers_too_large", f"header field {name[:64]!r} too large")
            if name == b"content-length":
                lengths = _CONTENT_LENGTHS(raw_head)
                if len(lengths) != 1 or not lengths[0].rstrip(b" \t").isdigit():
                    raise RequestError("content_length", f"Content-Length {lengths!r:.64}")
            chunked = chunked or name == b"transfer-encoding"  # on_head refuses all but chunked
            if name == b"connection":
                tokens = value.lower()
                close = close or b"close" in tokens
                keep_alive_token = keep_alive_token or b"keep-alive" in tokens
            headers.append((name, value))
        version = event.http_version.decode("ascii")
        keep_alive = not close and (version == "1.1" or keep_alive_token)
        self.on_head(method, target, version, headers, keep_alive)
        if chunked and self.parsing is not None:
            self.chunk_lines = ChunkLines(self.max_head)
            self.chunk_lines.feed(self.body_start)

    def _raw_head_error(self) -> RequestError | None:
        """Trim :attr:`raw_head` to the head h11 parsed; the rule it breaks, if any."""
        raw_head = self.raw_head
        end = _HEAD_END(raw_head)
        self.body_start = b""
        if end is not None:
            self.body_start = bytes(raw_head[end.end():])
            del raw_head[end.end():]
        bad = _BAD_HEAD(raw_head)
        if bad is None:
            return None
        return RequestError("bad_header", f"{bad.group()!r} in the request head")


class ChunkLines:
    """Follows a chunked body alongside h11 and holds its chunk-size and trailer lines to
    llhttp's rules, so both parsers refuse the same bodies (h11 checks the CRLF after data)."""

    __slots__ = ("done", "left", "line", "max_line", "trailers")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line  # h11's own bound on a line (max_incomplete_event_size)
        self.left = 0  # chunk data and its CRLF still to skip
        self.line = bytearray()
        self.trailers = False
        self.done = False

    def feed(self, data: bytes) -> None:
        pos, size = 0, len(data)
        while pos < size and not self.done:
            if self.left:
                step = min(self.left, size - pos)
                pos += step
                self.left -= step
                continue
            end = data.find(b"\n", pos)
            self.line += data[pos:end + 1 if end >= 0 else size]
            if len(self.line) > self.max_line:
                raise RequestError("bad_chunk", "chunk line too long")
            if end < 0:
                return
            pos = end + 1
            line = bytes(self.line)
            self.line.clear()
            if self.trailers:
                if line == b"\r\n":
                    self.done = True
                elif _BAD_TRAILER(line[:-1]) or line[-2:] != b"\r\n":
                    raise RequestError("bad_chunk", f"trailer line {line[:64]!r}")
                continue
            match = _CHUNK_LINE(line)
            if match is None:
                raise RequestError("bad_chunk", f"chunk line {line[:64]!r}")
            chunk = int(match.group(1), 16)
            if chunk:
                self.left = chunk + 2
            else:
                self.trailers = True


# h11's own message text -> error table row. h11 quotes the client's bytes after these
# prefixes, so only the prefix is matched: a header named "Host" must not make a Host error.
_H11_ERRORS = (
    ("receive buffer too long", "headers_too_large"),
    ("missing mandatory host", "missing_host"),
    ("found multiple host", "bad_host"),
    ("conflicting content-length", "content_length"),
    ("bad content-length", "content_length"),
    ("illegal chunk header", "bad_chunk"),
    ("malformed chunk footer", "bad_chunk"),
    ("illegal request line", "bad_request_line"),
    ("no request line", "bad_request_line"),
    ("illegal method", "bad_method"),
    ("illegal target", "bad_target"),
    ("illegal header", "bad_header"),
    ("continuation line", "bad_header"),
)


def _classify(exc: h11.RemoteProtocolError) -> RequestError:
    """Map an h11 error to a row of the error table."""
    text = str(exc)
    if exc.error_status_hint == 501:  # Transfer-Encoding other than chunked
        return RequestError("unsupported_te", text)
    lowered = text.lower()
    for prefix, key in _H11_ERRORS:
        if lowered.startswith(prefix):
            return RequestError(key, text)
    return RequestError("bad_request", text)
