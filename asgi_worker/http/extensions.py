"""ASGI HTTP extensions: which ones a scope advertises, and what their messages must hold.

A scope's ``extensions`` dict is built once per connection and HTTP version (HTTP/1.0
requests cannot read a ``103 Early Hints`` response), then shared by the connection's
requests: building it per request would cost every request, extension or not. The server's
own decisions never read that dict back: the cycle checks a message against the frozen sets
here, so an app that mutates its scope cannot make the server send what the connection cannot
carry. What a message becomes on the wire is each protocol's framing (HTTP/1.1:
http/h1_framing.py and http/sendfile.py; HTTP/2: http2/stream.py).
"""

from __future__ import annotations

from typing import Any

PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"
EARLY_HINT = "http.response.early_hint"
TRAILERS = "http.response.trailers"
TLS = "tls"

# The extension messages the cycle handles; each also needs the scope to advertise it.
MESSAGES = frozenset({PATHSEND, ZEROCOPYSEND, EARLY_HINT, TRAILERS})
HTTP11 = frozenset({PATHSEND, ZEROCOPYSEND, EARLY_HINT, TRAILERS})
HTTP10 = HTTP11 - {EARLY_HINT}
# HTTP/2 (http2/stream.py): 103 as an interim HEADERS frame, trailers as the last HEADERS
# frame (sent when the request said "TE: trailers", as the spec asks), files as DATA frames.
HTTP2 = HTTP11
# What a scope of each HTTP version advertises (and the cycle accepts).
ADVERTISED = {"1.1": HTTP11, "1.0": HTTP10, "2": HTTP2}

# RequestCycle.trailers, for a response started with "trailers": True. EXPECTED: the response
# ends with an http.response.trailers message; DUE (with it): the last body message was sent,
# the trailers are awaited.
TRAILERS_EXPECTED, TRAILERS_DUE = 1, 2


def scope_extensions(http_version: str, tls: dict[str, Any] | None) -> dict[str, Any]:
    """The ``extensions`` dict of a scope: ``{name: {}}`` per extension, plus ``tls``."""
    names = ADVERTISED.get(http_version, frozenset())
    extensions: dict[str, Any] = {name: {} for name in sorted(names)}
    if tls is not None:
        extensions[TLS] = tls
    return extensions


def check_links(links: Any) -> list[bytes]:
    """The links of an ``http.response.early_hint`` message, each a Link field value
    (RFC 8288), checked like a response header value so an app cannot split the response."""
    if links is None or isinstance(links, (bytes, str)):
        raise RuntimeError(f"http.response.early_hint 'links' must be an iterable of byte "
                           f"strings, got {type(links).__name__}")
    checked = []
    for link in links:
        if isinstance(link, (bytearray, memoryview)):
            link = bytes(link)
        if (not isinstance(link, bytes) or not link or b"\r" in link or b"\n" in link
                or b"\x00" in link):
            raise RuntimeError(f"invalid early hint link {link!r}")
        checked.append(link)
    return checked
