"""A raw ASGI app with one route per behaviour the tests exercise."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

EVENTS: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    for name, value in scope.get("headers", ()):
        if name == b"x-started-marker":  # tell a test the request reached the app
            with open(value, "a") as file:
                file.write("started\n")
    path = scope["path"][len(scope.get("root_path", "")):]
    handler = ROUTES.get(path.split("/")[1] if path.count("/") > 1 else path.strip("/"))
    if handler is None:
        handler = hello
    await handler(scope, receive, send)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = "yes"
            scope["state"]["pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            marker = os.environ.get("LIFESPAN_MARKER")
            if marker:
                with open(marker, "a") as file:
                    file.write(f"shutdown {os.getpid()}\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Any, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers or [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message["body"]
        if not message["more_body"]:
            return body


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await respond(send, 200, b"Hello, world!")


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await read_body(receive)
    await respond(send, 200, body, [(b"content-type", b"application/octet-stream")])


async def chunks(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Report the request body chunk sizes and more_body flags the app saw (and append each
    to the marker file named in the query, if any, as it arrives)."""
    seen = []
    marker = scope["query_string"].decode()
    while True:
        message = await receive()
        seen.append([len(message.get("body", b"")), message.get("more_body", False)])
        if marker:
            with open(marker, "a") as file:
                file.write(f"{seen[-1]}\n")
        if not message.get("more_body"):
            break
    await respond(send, 200, json.dumps(seen).encode())


async def scope_view(scope: dict[str, Any], receive: Any, send: Any) -> None:
    view = {key: value for key, value in scope.items() if key not in ("headers", "state")}
    view["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    view["raw_path"] = scope["raw_path"].decode("latin-1")
    view["query_string"] = scope["query_string"].decode("latin-1")
    view["state"] = dict(scope.get("state", {}))
    await respond(send, 200, json.dumps(view).encode(), [(b"content-type", b"application/json")])


async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    count = int(scope["query_string"] or b"3")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for index in range(count):
        await send({"type": "http.response.body", "body": b"chunk%d;" % index,
                    "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def slow_stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A chunk, a real pause, another chunk: like server-sent events."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first;", "more_body": True})
    await asyncio.sleep(1.0)
    await send({"type": "http.response.body", "body": b"second;"})


async def stream_until_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A chunk, then wait for the request body (the client sends it once the chunk arrived),
    then a chunk with the body."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first;", "more_body": True})
    body = await read_body(receive)
    await send({"type": "http.response.body", "body": b"second;" + body})


async def status(scope: dict[str, Any], receive: Any, send: Any) -> None:
    code = int(scope["path"].split("/")[2])
    await respond(send, code, b"" if code in (204, 304) else b"status body")


async def error_before(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("boom before the response")


async def error_after(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"100")]})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom after the response started")


async def error_after_chunked(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom in a chunked response")


async def no_response(scope: dict[str, Any], receive: Any, send: Any) -> None:
    return None


async def too_long(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"0123456789"})


async def too_short(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"50")]})
    await send({"type": "http.response.body", "body": b"short"})


async def bad_header(scope: dict[str, Any], receive: Any, send: Any) -> None:
    value = scope["query_string"] or b"x\r\nset-cookie: evil=1"
    await respond(send, 200, b"never", [(b"x-injected", value.replace(b"%0D%0A", b"\r\n"))])


# Response headers by case name, for the header validation tests.
HEADER_CASES: dict[str, list[Any]] = {
    "tuple": [(b"x-a", b"1")],
    "list": [[b"x-a", b"1"]],
    "bytearray": [(bytearray(b"x-a"), bytearray(b"1"))],
    "length": [(b"content-length", b"5")],
    "space-in-name": [(b"x a", b"1")],
    "colon-in-name": [(b"x:a", b"1")],
    "empty-name": [(b"", b"1")],
    "cr-in-value": [(b"x-a", b"1\rset-cookie: evil=1")],
    "lf-in-value": [(b"x-a", b"1\nset-cookie: evil=1")],
    "nul-in-value": [(b"x-a", b"1\x00")],
    "str-name": [("x-a", b"1")],
    "str-value": [(b"x-a", "1")],
    "bad-length": [(b"content-length", b"five")],
    "three-items": [(b"x-a", b"1", b"2")],
}


async def header_case(scope: dict[str, Any], receive: Any, send: Any) -> None:
    query = scope["query_string"].decode()
    if query.startswith("unique-"):  # a new value every time
        headers: list[Any] = [(b"x-unique", query.encode())]
    else:
        headers = HEADER_CASES[query]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


async def sleep(scope: dict[str, Any], receive: Any, send: Any) -> None:
    seconds = float(scope["query_string"] or b"1")
    await asyncio.sleep(seconds)
    await respond(send, 200, b"slept %g" % seconds)


async def block(scope: dict[str, Any], receive: Any, send: Any) -> None:
    time.sleep(float(scope["query_string"] or b"1"))
    await respond(send, 200, b"blocked")


async def wait_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Wait for http.disconnect, then record it in a marker file given in the query."""
    marker = scope["query_string"].decode()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            with open(marker, "a") as file:
                file.write("disconnect\n")
            return


async def no_read(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await respond(send, 200, b"did not read the body")


async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stream N MiB; record in a marker how far it got (flow control tests)."""
    mib = int(scope["query_string"] or b"1")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % (mib * 1024 * 1024))]})
    chunk = b"x" * (1024 * 1024)
    for _ in range(mib):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def state(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope["state"]["mutated"] = True  # must not leak into the next request's copy
    await respond(send, 200, json.dumps(sorted(scope["state"])).encode())


async def head_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await respond(send, 200, b"twelve bytes", [(b"content-length", b"12")])


async def process(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What the worker process looks like from inside: pid, uid, umask, cwd, an env var."""
    umask = os.umask(0)
    os.umask(umask)
    name = scope["query_string"].decode() or "HOME"
    info = {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(), "umask": umask,
            "cwd": os.getcwd(), "env": os.environ.get(name)}
    await respond(send, 200, json.dumps(info).encode(), [(b"content-type", b"application/json")])


ROUTES = {
    "echo": echo, "chunks": chunks, "scope": scope_view, "stream": stream, "status": status,
    "error-before": error_before, "error-after": error_after,
    "error-after-chunked": error_after_chunked, "no-response": no_response,
    "too-long": too_long, "too-short": too_short, "bad-header": bad_header, "sleep": sleep,
    "header-case": header_case,
    "block": block, "wait-disconnect": wait_disconnect, "no-read": no_read, "big": big,
    "state": state, "head-length": head_length, "process": process,
    "slow-stream": slow_stream, "stream-until-body": stream_until_body,
}
