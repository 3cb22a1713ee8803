"""The basic test app plus routes the hardening tests need (response header injection)."""

from __future__ import annotations

from typing import Any

from tests.apps import basic


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/response-header":
        await response_header(scope, receive, send)
        return
    await basic.app(scope, receive, send)


async def response_header(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with one header given hex-encoded as ``?<name hex>=<value hex>``."""
    name, _, value = scope["query_string"].partition(b"=")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(bytes.fromhex(name.decode()), bytes.fromhex(value.decode()))]})
    await send({"type": "http.response.body", "body": b"header sent"})
