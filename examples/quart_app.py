"""Quart (the async Flask API): JSON, a streamed body and a WebSocket echo.

Run from the repository root:  gunicorn -k asgi_worker.Worker examples.quart_app:app
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response, request, websocket

app = Quart(__name__)


@app.before_serving
async def startup() -> None:
    """Runs on ASGI lifespan startup, once per worker process."""
    app.config["GREETING"] = "hello from before_serving"


@app.get("/")
async def index() -> dict[str, Any]:
    return {"framework": "quart", "greeting": app.config["GREETING"]}


@app.post("/echo")
async def echo_body() -> dict[str, Any]:
    payload = await request.get_json()
    return {"received": payload}


@app.get("/stream")
async def stream() -> Response:
    async def numbers() -> AsyncIterator[bytes]:
        for index in range(3):
            yield f"{index}\n".encode()
            await asyncio.sleep(0.01)

    return Response(numbers(), mimetype="text/plain")


@app.websocket("/ws")
async def echo() -> None:
    while True:
        message = await websocket.receive()
        await websocket.send(f"echo: {message}")
