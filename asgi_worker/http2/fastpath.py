"""The common request and response of HTTP/2, framed beside h2 with h2's own state machines.

Most requests are one HEADERS frame (END_HEADERS, usually END_STREAM) opening a new stream, and
most responses are one HEADERS frame and at most one DATA frame ending the stream. For these
h2 spends most of its time on frame objects around its state: hyperframe parses every frame
into an object (and h2 formats a ``repr()`` of it for a trace log nobody reads), h2 builds
HEADERS and DATA frame objects, flag sets and validation flags, then serializes them. Here the
9-byte frame header is read and written directly, and every step that decides anything is
h2's, called in h2's order:

- a request: the stream limit (``open_inbound_streams``), HPACK decoding (h2's
  ``_decode_headers``: the same errors), the connection's and the new stream's state machines
  (``_begin_new_stream``, ``H2Stream.receive_headers``); a ``ProtocolError`` terminates the
  connection exactly as ``receive_data`` does. Any other frame, a frame with padding,
  priority or CONTINUATION, or a read that does not end on a frame boundary goes to
  ``receive_data`` unchanged.
- a response: the connection's and the stream's state machines (the transitions that
  ``send_headers`` and ``send_data`` make), h2's HPACK encoder, both flow-control windows. A
  transition h2 refuses raises before anything is encoded or queued; a body the windows or the
  peer's frame size do not admit is never taken here. The bytes go into h2's own outbound
  buffer, so they keep their place among the frames h2 queues itself.

:func:`available` is false when the installed h2 does not have the internals named above
(they are private); then every frame takes h2's public API.
"""

from __future__ import annotations

import struct
from typing import Any

import h2.connection
import h2.exceptions
import h2.stream

_FRAME_HEADER = struct.Struct(">IBL")  # (length << 8 | type), flags, stream id
_DATA, _HEADERS, _CONTINUATION = 0, 1, 9
_END_STREAM, _END_HEADERS = 0x1, 0x4
_RECV_HEADERS = h2.connection.ConnectionInputs.RECV_HEADERS
_SEND_HEADERS = h2.connection.ConnectionInputs.SEND_HEADERS
_SEND_DATA = h2.connection.ConnectionInputs.SEND_DATA
_STREAM_SEND_HEADERS = h2.stream.StreamInputs.SEND_HEADERS
_STREAM_SEND_DATA = h2.stream.StreamInputs.SEND_DATA
_STREAM_SEND_END = h2.stream.StreamInputs.SEND_END_STREAM
_ODD = h2.connection.AllowedStreamIDs.ODD
_decode_headers: Any = getattr(h2.connection, "_decode_headers", None)


def available(conn: h2.connection.H2Connection) -> bool:
    """h2 has the internals the fast path calls (checked once per connection)."""
    buffer = getattr(conn, "incoming_buffer", None)
    stream_class = h2.stream.H2Stream
    return (_decode_headers is not None
            and isinstance(getattr(conn, "_data_to_send", None), bytearray)
            and isinstance(getattr(buffer, "_data", None), bytearray)
            and isinstance(getattr(buffer, "_headers_buffer", None), list)
            and isinstance(getattr(buffer, "_preamble_len", None), int)
            and callable(getattr(conn, "_begin_new_stream", None))
            and callable(getattr(conn, "_terminate_connection", None))
            and callable(getattr(stream_class, "receive_headers", None))
            and isinstance(getattr(conn, "state_machine", None),
                           h2.connection.H2ConnectionStateMachine))


def at_frame_boundary(conn: h2.connection.H2Connection) -> bool:
    """h2 holds no part of a frame, no open header block and no rest of the preface."""
    buffer = conn.incoming_buffer
    return not buffer._data and not buffer._headers_buffer and not buffer._preamble_len


def next_frame(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """The frame at ``pos``: (length, type, flags, stream id), or length -1 if incomplete."""
    if len(data) - pos < 9:
        return -1, 0, 0, 0
    head, flags, stream_id = _FRAME_HEADER.unpack_from(data, pos)
    length = head >> 8
    if len(data) - pos - 9 < length:
        return -1, 0, 0, 0
    return length, head & 0xFF, flags, stream_id & 0x7FFFFFFF


def opens_stream(kind: int, flags: int, stream_id: int) -> bool:
    """A HEADERS frame with a whole header block, without padding or priority, on a client
    stream (whether the stream is new is h2's state: ``highest_inbound_stream_id``)."""
    return (kind == _HEADERS and flags | _END_STREAM == _END_STREAM | _END_HEADERS
            and stream_id & 1 == 1)


def receive_request(conn: h2.connection.H2Connection, stream_id: int, block: bytes,
                    end_stream: bool) -> list[Any]:
    """What ``receive_data`` does with such a HEADERS frame; returns the decoded headers."""
    try:
        if stream_id not in conn.streams:
            limit = conn.local_settings.max_concurrent_streams
            value = conn.open_inbound_streams  # also forgets closed streams
            if value + 1 > limit:
                raise h2.exceptions.TooManyStreamsError(
                    f"Max inbound streams is {limit}, {value} open")
        headers: list[Any] = _decode_headers(conn.decoder, block)
        conn.state_machine.process_input(_RECV_HEADERS)
        stream = conn._begin_new_stream(stream_id, _ODD)
        stream.receive_headers(headers, end_stream, None)
    except h2.exceptions.ProtocolError as exc:
        conn._terminate_connection(exc.error_code)
        raise
    return headers


def send_response(conn: h2.connection.H2Connection, stream_id: int,
                  headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """HEADERS, and DATA if ``body``, ending the stream; False (nothing done) if the windows
    or the peer's frame size do not admit ``body`` at once."""
    stream = conn.streams.get(stream_id)
    size = len(body)
    frame_size = conn.max_outbound_frame_size
    if (stream is None or size > frame_size or size > stream.outbound_flow_control_window
            or size > conn.outbound_flow_control_window):
        return False
    machine = stream.state_machine
    conn.state_machine.process_input(_SEND_HEADERS)
    machine.process_input(_STREAM_SEND_HEADERS)
    block = conn.encoder.encode(headers)
    if size:
        conn.state_machine.process_input(_SEND_DATA)
        machine.process_input(_STREAM_SEND_DATA)
    machine.process_input(_STREAM_SEND_END)
    stream.outbound_flow_control_window -= size
    conn.outbound_flow_control_window -= size
    out = conn._data_to_send
    end = 0 if size else _END_STREAM
    if len(block) <= frame_size:
        out += _FRAME_HEADER.pack(len(block) << 8 | _HEADERS, end | _END_HEADERS, stream_id)
        out += block
    else:  # CONTINUATION frames, as h2 splits a block
        first = block[:frame_size]
        out += _FRAME_HEADER.pack(len(first) << 8 | _HEADERS, end, stream_id)
        out += first
        for start in range(frame_size, len(block), frame_size):
            part = block[start:start + frame_size]
            last = start + frame_size >= len(block)
            out += _FRAME_HEADER.pack(len(part) << 8 | _CONTINUATION,
                                      _END_HEADERS if last else 0, stream_id)
            out += part
    if size:
        out += _FRAME_HEADER.pack(size << 8 | _DATA, _END_STREAM, stream_id)
        out += body
    return True
