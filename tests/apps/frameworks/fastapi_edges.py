"""FastAPI routes for the edges real apps hit: sync endpoints, uploads, request streams,
errors, client disconnects and middleware."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class MarkResponses:
    """A pure ASGI middleware adding a header. (Starlette's ``@app.middleware("http")`` would do
    too, but it hides ``http.disconnect`` from ``request.is_disconnected()`` under any server.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-middleware", b"seen")]
            await send(message)

        await self.app(scope, receive, send_marked if scope["type"] == "http" else send)


app = FastAPI()
app.add_middleware(MarkResponses)


@app.get("/sync")
def sync_endpoint() -> dict[str, object]:
    """A plain ``def`` endpoint: FastAPI runs it in its thread pool, off the event loop."""
    return {"on_main_thread": threading.current_thread() is threading.main_thread()}


@app.post("/upload")
async def upload(file: UploadFile = File(...)) -> dict[str, object]:  # noqa: B008
    data = await file.read()
    return {"filename": file.filename, "size": len(data), "content_type": file.content_type}


@app.post("/count")
async def count_stream(request: Request) -> dict[str, int]:
    """Read the body as it arrives instead of buffering it."""
    size = chunks = 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks += 1
    return {"size": size, "chunks": chunks}


@app.get("/missing")
async def missing() -> None:
    raise HTTPException(status_code=404, detail="no such thing")


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("boom from the app")


@app.get("/wait-for-disconnect")
async def wait_for_disconnect(request: Request, marker: str) -> dict[str, bool]:
    """Poll for the client leaving, as long-polling endpoints do; record that we noticed."""
    Path(f"{marker}.started").touch()  # the test leaves once the request is here
    for _ in range(200):
        if await request.is_disconnected():
            Path(marker).write_text("disconnected")
            return {"disconnected": True}
        await asyncio.sleep(0.05)
    return {"disconnected": False}
