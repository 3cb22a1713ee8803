"""The server inside one worker: listeners, connections, request budget, heartbeat and drain.

It accepts on the sockets inherited from the arbiter with its own accept loop, so that at
``worker_connections`` it can simply stop reading the listening socket and let the kernel hand
new connections to the other workers. A tick every fraction of a second drives the heartbeat
(``notify()``), the cached ``Date`` header and every connection deadline, so the hot path arms
no timers. Shutdown (SIGTERM, ``max_requests``, arbiter gone) drains: stop accepting, let
in-flight requests finish with ``Connection: close``, close idle connections, and after
``graceful_timeout`` disconnect and cancel whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import socket
import ssl
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, Protocol

from .proxy import ForwardedPolicy, TrustedPeers
from .settings import Settings
from .types import ASGIApp

ACCEPT_BATCH = 64
# Time an idle keep-alive connection gets, once draining began, for a request already on the
# wire to arrive; closing it at once would race a client that just sent one.
DRAIN_IDLE_GRACE = 0.5
_ACCEPT_PAUSE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Connection(Protocol):
    """What the server asks of every connection protocol (HTTP and WebSocket)."""

    deadline: float

    def on_deadline(self) -> None: ...
    def shutdown(self, grace: float) -> None: ...
    def force_close(self) -> None: ...
    def describe(self) -> list[str]: ...


WebSocketUpgrade = Callable[["Server", asyncio.Transport, dict[str, Any], bytes], None]


class Server:
    """Serves one worker's listening sockets until it is told to stop."""

    # Slots: an instance with more than 30 attributes in a __dict__ gets a plain dict in
    # CPython 3.11, on which calls such as server.on_response_complete() are not specialized.
    __slots__ = (
        "_drained", "_stop", "_tick_handle", "_tick_interval", "accepting", "access_log_enabled",
        "access_logger", "app", "connections", "date_header", "drain_idle_grace",
        "draining", "fast_exit", "forwarded", "forwarded_peers", "h2c_prior_knowledge",
        "h2c_upgrade",
        "heartbeat", "hooks", "http2", "last_tick", "listeners", "log", "loop", "pending",
        "protocol_factory", "proxy_peers", "requests", "settings", "shutdown_at",
        "shutdown_reason", "start_task", "started", "state", "tasks", "websocket_upgrade",
    )

    def __init__(self, *, app: ASGIApp, settings: Settings, log: Any, sockets: list[Any],
                 state: dict[str, Any], heartbeat: Callable[[], None],
                 protocol_factory: Callable[[Server], asyncio.Protocol],
                 access_logger: Any = None, hooks: Any = None,
                 websocket_upgrade: WebSocketUpgrade | None = None) -> None:
        self.app = app
        self.settings = settings
        self.log = log
        self.state = state
        self.heartbeat = heartbeat
        self.protocol_factory = protocol_factory
        self.access_logger = access_logger
        self.access_log_enabled = access_logger is not None
        self.hooks = hooks
        self.websocket_upgrade = websocket_upgrade
        self.forwarded_peers = TrustedPeers(settings.forwarded_allow_ips)
        self.forwarded = ForwardedPolicy(settings.secure_scheme_headers,
                                         settings.forwarder_headers, hops=self.forwarded_peers)
        self.proxy_peers = (TrustedPeers(settings.proxy_allow_ips)
                            if settings.proxy_protocol != "off" else None)
        # HTTP/2: how an HTTP/1.1 connection hands its transport over (None: HTTP/1.1 only).
        self.http2: Callable[..., Any] | None = _http2_upgrade() if settings.http2 else None
        self.h2c_prior_knowledge = (settings.http2 and settings.ssl_context is None
                                    and settings.http2_cleartext in ("prior-knowledge", "both"))
        self.h2c_upgrade = (settings.http2 and settings.ssl_context is None
                            and settings.http2_cleartext in ("upgrade", "both"))
        self.loop = asyncio.get_running_loop()
        self.start_task = task_starter(self.loop)
        self.listeners = [getattr(s, "sock", s) for s in sockets]
        self.connections: set[Any] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.pending = 0
        self.accepting = False
        self.requests = 0
        self.draining = False
        self.drain_idle_grace = DRAIN_IDLE_GRACE
        self.shutdown_reason = ""
        self.shutdown_at = 0.0
        self.fast_exit = False
        self.started = False
        self.date_header = b""
        self.last_tick = time.monotonic()
        self._stop = self.loop.create_future()
        self._drained: asyncio.Future[None] | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_interval = min(0.5, max(settings.timeout / 4, 0.05))

    # -- lifecycle -----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Accept and serve until shutdown is requested, then drain and return."""
        self._update_date()
        for sock in self.listeners:
            sock.setblocking(False)
        self._tick()
        if not self.draining:
            self._start_accepting()
        self.started = True
        await self._stop
        await self._drain()
        if self._tick_handle is not None:
            self._tick_handle.cancel()

    def begin_shutdown(self, reason: str, fast: bool = False) -> None:
        """Stop accepting and start draining (or, with ``fast``, close everything now)."""
        if fast:
            self.fast_exit = True
        if self.draining:
            if fast and not self._stop.done():
                self._stop.set_result(None)
            return
        self.draining = True
        self.shutdown_reason = reason
        self.shutdown_at = self.loop.time()
        self._stop_accepting()
        if not self._stop.done():
            self._stop.set_result(None)

    @property
    def final_shutdown(self) -> bool:
        """Whether nothing takes over from this worker: a quick stop (SIGINT/SIGQUIT) or an
        arbiter that is gone (worker.py's reason "arbiter exited"). A SIGTERM (reload, one
        worker fewer, the arbiter's graceful stop: a worker cannot tell them apart) and
        ``max_requests`` are restarts. WebSockets are closed with 1001 or 1012 accordingly."""
        return self.fast_exit or self.shutdown_reason == "arbiter exited"

    async def _drain(self) -> None:
        settings = self.settings
        if self.fast_exit:
            deadline = self.loop.time()
        else:
            # Leave part of graceful_timeout for lifespan shutdown before the arbiter's SIGKILL.
            reserve = min(2.0, settings.graceful_timeout / 4)
            deadline = self.shutdown_at + max(settings.graceful_timeout - reserve, 0.0)
            self.log.info("Worker draining (%s): %d connection(s), %d task(s) in flight",
                          self.shutdown_reason, len(self.connections), len(self.tasks))
        for conn in tuple(self.connections):
            conn.shutdown(self.drain_idle_grace)
        if (self.connections or self.tasks) and not self.fast_exit:
            self._drained = self.loop.create_future()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained, max(deadline - self.loop.time(), 0.0))
            self._drained = None
        if self.connections or self.tasks:
            if not self.fast_exit:
                self.log.warning("Graceful timeout: closing %d connection(s), cancelling %d "
                                 "task(s)", len(self.connections), len(self.tasks))
            for conn in tuple(self.connections):
                conn.force_close()
            await self._cancel_tasks(grace=0.0 if self.fast_exit else 0.5)

    async def _cancel_tasks(self, grace: float) -> None:
        if grace and self.tasks:
            # Apps that were told about the disconnect get a moment to return on their own.
            await asyncio.wait(tuple(self.tasks), timeout=grace)
        tasks = tuple(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    # -- accepting -----------------------------------------------------------------------------

    def _start_accepting(self) -> None:
        if self.accepting or self.draining:
            return
        self.accepting = True
        for sock in self.listeners:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _stop_accepting(self) -> None:
        if not self.accepting:
            return
        self.accepting = False
        for sock in self.listeners:
            self.loop.remove_reader(sock.fileno())

    def _accept(self, listener: socket.socket) -> None:
        limit = self.settings.worker_connections
        for _ in range(ACCEPT_BATCH):
            if len(self.connections) + self.pending >= limit:
                self._stop_accepting()
                return
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_PAUSE_ERRORS:
                    self.log.error("accept() failed: %s; pausing accept for 1s", exc)
                    self._stop_accepting()
                    self.loop.call_later(1.0, self._resume_accepting)
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            self.pending += 1
            self.loop.create_task(self._setup(sock))

    async def _setup(self, sock: socket.socket) -> None:
        ssl_context: ssl.SSLContext | None = self.settings.ssl_context
        try:
            sock.setblocking(False)
            await self.loop.connect_accepted_socket(
                lambda: self.protocol_factory(self), sock, ssl=ssl_context,
                ssl_handshake_timeout=self.settings.header_timeout if ssl_context else None)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            self.log.debug("Connection setup failed: %r", exc)
            sock.close()
        finally:
            self.pending -= 1
            self._resume_accepting()

    def _resume_accepting(self) -> None:
        if (not self.accepting and not self.draining
                and len(self.connections) + self.pending < self.settings.worker_connections):
            self._start_accepting()

    # -- connection bookkeeping -------------------------------------------------------------------

    def connection_made(self, conn: Any) -> None:
        self.connections.add(conn)
        if self.draining:
            conn.shutdown(self.drain_idle_grace)

    def connection_lost(self, conn: Any) -> None:
        self.connections.discard(conn)
        if not self.accepting:
            self._resume_accepting()
            self.check_drained()

    def task_done(self, task: asyncio.Task[Any]) -> None:
        """A request or WebSocket task ended (it was in :attr:`tasks`)."""
        self.tasks.discard(task)
        if self.draining:
            self.check_drained()

    def check_drained(self) -> None:
        """Wake the drain once no connection and no task is left."""
        drained = self._drained
        if drained is not None and not self.connections and not self.tasks and not drained.done():
            drained.set_result(None)

    def on_request_start(self, cycle: Any) -> None:
        if self.hooks is not None:
            self.hooks.pre_request(cycle)

    def on_response_complete(self, cycle: Any) -> None:
        """Count the request toward ``max_requests``, log it, run ``post_request``."""
        self.requests += 1
        if self.access_logger is not None:
            self.access_logger.record(cycle)
        if self.hooks is not None:
            self.hooks.post_request(cycle)
        budget = self.settings.max_requests
        if budget and self.requests >= budget and not self.draining:
            self.log.info("Autorestarting worker after %d requests (max_requests)", self.requests)
            self.begin_shutdown("max_requests reached")

    def in_flight(self) -> list[str]:
        """Descriptions of the requests in flight, for the blocked-loop report."""
        described: list[str] = []
        for conn in tuple(self.connections):
            described.extend(conn.describe())
        return described

    # -- the tick --------------------------------------------------------------------------------

    def _tick(self) -> None:
        self.last_tick = time.monotonic()
        self._tick_handle = self.loop.call_later(self._tick_interval, self._tick)
        self.heartbeat()
        self._update_date()
        now = self.loop.time()
        for conn in tuple(self.connections):
            deadline = conn.deadline
            if deadline and deadline <= now:
                conn.on_deadline()

    def _update_date(self) -> None:
        self.date_header = b"date: %s\r\n" % formatdate(usegmt=True).encode("ascii")


def _http2_upgrade() -> Callable[..., Any]:
    """Imported here, only for a worker that serves HTTP/2."""
    from .http2.connection import upgrade_factory

    return upgrade_factory


# One name for every request task: without one, each task formats a unique "Task-N".
TASK_NAME = "asgi_worker.request"


def task_starter(loop: asyncio.AbstractEventLoop) -> Callable[[Any], asyncio.Task[Any]]:
    """How request tasks are started: eagerly on Python 3.12+, else scheduled.

    An eager task runs its first step at once, inside the callback that created it, with
    ``current_task()`` and its own context set as for any task. Most requests finish in that
    step (the response goes out before the first await that really waits), which saves the
    scheduling round trip and, for those, keeping the task at all.
    """
    if sys.version_info >= (3, 12):
        return functools.partial(asyncio.Task, loop=loop, name=TASK_NAME, eager_start=True)
    return functools.partial(asyncio.Task, loop=loop, name=TASK_NAME)
