"""Unit tests for asgi_worker.accesslog and asgi_worker.hookobjects.

The reference is gunicorn itself: its request parser and ``wsgi.create`` build
the request, response and environ for the same bytes, and its ``Logger.atoms``
produce the line our compiled format has to reproduce.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]
from gunicorn.glogging import Logger  # type: ignore[import-untyped]
from gunicorn.http import wsgi  # type: ignore[import-untyped]
from gunicorn.http.parser import RequestParser  # type: ignore[import-untyped]
from gunicorn.instrument.statsd import Statsd  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from asgi_worker.accessformat import (
    compile_access_format,
    escape_bytes,
    escape_text,
    format_keys,
)
from asgi_worker.accesslog import AccessLogger
from asgi_worker.hookobjects import (
    HookRequest,
    HookResponse,
    build_environ,
    raw_uri,
    request_time,
)

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
EVERY_ATOM = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s "%(f)s" "%(a)s" '
    "%(T)s %(D)s %(M)s %(L)s %(p)s %({x-request-id}i)s %({X-Request-Id}i)s %({accept}i)s "
    "%({content-type}o)s %({Content-Length}o)s %({x-missing}o)s %({REMOTE_ADDR}e)s "
    "%({http_host}e)s %({QUERY_STRING}e)s %({nothing}e)s %(zz)s %({nope}i)s %({odd}x)s"
)


@dataclass
class Info:
    """A finished request as the request cycle reports it."""

    scope: dict[str, Any]
    status: int = 200
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    bytes_sent: int = 0
    start_time: float = field(default_factory=time.time)
    duration: float = 0.0


def make_scope(
    raw_path: bytes = b"/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    path: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path if path is not None else raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers or [],
        "client": ("10.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(extra)
    return scope


# ---------------------------------------------------------------------------
# gunicorn as the reference
# ---------------------------------------------------------------------------


class _NoSocket:
    def send(self, data: bytes) -> None:  # 100-continue would go here
        pass


@pytest.fixture
def gunicorn_log(tmp_path: Path) -> Iterator[tuple[Logger, Path]]:
    cfg = Config()
    access = tmp_path / "access.log"
    cfg.set("accesslog", str(access))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    log = Logger(cfg)
    yield log, access
    _close_handlers()


def _close_handlers() -> None:
    for name in ("gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)


def gunicorn_line(
    log: Logger,
    fmt: str,
    raw_request: bytes,
    status: str,
    response_headers: list[tuple[str, str]],
    sent: int,
    duration: timedelta,
    when: float,
) -> str:
    cfg = log.cfg
    req = next(iter(RequestParser(cfg, [raw_request], ("10.0.0.1", 5555))))
    resp, environ = wsgi.create(req, _NoSocket(), ("10.0.0.1", 5555), ("127.0.0.1", 8000), cfg)
    resp.start_response(status, response_headers)
    resp.sent = sent
    atoms = log.atoms(resp, req, environ, duration)
    # gunicorn stamps the time of writing; pin it to the same second as ours.
    atoms["t"] = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(int(when)))
    return str(fmt % log.atoms_wrapper_class(atoms))


RAW_REQUEST = (
    b"POST /a%20b/c%2Fd?x=1&y=%22q%22&z HTTP/1.1\r\n"
    b"Host: example.com:8000\r\n"
    b'User-Agent: Mozilla/5.0 "quoted" \\ back\r\n'
    b"User-Agent: second\r\n"
    b"Referer: http://ref.example/\r\n"
    b"Authorization: Basic dXNlcjpwYXNz\r\n"
    b"X-Request-Id: abc\r\n"
    b"X-Request-Id: def\r\n"
    b"Accept: */*\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
SCOPE_FOR_RAW = make_scope(
    raw_path=b"/a%20b/c%2Fd",
    path="/a b/c/d",
    query=b"x=1&y=%22q%22&z",
    method="POST",
    headers=[
        (b"host", b"example.com:8000"),
        (b"user-agent", b'Mozilla/5.0 "quoted" \\ back'),
        (b"user-agent", b"second"),
        (b"referer", b"http://ref.example/"),
        (b"authorization", b"Basic dXNlcjpwYXNz"),
        (b"x-request-id", b"abc"),
        (b"x-request-id", b"def"),
        (b"accept", b"*/*"),
        (b"content-length", b"0"),
    ],
)


@pytest.mark.parametrize("fmt", [DEFAULT_FORMAT, EVERY_ATOM])
@pytest.mark.parametrize("duration", [0.0, 0.000_5, 1.234_567, 62.000_001])
def test_matches_gunicorn(gunicorn_log: tuple[Logger, Path], fmt: str, duration: float) -> None:
    log, _ = gunicorn_log
    start = time.time()
    info = Info(
        SCOPE_FOR_RAW,
        status=201,
        response_headers=[(b"Content-Type", b"text/plain"), (b"content-length", b"5")],
        bytes_sent=5,
        start_time=start,
        duration=duration,
    )
    ours = compile_access_format(fmt)(info)
    theirs = gunicorn_line(
        log,
        fmt,
        RAW_REQUEST,
        "201 Created",
        [("Content-Type", "text/plain"), ("content-length", "5")],
        5,
        request_time(duration),
        start + duration,
    )
    # U is the one deliberate difference: gunicorn logs WSGI PATH_INFO
    # ("/a b/c/d" here too, but as latin-1 text for non-ASCII paths).
    assert ours == theirs


def test_every_atom_values() -> None:
    info = Info(
        SCOPE_FOR_RAW,
        status=201,
        response_headers=[(b"Content-Type", b"text/plain")],
        bytes_sent=5,
        start_time=1_700_000_000.25,
        duration=1.5,
    )
    line = compile_access_format(EVERY_ATOM)(info)
    stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(1_700_000_001))
    expected = (
        f'10.0.0.1 - user {stamp} "POST /a%20b/c%2Fd?x=1&y=%22q%22&z HTTP/1.1" POST /a b/c/d '
        'x=1&y=%22q%22&z HTTP/1.1 201 5 5 "http://ref.example/" '
        '"Mozilla/5.0 \\"quoted\\" \\ back,second" '
        f"1 1500000 1500 1.500000 <{os.getpid()}> def def */* text/plain - - 10.0.0.1 "
        "example.com:8000 x=1&y=%22q%22&z - - - -"
    )
    assert line == expected


def test_time_atom_is_clf() -> None:
    info = Info(make_scope(), start_time=1_700_000_000.9, duration=0.2)
    line = compile_access_format("%(t)s")(info)
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", line)
    assert line == time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(1_700_000_001))


def test_missing_values_are_dashes() -> None:
    scope = make_scope(client=None)
    fmt = '%(h)s %(u)s "%(f)s" "%(a)s" %({x}i)s %({x}o)s %({x}e)s %(b)s %(B)s'
    assert compile_access_format(fmt)(Info(scope)) == '- - "-" "-" - - - 0 0'


def test_no_client_matches_environ() -> None:
    environ = build_environ(make_scope(client=None))
    assert "REMOTE_ADDR" not in environ
    assert compile_access_format("%({remote_addr}e)s")(Info(make_scope(client=None))) == "-"


@pytest.mark.parametrize(
    ("authorization", "user"),
    [
        (b"Basic dXNlcjpwYXNz", "user"),
        (b"basic dXNlcjpwYXNz", "user"),
        (b"Basic  dXNlcjpwYXNz ", "user"),
        (b"Basic dXNlcg==", "user"),
        (b"Basic w6lsw6huZTpwdw==", "\u00e9l\u00e8ne"),
        (b"Basic !!!", "-"),
        (b"Basic", "-"),
        (b"Bearer dXNlcjpwYXNz", "-"),
        (b"Basic OnB3", "-"),  # empty user name
        (b"Basic /w==", "-"),  # not UTF-8
        (b"Basic IhtbMzFtIjp4", '\\"\\x1b[31m\\"'),  # "\x1b[31m":x
    ],
)
def test_user_atom(authorization: bytes, user: str) -> None:
    info = Info(make_scope(headers=[(b"authorization", authorization)]))
    assert compile_access_format("%(u)s")(info) == user


# ---------------------------------------------------------------------------
# Escaping
# ---------------------------------------------------------------------------


def test_request_line_with_terminal_escape_and_newline() -> None:
    scope = make_scope(
        raw_path=b"/\x1b[31mred\n127.0.0.1 - - fake",
        path="/\x1b[31mred\n127.0.0.1 - - fake",
        query=b"a=\r\x00\x7f\x9b\xff",
    )
    line = compile_access_format('"%(r)s" %(U)s %(q)s')(Info(scope))
    assert line == (
        '"GET /\\x1b[31mred\\x0a127.0.0.1 - - fake?a=\\x0d\\x00\\x7f\\x9b\\xff HTTP/1.1" '
        "/\\x1b[31mred\\x0a127.0.0.1 - - fake a=\\x0d\\x00\\x7f\\x9b\\xff"
    )
    assert line.isprintable()


def test_headers_are_escaped_in_every_atom() -> None:
    evil = b'x"\x1b]0;title\x07\n'
    scope = make_scope(
        headers=[
            (b"user-agent", evil),
            (b"referer", evil),
            (b"x-a", evil),
            (b"authorization", b"Basic Chs6eA=="),  # "\n\x1b":x
        ],
        client=("\x1bhost", 1),
    )
    info = Info(scope, response_headers=[(b"x-b", evil)])
    line = compile_access_format("%(h)s %(u)s %(a)s %(f)s %({x-a}i)s %({x-b}o)s %({http_x_a}e)s")(
        info
    )
    escaped = 'x\\"\\x1b]0;title\\x07\\x0a'
    assert line == " ".join(["\\x1bhost", "\\x0a\\x1b", *[escaped] * 5])
    assert line.isprintable()


def test_default_format_escapes_like_the_generic_path() -> None:
    # The default format has a formatter of its own, with caches for the client, the request
    # line and header values: a hostile value must come out as the generic path writes it.
    evil = b'x"\x1b]0;title\x07\n'
    scope = make_scope(
        raw_path=b'/a"\x1b',
        headers=[(b"user-agent", evil), (b"referer", evil),
                 (b"authorization", b"Basic Chs6eA==")],
        client=('\x1bhost"', 1),
    )
    info = Info(scope)
    default = compile_access_format(DEFAULT_FORMAT)
    generic = compile_access_format(DEFAULT_FORMAT + " ")  # not the same string: generic path
    for _ in range(2):  # the second line comes out of the caches
        line = default(info)
        assert line == generic(info)[:-1]
        assert line.startswith('\\x1bhost\\" - \\x0a\\x1b [')
        assert line.isprintable()


def test_default_format_line_cache_tells_every_field_apart() -> None:
    # The default formatter keeps whole lines for a second, by everything the line shows but
    # the time: a request that differs from a cached one in any single field (or a second
    # later) must get its own line, as the generic path writes it.
    now = 1_700_000_000.25
    base = {"method": "GET", "raw_path": b"/a", "query": b"q=1", "http_version": "1.1",
            "client": ("10.0.0.1", 1),
            "headers": [(b"user-agent", b"ua"), (b"referer", b"r"),
                        (b"authorization", b"Basic " + base64.b64encode(b"ann:pw"))]}
    changes: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({}, {}),
        ({"method": "POST"}, {}),
        ({"raw_path": b"/b"}, {}),
        ({"query": b"q=2"}, {}),
        ({"query": b""}, {}),
        ({"http_version": "1.0"}, {}),
        ({"client": ("10.0.0.2", 1)}, {}),
        ({"client": None}, {}),
        ({"headers": [(b"user-agent", b"ub"), *base["headers"][1:]]}, {}),
        ({"headers": [*base["headers"][:1], (b"referer", b"s"), *base["headers"][2:]]}, {}),
        ({"headers": [*base["headers"][:2],
                      (b"authorization", b"Basic " + base64.b64encode(b"bob:pw"))]}, {}),
        ({"headers": [*base["headers"], (b"user-agent", b"again")]}, {}),
        ({"headers": []}, {}),
        ({}, {"status": 404}),
        ({}, {"bytes_sent": 99}),
        ({}, {"start_time": now + 1}),
        ({}, {"start_time": now + 61}),
    ]
    default = compile_access_format(DEFAULT_FORMAT)
    generic = compile_access_format(DEFAULT_FORMAT + " ")  # not the same string: generic path
    def info_for(scope_change: dict[str, Any], info_change: dict[str, Any]) -> Info:
        fields = {**base, **scope_change}
        scope = make_scope(raw_path=fields.pop("raw_path"), query=fields.pop("query"), **fields)
        return Info(scope, **{"bytes_sent": 12, "start_time": now, **info_change})

    seen: set[str] = set()
    for scope_change, info_change in changes:
        info = info_for(scope_change, info_change)
        for _ in range(2):  # the second line comes out of the cache
            assert default(info) == generic(info)[:-1], (scope_change, info_change)
        seen.add(default(info))
    assert len(seen) == len(changes)  # every change shows in the line
    # And back to the first request: its line for the second it is now in.
    info = info_for({}, {})
    assert default(info) == generic(info)[:-1]


def test_default_format_keeps_logging_when_lines_never_repeat() -> None:
    # Lines that never repeat switch the line cache off for a while and on again: the output
    # is the same either way, and long lines are never kept.
    default = compile_access_format(DEFAULT_FORMAT)
    generic = compile_access_format(DEFAULT_FORMAT + " ")
    start = 1_700_000_000.5
    for second in range(14):
        for number in range(3):
            size = number if second in (5, 12) else second * 10 + number
            info = Info(make_scope(raw_path=b"/" + b"x" * (number * 400)), bytes_sent=size,
                        start_time=start + second)
            assert default(info) == generic(info)[:-1]

def test_escape_helpers() -> None:
    assert escape_bytes(b"plain text / ok") == "plain text / ok"
    assert escape_bytes(b'a"b') == 'a\\"b'
    assert escape_bytes(b"\\x41") == "\\x41"  # gunicorn leaves backslashes alone
    assert escape_bytes(b"caf\xc3\xa9") == "caf\\xc3\\xa9"
    assert escape_text("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"
    assert escape_text("a\tb\u2028c\U000e0001\udcff") == "a\\x09b\\u2028c\\U000e0001\\udcff"
    assert escape_text('say "hi"') == 'say \\"hi\\"'


def test_non_ascii_path_is_logged_as_text() -> None:
    scope = make_scope(raw_path=b"/caf%C3%A9", path="/caf\u00e9")
    assert compile_access_format("%(U)s %(r)s")(Info(scope)) == (
        "/caf\u00e9 GET /caf%C3%A9 HTTP/1.1"
    )


def test_path_atom_leaves_out_root_path() -> None:
    scope = make_scope(raw_path=b"/app/items", root_path="/app")
    assert compile_access_format("%(U)s")(Info(scope)) == "/items"
    assert build_environ(scope)["PATH_INFO"] == "/items"
    assert build_environ(scope)["SCRIPT_NAME"] == "/app"


@given(
    raw_path=st.binary(max_size=40),
    path=st.text(max_size=40),
    query=st.binary(max_size=20),
    value=st.binary(max_size=40),
    user=st.binary(max_size=20),
)
def test_any_input_gives_a_printable_line(
    raw_path: bytes, path: str, query: bytes, value: bytes, user: bytes
) -> None:
    scope = make_scope(
        raw_path=raw_path,
        path=path,
        query=query,
        headers=[
            (b"user-agent", value),
            (b"x-a", value),
            (b"authorization", b"Basic " + base64.b64encode(user + b":pw")),
        ],
    )
    info = Info(scope, response_headers=[(b"x-b", value)])
    line = compile_access_format(EVERY_ATOM)(info)
    assert line.isprintable()


# ---------------------------------------------------------------------------
# Parsing the format
# ---------------------------------------------------------------------------


def test_format_keys() -> None:
    assert format_keys(DEFAULT_FORMAT) == ["h", "l", "u", "t", "r", "s", "b", "f", "a"]
    assert format_keys("%(h)s %(h)s 100%% %({a(b)c}i)-10s %(D)06d") == [
        "h",
        "{a(b)c}i",
        "D",
    ]
    assert format_keys("no atoms at all") == []


@pytest.mark.parametrize(
    "fmt",
    [
        "%s",  # positional: would print the whole mapping
        "%(h)s %s",
        "%(h",
        "%(h)d",  # h is text
        "%(B)s %(h)",  # incomplete
        "%(h)s %",
        "%(h)*s",
        "%(h)y",
    ],
)
def test_invalid_formats(fmt: str) -> None:
    with pytest.raises(ValueError, match="access_log_format"):
        compile_access_format(fmt)


def test_format_conversions() -> None:
    info = Info(make_scope(), bytes_sent=42, duration=0.25)
    assert compile_access_format("%(B)05d|%(D)x|%(s)4s|%(h).4s|%%")(info) == (
        "00042|3d090| 200|10.0|%"
    )
    assert compile_access_format("literal only")(info) == "literal only"


# ---------------------------------------------------------------------------
# Hook objects against gunicorn's own
# ---------------------------------------------------------------------------


def test_hook_request_matches_gunicorn_request() -> None:
    cfg = Config()
    theirs = next(iter(RequestParser(cfg, [RAW_REQUEST], ("10.0.0.1", 5555))))
    ours = HookRequest(SCOPE_FOR_RAW)
    for attr in ("method", "uri", "path", "query", "fragment", "version", "headers", "scheme"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.remote_addr == theirs.remote_addr
    assert ours.should_close() == theirs.should_close()
    assert ours.body is None
    assert ours.scope is SCOPE_FOR_RAW


def test_environ_matches_gunicorn_environ() -> None:
    cfg = Config()
    req = next(iter(RequestParser(cfg, [RAW_REQUEST], ("10.0.0.1", 5555))))
    _, theirs = wsgi.create(req, _NoSocket(), ("10.0.0.1", 5555), ("127.0.0.1", 8000), cfg)
    ours = build_environ(SCOPE_FOR_RAW)
    shared = {k for k in theirs if k.isupper()} - {"SERVER_SOFTWARE"} | {"wsgi.url_scheme"}
    assert {k: ours.get(k) for k in shared} == {k: theirs[k] for k in shared}
    assert ours["asgi.scope"] is SCOPE_FOR_RAW


def test_hook_request_details() -> None:
    scope = make_scope(
        raw_path=b"/x",
        query=b"q=1",
        scheme="wss",
        http_version="1.0",
        client=None,
        headers=[(b"connection", b"keep-alive"), (b"x-\xdf", b"\xe9")],
    )
    req = HookRequest(scope, req_number=3)
    assert req.uri == "/x?q=1"
    assert req.scheme == "https"
    assert req.version == (1, 0)
    assert req.remote_addr == ""
    assert req.req_number == 3
    assert req.headers == [("CONNECTION", "keep-alive"), ("X-\u00df", "\u00e9")]
    assert not req.should_close()
    assert HookRequest(make_scope(http_version="2")).version == (2, 0)


def test_raw_uri_without_raw_path() -> None:
    scope = make_scope(path="/caf\u00e9 x", query=b"a=1")
    del scope["raw_path"]
    assert raw_uri(scope) == b"/caf%C3%A9%20x?a=1"


def test_environ_on_unix_socket_uses_host() -> None:
    env = build_environ(make_scope(server=None, headers=[(b"host", b"example.com")]))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "80")
    env = build_environ(make_scope(server=None, scheme="https", headers=[(b"host", b"[::1]:8443")]))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", "8443")
    env = build_environ(make_scope(server=None))
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("", "")


def test_environ_special_headers() -> None:
    env = build_environ(
        make_scope(
            headers=[
                (b"content-type", b"text/plain"),
                (b"content-length", b"3"),
                (b"x-forwarded-for", b"a"),
                (b"x-forwarded-for", b"b"),
            ]
        )
    )
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_X_FORWARDED_FOR"] == "a,b"


def test_hook_response() -> None:
    resp = HookResponse(404, [(b"Content-Length", b"9"), (b"x-a", b"\xe9")], 9)
    assert resp.status == "404 Not Found"
    assert resp.status_code == 404
    assert resp.headers == [("Content-Length", "9"), ("x-a", "\u00e9")]
    assert resp.sent == 9
    assert resp.response_length == 9
    assert HookResponse(599, [], 0).status == "599"
    assert HookResponse(200, [], 0).response_length is None


def test_request_time() -> None:
    assert request_time(1.234_567_4) == timedelta(seconds=1, microseconds=234_567)
    assert request_time(0.0) == timedelta(0)


# ---------------------------------------------------------------------------
# AccessLogger with gunicorn's real loggers
# ---------------------------------------------------------------------------


def _read(path: Path) -> list[str]:
    for handler in logging.getLogger("gunicorn.access").handlers:
        handler.flush()
    return path.read_text().splitlines()


def _info() -> Info:
    return Info(
        SCOPE_FOR_RAW,
        status=200,
        response_headers=[(b"content-type", b"text/html")],
        bytes_sent=1234,
        start_time=time.time(),
        duration=0.0123,
    )


def test_fast_path_writes_the_compiled_line(gunicorn_log: tuple[Logger, Path]) -> None:
    log, access = gunicorn_log
    info = _info()
    logger = AccessLogger(log, DEFAULT_FORMAT, enabled=True, fast=True)
    assert logger.active
    logger.record(info)
    assert _read(access) == [compile_access_format(DEFAULT_FORMAT)(info)]


def test_fast_line_with_percent_signs_is_not_reformatted(
    gunicorn_log: tuple[Logger, Path],
) -> None:
    log, access = gunicorn_log
    info = Info(make_scope(raw_path=b"/%s%(h)s%%", query=b"a=%d"))
    AccessLogger(log, '"%(r)s"', enabled=True, fast=True).record(info)
    assert _read(access) == ['"GET /%s%(h)s%%?a=%d HTTP/1.1"']


def test_slow_path_goes_through_logger_access(gunicorn_log: tuple[Logger, Path]) -> None:
    log, access = gunicorn_log
    log.cfg.set("access_log_format", EVERY_ATOM.replace("%(t)s ", ""))
    info = _info()
    AccessLogger(log, log.cfg.access_log_format, enabled=True, fast=False).record(info)
    AccessLogger(log, log.cfg.access_log_format, enabled=True, fast=True).record(info)
    slow, fast = _read(access)
    # Same line either way (pids and durations agree; the time atom is left out).
    assert slow == fast


def test_slow_path_reuses_prebuilt_hook_objects(gunicorn_log: tuple[Logger, Path]) -> None:
    log, access = gunicorn_log
    log.cfg.set("access_log_format", "%(m)s %({x-hook}e)s")
    info = _info()
    environ = build_environ(info.scope)
    environ["X-HOOK"] = "seen"
    AccessLogger(log, log.cfg.access_log_format, True, False).record(
        info, HookRequest(info.scope), environ
    )
    assert _read(access) == ["POST seen"]


def test_disabled_fast_logger_does_nothing(gunicorn_log: tuple[Logger, Path]) -> None:
    log, access = gunicorn_log
    logger = AccessLogger(log, "%(h)d is never compiled", enabled=False, fast=True)
    assert not logger.active
    logger.record(_info())
    assert _read(access) == []


def test_statsd_sees_every_request(tmp_path: Path) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    try:
        cfg = Config()
        cfg.set("statsd_host", f"127.0.0.1:{receiver.getsockname()[1]}")
        cfg.set("errorlog", str(tmp_path / "error.log"))
        log = Statsd(cfg)
        # No access log configured: statsd still counts, as with WSGI workers.
        logger = AccessLogger(log, DEFAULT_FORMAT, enabled=False, fast=False)
        assert logger.active
        logger.record(Info(make_scope(), status=503, duration=0.25))
        packets = {receiver.recv(512) for _ in range(3)}
    finally:
        receiver.close()
        _close_handlers()
    assert packets == {
        b"gunicorn.request.duration:250.0|ms",
        b"gunicorn.requests:1|c|@1.0",
        b"gunicorn.request.status.503:1|c|@1.0",
    }


class _Broken:
    @property
    def scope(self) -> dict[str, Any]:
        raise RuntimeError("boom")


def test_errors_are_reported_once_and_not_raised(gunicorn_log: tuple[Logger, Path]) -> None:
    log, access = gunicorn_log
    error_log = Path(log.cfg.errorlog)
    for fast in (True, False):
        logger = AccessLogger(log, DEFAULT_FORMAT, enabled=True, fast=fast)
        logger.record(_Broken())  # type: ignore[arg-type]
        logger.record(_Broken())  # type: ignore[arg-type]
        logger.record(_info())
    for handler in logging.getLogger("gunicorn.error").handlers:
        handler.flush()
    errors = error_log.read_text()
    assert errors.count("Error writing the access log") == 2
    assert errors.count("RuntimeError: boom") == 2
    assert len(_read(access)) == 2
