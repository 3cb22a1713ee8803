"""Lean WebSocket echo load client (raw asyncio Protocol on uvloop).

Each connection sends one binary message, waits for the echo, and repeats.
Client frames use an all-zero masking key (legal per RFC 6455 §5.3), so a
frame is built once and written as-is: the client stays cheap even for 64 KiB.

Usage: ``python -m benchmarks.wsclient --port P --conns 50 --size 32 --duration 5``
prints one JSON object (messages/s, RTT p50/p99 in ms, errors).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import statistics
import struct
import time
from typing import cast

HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 10.0
WINDOW_START, WINDOW_END = "window-start", "window-end"


def client_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + b"\x00\x00\x00\x00" + payload


class Stats:
    def __init__(self) -> None:
        self.messages = 0
        self.errors = 0
        self.recording = False
        self.rtts: list[float] = []
        self.running = True


class EchoClient(asyncio.Protocol):
    def __init__(self, stats: Stats, frame: bytes, size: int, ready: asyncio.Future[None]) -> None:
        self.stats, self.frame, self.size, self.ready = stats, frame, size, ready
        self.received = 0  # payload bytes of the message being received
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.sent_at = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stats.running:
            self.stats.errors += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.frame)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buf.startswith(b"HTTP/1.1 101"):
                status = bytes(self.buf[:80]).decode(errors="replace").splitlines()[0]
                self.ready.set_exception(ConnectionError(f"upgrade refused: {status}"))
                self.fail()
                return
            del self.buf[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
            self.send()
        self.parse_frames()

    def parse_frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            fin_op, size = buf[0], buf[1] & 0x7F
            offset = 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, offset = struct.unpack_from("!H", buf, 2)[0], 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, offset = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < offset + size:
                return
            payload = bytes(buf[offset : offset + size]) if fin_op & 0x0F == 0x9 else b""
            del buf[: offset + size]
            self.on_frame(fin_op, payload, size)

    def on_frame(self, fin_op: int, payload: bytes, size: int) -> None:
        opcode = fin_op & 0x0F
        if opcode == 0x9:  # ping -> pong
            assert self.transport is not None
            self.transport.write(client_frame(payload, 0xA))
        elif opcode == 0x8:
            self.fail()
        elif opcode in (0x0, 0x1, 0x2):
            self.received += size
            if fin_op & 0x80:
                self.on_message()

    def on_message(self) -> None:
        """A complete echo arrived: check its size, count it, send the next one."""
        size, self.received = self.received, 0
        if size != self.size:
            self.fail()
            return
        stats = self.stats
        stats.messages += 1
        if stats.recording:
            stats.rtts.append(time.perf_counter() - self.sent_at)
        if stats.running:
            self.send()

    def fail(self) -> None:
        self.stats.errors += 1
        if self.transport is not None:
            self.transport.abort()


def _same(client: EchoClient) -> EchoClient:
    return client


async def open_clients(port: int, conns: int, size: int, stats: Stats) -> list[EchoClient]:
    loop = asyncio.get_running_loop()
    frame = client_frame(b"x" * size)
    clients: list[EchoClient] = []
    for _ in range(conns):
        ready: asyncio.Future[None] = loop.create_future()
        client = EchoClient(stats, frame, size, ready)
        await loop.create_connection(functools.partial(_same, client), HOST, port)
        clients.append(client)
        await asyncio.wait_for(ready, CONNECT_TIMEOUT_S)
    return clients


async def run(
    port: int, conns: int, size: int, duration: float, warmup: float
) -> dict[str, object]:
    stats = Stats()
    clients = await open_clients(port, conns, size, stats)
    await asyncio.sleep(warmup)
    print(WINDOW_START, flush=True)  # the harness samples server CPU at these markers
    start_count, stats.recording, start = stats.messages, True, time.perf_counter()
    await asyncio.sleep(duration)
    count, elapsed = stats.messages - start_count, time.perf_counter() - start
    print(WINDOW_END, flush=True)
    stats.recording = stats.running = False
    await asyncio.sleep(0.2)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.wait([c.closed for c in clients], timeout=3)
    rtts = sorted(stats.rtts)
    return {
        "messages": count,
        "seconds": elapsed,
        "msg_per_s": count / elapsed,
        "p50_ms": 1000 * statistics.median(rtts) if rtts else None,
        "p99_ms": 1000 * rtts[int(0.99 * (len(rtts) - 1))] if rtts else None,
        "errors": stats.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    import uvloop  # imported here so the harness can import the markers without uvloop

    result = uvloop.run(run(args.port, args.conns, args.size, args.duration, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
