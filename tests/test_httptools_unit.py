"""What the httptools adapter assumes of llhttp, checked against the installed httptools."""

from __future__ import annotations

import httptools
import pytest

VERSIONS = [b"0.9", b"1.0", b"1.1", b"1.2", b"2.0", b"3.0"]
CONNECTION_HEADERS = [
    b"", b"Connection: keep-alive\r\n", b"Connection: close\r\n", b"Connection: upgrade\r\n",
    b"connection: Keep-Alive, x\r\n", b"Proxy-Connection: keep-alive\r\n",
    b"PROXY-CONNECTION: keep-alive\r\n", b"Keep-Alive: 5\r\n",
]


class _Head:
    def __init__(self) -> None:
        self.names: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.names.append(name.lower())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("method", [b"GET", b"POST", b"CONNECT"])
def test_keep_alive_without_connection_header_is_http11(version: bytes, method: bytes) -> None:
    # HTTPConnection.on_head takes "1.1" for a keep-alive request without a Connection or
    # Proxy-Connection header instead of calling get_http_version().
    parsed = 0
    for connection in CONNECTION_HEADERS:
        head = _Head()
        parser = httptools.HttpRequestParser(head)
        target = b"example.com:443" if method == b"CONNECT" else b"/"
        try:
            parser.feed_data(b"%s %s HTTP/%s\r\nHost: x\r\n%sContent-Length: 0\r\n\r\n"
                             % (method, target, version, connection))
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            continue  # refused: never reaches on_head
        parsed += 1
        named = b"connection" in head.names or b"proxy-connection" in head.names
        if parser.should_keep_alive() and not named:
            assert parser.get_http_version() == "1.1", (version, connection)
    if version in (b"1.0", b"1.1"):
        assert parsed == len(CONNECTION_HEADERS)
