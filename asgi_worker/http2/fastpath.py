"""The common request and response of HTTP/2, framed beside h2 with h2's own state machines.

Most requests are one HEADERS frame (END_HEADERS, usually END_STREAM) opening a new stream, and
most responses are one HEADERS frame and at most one DATA frame ending the stream. For these
h2 spends most of its time on objects around its state: hyperframe parses every frame into an
object (and h2 formats a ``repr()`` of it for a trace log nobody reads), h2 builds HEADERS and
DATA frame objects, flag sets, events and validation flags, then serializes the frames. Here
the 9-byte frame header is read and written directly, and every step that decides anything is
h2's, in h2's order:

- a request (what ``receive_data`` does with such a frame): the stream limit, HPACK decoding
  (h2's ``_decode_headers``: the same errors), the connection's and the new stream's state
  machines (``_begin_new_stream``, the RECV_HEADERS and RECV_END_STREAM transitions), the
  request's ``content-length`` when it has one (``_initialize_content_length``: h2 checks it
  and later counts the DATA against it). A ``ProtocolError`` terminates the connection exactly as
  ``receive_data`` does. Any other frame, a frame with padding, priority or CONTINUATION, a
  header block that looks like a response, or a read that does not end on a frame boundary
  goes to ``receive_data`` unchanged.
- a response (what ``send_headers`` and ``send_data`` do): the connection's and the stream's
  state machines, h2's HPACK encoder, both flow-control windows. A transition h2 refuses
  raises before anything is encoded or queued; a body the windows or the peer's frame size
  do not admit is never taken here. The bytes go into h2's own outbound buffer, so they keep
  their place among the frames h2 queues itself.

The transitions are looked up in h2's own tables (``h2.stream._transitions``,
``H2ConnectionStateMachine._transitions``), indexed once by state so that a step is a dict
lookup on an int (h2's ``process_input`` hashes a pair of ``Enum`` members through their
Python ``__hash__``); h2's side-effect functions run as h2 runs them, and a transition the
table does not have is handed to h2's ``process_input``, which raises what it always raises.

:func:`available` is false when the installed h2 does not have these internals (they are
private); then every frame takes h2's public API.
"""

from __future__ import annotations

import struct
from typing import Any

import h2
import h2.connection
import h2.exceptions
import h2.stream

_FRAME_HEADER = struct.Struct(">IBL")  # (length << 8 | type), flags, stream id
_DATA, _HEADERS, _CONTINUATION = 0, 1, 9
_END_STREAM, _END_HEADERS = 0x1, 0x4
_ODD = h2.connection.AllowedStreamIDs.ODD
_CLOSED = h2.stream.StreamState.CLOSED
# h2 forgets closed streams (moves them out of ``streams``) when it counts the open ones; it
# counts on every new stream, this module only once ``streams`` holds this many (or the
# limit): a count below both cannot exceed the limit.
_SWEEP = 16
_decode_headers: Any = getattr(h2.connection, "_decode_headers", None)
_INFORMATIONAL, _LENGTH = 1, 2  # _scan()
_Table = dict[Any, tuple[Any, Any]]


def _by_state(transitions: Any, input_: Any, key: Any) -> _Table:
    """h2's (state, input) -> (side effect, next state) table for one input, keyed by state."""
    if not isinstance(transitions, dict):
        return {}
    return {key(state): entry for (state, kind), entry in transitions.items() if kind is input_}


_stream_transitions = getattr(h2.stream, "_transitions", None)
_conn_transitions = getattr(h2.connection.H2ConnectionStateMachine, "_transitions", None)
_STREAM_INPUTS = h2.stream.StreamInputs
_CONN_INPUTS = h2.connection.ConnectionInputs
# StreamState is an IntEnum (hashed in C); ConnectionState a plain Enum: keyed by identity.
_RECV_HEADERS = _by_state(_stream_transitions, _STREAM_INPUTS.RECV_HEADERS, int)
_RECV_END_STREAM = _by_state(_stream_transitions, _STREAM_INPUTS.RECV_END_STREAM, int)
_SEND_HEADERS = _by_state(_stream_transitions, _STREAM_INPUTS.SEND_HEADERS, int)
_SEND_DATA = _by_state(_stream_transitions, _STREAM_INPUTS.SEND_DATA, int)
_SEND_END_STREAM = _by_state(_stream_transitions, _STREAM_INPUTS.SEND_END_STREAM, int)
_CONN_RECV_HEADERS = _by_state(_conn_transitions, _CONN_INPUTS.RECV_HEADERS, id)
_CONN_SEND_HEADERS = _by_state(_conn_transitions, _CONN_INPUTS.SEND_HEADERS, id)
_CONN_SEND_DATA = _by_state(_conn_transitions, _CONN_INPUTS.SEND_DATA, id)


# h2 releases whose internals the fast path was read against and tested with; another
# release takes h2's public API for every frame (slower, never wrong) until checked.
CHECKED_H2 = ((4, 4),)


def _h2_release() -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(h2.__version__).split(".")[:2])
    except ValueError:
        return ()


