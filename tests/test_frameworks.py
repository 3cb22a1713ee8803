"""Real frameworks served by a real gunicorn with both worker classes, driven by real clients.

Each app lives in ``examples/`` (what users copy) or ``tests/apps/frameworks/`` (edge cases);
httpx speaks HTTP, the ``websockets`` client speaks WebSocket.
"""

from __future__ import annotations

import json
import socket
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.rawhttp import connect, read_response
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
DJANGO_ENV = {"DJANGO_SECRET_KEY": "test-secret", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}


def starlette_serves_ranges() -> bool:
    """FileResponse answers Range requests from Starlette 0.39 on."""
    return tuple(int(part) for part in version("starlette").split(".")[:2]) >= (0, 39)


def ws_url(server: object, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"  # type: ignore[attr-defined]




# -- FastAPI ------------------------------------------------------------------------------------


@pytest.fixture
def fastapi_server(start_server, worker_class):  # type: ignore[no-untyped-def]
    pytest.importorskip("fastapi")
    return start_server("examples.fastapi_app:app", worker=worker_class)


def test_fastapi_json_and_validation(fastapi_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=fastapi_server.url) as client:
        item = client.get("/items/42", params={"q": "hi"})
        assert item.status_code == 200
        assert item.json() == {"item_id": 42, "q": "hi"}
        invalid = client.get("/items/forty-two")
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["path", "item_id"]
        assert client.get("/nope").status_code == 404


def test_fastapi_streaming_arrives_in_pieces(fastapi_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=fastapi_server.url) as client, client.stream("GET", "/stream") as r:
        assert r.status_code == 200
        assert r.headers["transfer-encoding"] == "chunked"
        lines = list(r.iter_lines())
    assert lines == [f"line {n}" for n in range(5)]


def test_fastapi_background_task_uses_lifespan_state(fastapi_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=fastapi_server.url) as client:
        pid = client.get("/").json()["worker_pid"]
        assert pid in fastapi_server.worker_pids()
        queued = client.post("/items/7")
        assert queued.status_code == 202
        assert queued.json() == {"item_id": 7, "queued": True}
        # The response went out first; the background task writes the entry after it.
        assert wait_until(lambda: "touched 7" in client.get("/audit").json()["entries"])
        audit = client.get("/audit").json()
        assert audit["worker_pid"] == pid


def test_fastapi_websocket_sees_lifespan_state(fastapi_server) -> None:  # type: ignore[no-untyped-def]
    pid = httpx.get(fastapi_server.url + "/").json()["worker_pid"]
    with ws_connect(ws_url(fastapi_server, "/ws"), open_timeout=5) as ws:
        for text in ("hello", "wörld", "x" * 70_000):
            ws.send(text)
            assert json.loads(ws.recv(timeout=5)) == {"echo": text, "worker_pid": pid}


@pytest.fixture
def fastapi_edges(start_server, worker_class):  # type: ignore[no-untyped-def]
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    return start_server("tests.apps.frameworks.fastapi_edges:app", worker=worker_class)


def test_fastapi_sync_endpoint_runs_in_thread_pool(fastapi_edges) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(fastapi_edges.url + "/sync")
    assert response.json() == {"on_main_thread": False}
    assert response.headers["x-middleware"] == "seen"


def test_fastapi_multipart_upload(fastapi_edges) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    response = httpx.post(fastapi_edges.url + "/upload",
                          files={"file": ("blob.bin", payload, "application/octet-stream")})
    assert response.status_code == 200, response.text
    assert response.json() == {"filename": "blob.bin", "size": len(payload),
                               "content_type": "application/octet-stream"}


def test_fastapi_request_stream_chunked_upload(fastapi_edges) -> None:  # type: ignore[no-untyped-def]
    def body():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b"z" * 16384

    response = httpx.post(fastapi_edges.url + "/count", content=body())
    assert response.status_code == 200
    assert response.json()["size"] == 64 * 16384


def test_fastapi_errors_do_not_hurt_the_worker(fastapi_edges) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=fastapi_edges.url) as client:
        missing = client.get("/missing")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no such thing"}
        crash = client.get("/crash")
        assert crash.status_code == 500
        assert "boom" not in crash.text  # no traceback to the client
        assert client.get("/sync").status_code == 200
    assert "boom from the app" in fastapi_edges.wait_for_log("boom from the app")


