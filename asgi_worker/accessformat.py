"""Gunicorn's ``access_log_format``, compiled once into a function of a finished request.

The compiled function computes only the atoms the format uses, straight from the ASGI scope,
and escapes whatever came from the client. Gunicorn's default format has a formatter written
out by hand. Writing the lines is :mod:`asgi_worker.accesslog`'s job.
"""

from __future__ import annotations

import binascii
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from asgi_worker.hookobjects import build_environ, protocol_text, raw_path

__all__ = [
    "DEFAULT_FORMAT",
    "AccessInfo",
    "compile_access_format",
    "escape_bytes",
    "escape_text",
    "format_keys",
]


class AccessInfo(Protocol):
    """What the request cycle knows once a response is done (it is not rebuilt per line)."""

    @property
    def scope(self) -> Mapping[str, Any]: ...
    @property
    def status(self) -> int: ...
    @property
    def response_headers(self) -> Sequence[tuple[bytes, bytes]]: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def start_time(self) -> float: ...
    @property
    def duration(self) -> float: ...


# ---------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------

# gunicorn's SafeAtoms turns " into \" in every string atom so quoted fields
# stay parseable; that is kept. It does nothing about control characters: its
# own parser refuses them in the request, ours may not everywhere, and a path
# can carry them percent-encoded, so anything unprintable becomes \xNN (as
# Apache and nginx write it) and cannot move the cursor, colour the terminal
# or forge a line (uvicorn's CVE-2020-7694). Backslash is left alone, as
# gunicorn leaves it, so ordinary lines stay identical to gunicorn's.
_SAFE_BYTES: Final = bytes(b for b in range(0x20, 0x7F) if b != 0x22)
_BYTE_ESCAPES: Final = {b: f"\\x{b:02x}" for b in range(256) if b not in _SAFE_BYTES}
_BYTE_ESCAPES[0x22] = '\\"'


def escape_bytes(value: bytes) -> str:
    """Wire bytes as log text: printable ASCII as is, ``"`` as ``\\"``, the rest ``\\xNN``."""
    if not value.translate(None, _SAFE_BYTES):
        return value.decode("ascii")
    return value.decode("latin-1").translate(_BYTE_ESCAPES)


def escape_text(value: str) -> str:
    """Decoded text as log text: printable characters kept (non-ASCII too), ``"`` as ``\\"``."""
    if value.isprintable() and '"' not in value:
        return value
    return "".join(_escape_char(c) for c in value)


def _escape_char(char: str) -> str:
    if char == '"':
        return '\\"'
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# ---------------------------------------------------------------------------
# Parsing the format
# ---------------------------------------------------------------------------

_SPEC_CHARS: Final = frozenset("-+ #0123456789.*hlL")


def format_keys(fmt: str) -> list[str]:
    """The ``%(name)`` keys of a %-format, in order, without repeats.

    Follows CPython's rules for nested parentheses in keys. A conversion
    without a key is refused: with a mapping argument ``%s`` would print the
    whole mapping.
    """
    keys: dict[str, None] = {}
    end = len(fmt)
    pos = fmt.find("%")
    while pos >= 0:
        pos += 1
        if pos < end and fmt[pos] == "%":
            pos = fmt.find("%", pos + 1)
            continue
        if pos >= end or fmt[pos] != "(":
            raise ValueError(
                f"access_log_format: conversion at index {pos - 1} has no (name); "
                "write %% for a literal percent sign"
            )
        key, pos = _read_key(fmt, pos)
        keys[key] = None
        while pos < end and fmt[pos] in _SPEC_CHARS:
            pos += 1
        pos = fmt.find("%", pos + 1)
    return list(keys)


