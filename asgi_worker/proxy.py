"""Trust decisions for proxies: allow-lists, forwarded headers and PROXY protocol v1/v2.

Everything here is pure: the settings module reads gunicorn's ``cfg`` once and
passes plain values in; the connection and scope code call the functions below
with bytes they already hold. Nothing here touches a socket or an event loop.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "NOT_PROXIED",
    "PROXY_V1_MAX_LENGTH",
    "PROXY_V2_MAX_LENGTH",
    "PROXY_V2_SIGNATURE",
    "ForwardedPolicy",
    "ProxyHeader",
    "ProxyHeaderError",
    "TrustedPeers",
    "apply_forwarded",
    "forwarded_root_path",
    "has_forwarded_headers",
    "parse_proxy_header",
]

Address = tuple[str, int]
Headers = Sequence[tuple[bytes, bytes]]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyHeaderError(ValueError):
    """A proxy-supplied header or PROXY protocol block is malformed or contradictory.

    ``reason`` is short, fixed text (never echoes the offending bytes) so the
    worker can put it in a response body as it is; ``status`` is the HTTP
    status to answer with: 400, or 500 where gunicorn blames its own
    configuration (a SCRIPT_NAME that does not fit the path).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------------------
# Allow-lists
# ---------------------------------------------------------------------------


def _split_allow_list(value: str | Iterable[str]) -> list[str]:
    # Same splitting as gunicorn's validate_string_to_list: commas, stripped,
    # empty items dropped.
    items = value.split(",") if isinstance(value, str) else value
    return [item.strip() for item in items if item.strip()]


def _parse_ip(host: str) -> _IPAddress | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; judge them
    # as the IPv4 address they are, so "127.0.0.1" keeps meaning localhost.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class TrustedPeers:
    """gunicorn's ``forwarded_allow_ips`` / ``proxy_allow_ips`` as a fast membership test.

    Accepts what gunicorn's setting holds: a comma-separated string or a list of
    strings, each an IP address, a CIDR network (gunicorn 24+; strict, so
    ``10.0.0.1/8`` is refused as gunicorn refuses it) or ``*``.
    """

    __slots__ = ("_addresses", "_networks", "trust_all")

    def __init__(self, allow: str | Iterable[str]) -> None:
        self.trust_all = False
        addresses: set[str] = set()
        networks: list[_IPNetwork] = []
        for item in _split_allow_list(allow):
            if item == "*":
                self.trust_all = True
                continue
            try:
                network = ipaddress.ip_network(item)
            except ValueError as exc:
                raise ValueError(f"invalid address or network in allow-list: {item!r}") from exc
            if network.num_addresses == 1:
                # Keep both spellings so the common case is one set lookup
                # even when the list was written non-canonically.
                addresses.add(item)
                addresses.add(str(network.network_address))
            else:
                networks.append(network)
        self._addresses: frozenset[str] = frozenset(addresses)
        self._networks: tuple[_IPNetwork, ...] = tuple(networks)

    def __repr__(self) -> str:
        items = sorted(self._addresses) + [str(n) for n in self._networks]
        if self.trust_all:
            items.insert(0, "*")
        return f"TrustedPeers({','.join(items)!r})"

    def is_trusted(self, host: str | None) -> bool:
        """Whether a connected peer may use forwarding headers or PROXY protocol.

        A peer with no IP address (unix socket: ``None`` or ``""``) is trusted,
        as gunicorn trusts it: message.py checks ``not isinstance(peer_addr,
        tuple)`` first and its docs say such connections "are treated as
        allowed, unconditionally". Whoever can reach the socket file is local.
        """
        if self.trust_all or not host:
            return True
        return self.contains(host)

    def contains(self, host: str) -> bool:
        """Whether ``host`` is listed by address or network; ``*`` does not count.

        Used to walk X-Forwarded-For: only hops the operator named are skipped.
        """
        if host in self._addresses:
            return True
        ip = _parse_ip(host)
        if ip is None:
            return False
        if str(ip) in self._addresses:
            return True
        return any(ip in network for network in self._networks)


# ---------------------------------------------------------------------------
# Forwarded headers (X-Forwarded-For, secure scheme headers, SCRIPT_NAME)
# ---------------------------------------------------------------------------

_XFF: Final = b"x-forwarded-for"
_SCRIPT_NAME: Final = b"script_name"
_SECURE_SCHEME: Final = {"http": "https", "https": "https", "ws": "wss", "wss": "wss"}
_PLAIN_SCHEME: Final = {"http": "http", "https": "http", "ws": "ws", "wss": "ws"}


