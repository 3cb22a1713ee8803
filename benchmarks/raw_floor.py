"""The "raw floor": uvloop + httptools answering a fixed hello, no ASGI layer.

Usage: ``python -m benchmarks.raw_floor HOST PORT``. Any request gets the same
keep-alive plain-text response; it bounds what any Python ASGI server can reach.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

import httptools
import uvloop

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"


class HelloProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.transport is not None:
            self.transport.write(RESPONSE)
            if not self.parser.should_keep_alive():
                self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HelloProtocol, host, port, backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    uvloop.run(serve(sys.argv[1], int(sys.argv[2])))


if __name__ == "__main__":
    main()
