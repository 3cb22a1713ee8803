"""HTTP/1.1 wire side of pathsend and zerocopysend: the file goes out with ``os.sendfile``.

:func:`send_range` (:meth:`H1Framing.send_file`) frames a
:class:`~asgi_worker.http.files.FileRange` into the HTTP/1.1 response (Content-Length from
the file when the app gave none, a chunk when the response is chunked, nothing for HEAD and
304) and :func:`_transfer` moves the bytes:

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

from ..disconnected import ClientDisconnected
from .cycle import describe_request

if TYPE_CHECKING:
    from .cycle import RequestCycle
    from .files import FileRange
    from .h1_framing import H1Framing

COPY_CHUNK = 128 * 1024
# One os.sendfile() call at most: the loop yields between calls, so one fast download does not
# hold the event loop for a whole large file.
SENDFILE_CHUNK = 4 * 1024 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
# os.sendfile() refusing this file or socket: the same bytes go out by reading and writing.
_NO_SENDFILE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP,
                          errno.ENOTSOCK})


async def send_range(framing: H1Framing, cycle: RequestCycle, file: FileRange,
                     last: bool) -> None:
    """A file's range as (the rest of) the body of the framing's response; ``last``: the last
    body message (for a response with trailers, :meth:`H1Framing.trailers` then ends it)."""
    count = file.count
    trailers = bool(cycle.trailers)
    if framing.head:  # the first body bytes: the head goes out first
        if (last and framing.content_length < 0 and not framing.chunked
                and cycle.status not in _NO_BODY_STATUS
                and not (trailers and framing.trailers_send)):
            framing.content_length = count
            framing.head += b"content-length: %d\r\n" % count
        framing.data(cycle, b"", True)
    if not framing.no_body and count:
        if 0 <= framing.length_left < count:
            cycle.conn.log.error("ASGI app sent more body than its Content-Length (%d): %s",
                                 framing.content_length, describe_request(cycle.scope))
            cycle.keep_alive = False
            count = framing.length_left
            last = True
            trailers = False  # the response ends here; trailers that follow are ignored
        if framing.chunked:
            framing._buffer(b"%x\r\n" % count)
        framing.flush()
        sent = await _transfer(framing, cycle, file, count)
        file.done(sent)
        if framing.length_left >= 0:
            framing.length_left -= sent
        if sent < count:
            # The file is shorter than it was (truncated meanwhile): the body cannot complete.
            cycle.conn.log.error("File ended %d bytes early in a response: %s", count - sent,
                                 describe_request(cycle.scope))
            cycle._abort_response()
            return
        if framing.chunked:
            framing._buffer(b"\r\n")
    if last:
        if trailers:
            framing.last_data(cycle, b"")
        else:
            framing.data(cycle, b"", False)


async def _transfer(framing: H1Framing, cycle: RequestCycle, file: FileRange,
                    count: int) -> int:
    """Write ``count`` bytes of ``file``; the number written (less if the file ended)."""
    conn = framing.conn
    transport = conn.transport
    if transport is None or cycle.disconnected:
        await cycle._wait_writable()  # raises ClientDisconnected
    assert transport is not None
    sock = None
    if (conn.settings.sendfile and hasattr(os, "sendfile")
            and transport.get_extra_info("sslcontext") is None):
        sock = transport.get_extra_info("socket")
    if sock is None:
        return await _copy(framing, cycle, file, count)
    await _drain(framing, cycle)
    fd = os.dup(sock.fileno())
    before = cycle.bytes_sent
    try:
        return await _sendfile(framing, cycle, fd, file, count)
    except OSError as exc:
        if exc.errno not in _NO_SENDFILE or cycle.bytes_sent != before:
            raise
    finally:
        os.close(fd)
    return await _copy(framing, cycle, file, count)


async def _drain(framing: H1Framing, cycle: RequestCycle) -> None:
    """Wait until the transport has written everything it holds (the response head)."""
    conn = framing.conn
    transport = conn.transport
    assert transport is not None
    if not transport.get_write_buffer_size():
        return
    transport.set_write_buffer_limits(high=0)  # pauses the protocol: resume_writing = empty
    try:
        while transport.get_write_buffer_size():
            _check_open(framing, cycle)
            await cycle._wait_writable()
    finally:
        if not conn.closed:
            transport.set_write_buffer_limits()


async def _sendfile(framing: H1Framing, cycle: RequestCycle, sock_fd: int, file: FileRange,
                    count: int) -> int:
    conn = framing.conn
    loop = conn.loop
    offset = file.offset
    left = count
    while left > 0:
        _check_open(framing, cycle)
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


def _check_open(framing: H1Framing, cycle: RequestCycle) -> None:
    """Raise ClientDisconnected once the client is gone or the connection is being closed."""
    if cycle.disconnected or framing.conn.closed:
        raise ClientDisconnected("the client closed the connection")


async def _copy(framing: H1Framing, cycle: RequestCycle, file: FileRange, count: int) -> int:
    """The fallback: read and write a chunk at a time, within the transport's flow control."""
    conn = framing.conn
    offset = file.offset
    left = count
    while left > 0:
        _check_open(framing, cycle)
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
