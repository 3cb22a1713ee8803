"""Bad input -> status code and a short plain-text body, in one table.

Parser adapters raise :class:`RequestError` with a key from :data:`ERRORS`; the connection turns
it into a response with ``Connection: close``. The log gets the detail, the client a short reason.
"""

from __future__ import annotations

from http import HTTPStatus

# key -> (status, short reason sent to the client)
ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "Bad Request"),
    "bad_request_line": (400, "Invalid request line"),
    "bad_method": (400, "Invalid request method"),
    "bad_target": (400, "Invalid request target"),
    "bad_version": (400, "Invalid HTTP version"),
    "bad_header": (400, "Invalid header"),
    "bad_chunk": (400, "Invalid chunked encoding"),
    "missing_host": (400, "Missing Host header"),
    "bad_host": (400, "Invalid Host header"),
    "content_length": (400, "Invalid Content-Length"),
    "te_and_cl": (400, "Transfer-Encoding with Content-Length"),
    "bad_scheme_headers": (400, "Contradictory scheme headers"),
    "bad_websocket": (400, "Invalid WebSocket handshake"),
    "bad_proxy_header": (400, "Invalid PROXY protocol header"),
    "request_line_too_long": (414, "URI Too Long"),
    "headers_too_large": (431, "Request Header Fields Too Large"),
    "body_too_large": (413, "Content Too Large"),
    "expectation_failed": (417, "Expectation Failed"),
    "unsupported_te": (501, "Unsupported transfer coding"),
    "version_not_supported": (505, "HTTP Version Not Supported"),
    "internal": (500, "Internal Server Error"),
}


# RFC 9110's names where Python before 3.13 still has RFC 2616's ("Request Entity Too Large"),
# so the status line and the body say the same thing on every Python.
RFC9110_PHRASES: dict[int, str] = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def reason_phrase(status: int) -> str:
    """The reason phrase for ``status`` (RFC 9110's name), or ``""`` for an unknown code."""
    phrase = RFC9110_PHRASES.get(status)
    if phrase is not None:
        return phrase
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class RequestError(Exception):
    """A request the server refuses; ``key`` names a row of :data:`ERRORS`."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(detail or key)
        self.key = key
        self.detail = detail

    @property
    def status(self) -> int:
        return ERRORS[self.key][0]


def body_limit_detail(what: str, limit: int) -> str:
    """The log detail of a 413: what came, the limit it passed and the setting that sets it."""
    return f"{what} is over the body limit of {limit} bytes (ASGI_WORKER_MAX_BODY_SIZE)"


def error_response(key: str) -> bytes:
    """The complete response bytes for an error: status line, headers, short text body."""
    status, text = ERRORS[key]
    body = text.encode("ascii") + b"\n"
    phrase = reason_phrase(status).encode("ascii")
    return b"".join((
        b"HTTP/1.1 %d %s\r\n" % (status, phrase),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
        body,
    ))


# Built once: these are written on hot error paths.
RESPONSES: dict[str, bytes] = {key: error_response(key) for key in ERRORS}
