"""The Gunicorn worker classes: process lifecycle and signals, nothing about HTTP.

Gunicorn's arbiter forks this worker and calls :meth:`Worker.init_process`. We build the
settings, create the event loop (after the fork, so ``preload_app`` never shares one), load the
app, install signal handlers on the loop, run lifespan startup and then serve until told to
stop. A watchdog thread reports where the loop is stuck when it stops ticking, before the
arbiter's ``timeout`` kill arrives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any

from gunicorn.workers.base import Worker as GunicornWorker

from . import settings as settings_module
from ._build import describe as describe_build
from .accesslog import AccessLogger
from .hooks import RequestHooks
from .http.h11_protocol import H11Protocol
from .http.httptools_protocol import HttpToolsProtocol
from .lifespan import Lifespan, LifespanFailure
from .server import Server
from .settings import Settings, SettingsError
from .websocket import upgrade as websocket_upgrade

# Everything a worker serves with is imported here, with the worker class, so the arbiter
# imports it once and every forked worker (a new one per max_requests recycle) inherits it.

# Gunicorn's arbiter halts instead of respawning when a worker exits with this code.
WORKER_BOOT_ERROR = 3


class Worker(GunicornWorker):
    """Serve an ASGI application with uvloop and the httptools parser."""

    parser = "httptools"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.settings: Settings | None = None
        self.server: Server | None = None
        self.access_logger: Any = None
        self.protocol_factory: Any = None
        self.websocket_upgrade: Any = None
        self.hooks: Any = None
        self._quit_early = False
        self._watchdog_stop = threading.Event()

    # -- Gunicorn's worker contract ------------------------------------------------------------

    def init_process(self) -> None:
        """Build settings and the loop, then let Gunicorn's base load the app and call run()."""
        # Until init_signals() puts the loop's handlers in place, the handlers inherited from
        # the arbiter would swallow a stop signal; remember it instead (acted on in _serve).
        # One that came between the fork and here sits in the arbiter's queue, in this process.
        inherited = signal.getsignal(signal.SIGTERM)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, self._early_stop)
        for queued in _queued_by_arbiter_handler(inherited):
            if queued in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self._early_stop(queued, None)
        try:
            self.settings = settings_module.from_cfg(
                self.cfg, parser=self.parser, max_requests=self._budget(), log=self.log)
            self.loop = self._new_loop(self.settings.loop)
            self.access_logger = _access_logger(self.settings, self.log)
            self.protocol_factory = _protocol_factory(self.settings.parser)
            self.websocket_upgrade = _websocket_upgrade(self.settings)
            self.hooks = _hooks(self, self.settings)
        except SettingsError as exc:
            self.log.error("asgi_worker cannot start: %s", exc)
            sys.exit(WORKER_BOOT_ERROR)
        for warning in self.settings.warnings:
            self.log.warning("asgi_worker: %s", warning)
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def _early_stop(self, sig: int, frame: FrameType | None) -> None:
        self.alive = False
        self._quit_early = self._quit_early or sig != signal.SIGTERM

    def init_signals(self) -> None:
        for sig in self.SIGNALS:
            if sig not in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
        loop = self.loop
        assert loop is not None
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        loop.add_signal_handler(signal.SIGQUIT, self._on_quit)
        loop.add_signal_handler(signal.SIGINT, self._on_quit)
        loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        loop.add_signal_handler(signal.SIGWINCH, lambda: None)
        # SIGABRT stays a plain handler: the arbiter sends it when the loop is blocked, so a
        # loop-based handler would never run.
        signal.signal(signal.SIGABRT, self.handle_abort)

    def load_wsgi(self) -> None:
        """Gunicorn's name for loading the app; ours is an ASGI callable."""
        self.wsgi = self.app.wsgi()

    def run(self) -> None:
        loop = self.loop
        assert loop is not None
        watchdog = threading.Thread(target=self._watchdog, name="asgi-worker-watchdog",
                                    daemon=True)
        watchdog.start()
        try:
            loop.run_until_complete(self._serve())
        except LifespanFailure as exc:
            self.log.error("ASGI lifespan startup failed: %s; stopping", exc)
            sys.exit(WORKER_BOOT_ERROR)
        except Exception:
            if self.server is not None and self.server.started:
                raise
            # Failing before the first accept would fail again in every new worker: tell the
            # arbiter to stop instead of fork-looping.
            self.log.exception("asgi_worker failed to start")
            sys.exit(WORKER_BOOT_ERROR)
        finally:
            self._watchdog_stop.set()
            _close_loop(loop)
            if self.access_logger is not None:
                self.access_logger.flush()

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """The arbiter's timeout kill: say what was running and where, then exit."""
        self.alive = False
        self._report_blocked(frame, reason="worker timeout (the event loop stopped "
                                           "calling notify())")
        if self.access_logger is not None:
            self.access_logger.flush()
        self.cfg.worker_abort(self)
        sys.exit(1)

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self) -> None:
        settings = self.settings
        assert settings is not None
        lifespan = Lifespan(self.wsgi, settings.lifespan, self.log)
        await lifespan.startup()
        server = self.server = Server(
            app=self.wsgi, settings=settings, log=self.log, sockets=self.sockets,
            state=lifespan.state, heartbeat=self._heartbeat,
            protocol_factory=self.protocol_factory, access_logger=self.access_logger,
            hooks=self.hooks, websocket_upgrade=self.websocket_upgrade)
        if not self.alive:
            server.begin_shutdown("signal before start", fast=self._quit_early)
        self.log.info("asgi_worker ready: %s parser, %s loop, lifespan %s, %s",
                      settings.parser, _loop_name(server.loop), settings.lifespan,
                      describe_build("asgi_worker"))
        await server.serve()
        remaining = settings.graceful_timeout - (server.loop.time() - server.shutdown_at)
        timeout = 1.0 if server.fast_exit else max(remaining, 1.0)
        await lifespan.shutdown(timeout)

    def _heartbeat(self) -> None:
        """Called from the server's tick: prove the loop is alive, notice a dead arbiter."""
        self.notify()
        server = self.server
        if server is None or server.draining:
            return
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            server.begin_shutdown("arbiter exited")
        elif not self.alive:
            server.begin_shutdown("worker stopping")

    def _on_term(self) -> None:
        self.alive = False
        if self.server is not None:
            self.server.begin_shutdown("SIGTERM")

    def _on_quit(self) -> None:
        self.alive = False
        self.cfg.worker_int(self)
        if self.server is not None:
            self.server.begin_shutdown("SIGQUIT/SIGINT", fast=True)
        else:
            sys.exit(0)

    # -- the blocked-loop watchdog ---------------------------------------------------------------

    def _watchdog(self) -> None:
        """Dump the main thread's stack once the loop has not ticked for most of ``timeout``."""
        settings = self.settings
        assert settings is not None
        threshold = settings.timeout * 0.75
        interval = min(1.0, max(settings.timeout / 10, 0.05))
        reported = False
        main_id = threading.main_thread().ident
        while not self._watchdog_stop.wait(interval):
            server = self.server
            if server is None:
                continue
            stalled = time.monotonic() - server.last_tick
            if stalled < threshold:
                reported = False
            elif not reported:
                reported = True
                frame = sys._current_frames().get(main_id or 0)
                self._report_blocked(frame, reason=f"the event loop has been blocked for "
                                                   f"{stalled:.1f}s (timeout is "
                                                   f"{settings.timeout:g}s)")

    def _report_blocked(self, frame: FrameType | None, reason: str) -> None:
        server = self.server
        requests = server.in_flight() if server is not None else []
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
        self.log.error("%s\nRequests in flight: %s\nMain thread stack (most recent call last):\n%s",
                       reason, "; ".join(requests) or "none", stack.rstrip())

    # -- helpers -------------------------------------------------------------------------------

    def _budget(self) -> int:
        return 0 if self.max_requests >= sys.maxsize else int(self.max_requests)

    @staticmethod
    def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
        if kind in ("auto", "uvloop"):
            try:
                import uvloop
            except ImportError:
                if kind == "uvloop":
                    raise SettingsError("ASGI_WORKER_LOOP=uvloop but uvloop is not "
                                        "installed") from None
            else:
                return uvloop.new_event_loop()
        return asyncio.new_event_loop()


