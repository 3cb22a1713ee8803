"""An HTTP/2 request's header block: whether it is well formed and within Gunicorn's limits
(checked once per distinct list on a connection), and the fields as the scope builder that
HTTP/1.1 shares takes them."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import h2.exceptions
import h2.utilities

from .limits import request_limits_error

if TYPE_CHECKING:
    from ..settings import Settings

# h2's own rules for inbound header blocks (RFC 9113 section 8.2/8.3), run here rather than
# inside h2 so that a request's header list seen before on the connection is not checked again.
REQUEST_FLAGS = h2.utilities.HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False)
TRAILER_FLAGS = REQUEST_FLAGS._replace(is_trailer=True)
_MAX_VALID = 16  # header lists remembered as valid, per connection
_MAX_VALID_BYTES = 4096  # ... of at most this many bytes of names and values

Head = tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]], bool, bool]


def malformed(known: set[tuple[Any, ...]], headers: Any, flags: Any,
              settings: Settings | None) -> str:
    """Why h2 finds an inbound header block malformed; "" when it is not. With ``settings``
    (a request's list): a list over a ``limit_request_*`` raises its ``RequestError``
    (limits.py), and a valid one is remembered in ``known`` (a repeated block decodes to the
    same fields: hpack_cache.py), so that it is not checked again."""
    key = tuple(headers or ())
    if settings is not None and key in known:  # only requests' lists are remembered
        return ""
    try:
        for _ in h2.utilities.validate_headers(key, flags):
            pass
    except h2.exceptions.ProtocolError as exc:
        return str(exc) or type(exc).__name__
    if settings is not None:
        error = request_limits_error(key, settings)
        if error is not None:
            raise error
        if sum(map(len, itertools.chain.from_iterable(key))) <= _MAX_VALID_BYTES:
            if len(known) >= _MAX_VALID:
                known.clear()
            known.add(key)
    return ""


def read_head(fields: list[Any], forwarded_names: Any) -> Head:
    """(method, path, :protocol, headers, forwarded, expect 100-continue) of a valid request:
    pseudo-headers taken out, ``:authority`` first as Host (a host field beside it dropped),
    cookie fields joined (RFC 9113 section 8.2.3)."""
    method = path = authority = protocol = b""
    headers: list[tuple[bytes, bytes]] = []
    forwarded = expect_100 = False
    cookies: list[bytes] | None = None
    for name, value in fields:
        if name[0] == 58:  # b":"
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
            continue
        if name == b"host":
            if authority:
                continue
        elif name == b"cookie":
            if cookies is None:
                cookies = [value]
            else:
                cookies.append(value)
            continue
        elif name == b"expect":
            expect_100 = value.lower() == b"100-continue"
        elif name in forwarded_names:
            forwarded = True
        headers.append((name, value))
    if cookies is not None:
        headers.append((b"cookie", b"; ".join(cookies)))
    if authority:
        headers.insert(0, (b"host", authority))
    return method, path, protocol, headers, forwarded, expect_100
