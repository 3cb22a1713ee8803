"""ASGI HTTP extensions on HTTP/1.1: pathsend, zerocopysend, early hints, trailers, tls (HTTP/2:
tests/test_http2_extensions.py).

A real worker of each parser serves tests/apps/extensions.py; the clients are raw sockets
(to see 103s, trailers and framing byte by byte), httpx and ssl sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import WORKERS, GunicornServer
from tests.rawhttp import Conn, connect, exchange, read_response, read_until_close, status_of
from tests.waiting import wait_until

APP = "tests.apps.extensions:app"
ALL = {"http.response.pathsend", "http.response.zerocopysend", "http.response.early_hint",
       "http.response.trailers"}


@pytest.fixture(scope="module", params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server(worker: str, tmp: Path, *args: str) -> GunicornServer:
    return GunicornServer(["-k", worker, "-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout",
                           "5", *args, APP], tmp)


@pytest.fixture(scope="module")
def srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[GunicornServer]:
    server = _server(worker_class, tmp_path_factory.mktemp("ext"), "--access-logfile", "-")
    yield server
    server.stop()


def make_files(directory: Path, big_mib: int) -> dict[str, Path]:
    """A small file, a big one of ``big_mib`` MiB (each MiB different) and an empty one."""
    small = directory / "small.bin"
    small.write_bytes(bytes(range(256)) * 40 + b"end")  # 10,243 bytes
    big = directory / "big.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as file:
        for index in range(big_mib):
            file.write(bytes([index]) + block[1:])
    empty = directory / "empty.bin"
    empty.write_bytes(b"")
    return {"small": small, "big": big, "empty": empty, "dir": directory}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("files"), 64)


def q(path: Path | str) -> str:
    return quote(str(path), safe="")


def get(port: int, target: str, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    request = b"GET %s HTTP/%s\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (
        target.encode(), version, extra)
    return exchange(port, request)


def read_head(sock: Conn) -> bytes:
    """One response head (a 1xx one too), leaving what follows it in the buffer."""
    data = sock.buffer
    sock.buffer = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.sock.recv(65536)
        assert chunk, f"closed before a full head: {data!r}"
        data += chunk
    head, _, sock.buffer = data.partition(b"\r\n\r\n")
    return head


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- advertised ---------------------------------------------------------------------------------


def test_scope_advertises_the_extensions(srv: GunicornServer) -> None:
    seen = httpx.get(srv.url + "/").json()
    assert seen["http_version"] == "1.1"
    assert set(seen["extensions"]) == ALL  # no "tls" on plain TCP (the TLS spec forbids it)
    data = get(srv.port, "/", version=b"1.0")
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    # An HTTP/1.0 client cannot read a 1xx response: no early hints for it.
    assert set(body["extensions"]) == ALL - {"http.response.early_hint"}


def test_an_app_mutating_its_extensions_does_not_change_other_connections(
        srv: GunicornServer) -> None:
    assert "mine" in httpx.get(srv.url + "/mutate").json()["extensions"]
    assert set(httpx.get(srv.url + "/").json()["extensions"]) == ALL


# -- early hints --------------------------------------------------------------------------------


def test_early_hints_precede_the_response(srv: GunicornServer) -> None:
    data = get(srv.port, "/early-hints")
    first, second, final = data.split(b"\r\n\r\n", 2)
    assert first == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style"
    assert second == (b"HTTP/1.1 103 Early Hints\r\nlink: </a.js>; rel=preload; as=script\r\n"
                      b"link: </b.js>; rel=preload; as=script")
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\nafter hints")


def test_early_hints_on_keep_alive_then_next_request(srv: GunicornServer) -> None:
    with connect(srv.port) as sock:
        sock.sendall(b"GET /early-hints HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 103 ")
        assert read_head(sock).startswith(b"HTTP/1.1 103 ")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"after hints")
        assert read_response(sock)[0] == 200


def test_early_hints_are_not_sent_to_http_10(srv: GunicornServer) -> None:
    data = get(srv.port, "/not-advertised", version=b"1.0")
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b" 103 " not in data
    srv.wait_for_log(r"'http.response.early_hint': the scope did not advertise it")
    srv.wait_for_log(r"GET /not-advertised")


def test_an_early_hint_that_would_split_the_response_is_refused(srv: GunicornServer) -> None:
    data = get(srv.port, "/bad-hint")
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"x-injected" not in data
    srv.wait_for_log(r"invalid early hint link")


def test_starlette_send_early_hints(srv: GunicornServer) -> None:
    data = get(srv.port, "/starlette/hints")
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; "
                           b"as=style\r\n\r\nHTTP/1.1 200 OK\r\n")
    response = httpx.get(srv.url + "/starlette/hints")  # httpx skips the 103
    assert (response.status_code, response.text) == (200, "hinted")


# -- trailers -----------------------------------------------------------------------------------


def test_trailers_sent_when_the_client_accepts_them(srv: GunicornServer) -> None:
    for target in ("/trailers", "/trailers?whole=1"):
        data = get(srv.port, target, b"TE: trailers\r\n")
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        assert b"content-length" not in head
        assert body.endswith(b"0\r\nx-checksum: abc\r\nx-status: ok\r\n\r\n")
        assert b"hello " in body and b"world" in body


def test_trailers_in_two_messages(srv: GunicornServer) -> None:
    data = get(srv.port, "/trailers?more=1", b"TE: deflate, trailers;q=1\r\n")
    assert data.endswith(b"world\r\n0\r\nx-checksum: abc\r\nx-status: ok\r\n\r\n")


def test_trailers_dropped_when_not_accepted_and_body_complete(srv: GunicornServer) -> None:
    with connect(srv.port) as sock:
        # Streamed, no TE: chunked, plain last chunk.
        sock.sendall(b"GET /trailers HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, body) == (200, b"hello world")
        assert headers["transfer-encoding"] == "chunked"
        # One body message: Content-Length.
        sock.sendall(b"GET /trailers?whole=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, headers["content-length"], body) == (200, "11", b"hello world")
        # The app's Content-Length: no chunking, so no trailers, even with TE.
        sock.sendall(b"GET /trailers?length=1 HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, headers["content-length"], body) == (200, "11", b"hello world")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # still in step
        assert read_response(sock)[0] == 200
    # HTTP/1.0 cannot be chunked.
    data = get(srv.port, "/trailers?whole=1", b"TE: trailers\r\n", version=b"1.0")
    assert data.endswith(b"\r\n\r\nhello world")
    assert b"x-checksum: abc" not in data


def test_trailers_never_sent_closes_the_connection(srv: GunicornServer) -> None:
    data = get(srv.port, "/trailers-never-sent", b"TE: trailers\r\n")
    assert data.endswith(b"4\r\nbody\r\n")  # no last chunk: the client sees it is cut short
    srv.wait_for_log(r"returned without completing the response: GET /trailers-never-sent")


def test_a_bad_trailer_is_refused(srv: GunicornServer) -> None:
    data = get(srv.port, "/bad-trailer", b"TE: trailers\r\n")
    assert b"b: c" not in data
    assert not data.endswith(b"0\r\n\r\n")
    srv.wait_for_log(r"invalid response header b'x-bad'")


# -- pathsend and zerocopysend -------------------------------------------------------------------


def test_pathsend_whole_file(srv: GunicornServer, files: dict[str, Path]) -> None:
    small = files["small"]
    response = httpx.get(f"{srv.url}/pathsend?path={q(small)}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(small.stat().st_size)
    assert response.content == small.read_bytes()
    # Empty file, and the app's own Content-Length.
    response = httpx.get(f"{srv.url}/pathsend?path={q(files['empty'])}")
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-length"] == "0"
    response = httpx.get(f"{srv.url}/pathsend?path={q(small)}&length=10243")
    assert response.content == small.read_bytes()


def test_pathsend_large_file_keep_alive(srv: GunicornServer, files: dict[str, Path]) -> None:
    big = files["big"].read_bytes()
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for _ in range(2):
            response = client.get(f"/pathsend?path={q(files['big'])}")
            assert response.content == big
        assert client.get("/").status_code == 200


def test_a_request_pipelined_behind_a_file_waits_for_it(srv: GunicornServer,
                                                        files: dict[str, Path]) -> None:
    big = files["big"].read_bytes()
    with connect(srv.port, timeout=30) as sock:
        sock.sendall(b"GET /pathsend?path=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n"
                     % q(files["big"]).encode())
        status, _, body = read_response(sock, timeout=30)
        assert (status, len(body)) == (200, len(big))
        assert body == big
        status, headers, body = read_response(sock)
        assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"hello world")


def test_pathsend_head_and_304(srv: GunicornServer, files: dict[str, Path]) -> None:
    small = files["small"]
    with connect(srv.port) as sock:
        sock.sendall(b"HEAD /pathsend?path=%s HTTP/1.1\r\nHost: x\r\n\r\n" % q(small).encode())
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 10243" in head
        sock.sendall(b"GET /pathsend?path=%s&status=304 HTTP/1.1\r\nHost: x\r\n\r\n"
                     % q(small).encode())
        head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 304 ")
        assert b"content-length" not in head and b"transfer-encoding" not in head
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_pathsend_of_a_missing_file_is_a_500(srv: GunicornServer, files: dict[str, Path]) -> None:
    missing = files["dir"] / "nope.bin"
    with connect(srv.port) as sock:
        for path in (missing, files["dir"]):  # missing, then a directory
            sock.sendall(b"GET /pathsend?path=%s HTTP/1.1\r\nHost: x\r\n\r\n" % q(path).encode())
            assert read_response(sock)[0] == 500
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200  # the connection survives a 500
    srv.wait_for_log(r"pathsend of '.*nope.bin' failed: .*No such file.*GET /pathsend")


def test_pathsend_failing_after_body_closes(srv: GunicornServer, files: dict[str, Path]) -> None:
    data = get(srv.port, f"/pathsend-after-body?path={q(files['dir'] / 'nope.bin')}")
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"7\r\npartial\r\n")  # no last chunk


def test_pathsend_before_start_is_a_500(srv: GunicornServer) -> None:
    assert status_of(get(srv.port, "/pathsend-before-start")) == 500
    srv.wait_for_log(r"expected ASGI message 'http.response.start', got "
                     r"'http.response.pathsend'")


def test_unknown_message_after_start_before_body_is_a_500(srv: GunicornServer) -> None:
    assert status_of(get(srv.port, "/unknown-after-start")) == 500


def test_zerocopysend(srv: GunicornServer, files: dict[str, Path]) -> None:
    small = files["small"].read_bytes()
    path = q(files["small"])
    response = httpx.get(f"{srv.url}/zerocopy?path={path}")
    assert (response.headers["content-length"], response.content) == ("10243", small)
    response = httpx.get(f"{srv.url}/zerocopy?path={path}&offset=100&count=1000")
    assert response.content == small[100:1100]
    response = httpx.get(f"{srv.url}/zerocopy?path={path}&offset=10000")
    assert response.content == small[10000:]
    # Several zerocopysends from the current position, between body messages: chunked.
    response = httpx.get(f"{srv.url}/zerocopy?path={path}&parts=3")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == b"<" + small + b">"
    big = files["big"].read_bytes()
    response = httpx.get(f"{srv.url}/zerocopy?path={q(files['big'])}&parts=4", timeout=30)
    assert response.content == b"<" + big + b">"


def test_starlette_file_response(srv: GunicornServer, files: dict[str, Path]) -> None:
    url = f"{srv.url}/starlette/file?path={q(files['big'])}"
    big = files["big"].read_bytes()
    with httpx.Client(timeout=30) as client:
        response = client.get(url)
        assert response.content == big
        assert response.headers["content-length"] == str(len(big))
        head = client.head(url)
        assert (head.headers["content-length"], head.content) == (str(len(big)), b"")
        ranged = client.get(url, headers={"Range": "bytes=10-19"})  # Starlette's own path
        assert (ranged.status_code, ranged.content) == (206, big[10:20])
        response = client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert response.status_code in (200, 304)


def test_access_log_counts_file_bytes(srv: GunicornServer, files: dict[str, Path]) -> None:
    httpx.get(f"{srv.url}/pathsend?path={q(files['small'])}&mark=log")
    srv.wait_for_log(r'"GET /pathsend\?path=\S+&mark=log HTTP/1.1" 200 10243 ')


def test_client_leaving_mid_file(srv: GunicornServer, files: dict[str, Path]) -> None:
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /pathsend?path=%s&mark=gone HTTP/1.1\r\nHost: x\r\n\r\n"
                 % q(files["big"]).encode())
    received = 0
    while received < 4 << 20:
        received += len(sock.recv(1 << 20))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # reset
    log = srv.wait_for_log(r"mark=gone HTTP/1.1\" 200 \d+ ")
    sent = int(re.search(r'mark=gone HTTP/1.1" 200 (\d+) ', log).group(1))  # type: ignore[union-attr]
    assert 0 < sent < 64 << 20
    assert httpx.get(srv.url + "/").status_code == 200


# -- flow control, settings, lifecycle -------------------------------------------------------------


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "no-sendfile"])
def test_slow_reader_of_a_large_file_keeps_memory_bounded(
        worker_class: str, tmp_path: Path, files: dict[str, Path], sendfile: bool) -> None:
    args = () if sendfile else ("--no-sendfile",)
    server = _server(worker_class, tmp_path, *args)
    try:
        pid = server.worker_pids()[0]
        httpx.get(f"{server.url}/pathsend?path={q(files['small'])}")  # warm up
        before = rss_kib(pid)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(("127.0.0.1", server.port))
        sock.settimeout(10)
        sock.sendall(b"GET /pathsend?path=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                     % q(files["big"]).encode())
        received = b""
        # Slow: 64 KiB per 20 ms for at most 1.5 s or 4 MiB, sampling the worker's RSS.
        grown = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and len(received) < 4 << 20:
            received += sock.recv(65536)
            grown = max(grown, rss_kib(pid) - before)
            time.sleep(0.02)
        other = httpx.get(server.url + "/")  # the worker still answers others meanwhile
        assert other.status_code == 200
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"content-length: 67108864" in head
        total = len(body)
        chunks = [body]
        while total < 64 << 20:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {total} bytes"
            chunks.append(chunk)
            total += len(chunk)
        sock.close()
        assert b"".join(chunks) == files["big"].read_bytes()
        print(f"\n[{worker_class} sendfile={sendfile}] slow reader: RSS +{grown} KiB")
        assert grown < 8 * 1024, f"worker RSS grew {grown} KiB for a 64 MiB file"
    finally:
        server.stop()


def test_no_sendfile_setting_still_serves_files(worker_class: str, tmp_path: Path,
                                                files: dict[str, Path]) -> None:
    server = _server(worker_class, tmp_path, "--no-sendfile")
    try:
        assert "sendfile" not in server.log()  # honoured, so no "not honoured" warning
        response = httpx.get(f"{server.url}/zerocopy?path={q(files['big'])}&parts=3",
                             timeout=30)
        assert response.content == b"<" + files["big"].read_bytes() + b">"
    finally:
        server.stop()


def test_max_requests_drain_finishes_a_download_in_flight(
        worker_class: str, tmp_path: Path, files: dict[str, Path]) -> None:
    server = _server(worker_class, tmp_path, "--max-requests", "2")
    try:
        pid = server.worker_pids()[0]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", server.port))
        sock.settimeout(10)
        sock.sendall(b"GET /pathsend?path=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                     % q(files["big"]).encode())
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        for _ in range(2):  # the budget runs out while the download is in flight
            assert httpx.get(server.url + "/", headers={"Connection": "close"}
                             ).status_code == 200
        server.wait_for_log(r"max_requests")
        data = first + read_until_close(Conn(sock), timeout=30)
        assert len(data.partition(b"\r\n\r\n")[2]) == 64 << 20
        assert wait_until(lambda: pid not in server.worker_pids(), 20)
    finally:
        server.stop()


def test_graceful_timeout_ends_a_stalled_download(worker_class: str, tmp_path: Path,
                                                  files: dict[str, Path]) -> None:
    server = GunicornServer(["-k", worker_class, "-w", "1", "-b", "127.0.0.1:0",
                             "--graceful-timeout", "2", APP], tmp_path)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /pathsend?path=%s HTTP/1.1\r\nHost: x\r\n\r\n" % q(files["big"]).encode())
    time.sleep(0.3)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    try:
        server.proc.wait(15)
        took = time.monotonic() - started
        assert took < 10, f"exited after {took:.1f}s"
        data = read_until_close(Conn(sock), timeout=10)
        assert 0 < len(data) < 64 << 20
        assert "Graceful timeout" in server.log()
    finally:
        sock.close()
        server.stop()


# -- TLS ----------------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
             "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=Test CA")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/O=Test, Org/CN=client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"), "-subj", subject)
        extra = ["-extfile", str(d / "san.cnf")] if name == "server" else []
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / f"{name}.pem"),
                 "-days", "2", *extra)
    return {name: d / name for name in ("ca.pem", "server.pem", "server.key", "client.pem",
                                        "client.key")}


@pytest.fixture(scope="module")
def tls_srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory,
            pki: dict[str, Path]) -> Iterator[GunicornServer]:
    server = _server(worker_class, tmp_path_factory.mktemp("tls"), "--certfile",
                     str(pki["server.pem"]), "--keyfile", str(pki["server.key"]),
                     "--ca-certs", str(pki["ca.pem"]), "--cert-reqs", "1")
    yield server
    server.stop()


def _client_context(pki: dict[str, Path], with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca.pem"]))
    if with_cert:
        context.load_cert_chain(str(pki["client.pem"]), str(pki["client.key"]))
    return context


def _tls_get(port: int, context: ssl.SSLContext, target: bytes) -> tuple[bytes, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target)
        chunks = []
        with contextlib.suppress(ssl.SSLError, ConnectionResetError):
            while chunk := sock.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks), sock.cipher()


def test_tls_extension_with_a_client_certificate(tls_srv: GunicornServer,
                                                 pki: dict[str, Path]) -> None:
    context = _client_context(pki, with_cert=True)
    data, cipher = _tls_get(tls_srv.port, context, b"/")
    scope = json.loads(data.partition(b"\r\n\r\n")[2])
    tls = scope["extensions"]["tls"]
    assert set(scope["extensions"]) == ALL | {"tls"}
    assert tls["server_cert"] == pki["server.pem"].read_text()
    client_pem = pki["client.pem"].read_text()
    assert [c.strip() for c in tls["client_cert_chain"]][:1] == [client_pem.strip()]
    assert tls["client_cert_name"] == "CN=client,O=Test\\, Org"
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}[cipher[1]]
    ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    assert tls["cipher_suite"] == ids[cipher[0]]


def test_tls_extension_without_a_client_certificate(tls_srv: GunicornServer,
                                                    pki: dict[str, Path]) -> None:
    data, _ = _tls_get(tls_srv.port, _client_context(pki, with_cert=False), b"/")
    tls = json.loads(data.partition(b"\r\n\r\n")[2])["extensions"]["tls"]
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")


def test_pathsend_over_tls(tls_srv: GunicornServer, pki: dict[str, Path],
                           files: dict[str, Path]) -> None:
    target = b"/pathsend?path=%s" % q(files["big"]).encode()
    data, _ = _tls_get(tls_srv.port, _client_context(pki, with_cert=False), target)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 67108864" in head
    assert body == files["big"].read_bytes()