class ForwardedPolicy:
    """What a trusted front end may tell us, precomputed once from the settings.

    ``names`` holds every (lower-case bytes) header name that can change the
    scope, so the scope builder can skip :func:`apply_forwarded` when a request
    carries none of them (:func:`has_forwarded_headers`).
    """

    __slots__ = ("forwarded_for", "hops", "names", "root_path_header", "secure")

    def __init__(
        self,
        secure_scheme_headers: Mapping[str, str],
        forwarder_headers: str | Iterable[str] = "SCRIPT_NAME,PATH_INFO",
        *,
        forwarded_for: bool = True,
        hops: TrustedPeers | None = None,
    ) -> None:
        # gunicorn compares upper-cased names with the dict keys and values
        # exactly (after stripping SP/HTAB); names are matched here in lower
        # case, the form ASGI headers come in.
        self.secure: dict[bytes, bytes] = {
            name.strip().lower().encode("latin-1"): value.encode("latin-1")
            for name, value in secure_scheme_headers.items()
        }
        self.forwarded_for = forwarded_for
        # Proxies the operator named; X-Forwarded-For entries they appended are skipped.
        self.hops = hops if hops is not None else TrustedPeers(())
        allowed = {name.upper() for name in _split_allow_list(forwarder_headers)}
        self.root_path_header = "SCRIPT_NAME" in allowed or "*" in allowed
        names = set(self.secure)
        if forwarded_for:
            names.add(_XFF)
        if self.root_path_header:
            names.add(_SCRIPT_NAME)
        self.names: frozenset[bytes] = frozenset(names)


def has_forwarded_headers(headers: Headers, names: frozenset[bytes]) -> bool:
    """Cheap pre-check: does any header in ``headers`` matter to the policy?"""
    return any(name in names for name, _ in headers)


def apply_forwarded(
    headers: Headers,
    client: Address | None,
    scheme: str,
    policy: ForwardedPolicy,
) -> tuple[Address | None, str]:
    """Return ``(client, scheme)`` as a trusted front end reports them.

    Call only when the connected peer is trusted (``TrustedPeers.is_trusted``).
    ``scheme`` is the scope scheme (http, https, ws or wss); the result keeps
    the family, so a websocket scope gets ws/wss. Raises ProxyHeaderError when
    secure-scheme headers disagree, as gunicorn raises InvalidSchemeHeaders.
    """
    secure = policy.secure
    want_xff = policy.forwarded_for
    verdict: bool | None = None
    xff: list[bytes] | None = None
    for name, value in headers:
        expected = secure.get(name)
        if expected is not None:
            # Every occurrence votes, repeats of one name included, exactly as
            # gunicorn's scheme_state does.
            vote = value.strip(b" \t") == expected
            if verdict is None:
                verdict = vote
            elif vote != verdict:
                raise ProxyHeaderError("Contradictory scheme headers")
        elif want_xff and name == _XFF:
            if xff is None:
                xff = []
            xff.append(value)
    if verdict is not None:
        table = _SECURE_SCHEME if verdict else _PLAIN_SCHEME
        scheme = table.get(scheme, scheme)
    if xff is not None:
        client = _client_from_xff(b",".join(xff), client, policy.hops)
    return client, scheme


def _client_from_xff(value: bytes, client: Address | None, hops: TrustedPeers) -> Address | None:
    # Walk right to left: each proxy appends the address it saw, so only the
    # right-most entries were written by proxies we know; anything to the left
    # of the first unknown hop came from the client and can be forged. Hops the
    # operator listed by address or network are skipped; "*" names no hop, so
    # with "*" the right-most entry wins (one proxy assumed). uvicorn returns
    # the left-most entry for "*", which behind an appending proxy (nginx's
    # $proxy_add_x_forwarded_for) is whatever the client sent: spoofable.
    # gunicorn's own workers leave REMOTE_ADDR alone; the settings module can
    # turn this off (forwarded_for=False) to match them.
    entries = [e.strip(b" \t") for e in value.split(b",")]
    entries = [e for e in entries if e]
    if not entries:
        return client
    for entry in reversed(entries):
        parsed = _parse_xff_entry(entry)
        if parsed is None:
            # An unknown hop we cannot read (e.g. "unknown"): the address we
            # are sure of, the peer's, is better than a guess.
            return client
        if not hops.contains(parsed[0]):
            return parsed
    # Every hop is one of ours: the request started on a trusted host, whose
    # own address is the left-most one.
    return _parse_xff_entry(entries[0])


