"""Raw ASGI benchmark applications (no framework cost).

One application, ``app``, routes on the path so that a single running server
can serve every scenario:

* ``/``         plain-text hello
* ``/json``     small dict through ``json.dumps``
* ``/echo``     echoes the request body (POST)
* ``/stream``   100 x 1 KiB chunks via ``more_body``
* any path, WebSocket: echo every message back
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
TEXT_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
JSON_HEADERS = [(b"content-type", b"application/json")]
OCTET = b"application/octet-stream"
CHUNK = b"x" * 1024
CHUNKS = 100


async def hello(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT_HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


async def json_response(send: Send) -> None:
    body = json.dumps({"message": "Hello, world!", "id": 12345, "ok": True}).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo(receive: Receive, send: Send) -> None:
    parts: list[bytes] = []
    more = True
    while more:
        message = await receive()
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(parts)
    headers = [(b"content-type", OCTET), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream(send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", OCTET)]}
    )
    for _ in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def websocket_echo(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                await send({"type": "websocket.send", "text": message.get("text")})
        else:
            return


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if path == "/":
            await hello(send)
        elif path == "/json":
            await json_response(send)
        elif path == "/echo":
            await echo(receive, send)
        elif path == "/stream":
            await stream(send)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
    elif kind == "websocket":
        await websocket_echo(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
