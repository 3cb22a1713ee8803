"""Stand-ins for gunicorn's Request, Response and environ, built from an ASGI scope.

gunicorn's ``pre_request``/``post_request`` hooks, its ``Logger.access`` and
the statsd logger read attributes of gunicorn's own objects. The worker builds
these only when a hook is configured or a custom logger needs them, never on
the fast path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote, unquote_to_bytes

from .http.errors import reason_phrase

__all__ = [
    "HookRequest",
    "HookResponse",
    "build_environ",
    "raw_path",
    "raw_uri",
    "request_time",
]

Scope = Mapping[str, Any]

_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# Characters urllib would otherwise escape but that are legal in a path.
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"


def _phrase(status: int) -> str:
    return reason_phrase(status)


def protocol_text(http_version: str) -> str:
    """``HTTP/1.1``, ``HTTP/1.0``; HTTP/2's scope version "2" is ``HTTP/2.0``, as Gunicorn writes
    it (its HTTP/2 requests have the version (2, 0))."""
    return "HTTP/2.0" if http_version == "2" else "HTTP/" + http_version


def _version(http_version: str) -> tuple[int, int]:
    major, _, minor = http_version.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 1, 1


def raw_path(scope: Scope) -> bytes:
    """The path as it came on the wire; ASGI makes ``raw_path`` optional."""
    raw: bytes | None = scope.get("raw_path")
    if raw:
        return raw
    path: str = scope.get("path", "")
    return quote(path, safe=_PATH_SAFE).encode("ascii")


def raw_uri(scope: Scope) -> bytes:
    """gunicorn's RAW_URI: the request target, query string included.

    ASGI keeps only the path and query of the target, so an absolute-form
    target or a fragment cannot be given back.
    """
    query: bytes = scope.get("query_string", b"")
    path = raw_path(scope)
    return path + b"?" + query if query else path


def request_time(duration: float) -> timedelta:
    """The ``request_time`` argument gunicorn passes to ``Logger.access``."""
    return timedelta(microseconds=round(duration * 1_000_000))


def _str_headers(headers: Iterable[tuple[bytes, bytes]], upper: bool) -> list[tuple[str, str]]:
    # bytes.upper() only touches ASCII, unlike str.upper() on latin-1 text
    # (b"\xdf" would become "SS"); gunicorn upper-cases before leaving bytes too.
    if upper:
        return [(n.upper().decode("latin-1"), v.decode("latin-1")) for n, v in headers]
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


class HookRequest:
    """What hooks and loggers read from gunicorn's ``http.message.Request``.

    ``headers`` are (UPPER-CASE name, value) strings as gunicorn keeps them;
    ``path`` is the raw, still percent-encoded path, like gunicorn's. The
    request body is gone to the application, so ``body`` is None. ``scope`` is
    the ASGI scope itself, for hooks written against this worker.
    """

    __slots__ = (
        "body",
        "fragment",
        "headers",
        "method",
        "must_close",
        "path",
        "peer_addr",
        "proxy_protocol_info",
        "query",
        "remote_addr",
        "req_number",
        "scheme",
        "scope",
        "trailers",
        "uri",
        "version",
    )

    def __init__(self, scope: Scope, req_number: int = 1) -> None:
        self.scope = scope
        self.method: str = scope.get("method", "GET")
        self.uri = raw_uri(scope).decode("latin-1")
        self.path = raw_path(scope).decode("latin-1")
        self.query = scope.get("query_string", b"").decode("latin-1")
        self.fragment = ""
        self.version = _version(scope.get("http_version", "1.1"))
        self.headers = _str_headers(scope.get("headers", ()), upper=True)
        self.trailers: list[tuple[str, str]] = []
        self.scheme = _SCHEMES.get(scope.get("scheme", "http"), "http")
        client = scope.get("client")
        # gunicorn's peer address: a (host, port) tuple, or a string for a
        # unix socket, whose peer has no name.
        self.remote_addr: tuple[str, int] | str = tuple(client) if client else ""
        self.peer_addr = self.remote_addr
        self.proxy_protocol_info: dict[str, Any] | None = None
        self.req_number = req_number
        self.body: None = None
        self.must_close = False

    def __repr__(self) -> str:
        return f"<HookRequest {self.method} {self.uri}>"

    def should_close(self) -> bool:
        """gunicorn's keep-alive reading of the request alone."""
        if self.must_close or self.method == "CONNECT":
            return True
        for name, value in self.headers:
            if name == "CONNECTION":
                token = value.lower().strip(" \t")
                if token == "close":
                    return True
                if token == "keep-alive":
                    return False
                break
        return self.version <= (1, 0)


