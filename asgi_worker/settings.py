"""Settings: the one place that reads Gunicorn's ``cfg``, turned into a typed, frozen object.

Everything else in the worker reads :class:`Settings`; nothing else touches ``cfg``. Options that
Gunicorn has no setting for (WebSocket ping, body limits, ...) come from ``ASGI_WORKER_*``
environment variables, which users set with ``--env`` / ``raw_env`` or in ``gunicorn.conf.py``.
Every value is validated here, so a bad one stops the worker at start-up with a clear message.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .tlsinfo import read_server_cert

# Gunicorn's own bounds for the request limits (gunicorn/http/message.py).
MAX_REQUEST_LINE = 8190
MAX_HEADERS = 32768
DEFAULT_MAX_HEADERFIELD_SIZE = 8190
# What "0 = unlimited" means here: large, but still a bound, so memory stays bounded.
UNLIMITED_LINE = 1024 * 1024
# worker_connections=0: no limit (the file descriptor limit still applies).
UNLIMITED_CONNECTIONS = sys.maxsize
# HTTP/2 bounds (RFC 9113 sections 6.5.2 and 6.9.1).
MIN_FRAME_SIZE = 16384
MAX_FRAME_SIZE = 16777215
MAX_WINDOW_SIZE = 2**31 - 1
# The oldest h2 release the http2 extra allows (Gunicorn requires the same).
H2_MIN_VERSION = (4, 1)
HTTP2_EXTRA = "pip install 'asgi-worker[http2]'"

ENV_PREFIX = "ASGI_WORKER_"


class SettingsError(ValueError):
    """A setting has a value the worker cannot run with; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob the server reads, resolved once per worker process."""

    # Worker flavour
    parser: str = "httptools"
    loop: str = "auto"
    lifespan: str = "auto"
    # Process and connection lifecycle (seconds)
    timeout: float = 30.0
    graceful_timeout: float = 30.0
    keepalive: float = 2.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    send_timeout: float = 60.0
    worker_connections: int = 1000
    max_requests: int = 0
    # Request limits
    limit_request_line: int = 4094
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    max_body_size: int = 0
    # Proxies and paths
    root_path: str = ""
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    secure_scheme_headers: Mapping[str, str] = field(default_factory=dict)
    forwarder_headers: tuple[str, ...] = ()
    proxy_protocol: str = "off"
    proxy_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    # TLS
    ssl_context: ssl.SSLContext | None = None
    # HTTP/2 (Gunicorn's settings of the same names)
    http_protocols: tuple[str, ...] = ("h1",)
    http2_cleartext: str = "off"
    http2_max_concurrent_streams: int = 100
    http2_initial_window_size: int = 65535
    http2_max_frame_size: int = MIN_FRAME_SIZE
    http2_max_header_list_size: int = 65536
    tls_server_cert: str | None = None  # PEM of certfile's first certificate (the tls extension)
    # Files sent with http.response.pathsend/zerocopysend go out with os.sendfile (--no-sendfile)
    sendfile: bool = True
    # Logging and hooks
    access_log_enabled: bool = False
    access_log_format: str = ""
    access_log_fast: bool = True
    pre_request: Callable[..., Any] | None = None
    post_request: Callable[..., Any] | None = None
    # WebSocket
    http2_fastpath: bool = True
    ws_enabled: bool = True
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_max_message_size: int = 16 * 1024 * 1024
    ws_per_message_deflate: bool = True
    # Start-up warnings for settings this worker cannot honour
    warnings: tuple[str, ...] = ()

    @property
    def http2(self) -> bool:
        """Whether HTTP/2 is asked for (``h2`` in ``http_protocols``)."""
        return "h2" in self.http_protocols

    @property
    def max_head_size(self) -> int:
        """The most bytes a request head may take before it is refused (431)."""
        return self.limit_request_line + self.limit_request_fields * (
            self.limit_request_field_size + 2
        ) + 4


def from_cfg(cfg: Any, *, parser: str, max_requests: int, log: Any = None) -> Settings:
    """Build :class:`Settings` from Gunicorn's ``cfg`` and the worker's environment.

    ``max_requests`` is the budget Gunicorn's base worker already drew (with jitter).
    """
    env = _worker_env(cfg)
    get = _getter(cfg)

    parser = _choice(env.get("HTTP_PARSER", parser), ("httptools", "h11"), "HTTP_PARSER")
    loop = _choice(env.get("LOOP", get("asgi_loop", "auto")), ("auto", "uvloop", "asyncio"),
                   "LOOP")
    lifespan = _choice(env.get("LIFESPAN", get("asgi_lifespan", "auto")), ("auto", "on", "off"),
                       "LIFESPAN")

    warnings = list(_unsupported(cfg))
    worker_connections = _worker_connections(int(get("worker_connections", 1000)), warnings)
    is_ssl = bool(getattr(cfg, "is_ssl", False))
    protocols, cleartext, http2_warnings = _http2_negotiation(get, is_ssl)
    ws_max = env.get("WS_MAX_MESSAGE_SIZE")
    settings = Settings(
        parser=parser,
        loop=loop,
        lifespan=lifespan,
        timeout=float(get("timeout", 30)),
        graceful_timeout=float(get("graceful_timeout", 30)),
        keepalive=max(0.0, float(get("keepalive", 2))),
        header_timeout=_positive(env.get("HEADER_TIMEOUT", "10"), "HEADER_TIMEOUT"),
        body_timeout=_positive(env.get("BODY_TIMEOUT", "60"), "BODY_TIMEOUT"),
        send_timeout=_positive(env.get("SEND_TIMEOUT", "60"), "SEND_TIMEOUT"),
        worker_connections=worker_connections,
        max_requests=max_requests,
        limit_request_line=_limit_line(int(get("limit_request_line", 4094))),
        limit_request_fields=_limit_fields(int(get("limit_request_fields", 100))),
        limit_request_field_size=_limit_field_size(int(get("limit_request_field_size", 8190))),
        max_body_size=int(_non_negative(env.get("MAX_BODY_SIZE", "0"), "MAX_BODY_SIZE")),
        root_path=_root_path(cfg, get),
        forwarded_allow_ips=_ip_list(get("forwarded_allow_ips", "127.0.0.1,::1")),
        secure_scheme_headers={k.upper(): v for k, v in
                               (get("secure_scheme_headers", {}) or {}).items()},
        forwarder_headers=_name_list(get("forwarder_headers", "")),
        proxy_protocol=_proxy_protocol_mode(get("proxy_protocol", False)),
        proxy_allow_ips=_ip_list(get("proxy_allow_ips", "127.0.0.1,::1")),
        ssl_context=build_ssl_context(cfg, served_alpn(protocols)) if is_ssl else None,
        http_protocols=protocols,
        http2_cleartext=cleartext,
        http2_max_concurrent_streams=_bounded(get("http2_max_concurrent_streams", 100),
                                              "http2_max_concurrent_streams", 1, MAX_WINDOW_SIZE),
        http2_initial_window_size=_bounded(get("http2_initial_window_size", 65535),
                                           "http2_initial_window_size", 0, MAX_WINDOW_SIZE),
        http2_max_frame_size=_bounded(get("http2_max_frame_size", MIN_FRAME_SIZE),
                                      "http2_max_frame_size", MIN_FRAME_SIZE, MAX_FRAME_SIZE),
        http2_max_header_list_size=_bounded(get("http2_max_header_list_size", 65536),
                                            "http2_max_header_list_size", 0, MAX_WINDOW_SIZE)
        or UNLIMITED_LINE,
        tls_server_cert=read_server_cert(get("certfile", None)) if is_ssl else None,
        sendfile=bool(getattr(cfg, "sendfile", True)),
        access_log_enabled=_access_log_enabled(get),
        access_log_format=str(get("access_log_format", "")),
        access_log_fast=_fast_access_log(cfg, log),
        pre_request=_custom_hook(cfg, "pre_request"),
        post_request=_custom_hook(cfg, "post_request"),
        http2_fastpath=_bool(env.get("HTTP2_FASTPATH", "on"), "HTTP2_FASTPATH"),
        ws_enabled=_bool(env.get("WS", "on"), "WS"),
        ws_ping_interval=_non_negative(env.get("WS_PING_INTERVAL", "20"), "WS_PING_INTERVAL"),
        ws_ping_timeout=_non_negative(env.get("WS_PING_TIMEOUT", "20"), "WS_PING_TIMEOUT"),
        ws_max_message_size=int(_non_negative(ws_max, "WS_MAX_MESSAGE_SIZE")) if ws_max
        else int(get("websocket_max_message_size", 16 * 1024 * 1024)),
        ws_per_message_deflate=_bool(env.get("WS_PER_MESSAGE_DEFLATE", "on"),
                                     "WS_PER_MESSAGE_DEFLATE"),
        warnings=(*warnings, *http2_warnings),
    )
    return settings


def build_ssl_context(cfg: Any, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    """Build the TLS context the way Gunicorn does, including the ``ssl_context`` hook.

    Any failure raises :class:`SettingsError`: the worker must stop rather than serve plaintext.
    """
    try:
        from gunicorn import sock

        context = sock.ssl_context(cfg)
    except Exception as exc:
        raise SettingsError(f"TLS is configured but the SSL context could not be built: "
                            f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(context, ssl.SSLContext):
        raise SettingsError(f"the ssl_context hook returned {type(context).__name__}, "
                            "not an ssl.SSLContext")
    if ssl.HAS_ALPN:
        # Gunicorn's factory offers h2 when http_protocols has it (and an ssl_context hook may
        # set anything): ALPN must offer only what this worker serves, or a client that picks
        # h2 gets a connection that refuses its preface.
        context.set_alpn_protocols(list(alpn))
    return context


def served_alpn(protocols: tuple[str, ...]) -> tuple[str, ...]:
    """The ALPN ids to offer over TLS for ``http_protocols``, in its order of preference.

    ``h2`` alone offers ``h2`` alone; a client that offers none of them gets no ALPN answer
    and is served HTTP/1.1, as Gunicorn 27 does.
    """
    return tuple({"h1": "http/1.1", "h2": "h2"}[name] for name in protocols)


# Settings this worker does not honour, with what to do instead. Each is reported once at
# start-up when the user changed it from Gunicorn's default.
UNSUPPORTED: dict[str, str] = {
    "threads": "this worker runs one event loop per process; use --workers to scale",
    "protocol": "only the HTTP protocol is served (no uwsgi)",
    "permit_obsolete_folding": "obsolete line folding is always refused (400)",
    "strip_header_spaces": "whitespace before the header colon is always refused (400)",
    "permit_unconventional_http_method": "methods follow the parser's rules (RFC 9110 tokens)",
    "permit_unconventional_http_version": "only HTTP/1.0 and HTTP/1.1 are served",
    "casefold_http_method": "methods are passed to the app exactly as sent",
    "header_map": "ASGI apps see every header as sent; there is no WSGI environ to map into",
    "tmp_upload_dir": "request bodies are streamed to the app, never spooled to disk",
    "enable_backlog_metric": "the listen backlog metric is not reported by this worker",
    "do_handshake_on_connect": "TLS handshakes always run when the connection is accepted",
    "suppress_ragged_eofs": "asyncio's TLS transport handles ragged EOFs itself",
    "asgi_disconnect_grace_period": "apps see http.disconnect as soon as the client leaves",
    "http_parser": "the worker class picks the parser (Worker: httptools, H11Worker: h11) "
                   "or ASGI_WORKER_HTTP_PARSER",
}


def _unsupported(cfg: Any) -> tuple[str, ...]:
    """One warning per setting the user changed that this worker cannot honour."""
    settings = getattr(cfg, "settings", {})
    warnings = []
    for name, why in UNSUPPORTED.items():
        setting = settings.get(name)
        if setting is None:
            continue
        value = setting.get()
        if value != setting.default:
            warnings.append(f"{name}={value!r} is not honoured: {why}")
    return tuple(warnings)


def _http2_negotiation(get: Callable[[str, Any], Any],
                       is_ssl: bool) -> tuple[tuple[str, ...], str, list[str]]:
    """``http_protocols`` and ``http2_cleartext``, and what to say about them at start-up.

    HTTP/2 asked for without the h2 package stops the worker with what to install; h2 is
    imported only then, so a worker serving HTTP/1.1 never loads it.
    """
    warnings: list[str] = []
    protocols = _http_protocols(get("http_protocols", "h1"), warnings)
    cleartext = _http2_cleartext(get("http2_cleartext", "off"))
    wanted = ",".join(protocols)
    if "h2" not in protocols:
        if cleartext != "off":
            warnings.append(f"http2_cleartext={cleartext!r} has no effect: http_protocols "
                            "has no h2")
        return protocols, cleartext, warnings
    _require_h2(wanted)
    if is_ssl and cleartext != "off":
        warnings.append(f"http2_cleartext={cleartext!r} is ignored with TLS: HTTP/2 is "
                        "negotiated by ALPN")
    elif not is_ssl and cleartext == "off":
        warnings.append(f"http_protocols={wanted} without TLS and with http2_cleartext off: "
                        "HTTP/2 can never be negotiated, every client is served HTTP/1.x")
    return protocols, cleartext, warnings


def _http_protocols(value: Any, warnings: list[str]) -> tuple[str, ...]:
    """``http_protocols`` in order of preference; ``h3`` is reported as not available."""
    if isinstance(value, str):
        value = value.split(",")
    protocols: list[str] = []
    for item in value or ():
        name = str(item).strip().lower()
        if not name or name in protocols:
            continue
        if name == "h3":
            warnings.append("http_protocols: h3 (HTTP/3) is not available in this worker; "
                            "the other protocols are served")
            continue
        if name not in ("h1", "h2"):
            raise SettingsError(f"http_protocols: unknown protocol {name!r} (expected h1, h2)")
        protocols.append(name)
    return tuple(protocols) or ("h1",)


def _http2_cleartext(value: Any) -> str:
    """``off``, ``prior-knowledge``, ``upgrade`` or ``both``."""
    if isinstance(value, bool):  # Gunicorn reads `http2_cleartext = True` this way
        return "prior-knowledge" if value else "off"
    mode = str(value or "off").strip().lower()
    if mode not in ("off", "prior-knowledge", "upgrade", "both"):
        raise SettingsError(f"http2_cleartext={value!r}: expected off, prior-knowledge, "
                            "upgrade or both")
    return mode


def _require_h2(wanted: str) -> None:
    """Stop with what to install when the h2 package is missing or too old."""
    try:
        import h2
    except ImportError:
        raise SettingsError(f"http_protocols={wanted} asks for HTTP/2, which needs the h2 "
                            f"package: {HTTP2_EXTRA}") from None
    installed = str(getattr(h2, "__version__", "0"))
    version = tuple(int(part) for part in installed.split(".")[:2] if part.isdigit())
    if version < H2_MIN_VERSION:
        raise SettingsError(f"http_protocols={wanted} asks for HTTP/2, which needs h2 "
                            f"{'.'.join(map(str, H2_MIN_VERSION))} or newer (installed: "
                            f"{installed}): {HTTP2_EXTRA}")


def _bounded(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}={value!r}: expected an integer") from None
    if not low <= number <= high:
        raise SettingsError(f"{name}={value!r}: expected {low} to {high}")
    return number


KNOWN_ENV = frozenset({
    "HTTP_PARSER", "LOOP", "LIFESPAN", "HEADER_TIMEOUT", "BODY_TIMEOUT", "SEND_TIMEOUT",
    "MAX_BODY_SIZE", "WS", "WS_PING_INTERVAL", "WS_PING_TIMEOUT", "WS_MAX_MESSAGE_SIZE",
    "WS_PER_MESSAGE_DEFLATE", "HTTP2_FASTPATH",
})
# Not worker options: read by the build (setup.py) and on import (asgi_worker/_build.py).
BUILD_ENV = frozenset({"BUILD", "MYPYC_MODULES", "PURE"})


def _worker_env(cfg: Any) -> dict[str, str]:
    """The ``ASGI_WORKER_*`` options, from ``raw_env`` first, then the process environment."""
    merged: dict[str, str] = {}
    sources: list[Mapping[str, str]] = [os.environ, getattr(cfg, "env", None) or {}]
    for source in sources:
        for key, value in source.items():
            if key.startswith(ENV_PREFIX):
                merged[key[len(ENV_PREFIX):]] = value
    unknown = sorted(set(merged) - KNOWN_ENV - BUILD_ENV)
    if unknown:
        names = ", ".join(ENV_PREFIX + name for name in unknown)
        known = ", ".join(ENV_PREFIX + name for name in sorted(KNOWN_ENV))
        raise SettingsError(f"unknown worker option(s) {names}; known options: {known}")
    return merged


def _getter(cfg: Any) -> Callable[[str, Any], Any]:
    """Read a Gunicorn setting, or a default when the installed Gunicorn does not have it."""
    settings = getattr(cfg, "settings", {})

    def get(name: str, default: Any) -> Any:
        if name in settings:
            return settings[name].get()
        return default

    return get


def _choice(value: str, choices: tuple[str, ...], name: str) -> str:
    value = value.strip().lower()
    if value not in choices:
        raise SettingsError(f"{ENV_PREFIX}{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _number(value: str | None, name: str) -> float:
    try:
        return float(value if value is not None else "")
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name}={value!r}: expected a number") from None


def _positive(value: str | None, name: str) -> float:
    number = _number(value, name)
    if number <= 0:
        raise SettingsError(f"{ENV_PREFIX}{name}={value!r}: expected a number above 0")
    return number


def _non_negative(value: str | None, name: str) -> float:
    number = _number(value, name)
    if number < 0:
        raise SettingsError(f"{ENV_PREFIX}{name}={value!r}: expected 0 or more")
    return number


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "on", "true", "yes"):
        return True
    if lowered in ("0", "off", "false", "no"):
        return False
    raise SettingsError(f"{ENV_PREFIX}{name}={value!r}: expected on or off")


def _worker_connections(value: int, warnings: list[str]) -> int:
    """Gunicorn accepts 0, and its own gthread and gevent workers then serve no connection at
    all; 0 means "no limit" here, as 0 does for Gunicorn's ``limit_request_*``, and we say so."""
    if value < 0:
        raise SettingsError(f"worker_connections={value}: expected 0 (no limit) or more")
    if value == 0:
        warnings.append("worker_connections=0: no limit on simultaneous connections per "
                        "worker (only the open-files limit bounds them); set a number to "
                        "cap them")
        return UNLIMITED_CONNECTIONS
    return value


