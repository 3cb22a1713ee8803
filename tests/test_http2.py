"""HTTP/2 and its negotiation, against real workers with real clients."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from gunicorn.config import Config

from tests.conftest import ROOT
from tests.rawhttp import Conn, read_response


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


_SETTINGS = Config().settings
needs_http2_settings = pytest.mark.skipif(
    "http_protocols" not in _SETTINGS or "http2_cleartext" not in _SETTINGS,
    reason="this Gunicorn has no http_protocols / http2_cleartext (25.0 / 26.2 and newer do)")


def _tls_client(alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    return context


# -- ALPN offers only what the worker serves ---------------------------------------------------


@needs_http2_settings
def test_alpn_with_h2_configured_serves_http2_clients_over_http11(  # type: ignore[no-untyped-def]
        start_server, worker_class, certificate) -> None:
    # A user's `-k asgi` command: Gunicorn's context factory offers h2 in ALPN. Clients that
    # prefer h2 must still get a working connection, never one that refuses their preface.
    cert, key = certificate
    srv = start_server("tests.apps.basic:app", "--certfile", str(cert), "--keyfile", str(key),
                       "--http-protocols", "h2,h1", worker=worker_class)
    with httpx.Client(http2=True, verify=False, timeout=10) as client:
        for _ in range(3):
            response = client.get(f"https://127.0.0.1:{srv.port}/scope")
            assert response.status_code == 200
            assert response.http_version == "HTTP/1.1"
            assert response.json()["scheme"] == "https"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw, \
            _tls_client(["h2", "http/1.1"]).wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(Conn(tls))  # type: ignore[arg-type]
        assert (status, body) == (200, b"Hello, world!")
    assert "http_protocols=h2,h1: HTTP/2 is not served yet" in srv.log()
    assert "Invalid request" not in srv.log()


def test_alpn_set_by_an_ssl_context_hook_is_narrowed(  # type: ignore[no-untyped-def]
        start_server, worker_class, certificate, tmp_path: Path) -> None:
    cert, key = certificate
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def ssl_context(conf, default_ssl_context_factory):\n"
        "    context = default_ssl_context_factory()\n"
        "    context.set_alpn_protocols(['h2', 'http/1.1'])\n"
        "    return context\n")
    srv = start_server("tests.apps.basic:app", "-c", str(conf), "--certfile", str(cert),
                       "--keyfile", str(key), worker=worker_class)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw, \
            _tls_client(["h2", "http/1.1"]).wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
    with httpx.Client(http2=True, verify=False, timeout=10) as client:
        response = client.get(f"https://127.0.0.1:{srv.port}/")
        assert (response.status_code, response.http_version) == (200, "HTTP/1.1")


# -- the h2 package: loaded only for HTTP/2 ----------------------------------------------------


def test_an_http11_worker_never_loads_h2(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.http2:app", worker=worker_class)
    assert httpx.get(f"{srv.url}/modules").json() == []


@needs_http2_settings
def test_http2_without_the_h2_package_stops_with_what_to_install(  # type: ignore[no-untyped-def]
        start_server, worker_class, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "h2.py").write_text("raise ImportError('No module named h2')\n")
    srv = start_server("tests.apps.http2:app", "--http-protocols", "h2,h1",
                       "--http2-cleartext", "prior-knowledge", worker=worker_class,
                       env={"PYTHONPATH": f"{shadow}:{ROOT}"}, wait_ready=False)
    assert srv.proc.wait(20) != 0
    log = srv.log()
    # Gunicorn 27 refuses this configuration itself, before any worker starts; older ones
    # leave it to the worker.
    assert "[http2]" in log
    assert "asgi_worker ready" not in log
