"""tests/apps/extensions.py's routes, and a few more for HTTP/2 (tests/test_http2_extensions.py).

``/h2/...``: a trailer the app names (``?name=&value=``), a file followed by trailers, an
early hint after ``http.response.start``, trailers an app never announced; and ``/h2/sent``:
the message types the last request of each ``/starlette/...`` path sent (so a test can tell a
``FileResponse`` that used pathsend from one that sent body messages).
"""

from __future__ import annotations

import json
from typing import Any

from tests.apps.extensions import TEXT, query
from tests.apps.extensions import app as extensions_app

SENT: dict[str, list[str]] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    handler = ROUTES.get(path) if scope["type"] == "http" else None
    if handler is not None:
        await handler(scope, receive, send)
    elif path.startswith("/starlette/"):
        sent = SENT[path] = []

        async def recording_send(message: dict[str, Any]) -> None:
            sent.append(message["type"])
            await send(message)

        await extensions_app(scope, receive, recording_send)
    else:
        await extensions_app(scope, receive, send)


async def sent_messages(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(SENT).encode()})


async def trailer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """One trailer field the query names (a forbidden one, for the tests)."""
    args = query(scope)
    await send({"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True})
    await send({"type": "http.response.body", "body": b"body"})
    await send({"type": "http.response.trailers",
                "headers": [(args["name"].encode(), args.get("value", "1").encode())]})


async def file_then_trailers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": TEXT, "trailers": True})
    await send({"type": "http.response.pathsend", "path": query(scope)["path"]})
    await send({"type": "http.response.trailers", "headers": [(b"x-file", b"sent")]})


async def hint_after_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The spec allows an early hint after the start, before the final body."""
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.early_hint", "links": [b"</late.css>; rel=preload"]})
    await send({"type": "http.response.body", "body": b"late hint"})


async def unannounced_trailers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Trailers without ``"trailers": True`` on the start: the app's mistake."""
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"body", "more_body": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")]})


ROUTES = {"/h2/trailer": trailer, "/h2/file-then-trailers": file_then_trailers,
          "/h2/hint-after-start": hint_after_start,
          "/h2/unannounced-trailers": unannounced_trailers, "/h2/sent": sent_messages}
