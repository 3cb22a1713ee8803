"""httptools (llhttp) adapter: parser callbacks -> :class:`HTTPConnection` events.

The default parser. It only collects the request head within Gunicorn's limits and forwards
body bytes; validation, scopes and responses live in the shared connection and cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from .connection import HTTPConnection
from .errors import RequestError

if TYPE_CHECKING:
    from ..server import Server


class HttpToolsProtocol(HTTPConnection):
    """An HTTP/1.1 connection parsed by httptools."""

    __slots__ = (
        "check_fields", "chunk_size", "headers", "limit_field_size", "limit_fields", "limit_line",
        "max_head", "on_message_complete", "parser", "small_head", "span", "url",
    )

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        # httptools looks its callbacks up once, here: an attribute, not a method alias in the
        # class body, which mypyc compiles into a class attribute that fails every request.
        self.on_message_complete: Callable[[], None] = self.on_message_end
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        settings = self.settings
        self.limit_line = settings.limit_request_line
        self.limit_fields = settings.limit_request_fields
        self.limit_field_size = settings.limit_request_field_size
        self.max_head = settings.max_head_size
        # A field line takes at least 3 bytes ("a:\n"): a head this small is within both limits.
        self.small_head = min(self.limit_field_size - 4, 3 * self.limit_fields)
        self.span = 0
        self.chunk_size = 0
        self.check_fields = True

    def data_received(self, data: bytes) -> None:
        if self.closed or self.input_done:
            return
        if self.preamble is not None:
            data = self.read_preamble(data)
            if not data:
                return
        size = len(data)
        if self.parsing is None:
            self.head_bytes += size
        # No field of a head can be longer, nor can there be more fields, than the bytes fed
        # since the last head ended: below the limits, on_header need not count.
        self.chunk_size = size
        self.span += size
        self.check_fields = self.span > self.small_head
        try:
            self.parser.feed_data(data)
        # One name per except clause: mypyc miscompiles one name bound to different exception
        # types in one function (docs/architecture.md, "Compiled and pure").
        except httptools.HttpParserUpgrade as upgrade:
            if self.upgrade_scope is not None:
                self.start_upgrade(data[upgrade.args[0]:])
            return
        except httptools.HttpParserCallbackError as callback_error:
            cause = callback_error.__context__
            if isinstance(cause, RequestError):
                self.on_bad_request(cause)
                return
            raise
        except httptools.HttpParserError as parser_error:
            if self.input_done:
                return  # llhttp refuses bytes after a closing request; we ignore them
            self.on_bad_request(_classify(parser_error))
            return
        if self.upgrade_scope is not None:
            # llhttp flags an upgrade only with "Connection: upgrade"; without it nothing would
            # answer the request. The WebSocket handshake refuses it (400), as with h11.
            self.start_upgrade(b"")
            return
        if self.parsing is None and self.head_bytes > self.max_head:
            self.on_bad_request(RequestError("headers_too_large", "request head too large"))
            return
        if self.head_pending:
            self.arm_head_deadline()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.deadline = 0.0  # see HTTPConnection.on_message_begin
        self.head_pending = True

    def on_url(self, url: bytes) -> None:
        url = self.url = self.url + url
        # llhttp knows no method longer than 15 bytes: most URLs need no exact count.
        if len(url) + 26 > self.limit_line:
            line = len(self.parser.get_method()) + len(url) + 10
            if line > self.limit_line:
                raise RequestError("request_line_too_long", f"request line of {line}+ bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.check_fields:
            if len(self.headers) >= self.limit_fields:
                raise RequestError("headers_too_large", "too many header fields")
            if len(name) + len(value) + 4 > self.limit_field_size:
                raise RequestError("headers_too_large", f"header field {name[:64]!r} too large")
        # RFC 9112 section 5: OWS after a field value is not part of it; llhttp keeps it (h11
        # does not), which made 'Host: x\t' a 400 and scope headers differ between parsers.
        self.headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        self.span = self.chunk_size  # what is left of this chunk is all the next head can have
        parser = self.parser
        # The version is left to on_head: get_http_version() formats a string per call and a
        # keep-alive request without a Connection header is HTTP/1.1 anyway.
        self.on_head(parser.get_method(), self.url, None, self.headers,
                     parser.should_keep_alive())

    def parsed_http_version(self) -> str:
        version: str = self.parser.get_http_version()
        return version


def _classify(exc: Exception) -> RequestError:
    """Map an llhttp error to a row of the error table."""
    text = str(exc)
    lowered = text.lower()
    if "transfer-encoding" in lowered and "content-length" in lowered:
        return RequestError("te_and_cl", text)
    if "transfer-encoding" in lowered:
        return RequestError("unsupported_te", text)
    if "content-length" in lowered:
        return RequestError("content_length", text)
    if "chunk" in lowered:
        return RequestError("bad_chunk", text)
    if "method" in lowered:
        return RequestError("bad_method", text)
    if "version" in lowered:
        return RequestError("bad_version", text)
    if "header" in lowered:
        return RequestError("bad_header", text)
    if "url" in lowered or "target" in lowered:
        return RequestError("bad_target", text)
    return RequestError("bad_request", text)
