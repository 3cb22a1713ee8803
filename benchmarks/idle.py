"""Idle keep-alive connections: open N, do one request on each, keep them open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

HOST = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
PARALLEL = 50
IO_TIMEOUT_S = 10.0


async def _one(port: int, gate: asyncio.Semaphore) -> asyncio.StreamWriter | None:
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port), IO_TIMEOUT_S
            )
            writer.write(REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_S)
            length = _content_length(head)
            await asyncio.wait_for(reader.readexactly(length), IO_TIMEOUT_S)
            if head.startswith(b"HTTP/1.1 200"):
                return writer
            writer.close()
            return None
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return None


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def hold_idle(
    port: int, count: int, settle_s: float, measure: Callable[[], int]
) -> tuple[int, int]:
    """Open ``count`` connections, wait ``settle_s``, call ``measure``.

    Returns (connections still open after the request, measure() result).
    """
    gate = asyncio.Semaphore(PARALLEL)
    writers = await asyncio.gather(*(_one(port, gate) for _ in range(count)))
    open_writers = [w for w in writers if w is not None]
    await asyncio.sleep(settle_s)
    value = measure()
    for writer in open_writers:
        writer.close()
    for writer in open_writers:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return len(open_writers), value


def idle_connections(
    port: int, count: int, settle_s: float, measure: Callable[[], int]
) -> tuple[int, int]:
    return asyncio.run(hold_idle(port, count, settle_s, measure))
