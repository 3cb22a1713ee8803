"""What the worker serves: an ASGI 3 app as it is, an ASGI 2 app adapted, a WSGI app refused.

Gunicorn loads whatever ``module:attribute`` names. The interface is guessed from the callable,
as uvicorn guesses it: anything async is ASGI 3; otherwise the positional parameters decide:
three (``scope, receive, send``) is ASGI 3, two (``environ, start_response``) is WSGI, one
(``scope``) is ASGI 2's double callable. What cannot be inspected is taken for ASGI 3, as before.
"""

from __future__ import annotations

import inspect
from typing import Any

from .types import ASGIApp, Receive, Scope, Send

ASGI3 = "asgi3"
ASGI2 = "asgi2"
WSGI = "wsgi"

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class NotASGIError(Exception):
    """The app is not an ASGI application; the message says what it is and what to do."""


def interface(app: Any) -> str:
    """``"asgi3"``, ``"asgi2"`` or ``"wsgi"``: how ``app`` expects to be called."""
    if inspect.iscoroutinefunction(app):
        return ASGI3
    if not inspect.isclass(app) and inspect.iscoroutinefunction(type(app).__call__):
        return ASGI3  # an instance with ``async def __call__``: Starlette, Django, Quart, ...
    positional = _positional_parameters(app)
    if positional is None or len(positional) >= 3:
        return ASGI3
    if len(positional) == 2:
        return WSGI
    if len(positional) == 1:
        return ASGI2
    return ASGI3


def _positional_parameters(app: Any) -> list[str] | None:
    """The names ``app`` can take positionally, or None when that is unknown or unbounded."""
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind == inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in _POSITIONAL:
            names.append(parameter.name)
    return names


def asgi3_app(app: Any, name: str) -> tuple[ASGIApp, str]:
    """The ASGI 3 callable to serve and the interface found; NotASGIError for a WSGI app."""
    kind = interface(app)
    if kind == WSGI:
        parameters = ", ".join(_positional_parameters(app) or ())
        raise NotASGIError(
            f"{name} is a WSGI application (it takes ({parameters})), and asgi_worker serves "
            f"ASGI applications. Serve it with one of Gunicorn's own workers (leave out "
            f"-k asgi_worker.Worker, or use -k gthread), serve the app's ASGI entry point "
            f"(Django: myproject.asgi:application), or wrap it for ASGI (asgiref's WsgiToAsgi, "
            f"a2wsgi's WSGIMiddleware).")
    if kind == ASGI2:
        return ASGI2Adapter(app), kind
    return app, kind


class ASGI2Adapter:
    """Serve an ASGI 2 ("double callable") app: ``app(scope)`` returns ``(receive, send)``'s
    coroutine function. The scope says ``asgi.version`` 2.0, as the spec asks."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["asgi"] = dict(scope.get("asgi") or {}, version="2.0")
        instance = self.app(scope)
        await instance(receive, send)

