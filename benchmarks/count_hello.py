"""Instructions per hello request, in process, for callgrind (deterministic on a noisy VM).

Drives ``HttpToolsProtocol`` with a fake transport through N keep-alive ``GET /`` requests
answered by a two-message hello app. Run it twice under callgrind and divide the difference,
which cancels start-up::

    for n in 2000 6000; do PYTHONHASHSEED=0 valgrind --tool=callgrind \\
        --callgrind-out-file=/tmp/cg.$n python -m benchmarks.count_hello $n 2>&1 | grep refs; done
    # instructions per request = (refs(6000) - refs(2000)) / 4000

From the repository root, with the worker's dependencies installed (uvloop, httptools).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import uvloop
from asgi_worker.http.httptools_protocol import HttpToolsProtocol
from asgi_worker.server import Server
from asgi_worker.settings import Settings

HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


class Transport:
    """Just enough of a transport: counts writes."""

    def __init__(self) -> None:
        self.writes = 0
        self.extra = {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def main(count: int) -> None:
    server = Server(app=app, settings=Settings(keepalive=75), log=logging.getLogger("count"),
                    sockets=[], state={}, heartbeat=lambda: None,
                    protocol_factory=HttpToolsProtocol)
    server._update_date()
    conn = HttpToolsProtocol(server)
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    for _ in range(count):
        conn.data_received(REQUEST)
        await asyncio.sleep(0)  # 3.11: the request task runs here
        await asyncio.sleep(0)
    assert transport.writes == count, transport.writes


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