H2_CHECKED = _h2_release() in CHECKED_H2


def available(conn: h2.connection.H2Connection) -> bool:
    """h2 is a checked release and has the internals the fast path calls (once per
    connection)."""
    if not H2_CHECKED:
        return False
    buffer = getattr(conn, "incoming_buffer", None)
    stream_class = h2.stream.H2Stream
    machine_class = h2.stream.H2StreamStateMachine
    return (_decode_headers is not None
            and all((_RECV_HEADERS, _RECV_END_STREAM, _SEND_HEADERS, _SEND_DATA,
                     _SEND_END_STREAM, _CONN_RECV_HEADERS, _CONN_SEND_HEADERS,
                     _CONN_SEND_DATA))
            and isinstance(getattr(conn, "_data_to_send", None), bytearray)
            and isinstance(getattr(buffer, "_data", None), bytearray)
            and isinstance(getattr(buffer, "_headers_buffer", None), list)
            and isinstance(getattr(buffer, "_preamble_len", None), int)
            and callable(getattr(conn, "_begin_new_stream", None))
            and callable(getattr(conn, "_terminate_connection", None))
            and callable(getattr(stream_class, "_initialize_content_length", None))
            and callable(getattr(machine_class, "process_input", None))
            and isinstance(getattr(conn, "state_machine", None),
                           h2.connection.H2ConnectionStateMachine))


def _step(machine: Any, table: _Table, input_: Any) -> None:
    """One transition of a stream's state machine, as ``H2StreamStateMachine.process_input``
    makes it (its events are not wanted here)."""
    entry = table.get(machine.state)
    if entry is None:  # not allowed: h2 closes the stream and raises
        machine.process_input(input_)
        return
    func, target = entry
    previous = machine.state
    machine.state = target
    if func is not None:
        try:
            func(machine, previous)
        except h2.exceptions.ProtocolError:
            machine.state = _CLOSED
            raise
        except AssertionError as err:
            machine.state = _CLOSED
            raise h2.exceptions.ProtocolError(err) from err


def _conn_step(machine: Any, table: _Table, input_: Any) -> None:
    """One transition of the connection's state machine (``process_input``)."""
    entry = table.get(id(machine.state))
    if entry is None or entry[0] is not None:  # refused, or a side effect: h2's own call
        machine.process_input(input_)
        return
    machine.state = entry[1]


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


def _scan(headers: list[tuple[bytes, bytes]]) -> int:
    """What h2 would look for in a request's fields: _INFORMATIONAL if a ``:status`` 1xx is
    among the pseudo-headers (h2's ``is_informational_response``), else _LENGTH if a
    ``content-length`` field is present, else 0."""
    pseudo = True
    found = 0
    for name, value in headers:
        if pseudo:
            if name.startswith(b":"):
                if name == b":status":
                    if value.startswith(b"1"):
                        return _INFORMATIONAL
                    pseudo = False
                continue
            pseudo = False
        if name == b"content-length":
            found = _LENGTH
    return found


def receive_request(conn: h2.connection.H2Connection, stream_id: int, block: bytes,
                    end_stream: bool) -> list[tuple[bytes, bytes]]:
    """What ``receive_data`` does with such a HEADERS frame; returns the decoded headers."""
    try:
        streams = conn.streams
        if stream_id not in streams:
            limit = conn.local_settings.max_concurrent_streams
            if len(streams) >= limit or len(streams) >= _SWEEP:
                value = conn.open_inbound_streams  # also forgets closed streams
                if value + 1 > limit:
                    raise h2.exceptions.TooManyStreamsError(
                        f"Max inbound streams is {limit}, {value} open")
        headers: list[tuple[bytes, bytes]] = _decode_headers(conn.decoder, block)
        _conn_step(conn.state_machine, _CONN_RECV_HEADERS, _CONN_INPUTS.RECV_HEADERS)
        stream = conn._begin_new_stream(stream_id, _ODD)
        found = _scan(headers)
        if found == _INFORMATIONAL:  # h2's own path (it refuses this on a server)
            stream.receive_headers(headers, end_stream, None)
            return headers
        machine = stream.state_machine
        _step(machine, _RECV_HEADERS, _STREAM_INPUTS.RECV_HEADERS)
        if end_stream:
            _step(machine, _RECV_END_STREAM, _STREAM_INPUTS.RECV_END_STREAM)
        if found == _LENGTH:  # without one, h2 expects no length: its initial state
            stream._initialize_content_length(headers)
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
    conn_machine = conn.state_machine
    _conn_step(conn_machine, _CONN_SEND_HEADERS, _CONN_INPUTS.SEND_HEADERS)
    _step(machine, _SEND_HEADERS, _STREAM_INPUTS.SEND_HEADERS)
    block = conn.encoder.encode(headers)
    if size:
        _conn_step(conn_machine, _CONN_SEND_DATA, _CONN_INPUTS.SEND_DATA)
        _step(machine, _SEND_DATA, _STREAM_INPUTS.SEND_DATA)
    _step(machine, _SEND_END_STREAM, _STREAM_INPUTS.SEND_END_STREAM)
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
