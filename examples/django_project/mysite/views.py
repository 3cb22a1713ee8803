"""One synchronous view, one async view and an async streaming view."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse


def index(request: HttpRequest) -> JsonResponse:
    """A plain sync view: Django runs it in its thread executor, off the event loop."""
    return JsonResponse({
        "framework": "django",
        "view": "sync",
        "on_main_thread": threading.current_thread() is threading.main_thread(),
        "script_name": request.META.get("SCRIPT_NAME", ""),
        "path": request.path,
    })


async def async_view(request: HttpRequest) -> JsonResponse:
    """An async view runs on the worker's event loop."""
    await asyncio.sleep(0.01)
    return JsonResponse({
        "framework": "django",
        "view": "async",
        "on_main_thread": threading.current_thread() is threading.main_thread(),
        "name": request.GET.get("name", "world"),
    })


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    """An async iterator body is streamed chunk by chunk (Django 4.2+ under ASGI)."""
    count = int(request.GET.get("n", "3"))

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(count):
            yield f"chunk {index}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingHttpResponse(chunks(), content_type="text/plain")
