"""ASGI lifespan: startup before the first connection, shutdown on exit, and the shared state.

Modes follow Gunicorn's ``asgi_lifespan`` setting: ``auto`` tolerates apps that do not implement
lifespan, ``on`` treats that as a failure, ``off`` never calls the app for lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from .types import ASGIApp, Message

LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}


class LifespanFailure(Exception):
    """Startup failed: the worker must stop with Gunicorn's boot-error exit code.

    The message is what the app reported (``lifespan.startup.failed``'s message, which
    Starlette and FastAPI fill with a traceback) or the traceback of what it raised; nothing
    about the failure has been logged yet.
    """


class Lifespan:
    """Runs the app's lifespan task and relays startup and shutdown to it."""

    def __init__(self, app: ASGIApp, mode: str, log: logging.Logger | Any) -> None:
        self.app = app
        self.mode = mode
        self.log = log
        self.state: dict[str, Any] = {}
        self._receive_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self._unsupported = False
        self._shutdown_failure: str | None = None

    async def startup(self) -> None:
        """Start the lifespan task and wait for startup; raise LifespanFailure if it failed."""
        if self.mode == "off":
            return
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._receive_queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self._failure is not None:
            raise LifespanFailure(self._failure)

    async def shutdown(self, timeout: float) -> None:
        """Ask the app to shut down and wait up to ``timeout`` seconds for it."""
        if self._task is None or self._unsupported or self._task.done():
            return
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._shutdown_done.wait(), timeout=max(timeout, 0.01))
        except asyncio.TimeoutError:
            self.log.error("ASGI lifespan shutdown did not complete within %.1fs", timeout)
            self._task.cancel()
            return
        if self._shutdown_failure is not None:
            self.log.error("ASGI lifespan shutdown failed: %s", self._shutdown_failure)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": LIFESPAN_ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            if self._failure is not None or self._shutdown_failure is not None:
                # Starlette and FastAPI send *.failed with the traceback as the message, then
                # raise the same exception: it has been said already.
                pass
            elif self._startup_done.is_set():
                self.log.exception("Exception in ASGI lifespan after startup")
            elif self.mode == "auto":
                self._unsupported = True
                self.log.info("ASGI 'lifespan' protocol appears unsupported (%s: %s); "
                              "continuing without it", type(exc).__name__, exc)
            else:
                # Reported once, by the worker, as the startup failure; the traceback starts
                # at the app's frames.
                self._failure = "".join(traceback.format_exception(
                    type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None))
        else:
            if not self._startup_done.is_set():
                # Returning without a startup message means the app ignores lifespan.
                if self.mode == "on":
                    self._failure = "the app returned without completing lifespan startup"
                else:
                    self._unsupported = True
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> Message:
        return await self._receive_queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._failure = str(message.get("message", "")) or "lifespan.startup.failed"
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._shutdown_failure = str(message.get("message", "")) or "failed"
            self._shutdown_done.set()
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message type {kind!r}")
