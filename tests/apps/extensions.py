"""Raw ASGI routes that use the HTTP extensions (tests/test_extensions.py), and Starlette's.

The query string carries the route's argument (a file path, a status, ...). ``/starlette/...``
goes to a small Starlette app: its ``FileResponse`` and ``Request.send_early_hints()``.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

TEXT = [(b"content-type", b"text/plain")]


def query(scope: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.startswith("/starlette/"):
        await starlette_app(scope, receive, send)
        return
    handler = ROUTES.get(path.strip("/"), extensions)
    await handler(scope, receive, send)


async def extensions(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The scope's extensions as JSON (the tls dict whole)."""
    body = json.dumps({"http_version": scope["http_version"],
                       "extensions": scope.get("extensions")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def mutate(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that (against the spec's advice) mutates the extensions it was given."""
    scope["extensions"].pop("http.response.pathsend", None)
    scope["extensions"]["mine"] = {}
    await extensions(scope, receive, send)


async def pathsend(scope: dict[str, Any], receive: Any, send: Any) -> None:
    args = query(scope)
    headers = list(TEXT)
    if "length" in args:
        headers.append((b"content-length", args["length"].encode()))
    await send({"type": "http.response.start", "status": int(args.get("status", "200")),
                "headers": headers})
    await send({"type": "http.response.pathsend", "path": args["path"]})


async def zerocopy(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """zerocopysend of ?path: whole, or ?offset/?count, or ?parts=N pieces with more_body."""
    args = query(scope)
    with open(args["path"], "rb") as file:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        if "parts" in args:
            size = os.fstat(file.fileno()).st_size
            parts = int(args["parts"])
            step = size // parts
            await send({"type": "http.response.body", "body": b"<", "more_body": True})
            for index in range(parts):
                count = step if index < parts - 1 else size - step * index
                # No offset: the file's current position, which the server advances.
                await send({"type": "http.response.zerocopysend", "file": file,
                            "count": count, "more_body": True})
            await send({"type": "http.response.body", "body": b">"})
            return
        message: dict[str, Any] = {"type": "http.response.zerocopysend", "file": file.fileno()}
        if "offset" in args:
            message["offset"] = int(args["offset"])
        if "count" in args:
            message["count"] = int(args["count"])
        await send(message)


async def early_hints(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.early_hint",
                "links": [b"</style.css>; rel=preload; as=style"]})
    await send({"type": "http.response.early_hint",
                "links": [b"</a.js>; rel=preload; as=script", b"</b.js>; rel=preload; as=script"]})
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"after hints"})


async def bad_hint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.early_hint", "links": [b"</x>\r\nx-injected: 1"]})
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"unreachable"})


async def trailers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """?length: give a Content-Length; ?whole: one body message; ?more: two trailer messages."""
    args = query(scope)
    headers = [*TEXT, (b"trailer", b"x-checksum, x-status")]
    if "length" in args:
        headers.append((b"content-length", b"11"))
    await send({"type": "http.response.start", "status": 200, "headers": headers,
                "trailers": True})
    if "whole" in args:
        await send({"type": "http.response.body", "body": b"hello world"})
    else:
        await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
        await send({"type": "http.response.body", "body": b"world", "more_body": False})
    if "more" in args:
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
                    "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-status", b"ok")]})
    else:
        await send({"type": "http.response.trailers",
                    "headers": [(b"x-checksum", b"abc"), (b"x-status", b"ok")]})


async def trailers_never_sent(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True})
    await send({"type": "http.response.body", "body": b"body"})


async def bad_trailer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True})
    await send({"type": "http.response.body", "body": b"body"})
    await send({"type": "http.response.trailers", "headers": [(b"x-bad", b"a\r\nb: c")]})


async def pathsend_before_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.pathsend", "path": __file__})


async def pathsend_after_body(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A pathsend after body bytes went out: a missing file can only close the connection."""
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    await send({"type": "http.response.pathsend", "path": query(scope)["path"]})


async def not_advertised(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An early hint whatever the scope says (not advertised to HTTP/1.0)."""
    await send({"type": "http.response.early_hint", "links": [b"</x>; rel=preload"]})
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"sent anyway"})


async def unknown_after_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.push", "path": "/x", "headers": []})


ROUTES = {
    "mutate": mutate, "pathsend": pathsend, "zerocopy": zerocopy, "early-hints": early_hints,
    "bad-hint": bad_hint, "trailers": trailers, "trailers-never-sent": trailers_never_sent,
    "bad-trailer": bad_trailer, "pathsend-before-start": pathsend_before_start,
    "pathsend-after-body": pathsend_after_body, "not-advertised": not_advertised,
    "unknown-after-start": unknown_after_start,
}


async def starlette_file(request: Request) -> Response:
    return FileResponse(request.query_params["path"], media_type="application/octet-stream")


async def starlette_hints(request: Request) -> Response:
    await request.send_early_hints("</style.css>; rel=preload; as=style")
    return PlainTextResponse("hinted")


starlette_app = Starlette(routes=[Route("/starlette/file", starlette_file, methods=["GET", "HEAD"]),
                                  Route("/starlette/hints", starlette_hints)])
