"""HTTP/1.1 wire side of pathsend and zerocopysend: the file goes out with ``os.sendfile``.

:func:`send_file` frames a :class:`~asgi_worker.http.files.FileRange` into the cycle's
response (Content-Length from the file when the app gave none, a chunk when the response is
chunked, nothing for HEAD and 304) and :func:`_transfer` moves the bytes:

* ``os.sendfile`` on the connection's socket when it is plain TCP and Gunicorn's ``sendfile``
  setting is on. The transport's buffer is drained first (its write limits are set to 0 for
  a moment, so the protocol's ``resume_writing`` says when it is empty); then nothing else
  writes to the socket until the file is sent, because the connection starts the next
  (pipelined) response only when this one completes. The socket is used through a
  duplicate of its descriptor, so a connection closed meanwhile (a client gone, the graceful
  timeout's force-close) can never make a reused descriptor number receive the file. When the
  socket's buffer is full, the loop waits for it with ``add_writer`` on that duplicate
  (the transport's own descriptor cannot be given to ``add_writer``), under the send deadline.
* Otherwise (TLS, ``--no-sendfile``, no socket): ``pread`` and ``transport.write`` of
  128 KiB at a time, waiting whenever the transport's buffer is above its high-water mark.

Either way the worker holds a bounded part of the file (none, or 128 KiB plus the
transport's 64 KiB high-water mark) whatever the client's speed, yields to the event loop
between writes, counts the bytes really sent for the access log, and stops with
:class:`~asgi_worker.http.cycle.ClientDisconnected` when the client goes away.
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import TYPE_CHECKING

from ..types import Message
from . import extensions
from .files import FileRange, from_descriptor, open_path

if TYPE_CHECKING:
    from .cycle import RequestCycle

COPY_CHUNK = 128 * 1024
# One os.sendfile() call at most: the loop yields between calls, so one fast download does not
# hold the event loop for a whole large file.
SENDFILE_CHUNK = 4 * 1024 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
# os.sendfile() refusing this file or socket: the same bytes go out by reading and writing.
_NO_SENDFILE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP,
                          errno.ENOTSOCK})


async def send_file(cycle: RequestCycle, kind: str, message: Message) -> None:
    """A pathsend or zerocopysend message: the file's bytes as (the rest of) the body."""
    if not cycle.started:
        raise RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
    if cycle.complete or cycle.trailers & extensions.TRAILERS_DUE:
        raise RuntimeError(f"unexpected ASGI message {kind!r} after the last body message")
    last = kind == extensions.PATHSEND or not message.get("more_body", False)
    if cycle.status in _NO_BODY_STATUS:
        file = FileRange(-1, 0, 0, False, False)  # no body, no length: the file is not read
    elif kind == extensions.ZEROCOPYSEND:
        file = from_descriptor(message)
    else:
        try:
            file = open_path(message)
        except OSError as exc:
            _file_error(cycle, message, exc)
            return
    try:
        await _send_range(cycle, file, last)
    finally:
        file.close()


def _file_error(cycle: RequestCycle, message: Message, exc: OSError) -> None:
    """The file of a pathsend cannot be sent: 500 if the head is not out yet, else close."""
    from .cycle import describe_request

    cycle.conn.log.error("ASGI app's http.response.pathsend of %r failed: %s (%s)",
                         message.get("path"), exc, describe_request(cycle.scope))
    cycle._abort_response()


async def _send_range(cycle: RequestCycle, file: FileRange, last: bool) -> None:
    count = file.count
    if cycle.head:  # the first body bytes: the head goes out first
        if (last and cycle.content_length < 0 and not cycle.chunked
                and cycle.status not in _NO_BODY_STATUS
                and not cycle.trailers & extensions.TRAILERS_SEND):
            cycle.content_length = count
            cycle.head += b"content-length: %d\r\n" % count
        cycle._write(b"", True)
    if not cycle.no_body and count:
        if 0 <= cycle.length_left < count:
            cycle.conn.log.error("ASGI app sent more body than its Content-Length (%d): %s",
                                 cycle.content_length, _describe(cycle))
            cycle.keep_alive = False
            count = cycle.length_left
            last = True
            cycle.trailers = 0
        if cycle.chunked:
            cycle._buffer(b"%x\r\n" % count)
        cycle.flush()
        sent = await _transfer(cycle, file, count)
        file.done(sent)
        if cycle.length_left >= 0:
            cycle.length_left -= sent
        if sent < count:
            # The file is shorter than it was (truncated meanwhile): the body cannot complete.
            cycle.conn.log.error("File ended %d bytes early in a response: %s", count - sent,
                                 _describe(cycle))
            cycle._abort_response()
            return
        if cycle.chunked:
            cycle._buffer(b"\r\n")
    if last:
        if cycle.trailers:
            cycle._write_before_trailers(b"", False)
        else:
            cycle._write(b"", False)


