"""The basic test app plus routes the hardening tests need (header injection, worker pid)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.apps import basic


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/response-header":
        await response_header(scope, receive, send)
        return
    if scope["type"] == "http" and scope["path"] == "/pid":
        await pid(scope, receive, send)
        return
    await basic.app(scope, receive, send)


async def response_header(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with one header given hex-encoded as ``?<name hex>=<value hex>``."""
    name, _, value = scope["query_string"].partition(b"=")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(bytes.fromhex(name.decode()), bytes.fromhex(value.decode()))]})
    await send({"type": "http.response.body", "body": b"header sent"})


async def pid(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sleep ``?<seconds>``, then answer with the worker's pid."""
    await asyncio.sleep(float(scope["query_string"] or b"0"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % os.getpid()})
