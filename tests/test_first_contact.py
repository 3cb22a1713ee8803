"""What a new user meets on day one: settings, start-up failures, kills, the wrong app, limits."""

from __future__ import annotations

import httpx

from tests.rawhttp import connect

# -- worker_connections = 0 -------------------------------------------------------------------


def test_worker_connections_zero_means_no_limit(start_server, worker_class) -> None:  # type: ignore[no-untyped-def]
    srv = start_server("tests.apps.first_contact:app", "--worker-connections", "0",
                       worker=worker_class)
    assert "asgi_worker: worker_connections=0: no limit on simultaneous connections" in srv.log()
    with connect(srv.port, timeout=10) as held:
        held.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"first;" not in head:
            head += held.recv(4096)
        # The held request is in flight; a second connection is still served.
        assert httpx.get(srv.url + "/fast", timeout=10).text == "fast"
