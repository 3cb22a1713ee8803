"""What a new user meets on day one: settings, start-up failures, kills, the wrong app, limits."""

from __future__ import annotations

import functools
from pathlib import Path

import httpx
import pytest

from tests.rawhttp import connect, read_until_close

# -- worker_connections = 0 -------------------------------------------------------------------


def test_worker_connections_zero_means_no_limit(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.first_contact:app", "--worker-connections", "0",
                       worker=worker_class)
    assert "asgi_worker: worker_connections=0: no limit on simultaneous connections" in srv.log()
    with connect(srv.port, timeout=10) as held:
        held.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"first;" not in head:
            head += held.recv(4096)
        # The held request is in flight; a second connection is still served.
        assert httpx.get(srv.url + "/fast", timeout=10).text == "fast"


# -- 413: one name, and a log line that says which limit ---------------------------------------


def test_body_over_the_limit_is_one_named_413_and_the_log_names_the_limit(  # type: ignore[no-untyped-def]
        start_server, worker_class) -> None:
    srv = start_server("tests.apps.basic:app", worker=worker_class,
                       env={"ASGI_WORKER_MAX_BODY_SIZE": "1000"})
    with connect(srv.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11000000\r\n\r\n")
        answer = read_until_close(sock)
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert answer.endswith(b"\r\n\r\nContent Too Large\n")
    with connect(srv.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"7d0\r\n" + b"x" * 2000 + b"\r\n0\r\n\r\n")
        assert read_until_close(sock).startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    log = srv.log()
    assert ("Invalid request from ip=127.0.0.1: Content-Length 11000000 is over the body limit "
            "of 1000 bytes (ASGI_WORKER_MAX_BODY_SIZE); answered 413 Content Too Large") in log
    assert ("Invalid request from ip=127.0.0.1: the request body is over the body limit of 1000 "
            "bytes (ASGI_WORKER_MAX_BODY_SIZE)") in log


def test_status_lines_carry_rfc_9110_names(server) -> None:  # type: ignore[no-untyped-def]
    for code, phrase in ((413, b"Content Too Large"), (414, b"URI Too Long"),
                         (416, b"Range Not Satisfiable"), (422, b"Unprocessable Content")):
        with connect(server.port) as sock:
            sock.sendall(b"GET /status/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         % code)
            assert read_until_close(sock).startswith(b"HTTP/1.1 %d %s\r\n" % (code, phrase))
    with connect(server.port) as sock:
        sock.sendall(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_close(sock)
    assert answer.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert answer.endswith(b"\r\n\r\nURI Too Long\n")


# -- lifespan startup failure: said once, and Gunicorn stops with 3 ------------------------------


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_lifespan_startup_failure_is_said_once(start_server, worker_class, workers: int) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.first_contact:starlette_startup_fails", worker=worker_class,
                       workers=workers, wait_ready=False)
    assert srv.proc.wait(60) == 3  # Gunicorn's "Worker failed to boot."
    log = srv.log()
    assert log.count("Application startup failed. Exiting. The app's lifespan startup failed "
                     "with:\nTraceback (most recent call last):\n") == 1
    assert log.count("Traceback") == 1
    assert "RuntimeError: database unreachable\n" in log
    assert "Exception in ASGI lifespan" not in log
    assert "; stopping" not in log
    assert "HaltServer" not in log
    assert "Reason: Worker failed to boot." in log


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_setting_stops_gunicorn_with_3_and_no_traceback(start_server,  # type: ignore[no-untyped-def]
                                                              workers: int) -> None:
    srv = start_server("tests.apps.first_contact:app", workers=workers, wait_ready=False,
                       env={"ASGI_WORKER_LIFESPAN": "sometimes"})
    assert srv.proc.wait(30) == 3
    log = srv.log()
    assert log.count("asgi_worker cannot start: ASGI_WORKER_LIFESPAN='sometimes': expected one "
                     "of auto, on, off\n") == 1
    assert "Traceback" not in log


# -- the wrong kind of app ------------------------------------------------------------------


def _asgi_apps() -> list[tuple[str, object]]:
    """ASGI 3 apps of every shape a user may hand over: none of them may pass for WSGI."""
    from django.core.handlers.asgi import ASGIHandler
    from fastapi import FastAPI
    from litestar import Litestar
    from quart import Quart
    from starlette.applications import Starlette
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware

    from tests.apps import basic

    class AsyncCall:
        async def __call__(self, scope: object, receive: object, send: object) -> None: ...

    class SyncCallReturningAwaitable:
        def __call__(self, scope: object, receive: object, send: object) -> object:
            return basic.app(scope, receive, send)  # type: ignore[arg-type]

    class Awaitable:  # ASGI 3 as a class: constructed with the three, then awaited
        def __init__(self, scope: object, receive: object, send: object) -> None: ...

        def __await__(self):  # type: ignore[no-untyped-def]
            yield

    async def three_with_extra(scope: object, receive: object, send: object,
                               *, debug: bool = False) -> None: ...

    starlette = Starlette()
    return [
        ("function", basic.app),
        ("instance with async __call__", AsyncCall()),
        ("sync __call__ returning an awaitable", SyncCallReturningAwaitable()),
        ("class constructed with three", Awaitable),
        ("keyword-only extra", three_with_extra),
        ("partial", functools.partial(three_with_extra, debug=True)),
        ("Django ASGIHandler", ASGIHandler.__new__(ASGIHandler)),
        ("Starlette", starlette),
        ("FastAPI", FastAPI()),
        ("Quart", Quart(__name__)),
        ("Litestar", Litestar([])),
        ("GZipMiddleware(Starlette)", GZipMiddleware(starlette)),
        ("CORSMiddleware(GZipMiddleware(Starlette))",
         CORSMiddleware(GZipMiddleware(starlette), allow_origins=["*"])),
        ("builtin", print),
    ]


def test_asgi_apps_of_every_shape_are_served_as_asgi3() -> None:
    from asgi_worker.application import interface

    wrong = [name for name, app in _asgi_apps() if interface(app) != "asgi3"]
    assert wrong == []


def test_wsgi_and_asgi2_apps_are_told_apart() -> None:
    from asgiref.wsgi import WsgiToAsgi
    from django.core.handlers.wsgi import WSGIHandler
    from flask import Flask

    from asgi_worker.application import interface
    from tests.apps import first_contact

    def three(environ: object, start_response: object, extra: object) -> None: ...

    flask = Flask(__name__)
    assert interface(first_contact.wsgi_app) == "wsgi"
    assert interface(flask) == "wsgi"
    assert interface(WSGIHandler.__new__(WSGIHandler)) == "wsgi"
    assert interface(functools.partial(three, extra=1)) == "wsgi"
    assert interface(WsgiToAsgi(flask)) == "asgi3"  # the wrapped one is ASGI
    assert interface(first_contact.ASGI2App) == "asgi2"
    assert interface(first_contact.asgi2_function) == "asgi2"


def test_a_wsgi_app_is_refused_at_startup_with_what_to_do(start_server) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.first_contact:wsgi_app", workers=2, wait_ready=False)
    assert srv.proc.wait(30) == 3
    log = srv.log()
    assert log.count("asgi_worker cannot serve the app: tests.apps.first_contact:wsgi_app is a "
                     "WSGI application (it takes (environ, start_response)), and asgi_worker "
                     "serves ASGI applications. Serve it with one of Gunicorn's own workers") == 1
    assert "asgi_worker ready" not in log
    assert "Traceback" not in log


@pytest.mark.parametrize("app", ["ASGI2App", "asgi2_function"])
def test_an_asgi2_app_is_served_with_its_lifespan(start_server, worker_class, app: str) -> None:  # type: ignore[no-untyped-def]
    srv = start_server(f"tests.apps.first_contact:{app}", worker=worker_class)
    assert (f"tests.apps.first_contact:{app} is an ASGI 2 (double callable) app: served as "
            "ASGI 3") in srv.log()
    response = httpx.get(srv.url)
    assert response.status_code == 200
    if app == "ASGI2App":
        assert response.text == "asgi2 version=2.0 lifespan=started"
    else:
        assert response.text == "asgi2 function"
        assert "lifespan' protocol appears unsupported" not in srv.log()


# -- the timeout kill of a blocked loop -----------------------------------------------------


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_blocked_loop_is_one_warning_with_the_app_stack_and_one_kill_line(  # type: ignore[no-untyped-def]
        start_server, tmp_path: Path, loop: str) -> None:
    hook_log = tmp_path / "hooks.txt"
    srv = start_server("tests.apps.first_contact:app", "--timeout", "2", "--access-logfile", "-",
                       "-c", "tests/apps/hooks_conf.py",
                       env={"HOOK_LOG": str(hook_log), "ASGI_WORKER_LOOP": loop})
    first = srv.worker_pids()
    # Answered, then the app blocks the loop before the access line's batch is written.
    assert httpx.get(srv.url + "/answer-then-block?8", timeout=10).text == "answered"
    srv.wait_ready(workers=2, timeout=20)  # the replacement
    log = srv.wait_for_log(r"Worker \(pid:\d+\) exited with code 1")
    assert log.count("[WARNING] The event loop has been blocked for ") == 1
    assert log.count("Stack of the code blocking the loop") == 1
    stack = log.split("Stack of the code blocking the loop", 1)[1].split("\n[", 1)[0]
    assert 'tests/apps/first_contact.py", line' in stack.splitlines()[1]  # starts at the app
    assert "time.sleep(" in stack
    assert "arbiter.py" not in log and "spawn_worker" not in log
    assert log.count("[ERROR] Worker timeout: the event loop was blocked for ") == 1
    assert "(stack in the warning above)" in log
    assert "Task exception was never retrieved" not in log
    assert "SystemExit" not in log and "Traceback" not in log
    assert "Worker draining" not in log  # nothing runs after the kill but the cleanup
    assert '"GET /answer-then-block?8 HTTP/1.1" 200 8' in log  # the access line was flushed
    assert f"worker_abort {first[0]}" in hook_log.read_text()
    assert f"worker_exit {first[0]}" in hook_log.read_text()