def _read_key(fmt: str, pos: int) -> tuple[str, int]:
    # pos is at "("; returns the key and the index after its ")".
    depth = 0
    for index in range(pos, len(fmt)):
        char = fmt[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return fmt[pos + 1 : index], index + 1
    raise ValueError(f"access_log_format: unclosed key at index {pos}")


# ---------------------------------------------------------------------------
# Atoms
# ---------------------------------------------------------------------------

_REFERER: Final = b"referer"
_USER_AGENT: Final = b"user-agent"
_AUTHORIZATION: Final = b"authorization"


class _Line:
    """Per-line scratch: the headers the format needs, found in one pass."""

    __slots__ = ("_environ", "info", "joined", "last", "scope")

    def __init__(
        self,
        info: AccessInfo,
        wanted: frozenset[bytes],
        joins: frozenset[bytes],
    ) -> None:
        scope = info.scope
        self.info = info
        self.scope = scope
        # Referer, User-Agent and Authorization are read as gunicorn reads
        # them from its environ, repeats joined with ","; {name}i atoms take
        # the last value, as gunicorn's dict of request headers does.
        joined: dict[bytes, bytes] = {}
        last: dict[bytes, bytes] = {}
        if wanted:
            for name, value in scope.get("headers", ()):
                if name in wanted:
                    last[name] = value
                    if name in joins:
                        previous = joined.get(name)
                        joined[name] = value if previous is None else previous + b"," + value
        self.joined = joined
        self.last = last
        self._environ: dict[str, Any] | None = None

    def environ(self) -> dict[str, Any]:
        environ = self._environ
        if environ is None:
            environ = {k.lower(): v for k, v in build_environ(self.scope).items()}
            self._environ = environ
        return environ


Getter = Callable[[_Line], object]


def _micros(line: _Line) -> int:
    return round(line.info.duration * 1_000_000)


def _seconds_text(line: _Line) -> object:
    seconds, micros = divmod(_micros(line), 1_000_000)
    return f"{seconds}.{micros:06d}"


def _client(line: _Line) -> object:
    client = line.scope.get("client")
    return escape_text(str(client[0])) if client else "-"


def _user(line: _Line) -> object:
    user = _basic_auth_user(line.joined.get(_AUTHORIZATION))
    return escape_text(user) if user else "-"


def _basic_auth_user(value: bytes | None) -> str | None:
    # gunicorn's Logger._get_user, on bytes: the prefix test is as loose as
    # its ("Basicfoo x" passes), and b64decode skips non-alphabet bytes.
    if not value or not value.lower().startswith(b"basic"):
        return None
    parts = value.split(b" ", 1)
    if len(parts) != 2:
        return None
    try:
        return binascii.a2b_base64(parts[1].strip()).split(b":", 1)[0].decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _request_line(line: _Line) -> object:
    return _request_text(line.scope)


def _request_text(scope: Mapping[str, Any]) -> str:
    return _request_parts_text(scope.get("method", ""), raw_path(scope),
                               scope.get("query_string", b""), scope.get("http_version", "1.1"))


def _request_parts_text(method: str, path: bytes, query: bytes, version: str) -> str:
    target = escape_bytes(path)
    if query:
        target = target + "?" + escape_bytes(query)
    return f"{_token(method)} {target} {_token(protocol_text(version))}"


class _EscapeCache(dict[Any, str]):
    """Escaped log text by key, made on a miss; emptied when full, so a flood of unique
    values cannot grow it, and only short texts are kept. A hit is a plain dict lookup."""

    def __init__(self, make: Callable[[Any], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Any) -> str:
        text = self.make(key)
        if len(text) <= _CACHED_TEXT_MAX:
            if len(self) >= _CACHE_SIZE:
                self.clear()
            self[key] = text
        return text


# Methods and HTTP versions repeat endlessly; escaping each once saves work on
# every line. Bounded, since a client can invent methods.
_TOKENS: dict[str, str] = {}


def _token(value: str) -> str:
    escaped = _TOKENS.get(value)
    if escaped is None:
        escaped = escape_text(value)
        if len(_TOKENS) < 64:
            _TOKENS[value] = escaped
    return escaped


def _path(line: _Line) -> object:
    # gunicorn logs PATH_INFO, which leaves out SCRIPT_NAME; an ASGI path
    # includes root_path. Decoded text, not gunicorn's latin-1 mojibake.
    path: str = line.scope.get("path", "")
    root: str = line.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return escape_text(path)


def _header(name: bytes, joined: bool) -> Getter:
    def getter(line: _Line) -> object:
        value = (line.joined if joined else line.last).get(name)
        return "-" if value is None else escape_bytes(value)

    return getter


def _response_header(name: bytes) -> Getter:
    def getter(line: _Line) -> object:
        found: bytes | None = None
        for key, value in line.info.response_headers:
            if key.lower() == name:
                found = value
        return "-" if found is None else escape_bytes(found)

    return getter


def _environ_var(name: str) -> Getter:
    def getter(line: _Line) -> object:
        value = line.environ().get(name, "-")
        return escape_text(value) if isinstance(value, str) else value

    return getter


def _clf_text(second: int) -> str:
    """A second in gunicorn's ``%(t)s`` format."""
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second))