def _describe(cycle: RequestCycle) -> str:
    from .cycle import describe_request

    return describe_request(cycle.scope)


async def _transfer(cycle: RequestCycle, file: FileRange, count: int) -> int:
    """Write ``count`` bytes of ``file``; the number written (less if the file ended)."""
    conn = cycle.conn
    transport = conn.transport
    if transport is None or cycle.disconnected:
        await cycle._wait_writable()  # raises ClientDisconnected
    assert transport is not None
    sock = None
    if (conn.settings.sendfile and hasattr(os, "sendfile")
            and transport.get_extra_info("sslcontext") is None):
        sock = transport.get_extra_info("socket")
    if sock is None:
        return await _copy(cycle, file, count)
    await _drain(cycle)
    fd = os.dup(sock.fileno())
    before = cycle.bytes_sent
    try:
        return await _sendfile(cycle, fd, file, count)
    except OSError as exc:
        if exc.errno not in _NO_SENDFILE or cycle.bytes_sent != before:
            raise
    finally:
        os.close(fd)
    return await _copy(cycle, file, count)


async def _drain(cycle: RequestCycle) -> None:
    """Wait until the transport has written everything it holds (the response head)."""
    conn = cycle.conn
    transport = conn.transport
    assert transport is not None
    if not transport.get_write_buffer_size():
        return
    transport.set_write_buffer_limits(high=0)  # pauses the protocol: resume_writing = empty
    try:
        while transport.get_write_buffer_size():
            _check_open(cycle)
            await cycle._wait_writable()
    finally:
        if not conn.closed:
            transport.set_write_buffer_limits()


async def _sendfile(cycle: RequestCycle, sock_fd: int, file: FileRange, count: int) -> int:
    conn = cycle.conn
    loop = conn.loop
    offset = file.offset
    left = count
    while left > 0:
        _check_open(cycle)
        try:
            sent = os.sendfile(sock_fd, file.fd, offset, min(left, SENDFILE_CHUNK))
        except (BlockingIOError, InterruptedError):
            sent = -1
        except (BrokenPipeError, ConnectionResetError):
            conn.force_close()  # the transport finds out on its own later; tell everyone now
            cycle.on_disconnect()
            continue
        if sent == 0:
            break  # end of file
        if sent > 0:
            offset += sent
            left -= sent
            cycle.bytes_sent += sent
            if left:
                await asyncio.sleep(0)
            continue
        # The socket's buffer is full: wait until the client reads.
        conn.write_paused = True
        loop.add_writer(sock_fd, conn.resume_writing)
        try:
            await cycle._wait_writable()
        finally:
            loop.remove_writer(sock_fd)
            conn.write_paused = False
    return count - left


def _check_open(cycle: RequestCycle) -> None:
    """Raise ClientDisconnected once the client is gone or the connection is being closed."""
    if cycle.disconnected or cycle.conn.closed:
        from .cycle import ClientDisconnected

        raise ClientDisconnected("the client closed the connection")


async def _copy(cycle: RequestCycle, file: FileRange, count: int) -> int:
    """The fallback: read and write a chunk at a time, within the transport's flow control."""
    conn = cycle.conn
    offset = file.offset
    left = count
    while left > 0:
        _check_open(cycle)
        if conn.write_paused:
            await cycle._wait_writable()
        data = file.read(offset, min(left, COPY_CHUNK))
        if not data:
            break
        conn.transport.write(data)  # type: ignore[union-attr]
        size = len(data)
        offset += size
        left -= size
        cycle.bytes_sent += size
        if left:
            await asyncio.sleep(0)
    return count - left