def _parse_xff_entry(entry: bytes) -> Address | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]`` or ``[::1]:80`` -> (host, port)."""
    try:
        text = entry.decode("ascii")
    except UnicodeDecodeError:
        return None
    port = 0
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        if rest:
            if not rest.startswith(":"):
                return None
            port = _parse_port(rest[1:])
        family = socket.AF_INET6
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _parse_port(port_text)
        family = socket.AF_INET
    else:
        host = text
        family = socket.AF_INET6 if ":" in text else socket.AF_INET
    if port < 0 or not _valid_ip(family, host):
        return None
    return host, port


def _parse_port(text: str) -> int:
    # -1 for invalid; int() alone would take "+1", " 1" and "1_0".
    if not 0 < len(text) <= 5 or not text.isdigit() or not text.isascii():
        return -1
    port = int(text)
    return port if port <= 65535 else -1


def _valid_ip(family: int, host: str) -> bool:
    # inet_pton is the strict parser the PROXY spec asks for (no leading
    # zeros in IPv4, no zone ids) and is a pure conversion, not socket I/O.
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        return False
    return True


def forwarded_root_path(headers: Headers, policy: ForwardedPolicy, path: str) -> str | None:
    """The scope ``root_path`` a trusted front end set with a ``SCRIPT_NAME`` header.

    gunicorn lets a trusted peer send ``SCRIPT_NAME:`` when it is listed in
    ``forwarder_headers`` and uses it as the WSGI SCRIPT_NAME, refusing the
    request when the path does not start with it; the ASGI equivalent is
    ``root_path`` with ``path`` left whole (ASGI paths include the root path).
    Raises ProxyHeaderError on that mismatch; returns None when the header is
    absent or not allowed. The value is latin-1, like gunicorn's environ.

    ``PATH_INFO`` in the same setting only lets a proxy's ``PATH_INFO:`` header
    through to the environ as HTTP_PATH_INFO; it never replaces the path, and
    an ASGI path comes from the request target alone, so it is not used here.
    """
    if not policy.root_path_header:
        return None
    root: str | None = None
    for name, value in headers:
        if name == _SCRIPT_NAME:
            # Last one wins, as in gunicorn's wsgi.create loop.
            root = value.strip(b" \t").decode("latin-1")
    if not root:
        return None
    root = root.rstrip("/")
    if not root:
        return None
    if path != root and not path.startswith(root + "/"):
        # gunicorn raises ConfigurationProblem (500): the proxy is misconfigured.
        raise ProxyHeaderError("Request path does not start with SCRIPT_NAME", 500)
    return root


# ---------------------------------------------------------------------------
# PROXY protocol
# ---------------------------------------------------------------------------

PROXY_V1_MAX_LENGTH: Final = 107
PROXY_V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
# Addresses (at most 216 bytes for AF_UNIX) plus room for the TLVs proxies
# send (ALPN, authority, TLS details, cloud endpoint ids). The spec permits
# 64 KiB; a peer has no business holding that much memory before HTTP starts.
PROXY_V2_MAX_LENGTH: Final = 16 + 4096

_V1_PREFIX: Final = b"PROXY "
_V2_HEADER_SIZE: Final = 16
# Command (low nibble of byte 12) and family/protocol byte values of spec 2.2.
_V2_LOCAL: Final = 0x20
_V2_PROXY: Final = 0x21
_V2_UNSPEC: Final = 0x00
_V2_TCP4: Final = 0x11
_V2_TCP6: Final = 0x21
_V2_UNIX_STREAM: Final = 0x31


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed PROXY protocol block.

    ``source`` is the original client, ``destination`` the address it
    connected to; both None when the proxy sent no usable address (v1
    UNKNOWN, v2 LOCAL, UNSPEC or AF_UNIX): the caller then keeps the real
    connection endpoints. ``length`` bytes of the stream belong to the block.
    ``protocol`` is gunicorn's PROXY_PROTOCOL value (TCP4, TCP6, UNKNOWN,
    LOCAL, UNSPEC, UNIX, or NONE for :data:`NOT_PROXIED`).
    """

    source: Address | None
    destination: Address | None
    length: int
    protocol: str = "NONE"


#: Returned when ``optional=True`` and the connection starts with no PROXY block.
NOT_PROXIED: Final = ProxyHeader(None, None, 0, "NONE")


def parse_proxy_header(
    data: bytes | bytearray,
    *,
    v1: bool = True,
    v2: bool = True,
    optional: bool = False,
    max_v2_length: int = PROXY_V2_MAX_LENGTH,
) -> ProxyHeader | None:
    """Parse a PROXY protocol block at the start of ``data``.

    Returns None while more bytes are needed, the header once complete, or
    raises ProxyHeaderError as soon as the bytes cannot be a valid block.

    The spec says a receiver must not guess whether a block is present, so by
    default anything else is an error. gunicorn does guess: in every mode it
    serves the connection as plain HTTP when the prefix is missing. Pass
    ``optional=True`` for that; :data:`NOT_PROXIED` (length 0) is returned.
    """
    if v2 and data[:12] == PROXY_V2_SIGNATURE[: len(data)]:
        if len(data) < 12:
            return None
        return _parse_v2(data, max_v2_length)
    if v1 and data[:6] == _V1_PREFIX[: len(data)]:
        if len(data) < 6:
            return None
        return _parse_v1(data)
    if optional:
        return NOT_PROXIED
    raise ProxyHeaderError("Missing PROXY protocol header")


