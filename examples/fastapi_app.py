"""A FastAPI app served by asgi_worker.

Run: ``gunicorn -k asgi_worker.Worker examples.fastapi_app:app -w 2 -b 127.0.0.1:8000``
Then: ``curl http://127.0.0.1:8000/items/42?q=hi`` and ``curl -N http://127.0.0.1:8000/stream``

It shows the pieces most apps use: lifespan state shared by every request of a worker process
(read through a dependency), background tasks that run after the response went out, a streamed
body and a WebSocket route.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse


class AuditLog:
    """Stands in for a resource opened once per worker (a DB pool, an HTTP client, ...)."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.closed = False

    async def record(self, entry: str) -> None:
        await asyncio.sleep(0.01)  # pretend I/O
        self.entries.append(entry)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    # Whatever is yielded becomes request.state for every request (ASGI lifespan state).
    audit = AuditLog()
    yield {"worker_pid": os.getpid(), "audit": audit}
    audit.closed = True


app = FastAPI(title="asgi_worker example", lifespan=lifespan)


def get_audit(request: Request) -> AuditLog:
    """A dependency handing out the per-worker resource the lifespan created."""
    audit: AuditLog = request.state.audit
    return audit


Audit = Annotated[AuditLog, Depends(get_audit)]


@app.get("/")
async def root(request: Request) -> dict[str, object]:
    return {"message": "Hello from asgi_worker", "worker_pid": request.state.worker_pid}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@app.post("/items/{item_id}", status_code=202)
async def touch_item(item_id: int, audit: Audit, background: BackgroundTasks) -> dict[str, object]:
    """Answer at once; the audit entry is written by a background task after the response."""
    background.add_task(audit.record, f"touched {item_id}")
    return {"item_id": item_id, "queued": True}


@app.get("/audit")
async def read_audit(audit: Audit) -> dict[str, object]:
    return {"entries": audit.entries, "worker_pid": os.getpid()}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            yield b"line %d\n" % number
            await asyncio.sleep(0.01)

    return StreamingResponse(numbers(), media_type="text/plain")


@app.websocket("/ws")
async def websocket_echo(websocket: WebSocket) -> None:
    """Echo text back, prefixed with the worker pid from lifespan state."""
    await websocket.accept()
    pid = websocket.state.worker_pid
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"echo": text, "worker_pid": pid})
    except WebSocketDisconnect:
        return
