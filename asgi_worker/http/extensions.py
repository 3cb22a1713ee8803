"""ASGI HTTP extensions: which ones a scope advertises, and the HTTP/1.1 bytes of two of them.

A scope's ``extensions`` dict is built once per connection (and once more, lazily, for
HTTP/1.0 requests, which cannot read an ``103 Early Hints`` response), then shared by the
connection's requests: building it per request would cost every request, extension or not.
The server's own decisions never read that dict back: the cycle checks a message against
the frozen sets here, so an app that mutates its scope cannot make the server send what the
connection cannot carry.
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

# RequestCycle.trailers, for a response started with "trailers": True. SEND: they go on the
# wire (chunked; the request said TE: trailers); DROP: they are checked and dropped; DUE (with
# either): the last body message was sent, the http.response.trailers message is awaited.
TRAILERS_SEND, TRAILERS_DROP, TRAILERS_DUE = 1, 2, 4

_EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\n"


def scope_extensions(names: frozenset[str], tls: dict[str, Any] | None) -> dict[str, Any]:
    """The ``extensions`` dict of a scope: ``{name: {}}`` per extension, plus ``tls``."""
    extensions: dict[str, Any] = {name: {} for name in sorted(names)}
    if tls is not None:
        extensions[TLS] = tls
    return extensions


def early_hint_bytes(links: Any) -> bytes:
    """``103 Early Hints`` with one ``link`` field per value (RFC 8297), b"" for no links.

    A value is a Link field value (RFC 8288); it is checked like a response header value,
    so an app cannot split the response with it.
    """
    if links is None or isinstance(links, (bytes, str)):
        raise RuntimeError(f"http.response.early_hint 'links' must be an iterable of byte "
                           f"strings, got {type(links).__name__}")
    lines = []
    for link in links:
        if isinstance(link, (bytearray, memoryview)):
            link = bytes(link)
        if (not isinstance(link, bytes) or not link or b"\r" in link or b"\n" in link
                or b"\x00" in link):
            raise RuntimeError(f"invalid early hint link {link!r}")
        lines.append(b"link: %s\r\n" % link)
    if not lines:
        return b""
    return b"".join((_EARLY_HINTS, *lines, b"\r\n"))


def accepts_trailers(headers: Any) -> bool:
    """Whether the request said ``TE: trailers`` (RFC 9110 section 10.1.4)."""
    for name, value in headers:
        if name == b"te":
            for coding in value.split(b","):
                if coding.split(b";", 1)[0].strip().lower() == b"trailers":
                    return True
    return False
