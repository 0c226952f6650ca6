"""Server block keys, zone arguments and reverse zones (CoreDNS's address rules)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterdns.corefile.ast import Token
from clusterdns.corefile.keys import (
    ZoneAddr,
    normalize_zone,
    parse_key,
    reverse_zones,
    zones_from_args,
)
from clusterdns.errors import ConfigError


def tok(text: str, line: int = 7) -> Token:
    return Token(text, "Corefile", line)


def rev24(third: int) -> str:
    return f"{third}.3.10.in-addr.arpa."


V6_108 = "0." * 25 + "d.f.ip6.arpa."  # fd00::/108 → 27 nibbles kept

KEY_CASES: list[tuple[str, list[tuple[str, int]]]] = [
    (".", [(".", 1053)]),
    (".:53", [(".", 53)]),
    ("dns://.", [(".", 1053)]),
    ("dns://.:5353", [(".", 5353)]),
    ("DNS://.:53", [(".", 53)]),
    ("example.org", [("example.org.", 1053)]),
    ("Example.ORG.", [("example.org.", 1053)]),
    ("example.org:53", [("example.org.", 53)]),
    ("dns://example.org:53", [("example.org.", 53)]),
    ("cluster.local:0", [("cluster.local.", 0)]),
    ("example.org:053", [("example.org.", 53)]),
    ("in-addr.arpa:53", [("in-addr.arpa.", 53)]),
    ("_tcp.example.org", [("_tcp.example.org.", 1053)]),
    ("10.3.0.0/24", [(rev24(0), 1053)]),
    ("10.3.0.0/24:53", [(rev24(0), 53)]),
    ("10.3.0.1/24", [(rev24(0), 1053)]),
    ("dns://10.3.0.0/22:53", [(rev24(i), 53) for i in range(4)]),
    ("10.0.0.0/8", [("10.in-addr.arpa.", 1053)]),
    ("10.1.2.3/32", [("3.2.1.10.in-addr.arpa.", 1053)]),
    ("0.0.0.0/0", [("in-addr.arpa.", 1053)]),
    ("fd00::/108", [(V6_108, 1053)]),
    ("fd00::/108:53", [(V6_108, 53)]),
]


@pytest.mark.parametrize(("key", "expected"), KEY_CASES)
def test_parse_key(key: str, expected: list[tuple[str, int]]) -> None:
    addrs = parse_key(tok(key), 1053)
    assert [(a.zone, a.port) for a in addrs] == expected
    assert all(a.transport == "dns" and a.key == key for a in addrs)


KEY_ERRORS: list[tuple[str, str]] = [
    (
        ":53",
        "key ':53': no zone before the port (write '.:PORT' for the root zone)",
    ),
    (
        "dns://:53",
        "key 'dns://:53': no zone before the port (write '.:PORT' for the root zone)",
    ),
    ("tls://example.org", "transport tls:// is not supported yet (key 'tls://example.org')"),
    ("grpc://.:443", "transport grpc:// is not supported yet (key 'grpc://.:443')"),
    ("https://.", "transport https:// is not supported yet (key 'https://.')"),
    ("quic://.:853", "transport quic:// is not supported yet (key 'quic://.:853')"),
    ("foo://example.org", "invalid server block key 'foo://example.org': unknown transport foo://"),
    (
        "example.org:abc",
        "invalid server block key 'example.org:abc': invalid port 'abc' in 'example.org:abc'",
    ),
    (
        "example.org:",
        "invalid server block key 'example.org:': expecting data after last colon: 'example.org:'",
    ),
    (
        "example.org:65536",
        "invalid server block key 'example.org:65536': port 65536 out of range 0-65535",
    ),
    (
        "a..b",
        "key 'a..b': zone is not a valid domain name: 'a..b' (A DNS label is empty.)",
    ),
    ("a" * 64 + ".org", "zone is not a valid domain name"),
    ("10.3.0.0/33", "invalid server block key '10.3.0.0/33': invalid CIDR: "),
    (
        "::/0",
        "invalid server block key '::/0': invalid CIDR: '::/0' starts with ':' or '0' and has ':'",
    ),
    ("0::/64", "invalid CIDR: '0::/64' starts with ':' or '0'"),
    ("fd00::1", "invalid server block key 'fd00::1': zone is not a valid domain name: 'fd00:'"),
]


@pytest.mark.parametrize(("key", "message"), KEY_ERRORS)
def test_parse_key_errors(key: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_key(tok(key, 12), 53)
    assert str(exc.value).startswith("Corefile:12 - ")
    assert message in str(exc.value)
    assert (exc.value.file, exc.value.line) == ("Corefile", 12)


def test_zone_addr_equality_ignores_the_key_text() -> None:
    a = ZoneAddr("example.org.", 53, "dns", "example.org")
    b = ZoneAddr("example.org.", 53, "dns", "dns://Example.org.:53")
    assert a == b and hash(a) == hash(b)
    assert a != ZoneAddr("example.org.", 54, "dns")
    assert str(a) == "dns://example.org.:53"
    assert ZoneAddr("x.", 53).transport == "dns"


@pytest.mark.parametrize(
    ("cidr", "count", "first", "last"),
    [
        ("10.3.0.0/24", 1, "0.3.10.in-addr.arpa.", "0.3.10.in-addr.arpa."),
        ("10.3.0.0/22", 4, "0.3.10.in-addr.arpa.", "3.3.10.in-addr.arpa."),
        ("10.96.0.0/12", 16, "96.10.in-addr.arpa.", "111.10.in-addr.arpa."),
        ("172.16.0.0/16", 1, "16.172.in-addr.arpa.", "16.172.in-addr.arpa."),
        ("192.168.0.0/15", 2, "168.192.in-addr.arpa.", "169.192.in-addr.arpa."),
        ("10.0.0.128/25", 128, "128.0.0.10.in-addr.arpa.", "255.0.0.10.in-addr.arpa."),
        ("10.0.0.0/7", 2, "10.in-addr.arpa.", "11.in-addr.arpa."),
        ("0.0.0.0/0", 1, "in-addr.arpa.", "in-addr.arpa."),
        ("fd00::/108", 1, V6_108, V6_108),
        ("fd00::/106", 4, "0." + V6_108[2:], "3." + V6_108[2:]),
        ("2001:db8::/32", 1, "8.b.d.0.1.0.0.2.ip6.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."),
        ("2001:db8::/30", 4, "8.b.d.0.1.0.0.2.ip6.arpa.", "b.b.d.0.1.0.0.2.ip6.arpa."),
        ("fd00::/7", 2, "c.f.ip6.arpa.", "d.f.ip6.arpa."),
    ],
)
def test_reverse_zones(cidr: str, count: int, first: str, last: str) -> None:
    zones = reverse_zones(cidr)
    assert (len(zones), zones[0], zones[-1]) == (count, first, last)
    assert len(set(zones)) == count


@pytest.mark.parametrize(
    "bad", ["10.0.0.0", "example.org", "10.0.0.0/33", "::/0", "0::/8", "10.3/16"]
)
def test_reverse_zones_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        reverse_zones(bad)


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**32 - 1))
def test_reverse_zones_cover_exactly_the_ipv4_network(addr: int, prefix: int, probe: int) -> None:
    net = ipaddress.IPv4Network((addr, prefix), strict=False)
    zones = reverse_zones(str(net))
    assert len(zones) == 2 ** (-(-prefix // 8) * 8 - prefix)
    inside = net.network_address + probe % net.num_addresses
    name = inside.reverse_pointer + "."
    owners = [z for z in zones if name == z or name.endswith("." + z)]
    assert len(owners) == 1
    outside = ipaddress.IPv4Address((int(net.network_address) + net.num_addresses) % 2**32)
    if net.prefixlen % 8 == 0 and outside not in net:
        out = outside.reverse_pointer + "."
        assert not [z for z in zones if out == z or out.endswith("." + z)]


@given(st.integers(0, 2**128 - 1), st.integers(1, 128))
def test_reverse_zones_ipv6_nibble_boundaries(addr: int, prefix: int) -> None:
    net = ipaddress.IPv6Network((addr, prefix), strict=False)
    text = str(net)
    if text.startswith(":") or (text.startswith("0") and ":" in text):
        return  # CoreDNS refuses these spellings
    zones = reverse_zones(text)
    rounded = -(-prefix // 4) * 4
    assert len(zones) == 2 ** (rounded - prefix)
    assert all(z.endswith(".ip6.arpa.") and z.count(".") == rounded // 4 + 2 for z in zones)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.ORG", "example.org."),
        ("a.", "a."),
        (".", "."),
        ("", "."),
        ("CLUSTER.local.", "cluster.local."),
    ],
)
def test_normalize_zone(text: str, expected: str) -> None:
    assert normalize_zone(text) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["cluster.local", "in-addr.arpa", "ip6.arpa"],
            ["cluster.local.", "in-addr.arpa.", "ip6.arpa."],
        ),
        (["Cluster.Local", "10.3.0.0/24"], ["cluster.local.", "0.3.10.in-addr.arpa."]),
        (["10.3.0.0/23"], ["0.3.10.in-addr.arpa.", "1.3.10.in-addr.arpa."]),
        (["dns://example.org:53", "tls://example.net"], ["example.org.", "example.net."]),
        (["."], ["."]),
        (["a", "a"], ["a.", "a."]),
    ],
)
def test_zones_from_args(args: list[str], expected: list[str]) -> None:
    assert zones_from_args([tok(a) for a in args]) == expected


def test_zones_from_args_falls_back_to_default() -> None:
    assert zones_from_args([], default=["Example.org", "."]) == ["example.org.", "."]
    assert zones_from_args([]) == []
    assert zones_from_args([tok("x")], default=["y"]) == ["x."]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("a..b", "Corefile:3 - invalid zone 'a..b': zone is not a valid domain name"),
        ("10.0.0.0/40", "Corefile:3 - invalid zone '10.0.0.0/40': invalid CIDR"),
        ("example.org:x", "Corefile:3 - invalid zone 'example.org:x': invalid port 'x'"),
    ],
)
def test_zones_from_args_errors(arg: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        zones_from_args([tok("fine.org"), tok(arg, 3)])
    assert str(exc.value).startswith(message)