class HookResponse:
    """What hooks and loggers read from gunicorn's ``http.wsgi.Response``.

    ``status`` is the WSGI status line ("200 OK"), which glogging splits and
    statsd parses; ``sent`` counts body bytes, as gunicorn's does.
    """

    __slots__ = ("headers", "headers_sent", "response_length", "sent", "status", "status_code")

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]], sent: int) -> None:
        phrase = _phrase(status)
        self.status = f"{status} {phrase}" if phrase else str(status)
        self.status_code = status
        self.headers = _str_headers(headers, upper=False)
        self.sent = sent
        self.headers_sent = True
        self.response_length: int | None = None
        for name, value in headers:
            if name.lower() == b"content-length" and value.strip().isdigit():
                self.response_length = int(value)

    def __repr__(self) -> str:
        return f"<HookResponse {self.status}>"


def build_environ(scope: Scope) -> dict[str, Any]:
    """A WSGI-style environ for hooks and ``{var}e`` log atoms.

    Keys and values follow gunicorn's ``wsgi.create``: PATH_INFO is the
    percent-decoded path as latin-1 text (PEP 3333) without SCRIPT_NAME,
    repeated headers are joined with ",", Content-Type and Content-Length lose
    the HTTP_ prefix. There is no ``wsgi.input``: the body went to the app.
    REMOTE_ADDR is left out for a peer without an address, so log atoms show
    "-". ``asgi.scope`` is the scope itself.
    """
    method: str = scope.get("method", "GET")
    script_name: str = scope.get("root_path", "")
    path = unquote_to_bytes(raw_path(scope).decode("latin-1")).decode("latin-1")
    root = script_name.encode("utf-8").decode("latin-1")
    if root and path.startswith(root):
        path = path[len(root) :]
    scheme = _SCHEMES.get(scope.get("scheme", "http"), "http")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "RAW_URI": raw_uri(scope).decode("latin-1"),
        "PATH_INFO": path,
        "SCRIPT_NAME": script_name,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": protocol_text(scope.get("http_version", "1.1")),
        "wsgi.url_scheme": scheme,
        "asgi.scope": scope,
    }
    _add_header_vars(environ, scope.get("headers", ()))
    _add_addresses(environ, scope, scheme)
    return environ


def _add_header_vars(environ: dict[str, Any], headers: Iterable[tuple[bytes, bytes]]) -> None:
    for raw_name, raw_value in headers:
        name = raw_name.upper().decode("latin-1")
        value = raw_value.decode("latin-1")
        if name == "CONTENT-TYPE":
            key = "CONTENT_TYPE"
        elif name == "CONTENT-LENGTH":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.replace("-", "_")
        previous = environ.get(key)
        environ[key] = value if previous is None else previous + "," + value


def _add_addresses(environ: dict[str, Any], scope: Scope, scheme: str) -> None:
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    server = scope.get("server")
    if server:
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1]) if server[1] is not None else ""
        return
    # A unix socket has no server address; gunicorn falls back to the Host
    # header, with the scheme's default port.
    name, port = _split_host(environ.get("HTTP_HOST", ""))
    environ["SERVER_NAME"] = name
    if name and not port:
        port = "443" if scheme == "https" else "80"
    environ["SERVER_PORT"] = port


def _split_host(host: str) -> tuple[str, str]:
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return name, port
