"""Unit tests for asgi_worker.proxy: allow-lists, forwarded headers, PROXY protocol."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_worker.proxy import (
    NOT_PROXIED,
    PROXY_V2_SIGNATURE,
    ForwardedPolicy,
    ProxyHeader,
    ProxyHeaderError,
    TrustedPeers,
    apply_forwarded,
    forwarded_root_path,
    has_forwarded_headers,
    parse_proxy_header,
)

GUNICORN_SECURE = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}

# ---------------------------------------------------------------------------
# TrustedPeers
# ---------------------------------------------------------------------------


def test_default_allow_list_as_string() -> None:
    peers = TrustedPeers("127.0.0.1,::1")
    assert peers.is_trusted("127.0.0.1")
    assert peers.is_trusted("::1")
    assert not peers.is_trusted("127.0.0.2")
    assert not peers.is_trusted("10.0.0.1")


def test_allow_list_as_list_with_spaces_and_empty_items() -> None:
    peers = TrustedPeers([" 192.168.1.1 ", "", "10.1.2.3"])
    assert peers.is_trusted("192.168.1.1")
    assert peers.is_trusted("10.1.2.3")
    assert not peers.is_trusted("192.168.1.2")


def test_networks() -> None:
    peers = TrustedPeers("10.0.0.0/8, 2001:db8::/32")
    assert peers.is_trusted("10.255.1.2")
    assert peers.is_trusted("2001:db8::42")
    assert not peers.is_trusted("11.0.0.1")
    assert not peers.is_trusted("2001:db9::1")


def test_star_trusts_everyone_but_names_no_hop() -> None:
    peers = TrustedPeers("*")
    assert peers.trust_all
    assert peers.is_trusted("203.0.113.7")
    assert peers.is_trusted("not an address")
    assert not peers.contains("203.0.113.7")


def test_unix_socket_peer_is_trusted_like_gunicorn() -> None:
    # gunicorn: "Connections not associated with an IP address are treated as
    # allowed, unconditionally" (forwarded_allow_ips and proxy_allow_ips docs).
    peers = TrustedPeers("127.0.0.1")
    assert peers.is_trusted(None)
    assert peers.is_trusted("")
    assert TrustedPeers("").is_trusted(None)


def test_empty_list_trusts_no_ip() -> None:
    peers = TrustedPeers("")
    assert not peers.is_trusted("127.0.0.1")


def test_non_canonical_spellings_match() -> None:
    peers = TrustedPeers("0:0:0:0:0:0:0:1, 2001:DB8::1")
    assert peers.is_trusted("::1")
    assert peers.is_trusted("2001:db8::1")
    assert TrustedPeers("::1").is_trusted("0::1")


def test_ipv4_mapped_peer_matches_ipv4_entry() -> None:
    peers = TrustedPeers("127.0.0.1, 10.0.0.0/8")
    assert peers.is_trusted("::ffff:127.0.0.1")
    assert peers.is_trusted("::ffff:10.9.8.7")


def test_host_that_is_not_an_ip_is_untrusted() -> None:
    assert not TrustedPeers("127.0.0.1").is_trusted("localhost")


@pytest.mark.parametrize("bad", ["1.2.3.4.5", "10.0.0.1/8", "example.com", "::1/129"])
def test_invalid_allow_list_entries(bad: str) -> None:
    # gunicorn validates with ip_network() in strict mode: host bits refused.
    with pytest.raises(ValueError, match="allow-list"):
        TrustedPeers(f"127.0.0.1,{bad}")


def test_single_host_network_is_an_address() -> None:
    peers = TrustedPeers("192.0.2.1/32")
    assert peers.is_trusted("192.0.2.1")
    assert not peers.is_trusted("192.0.2.2")


# ---------------------------------------------------------------------------
# Secure scheme headers
# ---------------------------------------------------------------------------

PEER = ("127.0.0.1", 40000)


def policy(**kwargs: object) -> ForwardedPolicy:
    secure = kwargs.pop("secure", GUNICORN_SECURE)
    return ForwardedPolicy(secure, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "scheme", "expected"),
    [
        ([], "http", "http"),
        ([(b"x-forwarded-proto", b"https")], "http", "https"),
        ([(b"x-forwarded-proto", b"https")], "ws", "wss"),
        ([(b"x-forwarded-ssl", b"on")], "http", "https"),
        ([(b"x-forwarded-protocol", b"ssl")], "http", "https"),
        # Present with another value: not secure, even on a TLS connection.
        ([(b"x-forwarded-proto", b"http")], "https", "http"),
        ([(b"x-forwarded-proto", b"http")], "wss", "ws"),
        # Values compare exactly, as in gunicorn.
        ([(b"x-forwarded-proto", b"HTTPS")], "http", "http"),
        ([(b"x-forwarded-proto", b"wss")], "ws", "ws"),
        # Surrounding SP/HTAB is not part of a field value.
        ([(b"x-forwarded-proto", b" https\t")], "http", "https"),
        # Two headers that agree.
        ([(b"x-forwarded-proto", b"https"), (b"x-forwarded-ssl", b"on")], "http", "https"),
        ([(b"x-forwarded-proto", b"http"), (b"x-forwarded-ssl", b"off")], "https", "http"),
    ],
)
def test_secure_scheme_headers(
    headers: list[tuple[bytes, bytes]], scheme: str, expected: str
) -> None:
    client, result = apply_forwarded(headers, PEER, scheme, policy())
    assert result == expected
    assert client == PEER


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-forwarded-ssl", b"on"), (b"x-forwarded-proto", b"http")],
        [(b"x-forwarded-proto", b"http"), (b"x-forwarded-protocol", b"ssl")],
        # The same header twice with different answers is just as ambiguous.
        [(b"x-forwarded-proto", b"https"), (b"x-forwarded-proto", b"http")],
    ],
)
def test_conflicting_scheme_headers_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ProxyHeaderError) as caught:
        apply_forwarded(headers, PEER, "http", policy())
    assert caught.value.status == 400
    assert caught.value.reason == "Contradictory scheme headers"
    assert isinstance(caught.value, ValueError)


def test_secure_header_names_match_case_insensitively() -> None:
    mixed = policy(secure={"x-Forwarded-Proto": "https"})
    _, scheme = apply_forwarded([(b"x-forwarded-proto", b"https")], PEER, "http", mixed)
    assert scheme == "https"


def test_empty_secure_scheme_headers() -> None:
    empty = policy(secure={})
    _, scheme = apply_forwarded([(b"x-forwarded-proto", b"https")], PEER, "http", empty)
    assert scheme == "http"


def test_names_and_cheap_check() -> None:
    pol = policy()
    assert pol.names == frozenset(
        {
            b"x-forwarded-proto",
            b"x-forwarded-ssl",
            b"x-forwarded-protocol",
            b"x-forwarded-for",
            b"script_name",
        }
    )
    assert not has_forwarded_headers([(b"host", b"a"), (b"accept", b"*/*")], pol.names)
    assert has_forwarded_headers([(b"host", b"a"), (b"x-forwarded-for", b"1.2.3.4")], pol.names)
    narrow = policy(secure={}, forwarder_headers="", forwarded_for=False)
    assert narrow.names == frozenset()
    assert not has_forwarded_headers([(b"x-forwarded-for", b"1.2.3.4")], narrow.names)


# ---------------------------------------------------------------------------
# X-Forwarded-For
# ---------------------------------------------------------------------------


def xff(value: bytes, hops: str = "", **kwargs: object) -> tuple[str, int] | None:
    pol = policy(hops=TrustedPeers(hops), **kwargs)
    client, _ = apply_forwarded([(b"x-forwarded-for", value)], PEER, "http", pol)
    return client


def test_xff_single_entry_port_zero() -> None:
    assert xff(b"203.0.113.9") == ("203.0.113.9", 0)


def test_xff_right_most_wins_without_known_hops() -> None:
    # nginx appends the real peer: "forged, real". The forged value is ignored.
    assert xff(b"198.51.100.1, 203.0.113.9") == ("203.0.113.9", 0)


def test_xff_star_still_takes_right_most() -> None:
    pol = ForwardedPolicy(GUNICORN_SECURE, hops=TrustedPeers("*"))
    client, _ = apply_forwarded(
        [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.9")], PEER, "http", pol
    )
    assert client == ("203.0.113.9", 0)


def test_xff_skips_listed_hops() -> None:
    value = b"198.51.100.1, 203.0.113.9, 10.0.0.2, 10.0.0.1"
    assert xff(value, hops="10.0.0.0/8") == ("203.0.113.9", 0)
    assert xff(value, hops="10.0.0.1") == ("10.0.0.2", 0)


def test_xff_all_hops_trusted_gives_left_most() -> None:
    assert xff(b"10.0.0.3, 10.0.0.2", hops="10.0.0.0/8") == ("10.0.0.3", 0)


def test_xff_repeated_headers_are_one_list() -> None:
    pol = policy(hops=TrustedPeers("10.0.0.0/8"))
    headers = [(b"x-forwarded-for", b"192.0.2.1, 192.0.2.2"), (b"x-forwarded-for", b"10.0.0.1")]
    client, _ = apply_forwarded(headers, PEER, "http", pol)
    assert client == ("192.0.2.2", 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"2001:db8::1", ("2001:db8::1", 0)),
        (b"[2001:db8::1]", ("2001:db8::1", 0)),
        (b"[2001:db8::1]:8443", ("2001:db8::1", 8443)),
        (b"192.0.2.1:51234", ("192.0.2.1", 51234)),
        (b" 192.0.2.1 ,, ", ("192.0.2.1", 0)),
    ],
)
def test_xff_entry_forms(value: bytes, expected: tuple[str, int]) -> None:
    assert xff(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"unknown",
        b"192.0.2.1, _hidden",
        b"192.0.2.1:99999",
        b"192.0.2.1:+80",
        b"[2001:db8::1",
        b"[2001:db8::1]x",
        b"01.2.3.4",
        b"fe80::1%eth0",
        b"\xff\xfe",
        b"",
        b" , ",
    ],
)
def test_xff_unusable_right_most_keeps_peer(value: bytes) -> None:
    assert xff(value) == PEER


def test_xff_with_no_peer_address() -> None:
    pol = policy()
    client, _ = apply_forwarded([(b"x-forwarded-for", b"192.0.2.1")], None, "http", pol)
    assert client == ("192.0.2.1", 0)
    client, _ = apply_forwarded([(b"x-forwarded-for", b"junk")], None, "http", pol)
    assert client is None


def test_xff_can_be_switched_off() -> None:
    assert xff(b"192.0.2.1", forwarded_for=False) == PEER


def test_xff_and_scheme_together() -> None:
    headers = [(b"x-forwarded-for", b"192.0.2.1"), (b"x-forwarded-proto", b"https")]
    assert apply_forwarded(headers, PEER, "ws", policy()) == (("192.0.2.1", 0), "wss")


# ---------------------------------------------------------------------------
# SCRIPT_NAME -> root_path
# ---------------------------------------------------------------------------


def test_root_path_from_trusted_script_name() -> None:
    headers = [(b"script_name", b"/app")]
    assert forwarded_root_path(headers, policy(), "/app/items") == "/app"
    assert forwarded_root_path(headers, policy(), "/app") == "/app"


def test_root_path_trailing_slash_and_root() -> None:
    assert forwarded_root_path([(b"script_name", b"/app/")], policy(), "/app/x") == "/app"
    assert forwarded_root_path([(b"script_name", b"/")], policy(), "/x") is None
    assert forwarded_root_path([(b"script_name", b"")], policy(), "/x") is None


def test_root_path_absent_or_not_allowed() -> None:
    assert forwarded_root_path([(b"host", b"x")], policy(), "/app") is None
    not_allowed = policy(forwarder_headers="PATH_INFO,REMOTE_USER")
    assert forwarded_root_path([(b"script_name", b"/app")], not_allowed, "/app/x") is None
    assert b"script_name" not in not_allowed.names
    star = policy(forwarder_headers=["*"])
    assert forwarded_root_path([(b"script_name", b"/app")], star, "/app/x") == "/app"


def test_root_path_must_prefix_the_path() -> None:
    for path in ("/other", "/application"):
        with pytest.raises(ProxyHeaderError) as caught:
            forwarded_root_path([(b"script_name", b"/app")], policy(), path)
        assert caught.value.status == 500


def test_root_path_last_header_wins() -> None:
    headers = [(b"script_name", b"/one"), (b"script_name", b"/two")]
    assert forwarded_root_path(headers, policy(), "/two/x") == "/two"


# ---------------------------------------------------------------------------
# PROXY protocol v1
# ---------------------------------------------------------------------------

V1_VALID = [
    (
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        ProxyHeader(("192.0.2.1", 56324), ("198.51.100.2", 443), 45, "TCP4"),
    ),
    (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
        ProxyHeader(("2001:db8::1", 0), ("2001:db8::2", 65535), 44, "TCP6"),
    ),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(None, None, 15, "UNKNOWN")),
    (
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        ProxyHeader(None, None, 35, "UNKNOWN"),
    ),
]


@pytest.mark.parametrize(("block", "expected"), V1_VALID)
def test_v1_valid(block: bytes, expected: ProxyHeader) -> None:
    assert parse_proxy_header(block) == expected
    assert expected.length == len(block)
    # What follows belongs to HTTP and is not consumed.
    assert parse_proxy_header(block + b"GET / HTTP/1.1\r\n\r\n") == expected
    assert parse_proxy_header(bytearray(block)) == expected


@pytest.mark.parametrize(("block", "expected"), V1_VALID)
def test_v1_every_split_needs_more(block: bytes, expected: ProxyHeader) -> None:
    for end in range(len(block)):
        assert parse_proxy_header(block[:end]) is None, end
    assert parse_proxy_header(block) == expected


def test_v1_longest_line_is_accepted() -> None:
    address = ":".join(["ffff"] * 8)
    block = f"PROXY TCP6 {address} {address} 65535 65535\r\n".encode()
    assert len(block) == 104
    header = parse_proxy_header(block)
    assert header is not None
    assert header.source == (address, 65535)


@pytest.mark.parametrize(
    "block",
    [
        b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY \r\n",
        b"PROXY\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
        b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
        b"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 2001:db8::1 1 2\r\n",
        b"PROXY TCP6 192.0.2.1 2001:db8::1 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1_0 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 \r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n",
        b"PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 \xd9\xa1 2\r\n",
        b"PROXY UNKNOWN \x00\r\n",
    ],
)
def test_v1_malformed(block: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(block)


def test_v1_too_long_without_terminator() -> None:
    assert parse_proxy_header(b"PROXY UNKNOWN " + b"a" * 92) is None  # 106 bytes
    with pytest.raises(ProxyHeaderError, match="too long"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"a" * 93)  # 107 bytes, no LF
    with pytest.raises(ProxyHeaderError, match="too long"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"a" * 93 + b"\r\n")


def test_v1_junk_is_refused_before_the_line_ends() -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(b"PROXY TCP4 \x00")
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(b"PROXY TCP4 1.2.3.4\r5")
    # A CR at the very end may be the start of the terminator.
    assert parse_proxy_header(b"PROXY UNKNOWN\r") is None


# ---------------------------------------------------------------------------
# PROXY protocol v2
# ---------------------------------------------------------------------------


def v2(command: int, family: int, body: bytes) -> bytes:
    return PROXY_V2_SIGNATURE + bytes([command, family]) + struct.pack(">H", len(body)) + body


def inet_body(family: int, src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        socket.inet_pton(family, src)
        + socket.inet_pton(family, dst)
        + struct.pack(">HH", sport, dport)
    )


TLVS = b"\x01\x00\x02h2" + b"\x04\x00\x00"  # ALPN "h2", then a NOOP

V2_VALID = [
    (
        v2(0x21, 0x11, inet_body(socket.AF_INET, "192.0.2.1", "198.51.100.2", 56324, 443)),
        ProxyHeader(("192.0.2.1", 56324), ("198.51.100.2", 443), 28, "TCP4"),
    ),
    (
        v2(
            0x21,
            0x21,
            inet_body(socket.AF_INET6, "2001:db8::1", "2001:db8::2", 1, 65535) + TLVS,
        ),
        ProxyHeader(("2001:db8::1", 1), ("2001:db8::2", 65535), 16 + 36 + len(TLVS), "TCP6"),
    ),
    (
        v2(0x21, 0x11, inet_body(socket.AF_INET, "10.0.0.1", "10.0.0.2", 1, 2) + TLVS),
        ProxyHeader(("10.0.0.1", 1), ("10.0.0.2", 2), 16 + 12 + len(TLVS), "TCP4"),
    ),
    (v2(0x20, 0x00, b""), ProxyHeader(None, None, 16, "LOCAL")),
    # LOCAL ignores whatever address block it carries.
    (
        v2(0x20, 0x11, inet_body(socket.AF_INET, "10.0.0.1", "10.0.0.2", 1, 2)),
        ProxyHeader(None, None, 28, "LOCAL"),
    ),
    (v2(0x20, 0x77, b"xyz"), ProxyHeader(None, None, 19, "LOCAL")),
    (v2(0x21, 0x00, b""), ProxyHeader(None, None, 16, "UNSPEC")),
    (v2(0x21, 0x31, b"\x00" * 216), ProxyHeader(None, None, 232, "UNIX")),
]


@pytest.mark.parametrize(("block", "expected"), V2_VALID)
def test_v2_valid(block: bytes, expected: ProxyHeader) -> None:
    assert parse_proxy_header(block) == expected
    assert expected.length == len(block)
    assert parse_proxy_header(block + b"GET / HTTP/1.1\r\n\r\n") == expected
    assert parse_proxy_header(bytearray(block)) == expected


@pytest.mark.parametrize(("block", "expected"), V2_VALID)
def test_v2_every_split_needs_more(block: bytes, expected: ProxyHeader) -> None:
    for end in range(len(block)):
        assert parse_proxy_header(block[:end]) is None, end
    assert parse_proxy_header(block) == expected


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (v2(0x11, 0x11, b""), "version or command"),  # version 1 in a v2 block
        (v2(0x31, 0x11, b""), "version or command"),
        (v2(0x22, 0x11, b""), "version or command"),  # command 2
        (v2(0x21, 0x12, b"\x00" * 12), "family"),  # UDP over IPv4
        (v2(0x21, 0x22, b"\x00" * 36), "family"),  # UDP over IPv6
        (v2(0x21, 0x32, b"\x00" * 216), "family"),  # unix datagram
        (v2(0x21, 0x10, b"\x00" * 12), "family"),  # AF_INET, no transport
        (v2(0x21, 0x41, b""), "family"),
        (v2(0x21, 0x11, b"\x00" * 11), "Short"),
        (v2(0x21, 0x21, b"\x00" * 35), "Short"),
        (v2(0x21, 0x31, b"\x00" * 215), "Short"),
    ],
)
def test_v2_malformed(block: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse_proxy_header(block)


def test_v2_bad_version_detected_from_thirteen_bytes() -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(PROXY_V2_SIGNATURE + b"\x11")
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(PROXY_V2_SIGNATURE + b"\x21\x12")


def test_v2_length_is_bounded_before_the_body_arrives() -> None:
    head = PROXY_V2_SIGNATURE + b"\x21\x11" + struct.pack(">H", 65535)
    with pytest.raises(ProxyHeaderError, match="too long"):
        parse_proxy_header(head)
    small = v2(0x21, 0x11, inet_body(socket.AF_INET, "10.0.0.1", "10.0.0.2", 1, 2) + TLVS)
    with pytest.raises(ProxyHeaderError, match="too long"):
        parse_proxy_header(small, max_v2_length=len(small) - 1)
    assert parse_proxy_header(small, max_v2_length=len(small)) is not None


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------

HTTP = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_plain_http_is_refused_by_default() -> None:
    with pytest.raises(ProxyHeaderError, match="Missing"):
        parse_proxy_header(HTTP)
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(b"G")
    assert parse_proxy_header(b"") is None
    assert parse_proxy_header(b"PRO") is None
    assert parse_proxy_header(b"\r\n\r\n") is None


def test_plain_http_passes_when_optional() -> None:
    # gunicorn's behaviour in every proxy_protocol mode.
    assert parse_proxy_header(HTTP, optional=True) is NOT_PROXIED
    assert NOT_PROXIED.length == 0
    # "P" may still become "PROXY ", "PO" (POST) cannot.
    assert parse_proxy_header(b"P", optional=True) is None
    assert parse_proxy_header(b"POST / HTTP/1.1\r\n", optional=True) is NOT_PROXIED


def test_versions_can_be_disabled() -> None:
    v1_block = V1_VALID[0][0]
    v2_block = V2_VALID[0][0]
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(v1_block, v1=False)
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(v2_block, v2=False)
    assert parse_proxy_header(v1_block, v1=False, optional=True) is NOT_PROXIED
    assert parse_proxy_header(v2_block, v2=True, v1=False) == V2_VALID[0][1]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_proxy_header_error(data: bytes) -> None:
    try:
        header = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if header is not None:
        assert 0 < header.length <= len(data)


@given(
    st.ip_addresses(v=4),
    st.ip_addresses(v=4),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.binary(max_size=40),
)
def test_v1_and_v2_agree(src: object, dst: object, sport: int, dport: int, rest: bytes) -> None:
    text = f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()
    binary = v2(0x21, 0x11, inet_body(socket.AF_INET, str(src), str(dst), sport, dport))
    one = parse_proxy_header(text + rest)
    two = parse_proxy_header(binary + rest)
    assert one is not None and two is not None
    assert (one.source, one.destination) == (two.source, two.destination)
    assert one.source == (str(src), sport)
