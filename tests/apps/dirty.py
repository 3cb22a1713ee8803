"""A Gunicorn dirty app (blocking work in Gunicorn's separate dirty worker pool, Gunicorn 25+)
and the ASGI app whose routes call it through ``gunicorn.dirty``'s async client.

Serve with ``--dirty-app tests.apps.dirty:Counter --dirty-workers 1``. Routes:

- ``/dirty/incr?N``: add N to the dirty worker's counter (state that outlives the request and is
  shared by every HTTP worker); the answer names both processes.
- ``/dirty/wait?PATH``: the dirty worker creates PATH.started, then blocks (``time.sleep`` in a
  loop, as blocking work does) until the file PATH exists, for at most 30 s.
- ``/dirty/call?ACTION``: call any action; a ``DirtyError`` comes back as a 502 naming it.
- anything else: ``{"ok": true, ...}`` straight from the HTTP worker.

The module imports on any Gunicorn; the tests that serve it skip where Gunicorn has no dirty apps.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

try:
    from gunicorn.dirty import DirtyApp
except ImportError:  # Gunicorn before 25: the tests that serve this module skip
    DirtyApp = object  # type: ignore[misc,assignment]

DIRTY_APP = "tests.apps.dirty:Counter"


class Counter(DirtyApp):  # type: ignore[misc]
    """A dirty app: Gunicorn loads it once per dirty worker; ``DirtyApp.__call__`` dispatches
    each task to the method named by its action."""

    def init(self) -> None:
        self.count = 0

    def incr(self, amount: int) -> dict[str, int]:
        self.count += amount
        return {"count": self.count, "dirty_pid": os.getpid()}

    def wait_for(self, path: str) -> dict[str, Any]:
        Path(f"{path}.started").touch()
        deadline = time.monotonic() + 30
        while not Path(path).exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # blocking, on purpose: what dirty workers are for
        return {"seen": Path(path).exists(), "dirty_pid": os.getpid()}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/dirty/incr":
        status, body = await call_dirty("incr", int(query or "1"))
    elif path == "/dirty/wait":
        status, body = await call_dirty("wait_for", query)
    elif path == "/dirty/call":
        status, body = await call_dirty(query)
    else:
        status, body = 200, {"ok": True, "worker_pid": os.getpid()}
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def call_dirty(action: str, *args: Any) -> tuple[int, dict[str, Any]]:
    """Run ``action`` on the dirty app with the task's own async client, as Gunicorn documents."""
    from gunicorn.dirty import DirtyError, close_dirty_client_async, get_dirty_client_async

    client = await get_dirty_client_async(timeout=60.0)
    try:
        result = await client.execute_async(DIRTY_APP, action, *args)
    except DirtyError as error:
        return 502, {"error": type(error).__name__, "message": str(error)}
    finally:
        await close_dirty_client_async()
    return 200, {"result": result, "worker_pid": os.getpid()}
