"""A FastAPI app served by asgi_worker.

Run: ``gunicorn -k asgi_worker.Worker examples.fastapi_app:app -w 2 -b 127.0.0.1:8000``
Then: ``curl http://127.0.0.1:8000/items/42?q=hi`` and ``curl -N http://127.0.0.1:8000/stream``
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    # Whatever is yielded becomes request.state for every request (ASGI lifespan state).
    yield {"worker_pid": os.getpid()}


app = FastAPI(title="asgi_worker example", lifespan=lifespan)


@app.get("/")
async def root(request: Request) -> dict[str, object]:
    return {"message": "Hello from asgi_worker", "worker_pid": request.state.worker_pid}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            yield b"line %d\n" % number
            await asyncio.sleep(0.01)

    return StreamingResponse(numbers(), media_type="text/plain")
