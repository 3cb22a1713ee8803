"""Gunicorn settings, hooks, logging and metrics mean what they mean for Gunicorn's own workers."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import GUNICORN_MAJOR
from tests.rawhttp import (
    connect,
    exchange,
    read_response,
    seconds_until_closed,
    status_of,
)
from tests.waiting import wait_until

# Gunicorn 24+ takes a mode; 23's flag takes no value (a value would be read as the app).
PROXY_PROTOCOL = ["--proxy-protocol"] if GUNICORN_MAJOR < 24 else ["--proxy-protocol", "auto"]




def scope_of(port: int, headers: bytes = b"") -> dict:  # type: ignore[type-arg]
    data = exchange(port, b"GET /scope HTTP/1.1\r\nHost: x\r\n" + headers
                    + b"Connection: close\r\n\r\n")
    assert status_of(data) == 200, data[:300]
    return json.loads(data.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


# -- keepalive and worker_connections --------------------------------------------------------------


def test_keepalive_bounds_the_wait_for_the_first_request(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--keep-alive", "1", worker=worker_class)
    with connect(srv.port) as sock:
        closed_after = seconds_until_closed(sock)
    # Closed (not just quiet) at the keep-alive, with seconds of slack for a busy machine.
    assert closed_after is not None and 0.8 < closed_after < 1 + 5, closed_after


def test_keepalive_zero_turns_keep_alive_off(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--keep-alive", "0", worker=worker_class)
    data = exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"connection: close" in data and data.endswith(b"Hello, world!")


def test_worker_connections_pauses_accept_instead_of_refusing(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--worker-connections", "1", "--keep-alive", "30",
                       worker=worker_class)
    first = connect(srv.port)
    first.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(first)[0] == 200
    second = connect(srv.port)  # the kernel queues it: the worker is at its limit
    second.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    second.settimeout(1.0)
    with pytest.raises(TimeoutError):
        second.recv(100)
    first.close()  # below the limit again: the queued connection is accepted and served
    status, _, body = read_response(second)
    assert (status, body) == (200, b"Hello, world!")
    second.close()


def test_worker_connections_lets_another_worker_take_the_load(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--worker-connections", "1", "--keep-alive", "30",
                       worker=worker_class, workers=2)
    holders = []
    pids = set()
    for _ in range(2):
        sock = connect(srv.port)
        sock.sendall(b"GET /process HTTP/1.1\r\nHost: x\r\n\r\n")
        pids.add(json.loads(read_response(sock)[2])["pid"])
        holders.append(sock)
    assert pids == set(srv.worker_pids())  # each worker holds one connection, no 503
    for sock in holders:
        sock.close()


# -- proxies --------------------------------------------------------------------


def test_forwarded_headers_from_a_trusted_peer(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    scope = scope_of(srv.port, b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n")
    assert scope["client"][0] == "203.0.113.7"
    assert scope["scheme"] == "https"


def test_conflicting_scheme_headers_are_a_400(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    data = exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n"
                              b"X-Forwarded-Ssl: off\r\n\r\n")
    assert status_of(data) == 400


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--forwarded-allow-ips", "10.9.9.9",
                       worker=worker_class)
    scope = scope_of(srv.port, b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n")
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"


def test_trust_everyone_with_star(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--forwarded-allow-ips", "*",
                       worker=worker_class)
    assert scope_of(srv.port, b"X-Forwarded-Proto: https\r\n")["scheme"] == "https"


def _proxy_v2(source: str, sport: int, dest: str, dport: int) -> bytes:
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    addresses = socket.inet_aton(source) + socket.inet_aton(dest) + struct.pack("!HH", sport,
                                                                                  dport)
    return signature + b"\x21\x11" + struct.pack("!H", len(addresses)) + addresses


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_sets_client_and_server(start_server, worker_class, version: str) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", *PROXY_PROTOCOL, worker=worker_class)
    header = (b"PROXY TCP4 198.51.100.4 192.0.2.9 40000 8443\r\n" if version == "v1"
              else _proxy_v2("198.51.100.4", 40000, "192.0.2.9", 8443))
    data = exchange(srv.port, header + b"GET /scope HTTP/1.1\r\nHost: x\r\nConnection: close"
                                       b"\r\n\r\n")
    scope = json.loads(data.partition(b"\r\n\r\n")[2])
    assert scope["client"] == ["198.51.100.4", 40000]
    assert scope["server"] == ["192.0.2.9", 8443]


def test_bad_or_untrusted_proxy_header_closes(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", *PROXY_PROTOCOL, worker=worker_class)
    assert exchange(srv.port, b"PROXY TCP4 999.1.1.1 192.0.2.9 1 2\r\nGET / HTTP/1.1\r\n"
                              b"Host: x\r\n\r\n") == b""
    other = start_server("tests.apps.basic:app", *PROXY_PROTOCOL,
                         "--proxy-allow-from", "10.9.9.9", worker=worker_class)
    assert exchange(other.port, b"PROXY TCP4 198.51.100.4 192.0.2.9 40000 8443\r\n"
                                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert "not in proxy_allow_ips" in other.log()


# -- paths --------------------------------------------------------------------


def test_root_path_setting_and_script_name(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "-e", "SCRIPT_NAME=/api", worker=worker_class)
    scope = scope_of(srv.port)
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope" and scope["raw_path"] == "/api/scope"


def test_script_name_header_from_trusted_proxy(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    data = exchange(srv.port, b"GET /mount/scope HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /mount\r\n"
                              b"Connection: close\r\n\r\n")
    assert status_of(data) in (200, 400)  # some parsers refuse '_' in names; never a crash


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_serves_https(start_server, worker_class, certificate) -> None:  # type: ignore[no-untyped-def]
    cert, key = certificate
    srv = start_server("tests.apps.basic:app", "--certfile", str(cert), "--keyfile", str(key),
                       worker=worker_class)
    url = f"https://127.0.0.1:{srv.port}/scope"
    scope = httpx.get(url, verify=False).json()
    assert scope["scheme"] == "https"
    # No plaintext fallback on the same port.
    assert status_of(exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)) == 0


def test_tls_large_and_small_responses(start_server, worker_class, certificate) -> None:  # type: ignore[no-untyped-def]
    # Large whole responses are written as head and body side by side (a vectored write):
    # through TLS too, each must arrive whole, on one kept-alive connection.
    cert, key = certificate
    srv = start_server("tests.apps.basic:app", "--certfile", str(cert), "--keyfile", str(key),
                       worker=worker_class)
    payloads = [b"x" * (1024 * 1024), b"small", bytes(range(256)) * 40]
    with httpx.Client(base_url=f"https://127.0.0.1:{srv.port}", verify=False,
                      timeout=30) as client:
        for payload in payloads:
            response = client.post("/echo", content=payload)
            assert response.status_code == 200
            assert response.content == payload
        assert client.get("/").text == "Hello, world!"


def test_tls_that_cannot_be_set_up_stops_the_worker(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("garbage")
    srv = start_server("tests.apps.basic:app", "--certfile", str(bad), "--keyfile", str(bad),
                       worker=worker_class, wait_ready=False)
    assert srv.proc.wait(20) != 0
    log = srv.log()
    assert "SSL context could not be built" in log
    assert "asgi_worker ready" not in log


def test_ssl_context_hook_is_used(start_server, worker_class, certificate,  # type: ignore[no-untyped-def]
                                  tmp_path: Path) -> None:
    cert, key = certificate
    conf = tmp_path / "conf.py"
    conf.write_text(
        "import ssl\n"
        "def ssl_context(conf, default_ssl_context_factory):\n"
        "    context = default_ssl_context_factory()\n"
        "    context.minimum_version = ssl.TLSVersion.TLSv1_3\n"
        "    return context\n")
    srv = start_server("tests.apps.basic:app", "-c", str(conf), "--certfile", str(cert),
                       "--keyfile", str(key), worker=worker_class)
    import ssl

    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{srv.port}/", verify=client)
    client.maximum_version = ssl.TLSVersion.TLSv1_3
    assert httpx.get(f"https://127.0.0.1:{srv.port}/", verify=client).status_code == 200


# -- process settings --------------------------------------------------------------------


def test_preload_app_runs_lifespan_in_each_worker(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--preload", worker=worker_class, workers=2)
    states = {scope_of(srv.port)["state"]["pid"] for _ in range(20)}
    assert states <= set(srv.worker_pids()) and states


def test_raw_env_chdir_pythonpath_umask(start_server, worker_class, tmp_path: Path,  # type: ignore[no-untyped-def]
                                        socket_dir: Path) -> None:
    app_dir = tmp_path / "elsewhere"
    app_dir.mkdir()
    (app_dir / "moved_app.py").write_text("from tests.apps.basic import app\n")
    root = str(Path(__file__).resolve().parent.parent)
    sock_path = socket_dir / "umask.sock"
    srv = start_server("moved_app:app", "--chdir", str(app_dir), "--pythonpath", root,
                       "-e", "GREETING=hi", "--umask", "0o077", "-b", f"unix:{sock_path}",
                       worker=worker_class)
    info = httpx.get(srv.url + "/process?GREETING").json()
    assert info["env"] == "hi"
    assert info["cwd"] == str(app_dir)
    # Gunicorn applies umask to the sockets it creates (as for its own workers).
    assert sock_path.stat().st_mode & 0o777 == 0o700


# The app for -u/-g: the worker imports it after dropping privileges, so it must lie in a tree
# the user can read, whatever the checkout's folder (a clone under /root, a 0700 tmp dir).
_UID_APP = """import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b'{"uid": %d, "gid": %d}' % (os.getuid(), os.getgid())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_and_group(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
        group_name = next(name for name in ("nogroup", "nobody") if _has_group(name))
    except (KeyError, StopIteration):
        pytest.skip("no nobody user or nogroup/nobody group")
    app_dir = Path(tempfile.mkdtemp(prefix="asgi-worker-uid-"))
    try:
        app_dir.chmod(0o755)
        (app_dir / "uid_app.py").write_text(_UID_APP)
        (app_dir / "uid_app.py").chmod(0o644)
        srv = start_server("uid_app:app", "-u", "nobody", "-g", group_name, "--chdir",
                           str(app_dir), worker=worker_class)
        info = httpx.get(srv.url + "/").json()
        assert info == {"uid": nobody, "gid": grp.getgrnam(group_name).gr_gid}
    finally:
        shutil.rmtree(app_dir, ignore_errors=True)


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_backlog_reuse_port_and_several_binds(start_server, worker_class,  # type: ignore[no-untyped-def]
                                              socket_dir: Path) -> None:
    path = socket_dir / "s.sock"
    srv = start_server("tests.apps.basic:app", "--backlog", "64", "-b", f"unix:{path}",
                       worker=worker_class)
    assert httpx.get(srv.url).status_code == 200
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        assert client.get("http://localhost/").status_code == 200
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # With --reuse-port Gunicorn does not log the bound port, so bind a known free one.
    start_server("tests.apps.basic:app", "--reuse-port", worker=worker_class, workers=2,
                 bind=f"127.0.0.1:{port}")
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


def test_reload_restarts_workers_on_code_change(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    module = tmp_path / "reloadable.py"
    template = ("async def app(scope, receive, send):\n"
                "    if scope['type'] != 'http':\n        return\n"
                "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
                "    await send({'type': 'http.response.body', 'body': b'%s'})\n")
    module.write_text(template % "one")
    srv = start_server("reloadable:app", "--reload", "--chdir", str(tmp_path),
                       worker=worker_class)
    assert httpx.get(srv.url).text == "one"
    module.write_text(template % "two")
    # Gunicorn's poll reloader takes a file's first mtime as it first sees it (every second),
    # so a change it has not yet seen the file before is not a change: move the mtime on
    # until one is noticed, however long this machine takes to get there.
    bumps = iter(range(1, 30))

    def reloaded() -> bool:
        if srv.log().count("Booting worker") >= 2:  # the old worker left, a new one boots
            return True
        later = time.time() + next(bumps)
        os.utime(module, (later, later))
        return False

    assert wait_until(reloaded, timeout=45, interval=1.5), srv.log()[-2000:]
    srv.wait_ready(workers=2, timeout=20)
    assert wait_until(lambda: httpx.get(srv.url).text == "two", timeout=10)


# -- signals --------------------------------------------------------------------


def test_sigterm_closes_idle_keep_alive_connections(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    # A 30 s graceful_timeout: closing idle connections after the short grace (0.5 s) and
    # waiting out graceful_timeout stay far apart, on any machine.
    srv = start_server("tests.apps.basic:app", "--keep-alive", "60", "--graceful-timeout", "30",
                       worker=worker_class)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock)
        srv.signal(signal.SIGTERM)
        closed_after = seconds_until_closed(sock, timeout=40)
    assert closed_after is not None and closed_after < 10, closed_after
    assert srv.proc.wait(10) == 0


def test_sigusr1_reopens_the_access_log(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    access = tmp_path / "access.log"
    srv = start_server("tests.apps.basic:app", "--access-logfile", str(access),
                       worker=worker_class)
    httpx.get(srv.url + "/first")
    assert wait_until(lambda: access.exists() and "/first" in access.read_text())
    access.rename(tmp_path / "access.log.1")
    srv.signal(signal.SIGUSR1)
    # The worker reopens when it gets to the signal: ask until a request lands in the new file.
    assert wait_until(lambda: httpx.get(srv.url + "/second").status_code == 200 and
                      access.exists() and "/second" in access.read_text(), timeout=20,
                      interval=0.2)
    assert "/first" in (tmp_path / "access.log.1").read_text()
    assert "/first" not in access.read_text()


def test_sigwinch_is_ignored(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    worker = srv.worker_pids()[0]
    os.kill(worker, signal.SIGWINCH)
    time.sleep(0.5)
    assert srv.worker_pids() == [worker]
    assert httpx.get(srv.url).status_code == 200


# -- access log --------------------------------------------------------------------


ALL_ATOMS = ('%(h)s|%(l)s|%(u)s|%(t)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(f)s|'
             '%(a)s|%(T)s|%(D)s|%(M)s|%(L)s|%(p)s|%({x-req}i)s|%({content-type}o)s|'
             '%({request_method}e)s')


def test_access_log_every_atom(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    access = tmp_path / "access.log"
    srv = start_server("tests.apps.basic:app", "--access-logfile", str(access),
                       "--access-logformat", ALL_ATOMS, worker=worker_class)
    httpx.get(srv.url + "/echo?k=v", headers={"X-Req": "abc", "Referer": "http://r/",
                                               "User-Agent": "ua/1"},
              auth=("alice", "secret"))
    assert wait_until(lambda: access.exists() and access.read_text().strip())
    fields = access.read_text().strip().split("|")
    assert fields[0] == "127.0.0.1" and fields[1] == "-" and fields[2] == "alice"
    assert fields[3].startswith("[") and fields[3].endswith("]")
    assert fields[4] == "GET /echo?k=v HTTP/1.1"
    assert fields[5:9] == ["GET", "/echo", "k=v", "HTTP/1.1"]
    assert fields[9] == "200" and fields[10] == "0" and fields[11] == "0"
    assert fields[12:14] == ["http://r/", "ua/1"]
    # The request time in its four units, consistent however long the request took here.
    seconds, micros, millis = int(fields[14]), int(fields[15]), int(fields[16])
    assert micros > 0 and seconds == micros // 1_000_000 and millis == micros // 1000
    assert fields[17] == f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
    assert fields[18] == f"<{srv.worker_pids()[0]}>"
    assert fields[19:] == ["abc", "application/octet-stream", "GET"]


def test_access_log_default_format_and_real_bytes(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    srv = start_server("tests.apps.basic:app", "--access-logfile", str(access),
                       worker=worker_class)
    httpx.get(srv.url + "/stream?3", headers={"User-Agent": "tester"})
    assert wait_until(lambda: access.exists() and access.read_text().strip())
    line = access.read_text().strip()
    assert '"GET /stream?3 HTTP/1.1" 200 21 "-" "tester"' in line


def test_no_access_log_when_unset(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", worker=worker_class)
    httpx.get(srv.url + "/marker-path")
    assert "/marker-path" not in srv.log()


def test_custom_logger_class_gets_gunicorn_objects(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    srv = start_server("tests.apps.basic:app", "--logger-class", "tests.apps.logger.TaggingLogger",
                       "--access-logfile", str(access), worker=worker_class)
    httpx.get(srv.url + "/status/404")
    assert wait_until(lambda: access.exists() and '"GET /status/404 HTTP/1.1" 404' in
                      access.read_text())
    assert "tagged /status/404" in access.read_text()


# -- hooks and metrics --------------------------------------------------------------------


def test_server_hooks_run(start_server, worker_class, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hook_log = tmp_path / "hooks.txt"
    srv = start_server("tests.apps.basic:app", "-c", "tests/apps/hooks_conf.py",
                       worker=worker_class, env={"HOOK_LOG": str(hook_log)})
    worker = srv.worker_pids()[0]
    httpx.get(srv.url + "/status/201?x=1")
    assert wait_until(lambda: "post_request" in hook_log.read_text())
    srv.stop()
    lines = hook_log.read_text().splitlines()
    assert f"post_worker_init {worker}" in lines
    assert "pre_request GET /status/201" in lines
    assert "post_request GET /status/201 201 Created" in lines
    assert f"worker_exit {worker}" in lines


def test_a_raising_hook_does_not_break_the_request(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text("def pre_request(worker, req):\n    raise ValueError('hook bug')\n"
                    "def post_request(worker, req, environ, resp):\n    raise KeyError('x')\n")
    srv = start_server("tests.apps.basic:app", "-c", str(conf), worker=worker_class)
    assert httpx.get(srv.url).text == "Hello, world!"
    assert wait_until(lambda: "post_request hook failed" in srv.log())
    assert "pre_request hook failed" in srv.log()


def test_statsd_metrics_reach_a_udp_listener(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    srv = start_server("tests.apps.basic:app", "--statsd-host", f"127.0.0.1:{port}",
                       "--statsd-prefix", "app", worker=worker_class)
    httpx.get(srv.url + "/status/404")
    seen = b""
    deadline = time.monotonic() + 5
    while b"request.status.404" not in seen and time.monotonic() < deadline:
        try:
            seen += listener.recv(4096) + b"\n"
        except TimeoutError:
            break
    listener.close()
    assert b"app.gunicorn.requests:1|c" in seen
    assert b"app.gunicorn.request.status.404:1|c" in seen
    assert b"app.gunicorn.request.duration:" in seen


def test_unsupported_settings_are_reported_at_startup(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--threads", "4", worker=worker_class)
    assert "threads=4 is not honoured" in srv.log()
    assert httpx.get(srv.url).status_code == 200


def test_error_log_goes_through_gunicorn_logging_config(start_server, worker_class,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    error_log = tmp_path / "error.log"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "logconfig_dict = {\n"
        "    'version': 1, 'disable_existing_loggers': False,\n"
        "    'formatters': {'custom': {'format': 'CUSTOM %(levelname)s %(message)s'}},\n"
        "    'handlers': {'file': {'class': 'logging.FileHandler',\n"
        f"                          'filename': {str(error_log)!r}, 'formatter': 'custom'}}}},\n"
        "    'root': {'handlers': ['file'], 'level': 'INFO'},\n"
        "    'loggers': {'gunicorn.error': {'handlers': ['file'], 'level': 'INFO',\n"
        "                                   'propagate': False}},\n"
        "}\n")
    srv = start_server("tests.apps.basic:app", "-c", str(conf), worker=worker_class,
                       wait_ready=False)
    assert wait_until(lambda: error_log.exists() and "asgi_worker ready" in error_log.read_text())
    match = next(line for line in error_log.read_text().splitlines() if "ready" in line)
    assert match.startswith("CUSTOM INFO asgi_worker ready")
    srv.stop()


def test_log_level_hides_info(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.basic:app", "--log-level", "warning", "--threads", "2",
                       worker=worker_class, wait_ready=False)
    assert wait_until(lambda: "threads=2 is not honoured" in srv.log())
    assert "asgi_worker ready" not in srv.log()  # INFO is below the level