def _limit_line(value: int) -> int:
    if value == 0:
        return UNLIMITED_LINE
    if value < 0 or value >= MAX_REQUEST_LINE:
        return MAX_REQUEST_LINE
    return value


def _limit_fields(value: int) -> int:
    return MAX_HEADERS if value <= 0 or value > MAX_HEADERS else value


def _limit_field_size(value: int) -> int:
    return UNLIMITED_LINE if value <= 0 else value


def _ip_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(item.strip() for item in value or () if item.strip())


def _name_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(item.strip().upper() for item in value or () if item.strip())


def _proxy_protocol_mode(value: Any) -> str:
    """``off``, ``v1``, ``v2`` or ``auto`` (both); Gunicorn <= 23 has a boolean."""
    if isinstance(value, str):
        mode = value.strip().lower()
        if mode in ("", "off", "false", "none", "0"):
            return "off"
        if mode in ("v1", "v2"):
            return mode
        return "auto"
    return "auto" if value else "off"


def _root_path(cfg: Any, get: Callable[[str, Any], Any]) -> str:
    root = str(get("root_path", "") or "")
    if not root:
        env = getattr(cfg, "env", None) or {}
        root = env.get("SCRIPT_NAME") or os.environ.get("SCRIPT_NAME", "")
    root = root.rstrip("/")
    if root and not root.startswith("/"):
        raise SettingsError(f"root_path {root!r} must start with '/'")
    return root


def _access_log_enabled(get: Callable[[str, Any], Any]) -> bool:
    """Gunicorn writes access lines only when one of these is set (glogging.Logger.access)."""
    return bool(
        get("accesslog", None)
        or get("logconfig", None)
        or get("logconfig_dict", None)
        or get("logconfig_json", None)
        or (get("syslog", False) and not get("disable_redirect_access_to_syslog", False))
    )


def _fast_access_log(cfg: Any, log: Any) -> bool:
    """Format access lines ourselves only for Gunicorn's stock logger (no statsd, no subclass)."""
    if log is None:
        return True
    try:
        from gunicorn.glogging import Logger
    except ImportError:  # pragma: no cover - gunicorn is a dependency
        return False
    return type(log) is Logger and not getattr(cfg, "statsd_host", None)


def _custom_hook(cfg: Any, name: str) -> Callable[..., Any] | None:
    """A server hook the user set, or None when it is Gunicorn's default (skip the work)."""
    setting = getattr(cfg, "settings", {}).get(name)
    if setting is None:
        return None
    value = setting.get()
    default = setting.default
    if value is default or getattr(value, "__code__", None) is getattr(default, "__code__", 0):
        return None
    return value  # type: ignore[no-any-return]
