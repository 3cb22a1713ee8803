"""h11 adapter: the pure-Python parser, for platforms without httptools or by choice.

h11 is used as a request parser only. Each request gets a fresh ``h11.Connection`` fed with
the bytes left over from the previous one, so h11's own keep-alive and response bookkeeping
never disagree with the shared connection logic (HTTP/1.0 keep-alive, for one, which h11
does not do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import h11

from .connection import HTTPConnection
from .errors import RequestError

if TYPE_CHECKING:
    from ..server import Server


class H11Protocol(HTTPConnection):
    """An HTTP/1.1 connection parsed by h11."""

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

    def _new_parser(self, data: bytes) -> h11.Connection:
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        if data:
            parser.receive_data(data)
        return parser

    def data_received(self, data: bytes) -> None:
        if self.closed or self.input_done:
            return
        if self.proxy_buffer is not None:
            data = self.read_proxy_header(data)
            if not data:
                return
        if self.parsing is None and not self.in_head:
            self.in_head = True
            self.line_seen = False
            self.on_message_begin()
        if self.in_head and not self.line_seen:
            self.line_seen = b"\n" in data
            self.head_bytes += len(data)
            if not self.line_seen and self.head_bytes > self.limit_line:
                self.on_bad_request(RequestError("request_line_too_long", "request line"))
                return
        self.h11.receive_data(data)
        try:
            self._process_events()
        except RequestError as exc:
            self.on_bad_request(exc)
        except h11.RemoteProtocolError as exc:
            self.on_bad_request(_classify(exc))

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
                self.on_message_end()
                if self.upgrade_scope is not None:
                    self.start_upgrade(leftover)
                    return
                if self.input_done:
                    return
                self.h11 = self._new_parser(leftover)
                if leftover:
                    self.in_head = True
                    self.line_seen = b"\n" in leftover
                    self.head_bytes = len(leftover)
                    self.on_message_begin()
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _on_request(self, event: h11.Request) -> None:
        self.in_head = False
        method = bytes(event.method)
        target = bytes(event.target)
        line = len(method) + len(target) + 10
        if line > self.limit_line:
            raise RequestError("request_line_too_long", f"request line of {line} bytes")
        raw_headers = event.headers.raw_items()
        if len(raw_headers) > self.limit_fields:
            raise RequestError("headers_too_large", "too many header fields")
        headers: list[tuple[bytes, bytes]] = []
        close = keep_alive_token = False
        for raw_name, value in raw_headers:
            name = bytes(raw_name).lower()
            value = bytes(value)
            if len(name) + len(value) + 4 > self.limit_field_size:
                raise RequestError("headers_too_large", f"header field {name[:64]!r} too large")
            if name == b"connection":
                tokens = value.lower()
                close = close or b"close" in tokens
                keep_alive_token = keep_alive_token or b"keep-alive" in tokens
            headers.append((name, value))
        version = event.http_version.decode("ascii")
        keep_alive = not close and (version == "1.1" or keep_alive_token)
        self.on_head(method, target, version, headers, keep_alive)


def _classify(exc: h11.RemoteProtocolError) -> RequestError:
    """Map an h11 error to a row of the error table."""
    text = str(exc)
    lowered = text.lower()
    status = exc.error_status_hint
    if "receive buffer too long" in lowered:
        return RequestError("headers_too_large", text)
    if status == 501 or "transfer-encoding" in lowered:
        return RequestError("unsupported_te", text)
    if status == 505 or "version" in lowered:
        return RequestError("bad_version", text)
    if "host" in lowered:
        return RequestError("missing_host" if "missing" in lowered else "bad_host", text)
    if "content-length" in lowered:
        return RequestError("content_length", text)
    if "chunk" in lowered:
        return RequestError("bad_chunk", text)
    if "request line" in lowered or "method" in lowered:
        return RequestError("bad_request_line", text)
    if "header" in lowered:
        return RequestError("bad_header", text)
    return RequestError("bad_request", text)
