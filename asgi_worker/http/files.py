"""What a ``http.response.pathsend`` or ``http.response.zerocopysend`` message means.

Protocol-independent: which file, from which offset, how many bytes. The bytes themselves are
put on the wire by the protocol (HTTP/1.1: :mod:`asgi_worker.http.sendfile`), which also
owns flow control. A path is opened here and closed by :meth:`FileRange.close`; a descriptor
from ``zerocopysend`` stays the app's (the spec: servers do not close it), and when the
message gave no ``offset`` the file's position is advanced past the bytes sent, as a
``write`` of the same bytes would have.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ..types import Message


class FileRange:
    """``count`` bytes of the open file ``fd`` from ``offset``."""

    __slots__ = ("advance", "count", "fd", "offset", "owned")

    def __init__(self, fd: int, offset: int, count: int, owned: bool, advance: bool) -> None:
        self.fd = fd
        self.offset = offset
        self.count = count
        self.owned = owned  # opened here from a path: closed by close()
        self.advance = advance  # no offset given: the file position moves past what was sent

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""
        return os.pread(self.fd, size, offset)

    def done(self, sent: int) -> None:
        """The transfer ended after ``sent`` bytes."""
        if self.advance and sent:
            os.lseek(self.fd, self.offset + sent, os.SEEK_SET)

    def close(self) -> None:
        if self.owned:
            self.owned = False
            os.close(self.fd)


def open_path(message: Message) -> FileRange:
    """The whole regular file a pathsend names. OSError when it cannot be opened and read."""
    path = message.get("path")
    if not isinstance(path, (str, os.PathLike)):
        raise RuntimeError(f"http.response.pathsend 'path' must be a string, got {path!r}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(f"not a regular file: {os.fspath(path)!r}")
        return FileRange(fd, 0, info.st_size, True, False)
    except BaseException:
        os.close(fd)
        raise


def from_descriptor(message: Message) -> FileRange:
    """The range a zerocopysend names: ``file`` (a descriptor or an object with ``fileno()``),
    ``offset`` (else the current position) and ``count`` (else to the end of the file)."""
    file: Any = message.get("file")
    fd = file if isinstance(file, int) else _fileno(file)
    offset = message.get("offset")
    count = message.get("count")
    if (offset is not None and (type(offset) is not int or offset < 0)) or (
            count is not None and (type(count) is not int or count < 0)):
        raise RuntimeError(f"http.response.zerocopysend: invalid offset {offset!r} or "
                           f"count {count!r}")
    try:
        advance = offset is None
        if offset is None:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        size = os.fstat(fd).st_size
    except OSError as exc:
        raise RuntimeError(f"http.response.zerocopysend: unusable file {file!r}: {exc}") from exc
    left = max(size - offset, 0)
    return FileRange(fd, offset, left if count is None else min(count, left), False, advance)


def _fileno(file: Any) -> int:
    try:
        fd = file.fileno()
    except Exception as exc:
        raise RuntimeError(f"http.response.zerocopysend 'file' must be a file descriptor or "
                           f"have fileno(), got {file!r}") from exc
    if not isinstance(fd, int):
        raise RuntimeError(f"http.response.zerocopysend: fileno() returned {fd!r}")
    return fd
