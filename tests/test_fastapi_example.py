"""The README's example: the FastAPI app served by gunicorn with two workers."""

from __future__ import annotations

import httpx

from tests.rawhttp import connect, read_response


def test_fastapi_example_json_and_streaming(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("examples.fastapi_app:app", worker=worker_class, workers=2)
    item = httpx.get(srv.url + "/items/42", params={"q": "hi"})
    assert item.status_code == 200
    assert item.headers["content-type"] == "application/json"
    assert item.json() == {"item_id": 42, "q": "hi"}
    assert httpx.get(srv.url + "/items/not-a-number").status_code == 422
    root = httpx.get(srv.url + "/").json()
    assert root["worker_pid"] in srv.worker_pids()  # lifespan state reached the request
    with connect(srv.port) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"".join(b"line %d\n" % n for n in range(5))


def test_hello_example(start_server) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("examples.hello:app")
    assert httpx.get(srv.url).text == "Hello, world!\n"
