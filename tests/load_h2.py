"""An HTTP/2 (h2c prior knowledge) load generator for the zero-loss tests: loopback, bounded.

Each connection keeps a few streams in flight. What RFC 9113 section 8.7 says a client may
retry is retried on a new connection, as every HTTP/2 client does: a stream above the
last-stream-id of a GOAWAY, and one refused with ``REFUSED_STREAM`` (neither was processed).
Anything else is a failure: a stream the server said it would answer that ended without a
complete 2xx response, a reset with another code, a connection that dropped streams without
a GOAWAY covering them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from tests.h2frames import whole_frames
from tests.load import LoadResult, drive

IN_FLIGHT = 4  # streams per connection


async def _connection(port: int, path: str, deadline: float, result: LoadResult,
                      retries: list[int]) -> None:
    headers = [(b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"),
               (b":authority", b"127.0.0.1")]
    while time.monotonic() < deadline and not result.done:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        result.connections_opened += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                    header_encoding=None))
        conn.initiate_connection()
        open_streams: dict[int, int] = {}  # stream id -> status (0 until the HEADERS came)
        last_id = None  # the GOAWAY's last-stream-id once one came
        buffer = b""
        try:
            while True:
                while (last_id is None and len(open_streams) < IN_FLIGHT
                       and time.monotonic() < deadline and not result.done):
                    stream_id = conn.get_next_available_stream_id()
                    conn.send_headers(stream_id, headers, end_stream=True)
                    open_streams[stream_id] = 0
                    result.sent += 1
                writer.write(conn.data_to_send())
                if not open_streams:
                    break
                data = await asyncio.wait_for(reader.read(65536), timeout=10)
                if not data:
                    raise ConnectionError("closed")
                frames, buffer = whole_frames(buffer + data)
                for frame in frames:
                    for event in conn.receive_data(frame):
                        _event(event, conn, open_streams, result, retries)
                        if isinstance(event, h2.events.ConnectionTerminated):
                            last_id = event.last_stream_id or 0
                            machine = conn.state_machine  # read the streams it lets finish
                            machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                if last_id is not None:
                    for stream_id in [s for s in open_streams if s > last_id]:
                        del open_streams[stream_id]  # not processed: retried
                        retries.append(stream_id)
                        result.sent -= 1
        except (OSError, asyncio.TimeoutError, h2.exceptions.ProtocolError) as exc:
            if open_streams:
                result.errors += len(open_streams)
                result.note(f"{type(exc).__name__} {exc} with {len(open_streams)} in flight"
                            f" (GOAWAY last id {last_id})")
        finally:
            writer.close()


def _event(event: object, conn: h2.connection.H2Connection, open_streams: dict[int, int],
           result: LoadResult, retries: list[int]) -> None:
    if isinstance(event, h2.events.ResponseReceived):
        for name, value in event.headers or ():
            if name == b":status":
                open_streams[event.stream_id or 0] = int(value)
    elif isinstance(event, h2.events.DataReceived):
        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id or 0)
    elif isinstance(event, h2.events.StreamEnded):
        status = open_streams.pop(event.stream_id or 0, 0)
        if 200 <= status < 300:
            result.ok += 1
        else:
            result.non_2xx += 1
            result.note(f"status {status}")
    elif isinstance(event, h2.events.StreamReset):
        if open_streams.pop(event.stream_id or 0, None) is None:
            return
        if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
            retries.append(event.stream_id or 0)
            result.sent -= 1
        else:
            result.errors += 1
            result.note(f"reset {event.error_code!r}")


async def run_h2_load(port: int, connections: int = 16, duration: float = 8.0,
                      path: str = "/", until: Callable[[LoadResult], bool] | None = None,
                      ) -> tuple[LoadResult, int]:
    """Like ``load.run_load`` over HTTP/2; the result and how many streams were retried."""
    result = LoadResult()
    retries: list[int] = []
    deadline = time.monotonic() + duration
    await drive(asyncio.gather(*(_connection(port, path, deadline, result, retries)
                                 for _ in range(connections))), result, until)
    return result, len(retries)