def test_fastapi_sees_client_disconnect(fastapi_edges, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    with socket.create_connection(("127.0.0.1", fastapi_edges.port)) as sock:
        sock.sendall(f"GET /wait-for-disconnect?marker={marker} HTTP/1.1\r\nHost: x\r\n\r\n"
                     .encode())
        assert wait_until(Path(f"{marker}.started").exists)  # the endpoint is polling
        sock.shutdown(socket.SHUT_RDWR)
    assert wait_until(marker.exists), "the app never saw http.disconnect"


# -- Starlette ----------------------------------------------------------------------------------


@pytest.fixture
def starlette_server(start_server, worker_class):  # type: ignore[no-untyped-def]
    pytest.importorskip("starlette")
    return start_server("examples.starlette_app:app", worker=worker_class)


def test_starlette_static_files(starlette_server) -> None:  # type: ignore[no-untyped-def]
    expected = (ROOT / "examples" / "static" / "hello.txt").read_bytes()
    with httpx.Client(base_url=starlette_server.url) as client:
        response = client.get("/static/hello.txt")
        assert response.status_code == 200
        assert response.content == expected
        assert response.headers["content-length"] == str(len(expected))
        assert response.headers["content-type"].startswith("text/plain")
        etag = response.headers["etag"]
        assert client.get("/static/hello.txt", headers={"if-none-match": etag}).status_code == 304
        head = client.head("/static/hello.txt")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(expected))
        if starlette_serves_ranges():
            part = client.get("/static/hello.txt", headers={"range": "bytes=0-4"})
            assert part.status_code == 206 and part.content == expected[:5]
            assert part.headers["content-range"] == f"bytes 0-4/{len(expected)}"
        assert client.get("/static/index.html").headers["content-type"].startswith("text/html")
        assert client.get("/static/absent.txt").status_code == 404
        assert client.get("/").json() == {"framework": "starlette", "root_path": ""}


def test_starlette_websocket_echo_and_server_close(starlette_server) -> None:  # type: ignore[no-untyped-def]
    with ws_connect(ws_url(starlette_server, "/ws"), open_timeout=5) as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "echo: ping"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=5) == b"\x00\xffbinary"
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "asked to close")


def test_starlette_unknown_websocket_route_is_refused(starlette_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(ws_url(starlette_server, "/nowhere"), open_timeout=5)
    assert refused.value.response.status_code == 403


# -- Django -------------------------------------------------------------------------------------


@pytest.fixture
def django_server(start_server, worker_class):  # type: ignore[no-untyped-def]
    pytest.importorskip("django")
    return start_server("mysite.asgi:application", "--chdir", "examples/django_project",
                        worker=worker_class, env=DJANGO_ENV)


def test_django_sync_and_async_views(django_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=django_server.url) as client:
        sync = client.get("/")
        assert sync.status_code == 200
        assert sync.json() == {"framework": "django", "view": "sync", "on_main_thread": False,
                               "script_name": "", "path": "/"}
        async_ = client.get("/async/", params={"name": "gunicorn"})
        assert async_.json() == {"framework": "django", "view": "async", "on_main_thread": True,
                                 "name": "gunicorn"}
        # CommonMiddleware's APPEND_SLASH redirect
        redirect = client.get("/async")
        assert redirect.status_code == 301 and redirect.headers["location"] == "/async/"
        assert client.get("/absent/").status_code == 404
    assert "lifespan' protocol appears unsupported" in django_server.log()


def test_django_streaming_view(django_server) -> None:  # type: ignore[no-untyped-def]
    with connect(django_server.port) as sock:
        sock.sendall(b"GET /stream/?n=4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"".join(b"chunk %d\n" % n for n in range(4))


def test_django_rejects_disallowed_host(django_server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(django_server.url + "/", headers={"host": "evil.example"})
    assert response.status_code == 400


def test_django_behind_a_mount_point(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("django")
    # The proxy strips /app; SCRIPT_NAME (or --root-path on Gunicorn 24+) tells the app.
    srv = start_server("mysite.asgi:application", "--chdir", "examples/django_project",
                       "--env", "SCRIPT_NAME=/app", worker=worker_class, env=DJANGO_ENV)
    body = httpx.get(srv.url + "/").json()
    assert body["script_name"] == "/app"
    assert body["path"] == "/app/"


def test_django_without_secret_key_fails_to_boot(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("django")
    srv = start_server("mysite.asgi:application", "--chdir", "examples/django_project",
                       worker=worker_class, env={"DJANGO_SECRET_KEY": ""}, wait_ready=False)
    assert srv.proc.wait(20) != 0
    assert "set DJANGO_SECRET_KEY" in srv.log()


# -- Litestar and Quart ---------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["litestar", "quart"])
def test_litestar_and_quart(start_server, worker_class, framework: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip(framework)
    srv = start_server(f"examples.{framework}_app:app", worker=worker_class)
    with httpx.Client(base_url=srv.url) as client:
        index = client.get("/").json()
        assert index["framework"] == framework
        assert index["greeting"].startswith("hello from")  # set by lifespan startup
        with client.stream("GET", "/stream") as response:
            assert response.headers["transfer-encoding"] == "chunked"
            assert list(response.iter_lines()) == ["0", "1", "2"]
        if framework == "litestar":
            assert client.get("/items/5", params={"q": "x"}).json() == {"item_id": 5, "q": "x"}
        else:
            echoed = client.post("/echo", json={"a": [1, 2]})
            assert echoed.json() == {"received": {"a": [1, 2]}}
    with ws_connect(ws_url(srv, "/ws"), open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo: hi"
