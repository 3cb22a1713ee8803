"""Starlette: static files, a JSON route and a WebSocket echo, served by asgi_worker.

Run from the repository root:  gunicorn -k asgi_worker.Worker examples.starlette_app:app
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def homepage(request: Request) -> JSONResponse:
    return JSONResponse({"framework": "starlette", "root_path": request.scope.get("root_path")})


async def echo(websocket: WebSocket) -> None:
    """Echo text and bytes back until the client closes; ``close`` closes from our side."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text == "close":
                await websocket.close(code=4000, reason="asked to close")
                return
            if text is not None:
                await websocket.send_text(f"echo: {text}")
            else:
                await websocket.send_bytes(message.get("bytes") or b"")
    except WebSocketDisconnect:
        return


app = Starlette(routes=[
    Route("/", homepage),
    WebSocketRoute("/ws", echo),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
])
