"""Gunicorn's per-request server hooks (``pre_request``, ``post_request``) for ASGI requests.

Only built when the user set one of them; the objects the hooks receive come from
:mod:`asgi_worker.hookobjects`. A hook that raises is logged and never breaks the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .hookobjects import HookRequest, HookResponse, build_environ


class RequestHooks:
    """Calls the user's ``pre_request(worker, req)`` and ``post_request(worker, req, environ,
    resp)`` with Gunicorn-shaped objects."""

    __slots__ = ("_log", "_post", "_pre", "_worker")

    def __init__(self, worker: Any, pre: Callable[..., Any] | None,
                 post: Callable[..., Any] | None, log: Any) -> None:
        self._worker = worker
        self._pre = pre
        self._post = post
        self._log = log

    def pre_request(self, cycle: Any) -> None:
        if self._pre is None:
            return
        try:
            self._pre(self._worker, HookRequest(cycle.scope))
        except Exception:
            self._log.exception("pre_request hook failed")

    def post_request(self, cycle: Any) -> None:
        if self._post is None:
            return
        scope = cycle.scope
        try:
            response = HookResponse(cycle.status, cycle.response_headers, cycle.bytes_sent)
            self._post(self._worker, HookRequest(scope), build_environ(scope), response)
        except Exception:
            self._log.exception("post_request hook failed")
