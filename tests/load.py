"""A small keep-alive HTTP load generator for the zero-loss tests (loopback only, bounded).

Each connection sends a request, reads the whole response, and reconnects when the server says
``Connection: close`` (as wrk and every HTTP client do). A request that gets no complete
response, or a response that is not 2xx, is counted as a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    non_2xx: int = 0
    errors: int = 0
    connections_opened: int = 0
    done: bool = False  # the caller's condition held: connections stop after their request
    samples: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.non_2xx + self.errors

    def note(self, text: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(text)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def _connection(port: int, path: str, deadline: float, max_requests: int,
                      result: LoadResult) -> None:
    request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode()
    writer = None
    try:
        while time.monotonic() < deadline and result.sent < max_requests and not result.done:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                result.connections_opened += 1
            result.sent += 1
            try:
                writer.write(request)
                status, close = await asyncio.wait_for(_read_response(reader), timeout=10)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                result.errors += 1
                result.note(f"{type(exc).__name__}: {exc}")
                writer.close()
                writer = None
                continue
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.non_2xx += 1
                result.note(f"status {status}")
            if close:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def run_load(port: int, connections: int = 64, duration: float = 8.0,
                   path: str = "/", max_requests: int = 1_000_000,
                   until: Callable[[LoadResult], bool] | None = None) -> LoadResult:
    """Keep ``connections`` clients busy for ``duration`` seconds (bounded by count too).

    With ``until``, the load stops as soon as ``until(result)`` is true (checked every 0.1 s),
    and ``duration`` is only the bound for a machine too slow to get there: a test states the
    work it needs done, which holds on a faster and a slower machine alike.
    """
    result = LoadResult()
    deadline = time.monotonic() + duration
    await drive(asyncio.gather(*(_connection(port, path, deadline, max_requests, result)
                                 for _ in range(connections))), result, until)
    return result


async def drive(clients: asyncio.Future[Any], result: LoadResult,
                until: Callable[[LoadResult], bool] | None) -> None:
    """Wait for ``clients``; with ``until``, tell them to stop (``result.done``) as soon as
    ``until(result)`` holds, checked every 0.1 s."""
    while until is not None and not clients.done():
        if until(result):
            result.done = True
            break
        await asyncio.sleep(0.1)
    await clients
