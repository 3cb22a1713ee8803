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
from typing import Any, NoReturn

import gunicorn
from gunicorn.workers.base import Worker as GunicornWorker

from . import settings as settings_module
from ._build import describe as describe_build
from .accesslog import AccessLogger
from .application import ASGI2, NotASGIError, asgi3_app
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
# How long a worker whose boot failed waits for the arbiter to stop it (see _boot_failed).
BOOT_ERROR_WAIT = 10.0


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
        self._loop_signals = False
        self._blocked_reported = False
        self._aborting = False
        self._aborted_task: asyncio.Task[Any] | None = None

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
            self._boot_failed(f"asgi_worker cannot start: {exc}")
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
        # Plain handlers until the loop runs (the stop signals keep init_process's): uvloop
        # hears a signal only while its loop runs and never dispatches one that came before,
        # so _serve puts the loop's handlers in place from inside the running loop.
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGWINCH, signal.SIG_IGN)
        # SIGABRT stays a plain handler: the arbiter sends it when the loop is blocked, so a
        # loop-based handler would never run.
        signal.signal(signal.SIGABRT, self.handle_abort)

    def _add_loop_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        loop.add_signal_handler(signal.SIGQUIT, self._on_quit)
        loop.add_signal_handler(signal.SIGINT, self._on_quit)
        loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        loop.add_signal_handler(signal.SIGWINCH, lambda: None)
        self._loop_signals = True

    def load_wsgi(self) -> None:
        """Gunicorn's name for loading the app; ours is an ASGI callable."""
        try:
            app = self.app.wsgi()
        except Exception as exc:
            if self._claim_boot_error_report():
                raise  # Gunicorn reports it and stops: 4 (App failed to load) or 3
            self._boot_failed(f"{type(exc).__name__}: {exc}", reporter=False)
        name = getattr(self.app, "app_uri", None) or repr(app)
        try:
            self.wsgi, kind = asgi3_app(app, name)
        except NotASGIError as exc:
            self._boot_failed(f"asgi_worker cannot serve the app: {exc}")
        if kind == ASGI2:
            self.log.info("%s is an ASGI 2 (double callable) app: served as ASGI 3", name)

    def run(self) -> None:
        loop = self.loop
        assert loop is not None
        watchdog = threading.Thread(target=self._watchdog, name="asgi-worker-watchdog",
                                    daemon=True)
        watchdog.start()
        try:
            loop.run_until_complete(self._serve())
        except LifespanFailure as exc:
            self._boot_failed(_startup_failed(str(exc)))
        except Exception:
            if self.server is not None and self.server.started:
                raise
            # Failing before the first accept would fail again in every new worker: tell the
            # arbiter to stop instead of fork-looping.
            self._boot_failed("asgi_worker failed to start:\n" + traceback.format_exc())
        finally:
            self._watchdog_stop.set()
            task = self._aborted_task
            if task is not None and task.done() and not task.cancelled():
                task.exception()  # retrieved: the kill was logged already
            _close_loop(loop)
            if self.access_logger is not None:
                self.access_logger.flush()

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """The arbiter's timeout kill: one line (the watchdog logged the stack), then exit."""
        self.alive = False
        self._aborting = True
        server = self.server
        blocked = time.monotonic() - server.last_tick if server is not None else 0.0
        reason = (f"Worker timeout: the event loop was blocked for {blocked:.1f}s (timeout is "
                  f"{self._timeout():g}s); exiting")
        if self._blocked_reported:
            requests = server.in_flight() if server is not None else []
            self.log.error("%s. Requests in flight: %s (stack in the warning above)", reason,
                           "; ".join(requests) or "none")
        else:
            self._report_blocked(frame, reason, self.log.error)
        if self.access_logger is not None:
            self.access_logger.flush()
        self.cfg.worker_abort(self)
        loop = self.loop
        # SystemExit unwinds the blocked code; when that is a task, asyncio would later log
        # "Task exception was never retrieved" for it (see run()).
        self._aborted_task = asyncio.current_task(loop) if loop is not None else None
        sys.exit(1)

    # -- boot failures -------------------------------------------------------------------------

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Called once in the arbiter before the first fork: lay down the boot-error token."""
        read, write = os.pipe()
        os.write(write, b"!")
        os.close(write)
        os.set_blocking(read, False)
        cls._boot_error_token = read

    _boot_error_token: int | None = None

    def _boot_failed(self, message: str, reporter: bool | None = None) -> NoReturn:
        """Stop a worker that cannot serve, so that Gunicorn stops cleanly with exit status 3.

        Every worker fails the same way, and when a second one exits with WORKER_BOOT_ERROR
        while the arbiter is already halting for the first, Gunicorn prints a ``HaltServer``
        traceback and exits 1. So one worker, the one that takes the single byte the arbiter
        put in a pipe before forking, logs the failure and exits 3; the others say it in one
        line and wait for the arbiter's SIGTERM, then exit 0. A worker the arbiter has already
        told to stop exits 0 as well.
        """
        if reporter is None:
            reporter = self._claim_boot_error_report()
        if reporter:
            self.log.error("%s", message.rstrip())
        else:
            last_line = (message.strip() or "failed").splitlines()[-1]
            if len(last_line) > 160:
                last_line = last_line.split(". ")[0]
            self.log.error("%s (as in another worker, which stops Gunicorn)", last_line)
        deadline = time.monotonic() + (0.0 if reporter else BOOT_ERROR_WAIT)
        self._wait_for_stop(deadline)
        sys.exit(0 if not self.alive else WORKER_BOOT_ERROR)

    def _wait_for_stop(self, deadline: float) -> None:
        """Act on a stop signal already sent, then wait for one until ``deadline``."""
        loop = self.loop
        if self._loop_signals and loop is not None and not loop.is_closed():
            # The loop's handlers only run while it runs: a SIGTERM that came while the
            # lifespan failed waits in it.
            loop.run_until_complete(self._wait_stopped(deadline))
            return
        while self.alive and time.monotonic() < deadline:
            self.notify()
            time.sleep(0.05)

    async def _wait_stopped(self, deadline: float) -> None:
        await asyncio.sleep(0)
        while self.alive and time.monotonic() < deadline:
            self.notify()
            await asyncio.sleep(0.05)

    def _claim_boot_error_report(self) -> bool:
        token = self._boot_error_token
        if token is None:
            return True
        try:
            return os.read(token, 1) == b"!"
        except BlockingIOError:
            return False
        except OSError:
            return True

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self) -> None:
        self._add_loop_signal_handlers()  # a stop signal from before is in self.alive
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
        if self._aborting:
            return  # killed for timeout: the loop only runs to cancel what is left
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
        """Log the blocking stack once the loop has not ticked for most of ``timeout``."""
        timeout = self._timeout()
        threshold = timeout * 0.75
        interval = min(1.0, max(timeout / 10, 0.05))
        main_id = threading.main_thread().ident
        while not self._watchdog_stop.wait(interval):
            server = self.server
            if server is None:
                continue
            stalled = time.monotonic() - server.last_tick
            if stalled < threshold:
                self._blocked_reported = False
            elif not self._blocked_reported:
                frame = sys._current_frames().get(main_id or 0)
                self._report_blocked(frame, f"The event loop has been blocked for "
                                            f"{stalled:.1f}s (timeout is {timeout:g}s): the "
                                            f"arbiter kills the worker at {timeout:g}s",
                                     self.log.warning)
                self._blocked_reported = True

    def _report_blocked(self, frame: FrameType | None, reason: str, log: Any) -> None:
        server = self.server
        requests = server.in_flight() if server is not None else []
        log("%s\nRequests in flight: %s\n%s", reason, "; ".join(requests) or "none",
            _app_stack(frame))

    # -- helpers -------------------------------------------------------------------------------

    def _timeout(self) -> float:
        return self.settings.timeout if self.settings is not None else 0.0

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


def _app_stack(frame: FrameType | None) -> str:
    """The main thread's stack from where the app took over: after this module's frames (the
    process's start, the arbiter's fork or reload before them) and the event loop's and the
    worker's frames that follow."""
    if frame is None:
        return "Stack: unknown"
    frames = traceback.extract_stack(frame)
    entered = 1 + max((index for index, summary in enumerate(frames)
                       if summary.filename == _THIS_FILE), default=-1)
    start = next((index for index in range(entered, len(frames))
                  if not _is_server_file(frames[index].filename)), entered)
    text = "".join(traceback.format_list(frames[start:])).rstrip()
    return (f"Stack of the code blocking the loop (most recent call last; {start} outer frames "
            f"of Gunicorn, the event loop and the worker left out):\n{text}")


_THIS_FILE = __file__
_SERVER_DIRS = tuple(os.path.dirname(os.path.abspath(path)) + os.sep
                     for path in (asyncio.__file__ or "", gunicorn.__file__ or "", _THIS_FILE))


def _is_server_file(filename: str) -> bool:
    return filename.startswith(_SERVER_DIRS) or "uvloop" in filename


def _startup_failed(detail: str) -> str:
    """The one log message of a failed lifespan startup, in uvicorn's words."""
    detail = detail.strip() or "no message"
    separator = "\n" if "\n" in detail else " "
    return (f"Application startup failed. Exiting. The app's lifespan startup failed with:"
            f"{separator}{detail}")


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
