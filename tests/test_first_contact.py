"""What a new user meets on day one: settings, start-up failures, kills, the wrong app, limits."""

from __future__ import annotations

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
