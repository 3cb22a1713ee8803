"""A raw ASGI app for the HTTP/2 tests: what the worker loaded, the scope, an echo."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/modules":
        loaded = sorted(name for name in sys.modules
                        if name == "h2" or name.startswith(("h2.", "hpack", "hyperframe",
                                                            "asgi_worker.http2")))
        await _respond(send, json.dumps(loaded).encode())
    elif scope["path"] == "/scope":
        shown = {key: value for key, value in scope.items() if key not in ("state", "asgi")}
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")]
                            for n, v in scope["headers"]]
        for key in ("raw_path", "query_string"):
            shown[key] = shown[key].decode("latin-1")
        await _respond(send, json.dumps(shown).encode())
    elif scope["path"] == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message["body"]
            more = message["more_body"]
        await _respond(send, body)
    elif scope["path"] == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or b"1"))
        await _respond(send, b"slept")
    elif scope["path"] == "/big":
        size = int(scope["query_string"] or b"1000000")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(size // 100000):
            await send({"type": "http.response.body", "body": b"b" * 100000, "more_body": True})
        await send({"type": "http.response.body", "body": b"b" * (size % 100000)})
    else:
        await _respond(send, b"Hello, world!")


async def _respond(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
