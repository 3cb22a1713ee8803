"""Raw-socket HTTP helpers: for framing, pipelining and malformed input httpx would refuse."""

from __future__ import annotations

import socket
import time


class Conn:
    """A client socket with a read buffer, so pipelined responses can be read one by one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        if self.buffer:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
            return data
        return self.sock.recv(size)

    def settimeout(self, timeout: float) -> None:
        self.sock.settimeout(timeout)

    def setsockopt(self, *args: int) -> None:
        self.sock.setsockopt(*args)

    def close(self) -> None:
        self.sock.close()


def connect(port: int, timeout: float = 5.0) -> Conn:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return Conn(sock)


def read_until_close(sock: Conn, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def seconds_until_closed(sock: Conn, timeout: float = 30.0) -> float | None:
    """Seconds until the server closes (or resets) the connection, discarding what it sends;
    None when it is still open after ``timeout``. Unlike :func:`read_until_close`, a close
    cannot be mistaken for a read that timed out."""
    sock.settimeout(timeout)
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with connect(port, timeout) as sock:
        sock.sendall(data)
        return read_until_close(sock, timeout)


def read_response(sock: Conn, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response (Content-Length or chunked framed) from a keep-alive socket."""
    sock.settimeout(timeout)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a full head: {buffer!r}")
        buffer += data
    head, _, first = buffer.partition(b"\r\n\r\n")
    # A bytearray: the body grows in place (``bytes +=`` copies it all on every read, which
    # made a 64 MiB body cost minutes of CPU).
    rest = bytearray(first)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status in (100, 101):
        sock.buffer = bytes(rest) + sock.buffer
        return status, headers, b""
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        sock.buffer = bytes(rest[length:]) + sock.buffer
        return status, headers, bytes(rest[:length])
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            end = rest.index(b"\r\n")
            size = int(rest[:end], 16)
            del rest[:end + 2]
            while len(rest) < size + 2:
                rest += sock.recv(65536)
            body += rest[:size]
            del rest[:size + 2]
            if size == 0:
                sock.buffer = bytes(rest) + sock.buffer
                return status, headers, bytes(body)
    return status, headers, bytes(rest) + read_until_close(sock, timeout)


def status_of(response: bytes) -> int:
    """The status code of the first response in ``response`` (0 when there is none)."""
    if not response.startswith(b"HTTP/1."):
        return 0
    return int(response.split(b" ", 2)[1])
