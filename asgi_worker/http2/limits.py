"""Gunicorn's ``limit_request_*`` on an HTTP/2 request: the limits of the HTTP/1.1 request it
would be.

On HTTP/1.1 the request line is held to ``limit_request_line`` (414), each header line (name,
``": "``, value, CRLF) to ``limit_request_field_size`` and their number to
``limit_request_fields`` (431). A stream's request is held to the same numbers: ``:method`` and
``:path`` make the request line, ``:authority`` is the Host field, the other pseudo-headers
are not fields; each field is held to the size limit as sent, and cookie crumbs (RFC 9113
section 8.2.3), joined into one field for the app, count as one field. The answer is the same
status as on HTTP/1.1, on that stream only (RFC 9113 section 10.5.1 names 431 for a field
block a server will not process); the connection and its other streams go on. Gunicorn's own
HTTP/2 resets such a stream (PROTOCOL_ERROR) instead, and counts a field without its CRLF.

The check runs once per distinct header list on a connection: the connection remembers a list
that passed h2's checks and these (http2/request.py, ``malformed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..http.errors import RequestError

if TYPE_CHECKING:
    from ..settings import Settings


def request_limits_error(fields: Iterable[tuple[bytes, bytes]],
                         settings: Settings) -> RequestError | None:
    """Why this request's header list is over a ``limit_request_*`` setting, or None."""
    size_limit = settings.limit_request_field_size - 4  # ": " and CRLF
    count = 0
    cookies = authority = False
    method = path = too_large = b""
    for name, value in fields:
        if name[:1] == b":":
            if name == b":authority" and value:
                authority = True
                name = b"host"
            else:
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                continue
        elif name == b"cookie":
            cookies = True
        elif name != b"host" or not authority:  # a host field beside :authority is dropped
            count += 1
        if len(name) + len(value) > size_limit and not too_large:
            too_large = name
    # In HTTP/1.1's order: the request line, then the fields.
    line = len(method) + len(path) + 10  # "GET /path HTTP/1.1"
    if line > settings.limit_request_line:
        return RequestError("request_line_too_long", f"request line of {line} bytes")
    if too_large:
        return RequestError("headers_too_large", f"header field {too_large[:64]!r} too large")
    if count + cookies + authority > settings.limit_request_fields:
        return RequestError("headers_too_large", "too many header fields")
    return None
