"""The worker process: lifespan, timeout kill, arbiter death, sockets, signals."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.rawhttp import connect, read_response
from tests.waiting import wait_until

# -- lifespan ------------------------------------------------------------------------------------


@pytest.mark.parametrize("app", ["startup_failed", "startup_raises"])
def test_lifespan_startup_failure_stops_gunicorn(start_server, worker_class, app: str) -> None:  # type: ignore[no-untyped-def]
    env = {"ASGI_WORKER_LIFESPAN": "on"} if app == "startup_raises" else {}
    srv = start_server(f"tests.apps.lifespans:{app}", worker=worker_class, env=env,
                       wait_ready=False)
    assert srv.proc.wait(20) == 3  # Gunicorn's WORKER_BOOT_ERROR: the arbiter halts
    log = srv.log()
    assert "lifespan startup failed" in log
    assert ("database unreachable" if app == "startup_failed" else "config file missing") in log
    assert log.count("Booting worker") == 1  # no fork loop


def test_app_without_lifespan_works_in_auto_mode(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.lifespans:no_lifespan", worker=worker_class)
    assert httpx.get(srv.url).text == "ok"
    assert "appears unsupported" in srv.log()


def test_lifespan_off_never_calls_the_app_for_lifespan(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.lifespans:no_lifespan", worker=worker_class,
                       env={"ASGI_WORKER_LIFESPAN": "off"})
    assert httpx.get(srv.url).text == "ok"
    assert "unsupported" not in srv.log()


def test_lifespan_shutdown_runs_on_exit(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "lifespan.txt"
    srv = start_server("tests.apps.basic:app", worker=worker_class,
                       env={"LIFESPAN_MARKER": str(marker)})
    pid = srv.worker_pids()[0]
    assert httpx.get(srv.url).status_code == 200
    assert srv.stop() == 0
    assert marker.read_text() == f"shutdown {pid}\n"


def test_bad_worker_option_is_a_clear_startup_error(start_server) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", env={"ASGI_WORKER_LIFESPAN": "sometimes"},
                       wait_ready=False)
    assert srv.proc.wait(20) == 3
    assert "ASGI_WORKER_LIFESPAN='sometimes': expected one of auto, on, off" in srv.log()
    assert "Traceback" not in srv.log()


# -- timeout, heartbeat and the arbiter ------------------------------------------------------------


def test_blocked_loop_is_killed_replaced_and_explained(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    hook_log = tmp_path / "hooks.txt"
    srv = start_server("tests.apps.basic:app", "--timeout", "2", "-c",
                       "tests/apps/hooks_conf.py", worker=worker_class,
                       env={"HOOK_LOG": str(hook_log)})
    first = srv.worker_pids()
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.url + "/block?6", timeout=10)
    srv.wait_ready(workers=2, timeout=15)  # a replacement booted
    assert srv.worker_pids() != first
    log = srv.log()
    assert "event loop has been blocked" in log
    assert "GET /block from 127.0.0.1" in log
    assert "time.sleep(" in log  # the stack shows where the loop was stuck
    assert f"worker_abort {first[0]}" in hook_log.read_text()
    assert httpx.get(srv.url).status_code == 200


def test_awaiting_app_is_not_killed(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    # timeout 2: the tick (every 0.5 s) has a second of slack before the watchdog's 75% mark,
    # and the app awaits more than twice the timeout.
    srv = start_server("tests.apps.basic:app", "--timeout", "2", worker=worker_class)
    pids = srv.worker_pids()
    response = httpx.get(srv.url + "/sleep?4.5", timeout=15)
    assert response.text == "slept 4.5"
    assert srv.worker_pids() == pids
    assert "blocked" not in srv.log()


def test_worker_exits_when_the_arbiter_dies(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    worker = srv.worker_pids()[0]
    os.kill(srv.pid, signal.SIGKILL)
    srv.proc.wait(5)
    assert wait_until(lambda: not Path(f"/proc/{worker}").exists(), timeout=10)


# -- sockets the arbiter hands us ---------------------------------------------------------------


def test_unix_socket(start_server, worker_class, socket_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = socket_dir / "gunicorn.sock"
    srv = start_server("tests.apps.basic:app", worker=worker_class, bind=f"unix:{path}")
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport) as client:
        scope = client.get("http://localhost/scope").json()
    assert scope["client"] is None
    assert scope["server"][0] == str(path)
    srv.stop()


def test_ipv6_and_several_binds(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = start_server("tests.apps.basic:app", "-b", "[::1]:0", worker=worker_class)
    log = srv.log()
    v6_port = int(log.split("http://[::1]:")[1].split()[0].rstrip(","))
    assert httpx.get(f"http://[::1]:{v6_port}/").text == "Hello, world!"
    assert httpx.get(srv.url).text == "Hello, world!"


def test_inherited_file_descriptor(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    os.set_inheritable(fd, True)
    srv = start_server("tests.apps.basic:app", worker=worker_class, bind=f"fd://{fd}",
                       pass_fds=(fd,))
    listener.close()
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, world!"
    srv.stop()


# -- signals ------------------------------------------------------------------------------


def test_sigterm_lets_in_flight_requests_finish(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    started = tmp_path / "started"
    with connect(srv.port) as sock:
        sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\nX-Started-Marker: %s\r\n\r\n"
                     % str(started).encode())
        assert wait_until(started.exists)  # in flight in the app
        srv.signal(signal.SIGTERM)
        status, headers, body = read_response(sock)
    assert (status, body) == (200, b"slept 1")
    assert headers["connection"] == "close"
    assert srv.proc.wait(10) == 0


def test_sigterm_cancels_what_outlives_graceful_timeout(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "disconnect.txt"
    srv = start_server("tests.apps.basic:app", "--graceful-timeout", "2", worker=worker_class)
    in_app = tmp_path / "started"
    sock = connect(srv.port)
    sock.sendall(b"GET /wait-disconnect?%s HTTP/1.1\r\nHost: x\r\nX-Started-Marker: %s\r\n\r\n"
                 % (str(marker).encode(), str(in_app).encode()))
    assert wait_until(in_app.exists)  # the app is waiting for http.disconnect
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(20) == 0
    # Well before Gunicorn's default graceful_timeout (30 s) would end it.
    assert time.monotonic() - started < 2 + 6
    assert marker.read_text() == "disconnect\n"  # the app saw http.disconnect
    sock.close()


def test_sigquit_is_a_fast_exit_and_runs_worker_int(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    hook_log = tmp_path / "hooks.txt"
    srv = start_server("tests.apps.basic:app", "-c", "tests/apps/hooks_conf.py",
                       worker=worker_class, env={"HOOK_LOG": str(hook_log)})
    worker = srv.worker_pids()[0]
    os.kill(worker, signal.SIGQUIT)
    assert wait_until(lambda: not Path(f"/proc/{worker}").exists() or
                      Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z", timeout=5)
    assert f"worker_int {worker}" in hook_log.read_text()


def test_sigterm_between_fork_and_worker_start_is_not_lost(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    # In the second after the fork the worker process still has the arbiter's handlers, which
    # queue a SIGTERM in the arbiter's (copied) queue instead of acting on it.
    # graceful_timeout 30: a lost SIGTERM (30 s) and a slow but honoured one stay far apart.
    srv = start_server("tests.apps.basic:app", "-c", "tests/apps/slow_post_fork_conf.py",
                       "--graceful-timeout", "30", worker=worker_class, wait_ready=False)
    srv.wait_for_log("Booting worker")
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.proc.wait(40)
    assert time.monotonic() - started < 15


def test_sigterm_while_workers_boot_is_not_lost(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--graceful-timeout", "30", worker=worker_class,
                       workers=4, wait_ready=False)
    srv.wait_for_log("Booting worker")
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.proc.wait(40)
    # A lost SIGTERM makes the arbiter wait the whole graceful_timeout (30 s), then SIGKILL.
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sigterm_before_the_loop_runs_is_not_lost(start_server, worker_class, loop: str,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    # Between init_signals() and the loop's first run (the app import, post_worker_init),
    # a stop signal must still stop the worker.
    marker = tmp_path / "termed"
    srv = start_server("tests.apps.basic:app", "-c", "tests/apps/term_after_init_conf.py",
                       worker=worker_class, env={"TERM_MARKER": str(marker),
                                                 "ASGI_WORKER_LOOP": loop}, wait_ready=False)
    srv.wait_for_log(r"Worker draining \(signal before start\)")
    first = int(marker.read_text())
    srv.wait_ready(workers=2)  # the replacement (the first worker logged ready, then drained)
    assert wait_until(lambda: first not in srv.worker_pids())
    assert len(srv.worker_pids()) == 1
    assert httpx.get(srv.url).text == "Hello, world!"
