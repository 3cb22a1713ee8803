"""Apps with unusual lifespan behaviour."""

from __future__ import annotations

from typing import Any


async def _hello(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def startup_failed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _hello(send)


async def startup_raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("config file missing")
    await _hello(send)


async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Like many small apps: only knows HTTP and fails on anything else."""
    assert scope["type"] == "http", f"unsupported scope {scope['type']}"
    await _hello(send)
