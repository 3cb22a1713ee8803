"""ASGI HTTP extensions over HTTP/2: early hints, trailers, pathsend and zerocopysend.

A real worker of each class serves tests/apps/http2_extensions.py over h2c prior knowledge
(and TLS + ALPN); the clients are httpx with h2 and a raw h2 client (:class:`H2Client`) where
a test must see the frames: 103 HEADERS, trailer HEADERS, RST_STREAM, a window kept shut.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gunicorn.config import Config

from tests.conftest import WORKERS, GunicornServer
from tests.h2frames import whole_frames
from tests.test_extensions import make_files, q
from tests.waiting import wait_until

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
except ImportError:
    pytest.skip("HTTP/2 needs the h2 package", allow_module_level=True)

pytestmark = pytest.mark.skipif(
    not all(name in Config().settings for name in ("http_protocols", "http2_cleartext")),
    reason="this Gunicorn has no http_protocols / http2_cleartext (26.2 and newer do)")

APP = "tests.apps.http2_extensions:app"
H2C = ("--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge")
ALL = {"http.response.pathsend", "http.response.zerocopysend", "http.response.early_hint",
       "http.response.trailers"}
TE = [(b"te", b"trailers")]
INTERNAL_ERROR = 2


@pytest.fixture(scope="module", params=WORKERS, ids=["httptools", "h11"])
def worker_class(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server(worker: str, tmp: Path, *args: str) -> GunicornServer:
    return GunicornServer(["-k", worker, "-w", "1", "-b", "127.0.0.1:0", "--graceful-timeout",
                           "5", *H2C, *args, APP], tmp)


@pytest.fixture(scope="module")
def srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[GunicornServer]:
    server = _server(worker_class, tmp_path_factory.mktemp("h2ext"), "--access-logfile", "-")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_srv(worker_class: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[GunicornServer]:
    directory = tmp_path_factory.mktemp("h2tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = GunicornServer(["-k", worker_class, "-w", "1", "-b", "127.0.0.1:0",
                             "--certfile", str(cert), "--keyfile", str(key),
                             "--http-protocols", "h2,h1", APP], directory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("files"), 32)


def h2c_client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=30, **kwargs)


def tls_client() -> httpx.Client:
    return httpx.Client(http2=True, verify=False, timeout=30)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class H2Client:
    """HTTP/2 over a plain socket with h2's client state machine, recording per stream the
    header blocks (``info`` for 1xx, ``response``, ``trailers``), the body, the end or the
    reset. With ``auto_ack`` off the test alone opens the server's windows."""

    def __init__(self, port: int, auto_ack: bool = True, initial_window: int | None = None,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                        header_encoding=None))
        if initial_window is not None:
            self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window})
        self.h2.initiate_connection()
        self.auto_ack = auto_ack
        self.blocks: dict[int, list[tuple[str, list[tuple[bytes, bytes]]]]] = {}
        self.body: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}
        self.goaway = False
        self.closed = False
        self.buffer = b""
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, method: str = "GET",
                headers: list[tuple[bytes, bytes]] | None = None) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, [
            (b":method", method.encode()), (b":path", path.encode()), (b":scheme", b"http"),
            (b":authority", b"localhost"), *(headers or [])], end_stream=True)
        self.blocks[stream_id] = []
        self.body[stream_id] = bytearray()
        self.flush()
        return stream_id

    def open_window(self, stream_id: int, size: int) -> None:
        """WINDOW_UPDATE of ``size`` for the stream, or for the connection (stream 0)."""
        self.h2.increment_flow_control_window(size, stream_id=stream_id or None)
        self.flush()

    def done(self, stream_id: int) -> Callable[[], bool]:
        return lambda: stream_id in self.ended or stream_id in self.resets

    def received(self, stream_id: int, size: int) -> Callable[[], bool]:
        return lambda: len(self.body[stream_id]) >= size

    def kinds(self, stream_id: int) -> list[str]:
        return [kind for kind, _ in self.blocks[stream_id]]

    def read(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        """Read until ``until()``, the server closes, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not until() and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            self.buffer += data
            frames, self.buffer = whole_frames(self.buffer)
            for frame in frames:
                for event in self.h2.receive_data(frame):
                    self._record(event)
            try:
                self.flush()
            except OSError:
                self.closed = True

    def _record(self, event: Any) -> None:
        events = h2.events
        if isinstance(event, events.InformationalResponseReceived):
            self.blocks[event.stream_id].append(("info", list(event.headers)))
        elif isinstance(event, events.ResponseReceived):
            self.blocks[event.stream_id].append(("response", list(event.headers)))
        elif isinstance(event, events.TrailersReceived):
            self.blocks[event.stream_id].append(("trailers", list(event.headers)))
        elif isinstance(event, events.DataReceived):
            self.body[event.stream_id] += event.data
            if self.auto_ack:
                self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)
        elif isinstance(event, events.StreamEnded):
            self.ended.add(event.stream_id)
        elif isinstance(event, events.StreamReset):
            self.resets[event.stream_id] = event.error_code
        elif isinstance(event, events.ConnectionTerminated):
            self.goaway = True
            self.h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN

    def get(self, path: str, headers: list[tuple[bytes, bytes]] | None = None,
            method: str = "GET", timeout: float = 10.0) -> int:
        stream_id = self.request(path, method, headers)
        self.read(self.done(stream_id), timeout)
        return stream_id

    def status(self, stream_id: int) -> int:
        final = [block for kind, block in self.blocks[stream_id] if kind == "response"]
        return int(dict(final[0])[b":status"]) if final else 0

    def header(self, stream_id: int, name: bytes) -> bytes | None:
        final = [block for kind, block in self.blocks[stream_id] if kind == "response"]
        return dict(final[0]).get(name) if final else None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(srv: GunicornServer) -> Iterator[H2Client]:
    conn = H2Client(srv.port)
    yield conn
    conn.close()


# -- advertised ---------------------------------------------------------------------------------


def test_http2_scopes_advertise_the_extensions(srv: GunicornServer,
                                               tls_srv: GunicornServer) -> None:
    with h2c_client() as http:
        response = http.get(f"{srv.url}/extensions")
        assert response.http_version == "HTTP/2"
        assert response.json() == {"http_version": "2", "extensions": {n: {} for n in ALL}}
    with tls_client() as http:
        response = http.get(f"https://127.0.0.1:{tls_srv.port}/extensions")
        assert response.http_version == "HTTP/2"
        assert set(response.json()["extensions"]) == ALL | {"tls"}


# -- early hints --------------------------------------------------------------------------------


def test_early_hints_are_interim_headers_frames(client: H2Client) -> None:
    stream = client.get("/early-hints")
    assert client.kinds(stream) == ["info", "info", "response"]
    first, second, final = (block for _, block in client.blocks[stream])
    assert first == [(b":status", b"103"), (b"link", b"</style.css>; rel=preload; as=style")]
    assert second == [(b":status", b"103"), (b"link", b"</a.js>; rel=preload; as=script"),
                      (b"link", b"</b.js>; rel=preload; as=script")]
    assert final[0] == (b":status", b"200")
    assert (bytes(client.body[stream]), stream in client.ended) == (b"after hints", True)
    # After http.response.start, before the body: still ahead of the final HEADERS.
    stream = client.get("/h2/hint-after-start")
    assert client.kinds(stream) == ["info", "response"]
    assert client.blocks[stream][0][1] == [(b":status", b"103"),
                                          (b"link", b"</late.css>; rel=preload")]
    assert bytes(client.body[stream]) == b"late hint"


def test_an_early_hint_that_would_split_the_response_is_refused(client: H2Client,
                                                                srv: GunicornServer) -> None:
    stream = client.get("/bad-hint")
    assert (client.kinds(stream), client.status(stream)) == (["response"], 500)
    srv.wait_for_log(r"invalid early hint link")


def test_starlette_send_early_hints(client: H2Client, srv: GunicornServer,
                                   tls_srv: GunicornServer) -> None:
    stream = client.get("/starlette/hints")
    assert client.kinds(stream) == ["info", "response"]
    assert client.blocks[stream][0][1] == [(b":status", b"103"),
                                          (b"link", b"</style.css>; rel=preload; as=style")]
    assert (client.status(stream), bytes(client.body[stream])) == (200, b"hinted")
    with tls_client() as http:  # httpx reads past the 103
        response = http.get(f"https://127.0.0.1:{tls_srv.port}/starlette/hints")
        assert (response.http_version, response.status_code, response.text) == (
            "HTTP/2", 200, "hinted")


# -- trailers -----------------------------------------------------------------------------------


def test_trailers_are_a_last_headers_frame_when_the_request_accepts_them(
        client: H2Client) -> None:
    expected = [(b"x-checksum", b"abc"), (b"x-status", b"ok")]
    for target in ("/trailers", "/trailers?whole=1", "/trailers?more=1", "/trailers?length=1"):
        stream = client.get(target, TE)
        assert client.kinds(stream) == ["response", "trailers"], target
        assert client.blocks[stream][1][1] == expected
        assert bytes(client.body[stream]) == b"hello world"
        assert stream in client.ended and stream not in client.resets
    # A whole body in one message has its length; HTTP/2 needs no chunking for trailers.
    stream = client.get("/trailers?whole=1", TE)
    assert client.header(stream, b"content-length") == b"11"
    # Without TE: trailers the spec says not to send are dropped; the body is complete.
    for target in ("/trailers", "/trailers?whole=1", "/trailers?more=1"):
        stream = client.get(target)
        assert client.kinds(stream) == ["response"], target
        assert bytes(client.body[stream]) == b"hello world"
        assert stream in client.ended


def test_a_file_then_trailers(client: H2Client, files: dict[str, Path]) -> None:
    stream = client.get(f"/h2/file-then-trailers?path={q(files['small'])}", TE)
    assert client.kinds(stream) == ["response", "trailers"]
    assert client.blocks[stream][1][1] == [(b"x-file", b"sent")]
    assert client.header(stream, b"content-length") == b"10243"
    assert bytes(client.body[stream]) == files["small"].read_bytes()


def test_trailers_never_sent_reset_the_stream(client: H2Client, srv: GunicornServer) -> None:
    stream = client.get("/trailers-never-sent", TE)
    assert bytes(client.body[stream]) == b"body"
    assert client.resets.get(stream) == INTERNAL_ERROR
    assert stream not in client.ended
    srv.wait_for_log(r"returned without completing the response: GET /trailers-never-sent")
    assert client.status(client.get("/")) == 200  # the connection goes on


@pytest.mark.parametrize(("target", "logged"), [
    ("/bad-trailer", r"invalid response header b'x-bad'"),
    ("/h2/trailer?name=connection", r"invalid response trailer b'connection'"),
    ("/h2/trailer?name=te&value=trailers", r"invalid response trailer b'te'"),
    ("/h2/trailer?name=content-length&value=4", r"invalid response trailer b'content-length'"),
    ("/h2/trailer?name=:status&value=200", r"invalid response header b':status'"),
    ("/h2/unannounced-trailers", r"unexpected ASGI message 'http.response.trailers'"),
], ids=["crlf", "connection", "te", "content-length", "pseudo", "unannounced"])
def test_a_bad_trailer_resets_the_stream(client: H2Client, srv: GunicornServer, target: str,
                                         logged: str) -> None:
    stream = client.get(target, TE)
    assert client.kinds(stream) == ["response"]
    assert bytes(client.body[stream]) == b"body"
    assert client.resets.get(stream) == INTERNAL_ERROR
    # The error line names the route; the traceback under it ends with the reason.
    route = re.escape(target.partition("?")[0])
    srv.wait_for_log(rf"Exception in ASGI application \(GET {route}\)\n"
                     rf"(?:(?:Traceback| ).*\n)*\w+: {logged}")
    assert client.status(client.get("/")) == 200


# -- pathsend and zerocopysend ------------------------------------------------------------------


def test_pathsend_over_h2c_and_tls(srv: GunicornServer, tls_srv: GunicornServer,
                                   files: dict[str, Path]) -> None:
    small, big = files["small"].read_bytes(), files["big"].read_bytes()
    for base, http in ((srv.url, h2c_client()), (f"https://127.0.0.1:{tls_srv.port}",
                                                  tls_client())):
        with http:
            response = http.get(f"{base}/pathsend?path={q(files['small'])}")
            assert (response.http_version, response.status_code) == ("HTTP/2", 200)
            assert response.headers["content-length"] == "10243"
            assert response.content == small
            response = http.get(f"{base}/pathsend?path={q(files['empty'])}")
            assert (response.headers["content-length"], response.content) == ("0", b"")
            response = http.get(f"{base}/pathsend?path={q(files['small'])}&length=10243")
            assert response.content == small
            response = http.get(f"{base}/pathsend?path={q(files['big'])}")
            assert response.headers["content-length"] == str(len(big))
            assert response.content == big


def test_pathsend_head_and_304(client: H2Client, files: dict[str, Path]) -> None:
    path = q(files["small"])
    stream = client.get(f"/pathsend?path={path}", method="HEAD")
    assert (client.status(stream), client.header(stream, b"content-length")) == (200, b"10243")
    assert (bytes(client.body[stream]), stream in client.ended) == (b"", True)
    stream = client.get(f"/pathsend?path={path}&status=304")
    assert client.status(stream) == 304
    assert client.header(stream, b"content-length") is None
    assert (bytes(client.body[stream]), stream in client.ended) == (b"", True)


def test_pathsend_of_a_missing_file_is_a_500(srv: GunicornServer,
                                             files: dict[str, Path]) -> None:
    with h2c_client() as http:
        for path in (files["dir"] / "nope.bin", files["dir"]):  # missing, a directory
            response = http.get(f"{srv.url}/pathsend?path={q(path)}")
            assert (response.status_code, response.text) == (500, "Internal Server Error\n")
        assert http.get(f"{srv.url}/").status_code == 200  # same connection
    srv.wait_for_log(r"pathsend of '.*nope.bin' failed: .*No such file.*GET /pathsend")


def test_pathsend_failing_after_body_resets_the_stream(client: H2Client, srv: GunicornServer,
                                                      files: dict[str, Path]) -> None:
    stream = client.get(f"/pathsend-after-body?path={q(files['dir'] / 'nope.bin')}")
    assert client.status(stream) == 200
    assert bytes(client.body[stream]) == b"partial"
    assert client.resets.get(stream) == INTERNAL_ERROR
    srv.wait_for_log(r"pathsend of '.*nope.bin' failed: .*GET /pathsend-after-body")
    assert client.status(client.get("/")) == 200  # the connection goes on


def test_pathsend_before_start_is_a_500(srv: GunicornServer) -> None:
    with h2c_client() as http:
        assert http.get(f"{srv.url}/pathsend-before-start").status_code == 500
        assert http.get(f"{srv.url}/unknown-after-start").status_code == 500
    srv.wait_for_log(r"expected ASGI message 'http.response.start', got "
                     r"'http.response.pathsend'")


def test_zerocopysend(srv: GunicornServer, files: dict[str, Path]) -> None:
    small = files["small"].read_bytes()
    path = q(files["small"])
    with h2c_client(base_url=srv.url) as http:
        response = http.get(f"/zerocopy?path={path}")
        assert (response.headers["content-length"], response.content) == ("10243", small)
        assert http.get(f"/zerocopy?path={path}&offset=100&count=1000").content == small[100:1100]
        assert http.get(f"/zerocopy?path={path}&offset=10000").content == small[10000:]
        # From the current position, between body messages: no length known up front.
        response = http.get(f"/zerocopy?path={path}&parts=3")
        assert "content-length" not in response.headers
        assert response.content == b"<" + small + b">"
        big = files["big"].read_bytes()
        response = http.get(f"/zerocopy?path={q(files['big'])}&parts=4")
        assert response.content == b"<" + big + b">"


def test_starlette_file_response(srv: GunicornServer, tls_srv: GunicornServer,
                                 files: dict[str, Path]) -> None:
    big = files["big"].read_bytes()
    for base, http in ((srv.url, h2c_client()), (f"https://127.0.0.1:{tls_srv.port}",
                                                  tls_client())):
        url = f"{base}/starlette/file?path={q(files['big'])}"
        with http:
            response = http.get(url)
            assert (response.http_version, response.content) == ("HTTP/2", big)
            assert response.headers["content-length"] == str(len(big))
            # Starlette saw the extension and sent the file's path, not its bytes.
            assert http.get(f"{base}/h2/sent").json()["/starlette/file"] == [
                "http.response.start", "http.response.pathsend"]
            head = http.head(url)
            assert (head.headers["content-length"], head.content) == (str(len(big)), b"")
            ranged = http.get(url, headers={"Range": "bytes=10-19"})  # Starlette's own path
            assert (ranged.status_code, ranged.content) == (206, big[10:20])
            again = http.get(url, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code in (200, 304)


def test_access_log_counts_file_bytes(srv: GunicornServer, files: dict[str, Path]) -> None:
    with h2c_client() as http:
        http.get(f"{srv.url}/pathsend?path={q(files['small'])}&mark=log")
    srv.wait_for_log(r'"GET /pathsend\?path=\S+&mark=log HTTP/2.0" 200 10243 ')


def test_client_resetting_mid_file(client: H2Client, srv: GunicornServer,
                                   files: dict[str, Path]) -> None:
    stream = client.request(f"/pathsend?path={q(files['big'])}&mark=gone")
    client.read(client.received(stream, 1 << 20))
    assert len(client.body[stream]) >= 1 << 20
    client.h2.reset_stream(stream, 8)  # CANCEL
    client.flush()
    assert client.status(client.get("/")) == 200  # the connection goes on
    log = srv.wait_for_log(r'mark=gone HTTP/2.0" 200 \d+ ')
    sent = int(re.search(r'mark=gone HTTP/2.0" 200 (\d+) ', log).group(1))  # type: ignore[union-attr]
    assert 1 << 20 <= sent < files["big"].stat().st_size


def test_a_file_that_shrinks_mid_download_resets_the_stream(srv: GunicornServer,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(os.urandom(1 << 20))
    client = H2Client(srv.port, auto_ack=False, initial_window=0)
    try:
        client.open_window(0, 1 << 30)
        stream = client.request(f"/pathsend?path={q(path)}&mark=shrink")
        client.read(lambda: bool(client.blocks[stream]))
        assert client.header(stream, b"content-length") == b"1048576"
        os.truncate(path, 100_000)  # while the worker waits for the window
        client.open_window(stream, 1 << 21)
        client.read(client.done(stream))
        assert client.resets.get(stream) == INTERNAL_ERROR
        assert len(client.body[stream]) == 100_000
        srv.wait_for_log(r"File ended 948576 bytes early in a response: GET /pathsend")
    finally:
        client.close()


# -- flow control and lifecycle -------------------------------------------------------------------


def test_a_zero_window_reader_of_a_large_file_keeps_memory_bounded(
        worker_class: str, tmp_path: Path, files: dict[str, Path]) -> None:
    server = _server(worker_class, tmp_path)
    size = files["big"].stat().st_size
    try:
        pid = server.worker_pids()[0]
        with h2c_client() as http:  # warm up
            assert http.get(f"{server.url}/pathsend?path={q(files['small'])}").status_code == 200
        before = rss_kib(pid)
        client = H2Client(server.port, auto_ack=False, initial_window=0)
        client.open_window(0, 1 << 30)  # the connection's window: only the stream's is shut
        stream = client.request(f"/pathsend?path={q(files['big'])}")
        client.read(lambda: bool(client.blocks[stream]))
        assert client.status(stream) == 200
        assert client.header(stream, b"content-length") == str(size).encode()
        # Zero window for 1 s: nothing sent, nothing read ahead.
        grown = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            client.read(lambda: False, timeout=0.05)
            grown = max(grown, rss_kib(pid) - before)
        assert len(client.body[stream]) == 0
        with h2c_client() as http:  # the worker answers others meanwhile
            assert http.get(f"{server.url}/").status_code == 200
        # Then slow: 64 KiB at a time, for at most 1 s or 2 MiB.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and len(client.body[stream]) < 2 << 20:
            target = len(client.body[stream]) + 65536
            client.open_window(stream, 65536)
            client.read(client.received(stream, target), timeout=5)
            assert len(client.body[stream]) == target
            grown = max(grown, rss_kib(pid) - before)
        client.open_window(stream, size)
        client.read(client.done(stream), timeout=60)
        assert stream in client.ended
        assert client.body[stream] == files["big"].read_bytes()
        client.close()
        print(f"\n[{worker_class}] zero-window reader of {size >> 20} MiB: RSS +{grown} KiB")
        assert grown < 8 * 1024, f"worker RSS grew {grown} KiB for a {size >> 20} MiB file"
    finally:
        server.stop()


def test_max_requests_drain_finishes_a_download_in_flight(
        worker_class: str, tmp_path: Path, files: dict[str, Path]) -> None:
    server = _server(worker_class, tmp_path, "--max-requests", "1", "--graceful-timeout", "30")
    try:
        pid = server.worker_pids()[0]
        client = H2Client(server.port, auto_ack=False, initial_window=0, timeout=30)
        client.open_window(0, 1 << 30)
        stream = client.request(f"/pathsend?path={q(files['big'])}")
        client.read(lambda: bool(client.blocks[stream]))
        assert client.status(stream) == 200
        with h2c_client() as http:  # the budget runs out while the download is in flight
            assert http.get(f"{server.url}/").status_code == 200
        server.wait_for_log(r"max_requests")
        client.open_window(stream, 1 << 30)
        client.read(client.done(stream), timeout=60)
        assert stream in client.ended
        assert client.body[stream] == files["big"].read_bytes()
        client.read(lambda: client.goaway)
        assert client.goaway
        client.close()
        assert wait_until(lambda: pid not in server.worker_pids(), 20)
    finally:
        server.stop()


def test_graceful_timeout_ends_a_stalled_download(worker_class: str, tmp_path: Path,
                                                  files: dict[str, Path]) -> None:
    server = _server(worker_class, tmp_path, "--graceful-timeout", "2")
    try:
        client = H2Client(server.port, auto_ack=False, initial_window=0)
        stream = client.request(f"/pathsend?path={q(files['big'])}")
        client.read(lambda: bool(client.blocks[stream]))
        assert client.status(stream) == 200
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        server.proc.wait(15)
        took = time.monotonic() - started
        assert took < 10, f"exited after {took:.1f}s"
        client.read(lambda: False, timeout=5)
        assert client.closed
        assert stream not in client.ended
        assert len(client.body[stream]) == 0
        assert "Graceful timeout" in server.log()
        client.close()
    finally:
        server.stop()


def test_the_send_deadline_cuts_a_stalled_download_not_a_slow_one(
        worker_class: str, tmp_path: Path, files: dict[str, Path]) -> None:
    # ASGI_WORKER_SEND_TIMEOUT bounds each wait for the client's window, as HTTP/1.1 bounds
    # each wait for its socket: a reader that keeps making progress is never cut off.
    server = GunicornServer(["-k", worker_class, "-w", "1", "-b", "127.0.0.1:0", *H2C, APP],
                            tmp_path, env={"ASGI_WORKER_SEND_TIMEOUT": "2"})
    try:
        slow = H2Client(server.port, auto_ack=False, initial_window=0)
        slow.open_window(0, 1 << 30)
        stalled = H2Client(server.port, auto_ack=False, initial_window=0)
        stalled_stream = stalled.request(f"/pathsend?path={q(files['big'])}")
        stream = slow.request(f"/pathsend?path={q(files['big'])}")
        # 64 KiB every 0.3 s, 12 times: 3.6 s in all, each wait well under the 2 s deadline.
        for step in range(1, 13):
            time.sleep(0.3)
            slow.open_window(stream, 65536)
            slow.read(slow.received(stream, step * 65536), timeout=5)
            assert stream not in slow.resets, f"reset after {step - 1} steps"
            assert len(slow.body[stream]) == step * 65536
        stalled.read(stalled.done(stalled_stream), timeout=10)
        assert stalled.resets.get(stalled_stream) == 8  # CANCEL
        server.wait_for_log(r"Resetting HTTP/2 stream 1 from .*: client too slow")
        slow.read(lambda: False, timeout=0.5)
        assert stream not in slow.resets
        slow.close()
        stalled.close()
    finally:
        server.stop()
