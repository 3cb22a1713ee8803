"""Litestar: lifespan state, typed path parameters, a streamed body and a WebSocket echo.

Run from the repository root:  gunicorn -k asgi_worker.Worker examples.litestar_app:app
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, get, websocket_listener
from litestar.response import Stream


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs once per worker process, before the first request and after the last one."""
    app.state.greeting = "hello from lifespan"
    yield


@get("/")
async def index(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"framework": "litestar", "greeting": request.app.state.greeting}


@get("/items/{item_id:int}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@get("/stream")
async def stream() -> Stream:
    async def numbers() -> AsyncIterator[bytes]:
        for index in range(3):
            yield f"{index}\n".encode()
            await asyncio.sleep(0.01)

    return Stream(numbers(), media_type="text/plain")


@websocket_listener("/ws")
async def echo(data: str) -> str:
    return f"echo: {data}"


app = Litestar(route_handlers=[index, read_item, stream, echo], lifespan=[lifespan])
