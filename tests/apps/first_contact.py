"""Apps a new user brings on day one: slow routes, a blocking route, failing lifespans."""

from __future__ import annotations

import time
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    if path == "/held":
        await held(send, receive)
    elif path == "/answer-then-block":
        await answer(send, b"answered")
        time.sleep(float(scope["query_string"] or b"10"))
    else:
        await answer(send, b"fast")


async def answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def held(send: Any, receive: Any) -> None:
    """A first chunk, then nothing until the client leaves: a request that stays in flight."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first;", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


def _failing_lifespan_app() -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        raise RuntimeError("database unreachable")
        yield  # pragma: no cover

    return Starlette(lifespan=lifespan)


# Starlette reports the failure the way FastAPI does: lifespan.startup.failed with the
# traceback as its message, then the exception raised again.
starlette_startup_fails = _failing_lifespan_app()


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """What a Flask or Django WSGI user passes by mistake."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


class ASGI2App:
    """An ASGI 2 "double callable" app (as served by uvicorn-worker), lifespan included."""

    started = False

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    ASGI2App.started = True
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = (f"asgi2 version={self.scope['asgi']['version']} "
                f"lifespan={'started' if ASGI2App.started else 'not run'}")
        await answer(send, body.encode())


def asgi2_function(scope: dict[str, Any]) -> Any:
    """The same as a function returning the coroutine function."""
    async def instance(receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await answer(send, b"asgi2 function")
        else:
            await ASGI2App(scope)(receive, send)
    return instance
