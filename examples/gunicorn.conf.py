"""Gunicorn configuration for asgi_worker, with every setting the worker reads.

Run from the repository root:  gunicorn -c examples/gunicorn.conf.py

Values given on the command line win over this file (``gunicorn -c examples/gunicorn.conf.py
-b 127.0.0.1:9000``). The defaults below are the values we recommend for a service behind a
reverse proxy or load balancer; the comment on each line says when to change it.
"""

from __future__ import annotations

import os

# -- What to serve -------------------------------------------------------------------------------

# The ASGI callable, "module:attribute" (the positional argument on the command line).
wsgi_app = os.environ.get("APP_MODULE", "examples.hello:app")
# asgi_worker.Worker parses with httptools; asgi_worker.H11Worker with pure-Python h11.
worker_class = "asgi_worker.Worker"

# -- Sockets -------------------------------------------------------------------------------------

bind = [os.environ.get("BIND", "0.0.0.0:8000")]  # also "unix:/run/app.sock" or fd://3
backlog = 2048  # kernel queue of connections not yet accepted

# -- Processes -----------------------------------------------------------------------------------

# One event loop per process: size workers to CPU cores, not to concurrency. `threads` is
# ignored by this worker (it warns at start-up).
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
# Open connections per worker; at the limit the worker stops accepting (the kernel queues new
# ones) instead of refusing them.
worker_connections = 1000
# Recycle a worker after this many requests (0 = never); the jitter spreads the restarts.
# In-flight requests finish first, so recycling loses nothing.
max_requests = 0
max_requests_jitter = 0
# Load the app in the arbiter before forking (shares memory, but no code reload on SIGHUP).
# The event loop is always created after the fork.
preload_app = False

# -- Timeouts (seconds) --------------------------------------------------------------------------

# A worker whose event loop has not ticked for this long is killed and replaced; the worker
# logs the requests in flight and the stack where the loop was stuck before that.
timeout = 30
# On SIGTERM (and on max_requests) a worker stops accepting and gives in-flight requests this
# long to finish. Keep it below your orchestrator's kill deadline (docker stop -t,
# terminationGracePeriodSeconds, systemd TimeoutStopSec).
graceful_timeout = 25
# How long an idle keep-alive connection stays open. Behind a load balancer, set it above the
# balancer's idle timeout (e.g. 75 behind an AWS ALB's 60) so the balancer closes first.
keepalive = 5

# -- Request limits ------------------------------------------------------------------------------

limit_request_line = 4094  # longest request line (414 above it); 0 = unlimited
limit_request_fields = 100  # most header fields (431 above it)
limit_request_field_size = 8190  # longest header field (431 above it)

# -- Proxies -------------------------------------------------------------------------------------

# Peers whose X-Forwarded-* headers are trusted (client address, scheme). Set it to the
# proxy's address; "*" only when nothing but the proxy can reach the worker.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Header/value pairs that mark a request as https when sent by a trusted peer.
secure_scheme_headers = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}
# HAProxy / AWS NLB PROXY protocol in front of each connection. Gunicorn 24+ takes "off", "v1",
# "v2" or "auto"; Gunicorn 23 only a boolean (True = "auto"), which every version accepts.
proxy_protocol = False
proxy_allow_ips = "127.0.0.1,::1"
# Extra headers a trusted proxy may set; SCRIPT_NAME becomes the ASGI root_path (the app's
# mount point) with the path left whole.
forwarder_headers = "SCRIPT_NAME,PATH_INFO"

# -- TLS (usually terminated by the proxy instead) -----------------------------------------------

certfile = os.environ.get("TLS_CERTFILE") or None
keyfile = os.environ.get("TLS_KEYFILE") or None

# -- Logging -------------------------------------------------------------------------------------

accesslog = "-"  # "-" = stdout; None turns access lines off (and saves their cost)
errorlog = "-"
loglevel = "info"
# Every Gunicorn atom works; %(D)s is the duration in microseconds.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'

# -- ASGI ----------------------------------------------------------------------------------------

# Gunicorn 24+ also has root_path, asgi_loop, asgi_lifespan and (26.3+)
# websocket_max_message_size; asgi_worker honours them where the installed Gunicorn has them.
# The ASGI_WORKER_* variables below work on every supported Gunicorn and win over those.
# See docs/configuration.md for every option, its default and valid values.
# ASGI_WORKER_HTTP_PARSER=httptools|h11 also exists; it overrides the parser the worker class
# chose, so pick the class instead (asgi_worker.Worker or asgi_worker.H11Worker).
raw_env = [
    "ASGI_WORKER_LOOP=auto",  # auto | uvloop | asyncio
    "ASGI_WORKER_LIFESPAN=auto",  # auto | on | off
    "ASGI_WORKER_HEADER_TIMEOUT=10",  # seconds to receive a complete request head
    "ASGI_WORKER_BODY_TIMEOUT=60",  # seconds of silence allowed while reading a body
    "ASGI_WORKER_SEND_TIMEOUT=60",  # seconds a slow client may keep a write blocked
    "ASGI_WORKER_MAX_BODY_SIZE=0",  # largest request body in bytes (413 above); 0 = no limit
    "ASGI_WORKER_WS=on",  # WebSocket support: on | off
    "ASGI_WORKER_WS_PING_INTERVAL=20",  # seconds between server pings; 0 = no pings
    "ASGI_WORKER_WS_PING_TIMEOUT=20",  # seconds to wait for the pong before closing
    "ASGI_WORKER_WS_MAX_MESSAGE_SIZE=16777216",  # bytes; larger messages close with 1009
    "ASGI_WORKER_WS_PER_MESSAGE_DEFLATE=on",  # permessage-deflate compression: on | off
    "ASGI_WORKER_HTTP2_FASTPATH=on",  # HTTP/2 fast path (h2 4.4); off: h2's public API only
]
# A mount point set by the proxy (the app sees it as scope["root_path"]):
root_path_from_env = os.environ.get("SCRIPT_NAME", "")
if root_path_from_env:
    raw_env.append(f"SCRIPT_NAME={root_path_from_env}")
del root_path_from_env

# -- Hooks ---------------------------------------------------------------------------------------


def when_ready(server):  # type: ignore[no-untyped-def]
    """Called in the arbiter once the sockets are bound."""
    server.log.info("gunicorn.conf.py loaded: %d worker(s) of %s", server.num_workers,
                    server.cfg.worker_class_str)