class H11Worker(Worker):
    """The same worker with the pure-Python h11 parser."""

    parser = "h11"


def _queued_by_arbiter_handler(handler: Any) -> list[int]:
    """Signals that Gunicorn's arbiter handler, inherited over the fork, queued in this process
    (its ``SIG_QUEUE``: a list on Gunicorn 23, a SimpleQueue later); none for another handler."""
    pending = getattr(getattr(handler, "__self__", None), "SIG_QUEUE", None)
    signals: list[int] = []
    if isinstance(pending, list):
        signals.extend(pending)
        pending.clear()
        return signals
    get = getattr(pending, "get_nowait", None)
    if get is None:
        return signals
    for _ in range(64):
        try:
            signals.append(get())
        except Exception:  # queue.Empty
            break
    return signals


def _protocol_factory(parser: str) -> Any:
    return H11Protocol if parser == "h11" else HttpToolsProtocol


def _access_logger(settings: Settings, log: Any) -> Any:
    """The access logger, or None when no line would be written and no metric sent."""
    if not settings.access_log_enabled and settings.access_log_fast:
        return None
    try:
        return AccessLogger(log, settings.access_log_format, settings.access_log_enabled,
                            settings.access_log_fast)
    except ValueError as exc:
        raise SettingsError(f"access_log_format: {exc}") from None


def _hooks(worker: Worker, settings: Settings) -> Any:
    if settings.pre_request is None and settings.post_request is None:
        return None
    return RequestHooks(worker, settings.pre_request, settings.post_request, worker.log)


def _websocket_upgrade(settings: Settings) -> Any:
    return websocket_upgrade if settings.ws_enabled else None


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still pending (lifespan, stray app tasks) and close the loop."""
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