def _clf_time() -> Getter:
    """The request's end time, in gunicorn's format (strftime runs once per second)."""
    # gunicorn stamps a line with the time it is written; start + duration is
    # that moment without a clock call.
    cached_second = -1
    cached_text = ""

    def getter(line: _Line) -> str:
        nonlocal cached_second, cached_text
        info = line.info
        second = int(info.start_time + info.duration)
        if second != cached_second:
            cached_second, cached_text = second, _clf_text(second)
        return cached_text

    return getter


def _fixed_atoms() -> dict[str, tuple[Getter, object]]:
    # key -> (getter, sample value of the type the getter returns)
    return {
        "h": (_client, "xx"),
        "l": (lambda line: "-", "xx"),
        "u": (_user, "xx"),
        "t": (_clf_time(), "xx"),
        "r": (_request_line, "xx"),
        "m": (lambda line: _token(line.scope.get("method", "")), "xx"),
        "U": (_path, "xx"),
        "q": (lambda line: escape_bytes(line.scope.get("query_string", b"")), "xx"),
        "H": (lambda line: _token(protocol_text(line.scope.get("http_version", "1.1"))), "xx"),
        "s": (lambda line: str(line.info.status), "xx"),
        "b": (lambda line: str(line.info.bytes_sent), "xx"),
        "B": (lambda line: line.info.bytes_sent, 1),
        "f": (_header(_REFERER, joined=True), "xx"),
        "a": (_header(_USER_AGENT, joined=True), "xx"),
        "T": (lambda line: _micros(line) // 1_000_000, 1),
        "D": (_micros, 1),
        "M": (lambda line: _micros(line) // 1000, 1),
        "L": (_seconds_text, "xx"),
        "p": (lambda line: f"<{os.getpid()}>", "xx"),
    }


_JOINED_FOR: Final = {"u": _AUTHORIZATION, "f": _REFERER, "a": _USER_AGENT}


def _brace_atom(key: str) -> tuple[Getter, bytes | None]:
    # gunicorn lower-cases "{...}x" keys before looking them up (SafeAtoms).
    lowered = key.lower()
    inner, kind = lowered[1:-2], lowered[-2:]
    if kind == "}i":
        name = inner.encode("latin-1")
        return _header(name, joined=False), name
    if kind == "}o":
        return _response_header(inner.encode("latin-1")), None
    if kind == "}e":
        return _environ_var(inner), None
    return (lambda line: "-"), None


# ---------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------


_CACHE_SIZE = 1024
#: Longer texts are not cached: a cache of long header values would hold megabytes.
_CACHED_TEXT_MAX = 512
#: Seconds the default format's line cache stays off after a second it did not pay.
LINE_CACHE_RETRY = 10

#: Gunicorn's default ``access_log_format``: it gets a formatter written out by hand.
DEFAULT_FORMAT: Final = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def compile_access_format(fmt: str) -> Callable[[AccessInfo], str]:
    """Parse ``fmt`` once; the returned function computes only the atoms it uses.

    Unknown atoms print "-", as in gunicorn. Raises ValueError when the format
    cannot be applied (bad syntax, or a conversion that does not fit its atom,
    such as ``%(h)d``); gunicorn would only find out on every request.
    """
    if fmt == DEFAULT_FORMAT:
        return _default_formatter()
    fixed = _fixed_atoms()
    getters: list[tuple[str, Getter]] = []
    samples: dict[str, object] = {}
    wanted: set[bytes] = set()
    joins: set[bytes] = set()
    for key in format_keys(fmt):
        if key in fixed:
            getter, samples[key] = fixed[key]
            if key in _JOINED_FOR:
                joins.add(_JOINED_FOR[key])
        elif key.startswith("{") and len(key) > 3:
            getter, header = _brace_atom(key)
            samples[key] = "xx"
            if header is not None:
                wanted.add(header)
        else:
            getter, samples[key] = (lambda line: "-"), "xx"
        getters.append((key, getter))
    _check_applies(fmt, samples)
    return _formatter(fmt, tuple(getters), frozenset(wanted | joins), frozenset(joins))


def _default_formatter() -> Callable[[AccessInfo], str]:
    """The default format in one function: one pass over the headers, no per-atom calls.

    Most deployments log with the default format, and through the generic path
    the line would cost a good part of a small request. Same output as the
    generic path (the unit tests compare both with gunicorn's own).
    """
    clf_second = -1
    clf_text = ""
    # A busy worker often writes the same line many times a second (one route, status and
    # size, from one proxy or client): whole lines are kept by everything they show but the
    # time, for a second. Kept only while that pays: a second in which fewer lines were
    # repeated than made switches it off for LINE_CACHE_RETRY seconds.
    made: dict[tuple[object, ...], str] = {}
    repeated = missed = 0
    caching = True
    retry_at = 0
    # Request lines, header values and client addresses repeat for longer: their escaped text
    # is kept too. All bounded.
    lines = _EscapeCache(lambda key: _request_parts_text(*key))
    values = _EscapeCache(escape_bytes)
    hosts = _EscapeCache(lambda host: escape_text(str(host)))
    logged = frozenset((_REFERER, _USER_AGENT, _AUTHORIZATION))

    def format_line(info: AccessInfo) -> str:
        nonlocal clf_second, clf_text, repeated, missed, caching, retry_at
        scope = info.scope
        referer = agent = auth = None
        for name, value in scope["headers"]:
            if name not in logged:
                continue
            if name == _REFERER:
                referer = value if referer is None else referer + b"," + value
            elif name == _USER_AGENT:
                agent = value if agent is None else agent + b"," + value
            else:
                auth = value if auth is None else auth + b"," + value
        second = int(info.start_time + info.duration)
        if second != clf_second:
            clf_second, clf_text = second, _clf_text(second)
            if repeated < missed:
                caching = False
                retry_at = second + LINE_CACHE_RETRY
            elif not caching and second >= retry_at:
                caching = True
            made.clear()
            repeated = missed = 0
        client = scope["client"]
        host = client[0] if client else None
        status = info.status
        sent = info.bytes_sent
        key = None
        if caching:
            key = (host, scope["method"], scope["raw_path"], scope["query_string"],
                   scope["http_version"], status, sent, referer, agent, auth)
            line = made.get(key)
            if line is not None:
                repeated += 1
                return line
            missed += 1
        user = _basic_auth_user(auth) if auth is not None else None
        request_line = lines[scope["method"], scope["raw_path"], scope["query_string"],
                             scope["http_version"]]
        line = (
            f"{'-' if host is None else hosts[host]} - "
            f"{escape_text(user) if user else '-'} {clf_text} "
            f'"{request_line}" {status} {sent} '
            f'"{"-" if referer is None else values[referer]}" '
            f'"{"-" if agent is None else values[agent]}"'
        )
        # The key holds what the line shows, and the Authorization value, which it does not.
        if (key is not None and len(line) <= _CACHED_TEXT_MAX and len(made) < _CACHE_SIZE
                and (auth is None or len(auth) <= _CACHED_TEXT_MAX)):
            made[key] = line
        return line

    return format_line


def _check_applies(fmt: str, samples: dict[str, object]) -> None:
    try:
        fmt % samples
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"access_log_format {fmt!r} is not usable: {exc}") from None


def _formatter(
    fmt: str,
    getters: tuple[tuple[str, Getter], ...],
    wanted: frozenset[bytes],
    joins: frozenset[bytes],
) -> Callable[[AccessInfo], str]:
    def format_line(info: AccessInfo) -> str:
        line = _Line(info, wanted, joins)
        return fmt % {key: getter(line) for key, getter in getters}

    return format_line
