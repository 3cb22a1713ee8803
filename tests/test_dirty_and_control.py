"""Gunicorn's newer process features with this worker: dirty apps (``--dirty-app``, called
from an ASGI route through ``gunicorn.dirty``'s async client) and the control socket
(``gunicornc``: show workers, worker add/remove/kill, reload). Real arbiters, real workers,
the real ``gunicornc``; each test skips on a Gunicorn without the feature.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from gunicorn.config import Config

from tests.conftest import GunicornServer
from tests.waiting import wait_until

SETTINGS = Config().settings
HAS_DIRTY = "dirty_apps" in SETTINGS and importlib.util.find_spec("gunicorn.dirty") is not None
HAS_CONTROL = "control_socket" in SETTINGS and importlib.util.find_spec("gunicorn.ctl") is not None
DIRTY_APP = "tests.apps.dirty:Counter"

needs_dirty = pytest.mark.skipif(not HAS_DIRTY, reason="this Gunicorn has no dirty apps (25+)")
needs_control = pytest.mark.skipif(not HAS_CONTROL,
                                   reason="this Gunicorn has no control socket (gunicornc)")


def dirty_args(tmp: Path) -> list[str]:
    # The arbiter keeps the dirty arbiter's PID file at $TMPDIR/gunicorn-dirty-<proc_name>.pid
    # and kills the process named there when it starts: a name of its own per server, so no
    # two servers (or an earlier test's) share one.
    return ["--dirty-app", DIRTY_APP, "--dirty-workers", "1",
            "--name", f"asgi-worker-test-{os.getpid()}-{tmp.name}-{tmp.parent.name}"]


def gunicornc(socket_path: Path, command: str) -> Any:
    """Run ``gunicornc -s SOCKET -c COMMAND -j`` and return its JSON answer."""
    script = Path(sys.executable).parent / "gunicornc"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "gunicorn.ctl.cli"]
    result = subprocess.run([*program, "-s", str(socket_path), "-c", command, "-j"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


# -- dirty apps -------------------------------------------------------------------------------


@needs_dirty
def test_dirty_app_called_from_asgi_routes(start_server, worker_class,  # type: ignore[no-untyped-def]
                                           tmp_path: Path) -> None:
    srv = start_server("tests.apps.dirty:app", *dirty_args(tmp_path), worker=worker_class,
                       workers=2)
    srv.wait_for_log(r"Initialized dirty app: tests\.apps\.dirty:Counter")
    children = set(srv.worker_pids())  # the HTTP workers and the dirty arbiter
    counts, dirty_pids, served_by = [], set(), set()
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for _ in range(6):
            # A new connection each time, so both HTTP workers get to call the dirty app.
            response = client.get("/dirty/incr?2", headers={"Connection": "close"})
            assert response.status_code == 200, response.text
            body = response.json()
            counts.append(body["result"]["count"])
            dirty_pids.add(body["result"]["dirty_pid"])
            served_by.add(body["worker_pid"])
        # One dirty worker holds the state every HTTP worker adds to, in call order.
        assert counts == [2, 4, 6, 8, 10, 12]
        assert len(dirty_pids) == 1 and not dirty_pids & children  # a process of its own
        assert served_by <= children and not served_by & dirty_pids
        # An error in the dirty app reaches the route as gunicorn.dirty's exception.
        missing = client.get("/dirty/call?no_such_action")
        assert missing.status_code == 502
        assert missing.json()["error"] == "DirtyAppError"
        assert "no_such_action" in missing.json()["message"]
        assert client.get("/dirty/incr?1").json()["result"]["count"] == 13
    log = srv.log()
    # The dirty worker logs the failed action's traceback; nothing failed in the HTTP workers.
    assert log.count("Traceback") == 1 and "Exception in ASGI application" not in log
    assert srv.stop() == 0


@needs_dirty
def test_blocking_dirty_task_leaves_the_event_loop_free(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    srv = start_server("tests.apps.dirty:app", *dirty_args(tmp_path), worker=worker_class)
    srv.wait_for_log(r"Initialized dirty app: tests\.apps\.dirty:Counter")
    release = tmp_path / "release"
    started = Path(f"{release}.started")  # the dirty worker writes it when the task begins
    waited: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: waited.append(
        httpx.get(f"{srv.url}/dirty/wait?{release}", timeout=60)))
    caller.start()
    try:
        assert wait_until(started.exists, 20), srv.log()[-2000:]
        # The only HTTP worker awaits the blocked dirty task; its loop still answers others.
        for _ in range(5):
            assert httpx.get(srv.url + "/", timeout=10).json()["ok"] is True
        assert caller.is_alive() and not waited  # the dirty task is still blocked
    finally:
        release.touch()
        caller.join(60)
    assert len(waited) == 1 and waited[0].status_code == 200, waited
    assert waited[0].json()["result"]["seen"] is True


# -- the control socket -----------------------------------------------------------------------


def control_server(start_server, worker_class: str,  # type: ignore[no-untyped-def]
                   socket_dir: Path) -> tuple[GunicornServer, Path]:
    """Two workers and a control socket of their own (conftest adds --no-control-socket
    unless the arguments name one)."""
    socket_path = socket_dir / "ctl.sock"
    srv = start_server("tests.apps.basic:app", "--control-socket", str(socket_path),
                       worker=worker_class, workers=2)
    assert wait_until(socket_path.exists), srv.log()
    return srv, socket_path


def without_control_client_cuts(log: str) -> str:
    """The log without Gunicorn's own traceback of a control client cut by a fork.

    Gunicorn stops its control server before every fork and starts it again after: a
    ``gunicornc`` connection still open at that moment (the client has its answer to
    ``worker add`` but has not closed yet, which a loaded machine makes likely) ends in a
    ``CancelledError`` traceback from ``gunicorn/ctl/server.py`` in the arbiter's log. That is
    the arbiter's control plane, not this worker; any other traceback still counts.
    """
    start = "Traceback (most recent call last)"
    kept: list[str] = []
    block: list[str] = []  # the traceback being read (until the next log line)

    def keep_block() -> None:
        text = "".join(block)
        if not ("gunicorn/ctl/server.py" in text and "CancelledError" in text):
            kept.append(text)
        block.clear()

    for line in log.splitlines(keepends=True):
        if block and line.startswith("["):
            keep_block()
        if block or start in line:
            block.append(line)
        else:
            kept.append(line)
    if block:
        keep_block()
    return "".join(kept)


def shown_workers(socket_path: Path) -> list[int]:
    answer = gunicornc(socket_path, "show workers")
    assert answer["count"] == len(answer["workers"])
    return sorted(worker["pid"] for worker in answer["workers"])


def served(srv: GunicornServer) -> bool:
    return httpx.get(srv.url + "/", timeout=10).text == "Hello, world!"


@needs_control
def test_control_show_workers(start_server, worker_class, socket_dir: Path) -> None:  # type: ignore[no-untyped-def]
    srv, socket_path = control_server(start_server, worker_class, socket_dir)
    assert shown_workers(socket_path) == srv.worker_pids()
    assert len(srv.worker_pids()) == 2
    stats = gunicornc(socket_path, "show stats")
    assert stats["pid"] == srv.pid and stats["workers_current"] == 2
    config = gunicornc(socket_path, "show config")
    assert config["workers"] == 2 and config["control_socket"] == str(socket_path)
    assert served(srv)


@needs_control
def test_control_worker_add_and_remove(start_server, worker_class, socket_dir: Path) -> None:  # type: ignore[no-untyped-def]
    srv, socket_path = control_server(start_server, worker_class, socket_dir)
    before = srv.worker_pids()
    assert gunicornc(socket_path, "worker add 1") == {"added": 1, "previous": 2, "total": 3}
    srv.wait_ready(workers=3)
    assert wait_until(lambda: len(srv.worker_pids()) == 3)
    added = [pid for pid in srv.worker_pids() if pid not in before]
    assert len(added) == 1 and shown_workers(socket_path) == srv.worker_pids()
    assert served(srv)
    assert gunicornc(socket_path, "worker remove 1") == {"removed": 1, "previous": 3,
                                                         "total": 2}
    # The arbiter retires the oldest worker (as for TTOU); it drains and exits cleanly.
    assert wait_until(lambda: len(srv.worker_pids()) == 2, 15), srv.log()[-2000:]
    assert wait_until(lambda: shown_workers(socket_path) == srv.worker_pids())
    assert served(srv)
    log = without_control_client_cuts(srv.log())
    assert "was sent SIGKILL" not in log and "Traceback" not in log


@needs_control
def test_control_worker_kill_is_replaced(start_server, worker_class, socket_dir: Path) -> None:  # type: ignore[no-untyped-def]
    srv, socket_path = control_server(start_server, worker_class, socket_dir)
    victim, survivor = srv.worker_pids()
    assert gunicornc(socket_path, f"worker kill {victim}") == {"success": True, "killed": victim}
    srv.wait_ready(workers=3)  # a replacement booted
    assert wait_until(lambda: victim not in srv.worker_pids() and len(srv.worker_pids()) == 2)
    after = srv.worker_pids()
    assert survivor in after
    assert shown_workers(socket_path) == after
    assert served(srv)
    # SIGTERM is a graceful stop for this worker: it exits on its own, never killed.
    log = without_control_client_cuts(srv.log())
    assert "was sent SIGKILL" not in log and "Traceback" not in log
    assert gunicornc(socket_path, "worker kill 1")["success"] is False  # not one of ours


@needs_control
def test_control_reload_replaces_every_worker(start_server, worker_class,  # type: ignore[no-untyped-def]
                                              socket_dir: Path) -> None:
    srv, socket_path = control_server(start_server, worker_class, socket_dir)
    before = set(srv.worker_pids())
    assert gunicornc(socket_path, "reload") == {"status": "reloading"}
    srv.wait_for_log("Handling signal: hup")
    srv.wait_ready(workers=4)  # two new workers
    assert wait_until(lambda: len(srv.worker_pids()) == 2 and not set(srv.worker_pids()) & before,
                      15), srv.log()[-2000:]
    assert shown_workers(socket_path) == srv.worker_pids()
    assert served(srv)
    assert "Traceback" not in without_control_client_cuts(srv.log())


@needs_control
@needs_dirty
def test_control_shows_the_dirty_pool(start_server, worker_class, tmp_path: Path,  # type: ignore[no-untyped-def]
                                      socket_dir: Path) -> None:
    socket_path = socket_dir / "ctl.sock"
    srv = start_server("tests.apps.dirty:app", "--control-socket", str(socket_path),
                       *dirty_args(tmp_path), worker=worker_class)
    srv.wait_for_log(r"Initialized dirty app: tests\.apps\.dirty:Counter")
    assert wait_until(socket_path.exists)
    dirty_pid = httpx.get(srv.url + "/dirty/incr?1", timeout=30).json()["result"]["dirty_pid"]
    dirty = gunicornc(socket_path, "show dirty")
    assert dirty["enabled"] is True and dirty["pid"] in srv.worker_pids()
    assert [app["import_path"] for app in dirty["apps"]] == [DIRTY_APP]
    # "show dirty" reads the main arbiter's copy of the dirty arbiter, which never sees its
    # workers (Gunicorn 27, any worker class); "show all" asks the dirty arbiter itself.
    everything = gunicornc(socket_path, "show all")
    assert everything["dirty_arbiter"]["pid"] == dirty["pid"]
    assert [worker["pid"] for worker in everything["dirty_workers"]] == [dirty_pid]
    web = sorted(worker["pid"] for worker in everything["web_workers"])
    assert web == sorted(set(srv.worker_pids()) - {dirty["pid"]}) and len(web) == 1
