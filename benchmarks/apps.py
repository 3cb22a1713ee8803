"""Raw ASGI benchmark applications (no framework cost).

One application, ``app``, routes on the path so that a single running server
can serve every scenario:

* ``/``         plain-text hello
* ``/json``     small dict through ``json.dumps``
* ``/echo``     echoes the request body (POST)
* ``/stream``   100 x 1 KiB chunks via ``more_body``
* ``/static/1m``, ``/static/100m``  Starlette's ``FileResponse`` of a 1 MiB or 100 MiB file
  (what FastAPI returns too; it uses ``http.response.pathsend`` where the server offers it)
* any path, WebSocket: echo every message back
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
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
STATIC_DIR = Path(__file__).resolve().parent / ".work" / "static"
STATIC_FILES = {"/static/1m": 1, "/static/100m": 100}  # path -> size in MiB


def static_file(mib: int) -> Path:
    """The benchmark file of ``mib`` MiB (created once; random bytes, so nothing compresses)."""
    path = STATIC_DIR / f"{mib}m.bin"
    if not path.exists() or path.stat().st_size != mib << 20:
        STATIC_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        block = os.urandom(1 << 20)
        with open(partial, "wb") as file:
            for _ in range(mib):
                file.write(block)
        partial.replace(path)
    return path


async def static(path: str, scope: Scope, receive: Receive, send: Send) -> None:
    from starlette.responses import FileResponse

    response = FileResponse(static_file(STATIC_FILES[path]), media_type="application/octet-stream")
    await response(scope, receive, send)


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
        elif path in STATIC_FILES:
            await static(path, scope, receive, send)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
    elif kind == "websocket":
        await websocket_echo(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
