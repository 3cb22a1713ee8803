"""The access log: one line (or one ``log.access()`` call) per finished request.

Two ways to write a line. The fast one formats it with the compiled format
(:mod:`asgi_worker.accessformat`) and hands it to Gunicorn's access handler, in batches. The
compatible one builds gunicorn-shaped request, response and environ objects and calls
``log.access()``, for custom logger classes and statsd, which override it. The settings module
decides which applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any, Protocol

from asgi_worker.accessformat import AccessInfo, compile_access_format
from asgi_worker.hookobjects import (
    HookRequest,
    HookResponse,
    build_environ,
    request_time,
)

__all__ = ["AccessLogger", "GunicornLog"]


class GunicornLog(Protocol):
    """The parts of ``gunicorn.glogging.Logger`` (or a subclass) used here."""

    access_log: logging.Logger

    def access(self, resp: Any, req: Any, environ: Any, request_time: timedelta) -> None: ...

    def exception(self, msg: str, *args: Any) -> None: ...


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


class AccessLogger:
    """Writes one access-log line (or calls ``log.access``) per finished request.

    ``fast`` means ``log`` is gunicorn's plain Logger: lines are formatted here
    and go to ``log.access_log`` when ``enabled`` (gunicorn's
    access_log_enabled). Otherwise ``log.access()`` is called for every
    request whatever ``enabled`` says, as gunicorn's WSGI workers do, because
    statsd counts requests there even with no access log; the logger checks
    its own settings. Errors are reported once through ``log.exception`` and
    never raised.
    """

    __slots__ = ("_batch", "_format", "_log", "_reported", "active", "fast", "record")

    def __init__(self, log: GunicornLog, fmt: str, enabled: bool, fast: bool) -> None:
        self._log = log
        self.fast = fast
        #: False when record() would do nothing; the worker can skip the bookkeeping.
        self.active = enabled or not fast
        # Only the fast path uses the format here; a custom logger may define
        # atoms of its own, which would make a check here refuse its format.
        self._format = compile_access_format(fmt) if fast and enabled else None
        self._batch = _BatchedHandler.for_logger(log.access_log) if self._format else None
        self._reported = False
        #: ``record(info, request=None, environ=None)``: log ``info``; ``request`` and
        #: ``environ`` reuse objects already built for hooks. The common case is called
        #: straight, without a dispatch per line.
        self.record = self._record_batched if self._batch is not None else self._record

    def _record(
        self,
        info: AccessInfo,
        request: HookRequest | None = None,
        environ: dict[str, Any] | None = None,
    ) -> None:
        if not self.active:
            return
        try:
            if self._format is not None:
                self._log.access_log.info(self._format(info))
            elif not self.fast:
                self._call_access(info, request, environ)
        except Exception:
            self._report()

    def _record_batched(
        self,
        info: AccessInfo,
        request: HookRequest | None = None,
        environ: dict[str, Any] | None = None,
    ) -> None:
        try:
            line = self._format(info)  # type: ignore[misc]  # set when batching
            lines = self._batch.lines  # type: ignore[union-attr]
            if not lines:
                asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)
            lines.append(line)
        except Exception:
            self._report()

    def flush(self) -> None:
        """Write the lines batched so far (also called by the worker before it exits)."""
        if self._batch is not None:
            try:
                self._batch.flush()
            except Exception:
                self._report()

    def _call_access(
        self,
        info: AccessInfo,
        request: HookRequest | None,
        environ: dict[str, Any] | None,
    ) -> None:
        scope = info.scope
        resp = HookResponse(info.status, info.response_headers, info.bytes_sent)
        req = request if request is not None else HookRequest(scope)
        env = environ if environ is not None else build_environ(scope)
        self._log.access(resp, req, env, request_time(info.duration))

    def _report(self) -> None:
        if self._reported:
            return
        self._reported = True
        # The error log failing too leaves nowhere to say so.
        with contextlib.suppress(Exception):
            self._log.exception("Error writing the access log (further errors not reported)")


# How long a batched access line may wait to be written: short enough to look live, long
# enough that a busy worker writes a few dozen times a second rather than once per request.
FLUSH_DELAY = 0.02


class _BatchedHandler:
    """Gunicorn's plain access handler, written to at most every FLUSH_DELAY seconds.

    With ``--access-logfile`` and no logging config, Gunicorn's access logger has
    one stream handler whose format is just the message. Going through
    ``logging`` costs more per line than serving a small request, so lines for
    that handler are joined and written (and flushed) in batches, every 20 ms at most.
    The handler's stream is read at every flush, so SIGUSR1's reopen still works.
    Any other set-up (filters, logconfig, syslog) keeps the ``logging`` path.
    """

    __slots__ = ("_handler", "lines")

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self._handler = handler
        #: Lines not written yet; whoever adds the first one schedules :meth:`flush`.
        self.lines: list[str] = []

    @classmethod
    def for_logger(cls, logger: logging.Logger) -> _BatchedHandler | None:
        handlers = logger.handlers
        if len(handlers) != 1 or logger.filters or not logger.isEnabledFor(logging.INFO):
            return None
        handler = handlers[0]
        formatter = handler.formatter
        if (not isinstance(handler, logging.StreamHandler) or handler.filters
                or handler.level > logging.INFO or formatter is None
                or formatter._fmt != "%(message)s" or type(formatter) is not logging.Formatter):
            return None
        return cls(handler)

    def flush(self) -> None:
        lines = self.lines
        if not lines:
            return
        handler = self._handler
        terminator = handler.terminator
        text = terminator.join(lines) + terminator
        lines.clear()
        handler.acquire()
        try:
            stream = handler.stream
            stream.write(text)
            stream.flush()
        finally:
            handler.release()
