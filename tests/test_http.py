"""HTTP/1.1 and the ASGI HTTP cycle, against a real gunicorn process, for both parsers."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.rawhttp import (
    connect,
    exchange,
    read_response,
    read_until_close,
    seconds_until_closed,
    status_of,
)
from tests.waiting import wait_until


def get_json(url: str) -> dict:  # type: ignore[type-arg]
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# -- basics and keep-alive ---------------------------------------------------------------------


def test_hello_has_date_and_server_headers(server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-length"] == "13"
    assert response.headers["server"] == "gunicorn"
    assert response.headers["date"].endswith(" GMT")


def test_keep_alive_reuses_one_connection(server) -> None:  # type: ignore[no-untyped-def]
    with connect(server.port) as sock:
        for index in range(3):
            sock.sendall(b"GET /scope HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(sock)
            assert status == 200
            assert "connection" not in headers
            if index == 0:
                first_client = json.loads(body)["client"]
            else:
                assert json.loads(body)["client"] == first_client


def test_pipelined_requests_are_answered_in_order(server) -> None:  # type: ignore[no-untyped-def]
    # The first request is slow: a server answering out of order would send the second first.
    request = (b"GET /sleep?0.3 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /stream?2 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
               b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with connect(server.port) as sock:
        sock.sendall(request)
        bodies = [read_response(sock)[2] for _ in range(4)]
    assert bodies == [b"slept 0.3", b"chunk0;chunk1;", b"hello", b"Hello, world!"]


def test_large_whole_responses_keep_their_order_and_framing(server) -> None:  # type: ignore[no-untyped-def]
    # A whole response above 4 KiB leaves as its head and its body side by side (one vectored
    # write): pipelined between small ones, every response must arrive whole and in order,
    # with the app's own Content-Length (too_long cuts at it) or the one the worker adds.
    large, larger = b"a" * 5000, b"b" * (300 * 1024)
    request = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
               b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
               b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               ) % (len(large), large, len(larger), larger)
    with connect(server.port, timeout=10) as sock:
        sock.sendall(request)
        answers = [read_response(sock, timeout=10) for _ in range(3)]
        head = read_until_close(sock, timeout=10)
    assert [(status, body) for status, _, body in answers] == [
        (200, large), (200, b"Hello, world!"), (200, larger)]
    assert [headers["content-length"] for _, headers, _ in answers] == [
        "5000", "13", str(300 * 1024)]
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"Hello, world!")
    assert head.count(b"HTTP/1.1 200 ") == 2  # HEAD's answer (no body), then the last GET


def test_connection_close_is_honoured(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200") == 1
    assert b"connection: close\r\n" in data


def test_http10_closes_by_default(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    assert status_of(data) == 200
    assert b"connection: close\r\n" in data
    assert data.endswith(b"Hello, world!")


def test_http10_keep_alive_is_honoured(server) -> None:  # type: ignore[no-untyped-def]
    with connect(server.port) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = read_response(sock)
            assert status == 200
            assert headers["connection"] == "keep-alive"
            assert body == b"Hello, world!"


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("connection", ["", "Connection: keep-alive\r\n",
                                        "Proxy-Connection: keep-alive\r\n",
                                        "connection: Keep-Alive, x\r\n", "Connection: close\r\n"])
def test_scope_http_version_with_every_connection_header(server, version: str,  # type: ignore[no-untyped-def]
                                                          connection: str) -> None:
    # The httptools adapter infers HTTP/1.1 from keep-alive without a Connection header; a
    # Connection (or Proxy-Connection, which llhttp reads the same) header must not fool it.
    request = f"GET /scope HTTP/{version}\r\nHost: x\r\n{connection}\r\n".encode()
    with connect(server.port) as sock:
        sock.sendall(request)
        status, _headers, body = read_response(sock)
    assert status == 200
    assert json.loads(body)["http_version"] == version


def test_http10_streaming_response_is_close_delimited(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET /stream?3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head
    assert b"connection: close" in head
    assert body == b"chunk0;chunk1;chunk2;"


def test_streaming_response_is_chunked(server) -> None:  # type: ignore[no-untyped-def]
    with connect(server.port) as sock:
        sock.sendall(b"GET /stream?4 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert body == b"chunk0;chunk1;chunk2;chunk3;"
        # still usable afterwards: the chunked framing ended cleanly
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[2] == b"Hello, world!"


def test_head_has_headers_and_no_body(server) -> None:  # type: ignore[no-untyped-def]
    with connect(server.port) as sock:
        sock.sendall(b"HEAD /head-length HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert b"content-length: 12\r\n" in head
        assert head.endswith(b"\r\n\r\n")
        # the next response starts right after the head: no body bytes were sent
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"Hello, world!")


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server, code: int) -> None:  # type: ignore[no-untyped-def]
    with connect(server.port) as sock:
        sock.sendall(b"GET /status/%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert b"transfer-encoding" not in head and b"content-length: " not in head
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"Hello, world!")


# -- request bodies ----------------------------------------------------------------------------


def test_content_length_body(server) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(256)) * 1000
    response = httpx.post(server.url + "/echo", content=payload)
    assert response.content == payload


def test_chunked_body_with_trailers(server) -> None:  # type: ignore[no-untyped-def]
    request = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: ignored\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with connect(server.port) as sock:
        sock.sendall(request)
        assert read_response(sock)[2] == b"hello world"
        assert read_response(sock)[2] == b"Hello, world!"


def test_body_arrives_in_chunks_with_more_body(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "chunks.txt"
    with connect(server.port) as sock:
        sock.sendall(b"POST /chunks?%s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcde"
                     % str(marker).encode())
        # The rest only once the app has the first part, however long that takes here.
        assert wait_until(marker.exists)
        sock.sendall(b"fghij")
        _, _, body = read_response(sock)
    seen = json.loads(body)
    assert sum(size for size, _ in seen) == 10
    assert seen[-1][1] is False
    assert len(seen) >= 2 and seen[0][1] is True


def test_unread_body_is_never_parsed_as_a_request(server) -> None:  # type: ignore[no-untyped-def]
    smuggled = b"GET /status/418 HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (b"POST /no-read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
               b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" % (len(smuggled), smuggled))
    with connect(server.port) as sock:
        sock.sendall(request)
        first = read_response(sock)
        second = read_response(sock)
    assert first[2] == b"did not read the body"
    assert second[0] == 200 and second[2] == b"Hello, world!"


def test_expect_100_continue_only_when_app_reads(server) -> None:  # type: ignore[no-untyped-def]
    with connect(server.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        assert read_response(sock)[2] == b"data"
    with connect(server.port) as sock:
        sock.sendall(b"POST /no-read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == 200 and body == b"did not read the body"
        assert headers.get("connection") == "close"


def test_receive_after_body_waits_for_disconnect(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "disconnect.txt"
    sock = connect(server.port)
    sock.sendall(b"GET /wait-disconnect?%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
    time.sleep(0.3)
    assert not marker.exists()  # still waiting: receive() did not spin or return early
    sock.close()
    assert wait_until(marker.exists, timeout=20)
    assert marker.read_text() == "disconnect\n"


# -- scope -------------------------------------------------------------------------------------


def test_scope_fields(server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(server.url + "/scope/caf%C3%A9%20x/a%2Fb?q=1&r=%20",
                         headers={"X-Custom": "Value"})
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café x/a/b"
    assert scope["raw_path"] == "/scope/caf%C3%A9%20x/a%2Fb"
    assert scope["query_string"] == "q=1&r=%20"
    assert scope["root_path"] == ""
    assert ["x-custom", "Value"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"]["started"] == "yes"


def test_state_is_a_shallow_copy_per_request(server) -> None:  # type: ignore[no-untyped-def]
    first = httpx.get(server.url + "/state").json()
    second = httpx.get(server.url + "/state").json()
    assert "mutated" in first and "started" in first
    assert first == second  # mutation in request 1 did not leak into request 2's copy


def test_absolute_form_target(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET http://example.com/scope?x=1 HTTP/1.1\r\nHost: example.com"
                                 b"\r\nConnection: close\r\n\r\n")
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    assert body["path"] == "/scope" and body["query_string"] == "x=1"


@pytest.mark.parametrize(("target", "path", "query"), [
    (b"/scope?a=1?b=2", "/scope", "a=1?b=2"),  # the query starts at the first "?"
    (b"/scope?", "/scope", ""),
    (b"/scope", "/scope", ""),
    (b"/scope/?/x", "/scope/", "/x"),
])
def test_target_split_into_path_and_query(  # type: ignore[no-untyped-def]
        server, target: bytes, path: str, query: str) -> None:
    data = exchange(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    assert (body["path"], body["raw_path"], body["query_string"]) == (path, path, query)


# -- responses the app gets wrong ---------------------------------------------------------------


def test_exception_before_start_gives_500(server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(server.url + "/error-before")
    assert response.status_code == 500
    assert "boom before the response" in server.log()
    assert "boom" not in response.text  # no traceback to the client


def test_exception_after_start_closes_connection(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET /error-after HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 100" in head
    assert body == b"partial"  # truncated and closed: the client can tell


def test_exception_in_chunked_response_leaves_no_terminator(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET /error-after-chunked HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"transfer-encoding: chunked" in data
    assert not data.endswith(b"0\r\n\r\n")


def test_app_returning_without_response_gives_500(server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(server.url + "/no-response").status_code == 500
    assert "without starting a response" in server.log()


def test_body_longer_than_content_length(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET /too-long HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.endswith(b"\r\n\r\n01234")
    assert "more body than its Content-Length" in server.log()


def test_body_shorter_than_content_length(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET /too-short HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.endswith(b"\r\n\r\nshort")
    assert "less body than its Content-Length" in server.log()


def test_response_splitting_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    data = exchange(server.port, b"GET /bad-header HTTP/1.1\r\nHost: x\r\nConnection: close"
                                 b"\r\n\r\n")
    assert status_of(data) == 500
    assert b"evil" not in data
    assert "invalid response header" in server.log()


@pytest.mark.parametrize(("case", "expected"), [
    ("tuple", b"x-a: 1\r\n"), ("list", b"x-a: 1\r\n"), ("bytearray", b"x-a: 1\r\n"),
    ("length", b"content-length: 5\r\n"),
])
def test_valid_response_headers_are_sent_as_given(server, case, expected) -> None:  # type: ignore[no-untyped-def]
    # Twice: the second response comes from the cache of encoded header lines.
    for _ in range(2):
        data = exchange(server.port, b"GET /header-case?%s HTTP/1.1\r\nHost: x\r\n"
                                     b"Connection: close\r\n\r\n" % case.encode())
        assert status_of(data) == 200
        head, _, body = data.partition(b"\r\n\r\n")
        assert expected in head + b"\r\n"
        assert body == b"hello"


@pytest.mark.parametrize("case", [
    "space-in-name", "colon-in-name", "empty-name", "cr-in-value", "lf-in-value",
    "nul-in-value", "str-name", "str-value", "bad-length", "three-items",
])
def test_invalid_response_headers_give_500(server, case) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):  # an invalid header must not be remembered as valid
        data = exchange(server.port, b"GET /header-case?%s HTTP/1.1\r\nHost: x\r\n"
                                     b"Connection: close\r\n\r\n" % case.encode())
        assert status_of(data) == 500
        assert b"evil" not in data and b"hello" not in data
    assert "Exception in ASGI application" in server.log()


def test_host_checked_however_many_hosts_were_seen(server) -> None:  # type: ignore[no-untyped-def]
    # Valid Host values are remembered (bounded); an invalid one is refused before and after
    # the worker saw more distinct hosts than it keeps.
    bad = b"GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n"
    assert status_of(exchange(server.port, bad)) == 400
    with httpx.Client(base_url=server.url) as client:
        for i in range(300):
            assert client.get("/", headers={"Host": f"host-{i}.example:80"}).status_code == 200
    assert status_of(exchange(server.port, bad)) == 400
    assert status_of(exchange(server.port, b"GET / HTTP/1.1\r\nHost: " + b"a" * 300
                              + b"\r\nConnection: close\r\n\r\n")) == 200


def test_many_distinct_header_values(server) -> None:  # type: ignore[no-untyped-def]
    # More distinct values than the worker remembers encoded lines for: each is still sent.
    with httpx.Client(base_url=server.url) as client:
        for i in range(1100):
            response = client.get(f"/header-case?unique-{i}")
            assert response.headers["x-unique"] == f"unique-{i}"


# -- flow control --------------------------------------------------------------------------------


def test_slow_reader_does_not_make_the_worker_buffer_the_response(server) -> None:  # type: ignore[no-untyped-def]
    pid = server.worker_pids()[0]
    before = _rss_kib(pid)
    sock = connect(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /big?256 HTTP/1.1\r\nHost: x\r\n\r\n")  # 256 MiB response, never read
    time.sleep(1.5)
    grown = _rss_kib(pid) - before
    sock.close()
    assert grown < 64 * 1024, f"worker RSS grew {grown} KiB for an unread response"
    assert httpx.get(server.url + "/").status_code == 200


def test_large_upload_is_consumed_with_bounded_buffering(server) -> None:  # type: ignore[no-untyped-def]
    payload = b"y" * (8 * 1024 * 1024)
    response = httpx.post(server.url + "/echo", content=payload, timeout=30)
    assert response.content == payload


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- bad requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
     b"3\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"
     b"0\r\n\r\n", 400),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(120))
     + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431),
], ids=["no-host", "two-hosts", "garbage", "space-in-name", "bad-cl", "two-cl", "te-and-cl",
        "te-gzip", "bad-chunk-size", "long-line", "many-headers", "big-header"])
def test_bad_requests_get_a_short_error_and_close(server, request_bytes: bytes,  # type: ignore[no-untyped-def]
                                                  expected: int) -> None:
    data = exchange(server.port, request_bytes)
    assert status_of(data) == expected, data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    assert b"Traceback" not in data and len(body) < 100
    # the worker keeps serving everyone else
    assert httpx.get(server.url + "/").status_code == 200


def test_limits_follow_gunicorn_settings(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--limit-request-line", "100",
                       "--limit-request-fields", "5", "--limit-request-field_size", "50",
                       worker=worker_class)
    assert status_of(exchange(srv.port, b"GET /" + b"a" * 120 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                     ) == 414
    assert status_of(exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"v" * 60
                              + b"\r\n\r\n")) == 431
    many = b"".join(b"X-%d: v\r\n" % i for i in range(6))
    assert status_of(exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431
    ok = exchange(srv.port, b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nHost: x\r\nConnection: close"
                            b"\r\n\r\n")
    assert status_of(ok) == 200


def test_field_limits_hold_for_heads_in_pieces(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    # A head that arrives in small pieces, or starts behind another request's body, must meet
    # the same limits as one read whole.
    srv = start_server("tests.apps.basic:app", "--limit-request-field_size", "50",
                       "--limit-request-fields", "20", worker=worker_class)
    too_long = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"v" * 60 + b"\r\n\r\n"

    def send_in_pieces(sock: socket.socket, data: bytes, size: int) -> None:
        try:
            for start in range(0, len(data), size):
                sock.sendall(data[start:start + size])
                time.sleep(0.001)
        except OSError:
            pass  # refused before the end: the answer is already there

    with connect(srv.port) as sock:
        send_in_pieces(sock, too_long, 1)
        assert read_response(sock)[0] == 431
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(21))
    with connect(srv.port) as sock:
        send_in_pieces(sock, many + b"\r\n", 7)
        assert read_response(sock)[0] == 431
    post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    with connect(srv.port) as sock:
        sock.sendall(post + too_long[:40])
        time.sleep(0.05)
        sock.sendall(too_long[40:])
        assert read_response(sock)[:3:2] == (200, b"abc")
        assert read_response(sock)[0] == 431


def test_trickled_request_is_parsed(server) -> None:  # type: ignore[no-untyped-def]
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    with connect(server.port) as sock:
        for byte in request:
            sock.sendall(bytes([byte]))
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"abc")


def test_client_disconnect_mid_request_keeps_worker_serving(server) -> None:  # type: ignore[no-untyped-def]
    for _ in range(20):
        sock = connect(server.port)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        sock.close()
    assert httpx.get(server.url + "/").status_code == 200
    assert "Traceback" not in server.log()


def test_idle_connection_closed_after_keepalive(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--keep-alive", "1", worker=worker_class)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock)
        closed_after = seconds_until_closed(sock)
    # Closed (not just quiet), not before keepalive; the upper bound leaves a busy machine
    # seconds of slack and still tells a 1 s keep-alive from none.
    assert closed_after is not None and 0.8 < closed_after < 1 + 5, closed_after


def test_bad_body_after_the_response_only_closes(server) -> None:  # type: ignore[no-untyped-def]
    # The app answers without reading; the chunked body that follows is malformed. The request
    # already has its response: the connection closes, no second response is written.
    with connect(server.port) as sock:
        sock.sendall(b"POST /no-read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"did not read the body")
        sock.sendall(b"zz\r\nabc\r\n0\r\n\r\n")
        assert read_until_close(sock) == b""


def test_streamed_chunk_is_sent_before_the_app_pauses(server) -> None:  # type: ignore[no-untyped-def]
    # Chunks sent back to back may share a write, but one followed by a real await must leave
    # at once (server-sent events rely on it). The app awaits the request body after its
    # first chunk, and the client sends the body only once that chunk arrived: a server that
    # held the chunk back would wait for ever (10 s here), however fast the machine.
    with connect(server.port, timeout=10) as sock:
        sock.sendall(b"POST /stream-until-body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        received = b""
        while b"first;" not in received:
            received += sock.recv(4096)
        assert b"second;" not in received
        sock.sendall(b"body")
        while not received.endswith(b"0\r\n\r\n"):
            received += sock.recv(4096)
    assert received.index(b"first;") < received.index(b"second;body")