def _parse_v1(data: bytes | bytearray) -> ProxyHeader | None:
    end = data.find(b"\n", 0, PROXY_V1_MAX_LENGTH)
    if end < 0:
        head = bytes(data[:PROXY_V1_MAX_LENGTH])
        if len(data) >= PROXY_V1_MAX_LENGTH:
            raise ProxyHeaderError("PROXY v1 header too long")
        # Refuse junk early rather than waiting for 107 bytes of it; a lone
        # trailing CR is the start of the terminator.
        _check_v1_chars(head[:-1] if head.endswith(b"\r") else head)
        return None
    if end == 0 or data[end - 1] != 0x0D:
        raise ProxyHeaderError("Invalid PROXY v1 header")
    line = bytes(data[: end - 1])
    _check_v1_chars(line)
    parts = line.split(b" ")
    length = end + 1
    protocol = parts[1] if len(parts) > 1 else b""
    if protocol == b"UNKNOWN":
        # Spec 2.1: whatever follows UNKNOWN is to be ignored.
        return ProxyHeader(None, None, length, "UNKNOWN")
    if protocol == b"TCP4":
        family = socket.AF_INET
    elif protocol == b"TCP6":
        family = socket.AF_INET6
    else:
        raise ProxyHeaderError("Unsupported PROXY v1 protocol")
    if len(parts) != 6:
        raise ProxyHeaderError("Invalid PROXY v1 header")
    src, dst = parts[2].decode("ascii"), parts[3].decode("ascii")
    sport, dport = _parse_port(parts[4].decode("ascii")), _parse_port(parts[5].decode("ascii"))
    if not (_valid_ip(family, src) and _valid_ip(family, dst)):
        raise ProxyHeaderError("Invalid PROXY v1 address")
    if sport < 0 or dport < 0:
        raise ProxyHeaderError("Invalid PROXY v1 port")
    return ProxyHeader((src, sport), (dst, dport), length, protocol.decode("ascii"))


def _check_v1_chars(line: bytes) -> None:
    # The v1 line is printable US-ASCII; a NUL, CR, LF or 8-bit byte inside it
    # means this is not a PROXY header (or an attempt to smuggle one).
    if not line.isascii() or any(b < 0x20 or b == 0x7F for b in line):
        raise ProxyHeaderError("Invalid PROXY v1 header")


def _parse_v2(data: bytes | bytearray, max_length: int) -> ProxyHeader | None:
    size = len(data)
    command = data[12] if size > 12 else None
    if command is not None and command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyHeaderError("Unsupported PROXY v2 version or command")
    family = data[13] if size > 13 else None
    if (
        command == _V2_PROXY
        and family is not None
        and family not in (_V2_UNSPEC, _V2_TCP4, _V2_TCP6, _V2_UNIX_STREAM)
    ):
        # Spec 2.2: other values "must be rejected as invalid by receivers";
        # datagram transports cannot carry HTTP/1.1 either.
        raise ProxyHeaderError("Unsupported PROXY v2 address family")
    if size < _V2_HEADER_SIZE:
        return None
    total = _V2_HEADER_SIZE + ((data[14] << 8) | data[15])
    if total > max_length:
        raise ProxyHeaderError("PROXY v2 header too long")
    if size < total:
        return None
    if command == _V2_LOCAL:
        # Health checks from the proxy itself: addresses, if any, are ignored.
        return ProxyHeader(None, None, total, "LOCAL")
    body = bytes(data[_V2_HEADER_SIZE:total])
    if family == _V2_TCP4:
        return _v2_inet(body, socket.AF_INET, 4, total, "TCP4")
    if family == _V2_TCP6:
        return _v2_inet(body, socket.AF_INET6, 16, total, "TCP6")
    if family == _V2_UNIX_STREAM:
        if len(body) < 216:
            raise ProxyHeaderError("Short PROXY v2 address block")
        return ProxyHeader(None, None, total, "UNIX")
    return ProxyHeader(None, None, total, "UNSPEC")


def _v2_inet(body: bytes, family: int, width: int, total: int, protocol: str) -> ProxyHeader:
    if len(body) < 2 * width + 4:
        raise ProxyHeaderError("Short PROXY v2 address block")
    src = socket.inet_ntop(family, body[:width])
    dst = socket.inet_ntop(family, body[width : 2 * width])
    ports = 2 * width
    sport = int.from_bytes(body[ports : ports + 2], "big")
    dport = int.from_bytes(body[ports + 2 : ports + 4], "big")
    return ProxyHeader((src, sport), (dst, dport), total, protocol)
