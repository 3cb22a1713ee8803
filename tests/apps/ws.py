"""A raw ASGI WebSocket app with one route per behaviour the WebSocket tests exercise.

Routes that must report what the app saw (disconnect codes, exceptions, progress) append a line
to the marker file named in the query string.
"""

from __future__ import annotations

import json
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
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"plain HTTP"})
        return
    handler = ROUTES.get(scope["path"].strip("/"), echo)
    await handler(scope, receive, send)


def record(scope: dict[str, Any], line: str) -> None:
    marker = scope["query_string"].decode()
    if marker:
        with open(marker, "a") as file:
            file.write(line + "\n")


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo every message until the client goes away; record the disconnect."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(scope, f"disconnect {message['code']} {message.get('reason', '')}")
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_view(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    view = {key: value for key, value in scope.items() if key not in ("headers", "state")}
    view["raw_path"] = scope["raw_path"].decode("latin-1")
    view["query_string"] = scope["query_string"].decode("latin-1")
    view["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    await send({"type": "websocket.send", "text": json.dumps(view)})
    await send({"type": "websocket.close"})


async def subprotocol(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Pick the last subprotocol offered and add a header of our own."""
    await receive()
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None,
                "headers": [(b"x-chosen-by", b"app")]})
    await send({"type": "websocket.send", "text": ",".join(offered)})
    await send({"type": "websocket.close"})


async def deny(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer the handshake with an HTTP response of our own (denial response extension)."""
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]})
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"entry"})


async def reject(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def close(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, then close with the code and reason the client's first message names."""
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    code, _, reason = message["text"].partition(" ")
    await send({"type": "websocket.close", "code": int(code), "reason": reason})
    try:
        await send({"type": "websocket.send", "text": "after close"})
    except OSError as exc:
        record(scope, f"send after close: {type(exc).__name__} OSError")
    else:
        record(scope, "send after close: no error")
    after = await receive()
    record(scope, f"after close {after['type']} {after.get('code')}")


async def error_before(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("boom before accept")


async def error_after(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    raise RuntimeError("boom after accept")


async def flood(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Send 64 KiB messages as fast as send() allows; record how far it got and how it ended."""
    await receive()
    await send({"type": "websocket.accept"})
    chunk = b"x" * 65536
    sent = 0
    try:
        for _ in range(100_000):
            await send({"type": "websocket.send", "bytes": chunk})
            sent += 1
            if sent % 64 == 0:
                record(scope, f"sent {sent}")
    except OSError as exc:
        record(scope, f"stopped {sent} {type(exc).__name__}")
        return
    record(scope, f"finished {sent}")


async def slow_consumer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, then read nothing until told how many messages arrived (inbound flow control)."""
    import asyncio

    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(1.5)
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        count += 1
        if message.get("text") == "done":
            await send({"type": "websocket.send", "text": str(count)})


async def busy(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Take one message, then stay busy for 6 s before answering it."""
    import asyncio

    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    await asyncio.sleep(6)
    try:
        await send({"type": "websocket.send", "text": message["text"]})
    except OSError as exc:
        record(scope, f"late reply: {type(exc).__name__}")
    else:
        record(scope, "late reply: sent")


ROUTES = {
    "echo": echo, "scope": scope_view, "subprotocol": subprotocol, "deny": deny,
    "reject": reject, "close": close, "error-before": error_before, "error-after": error_after,
    "flood": flood, "slow-consumer": slow_consumer, "busy": busy,
}
