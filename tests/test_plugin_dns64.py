"""dns64: AAAA answers synthesized from the name's A records, inside the prefix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.query
import dns.rcode
import pytest

from tests.harness import HOST, Case, Server, check, metric, serve, setup_error, validate_block
from tests.refdiff import pair, query, summary

HOSTS = """
    hosts {
        10.0.0.1 v4.example.
        192.0.2.33 v4.example.
        2001:db8::1 v6.example.
        10.0.0.2 both.example.
        2001:db8::2 both.example.
        fallthrough
    }
"""
COREFILE = f"""
.:@PORT@ {{
    bind 127.0.0.1 ::1
    prometheus 127.0.0.1:@P1@
    dns64 {{
        allow_ipv4
    }}
    {HOSTS}
}}
.:@P2@ {{
    bind 127.0.0.1 ::1
    dns64 {{
        prefix 64:ff9b:1::/48
        translate_all
    }}
    {HOSTS}
}}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("dns64")) as s:
        yield s


def translated(srv: Server) -> float:
    return metric(srv.metrics(), "coredns_dns64_requests_translated_total",
                  server=f"dns://{HOST}:{srv.port}") or 0  # fmt: skip


def test_synthesized_from_a_records(srv: Server) -> None:
    before = translated(srv)
    check(srv, [
        # Each A inside the prefix; TTL capped at 600 (no SOA in the reply); not authoritative.
        Case("v4.example.", "AAAA", answer=[
            "v4.example. 600 IN AAAA 64:ff9b::a00:1", "v4.example. 600 IN AAAA 64:ff9b::c000:221",
        ], no_flags={"AA", "RA"}),
        Case("v4.example.", "AAAA", proto="tcp", answer=None),
        # A real AAAA is kept as it is.
        Case("both.example.", "AAAA", answer=["both.example. 3600 IN AAAA 2001:db8::2"], flags={"AA"}),
        # Other types and NXDOMAIN are left alone.
        Case("v4.example.", "A", answer=["v4.example. 3600 IN A 10.0.0.1", "v4.example. 3600 IN A 192.0.2.33"]),
        # No A either: the A lookup's empty answer is the (NOERROR) reply.
        Case("v6.example.", "AAAA", answer=["v6.example. 3600 IN AAAA 2001:db8::1"]),
    ])  # fmt: skip
    assert translated(srv) == before + 2


def test_translate_all_and_prefix(srv: Server) -> None:
    p2 = srv.ports["P2"]
    # An IPv4 client without allow_ipv4: untouched (hosts has no AAAA for the name).
    r = srv.send(query("v4.example.", "AAAA"), port=p2)
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []
    # From ::1 (IPv6): translated; with translate_all even when a AAAA exists.
    q = query("both.example.", "AAAA")
    r = dns.query.udp(q, "::1", port=p2, timeout=3)
    assert [rd.to_text() for rrset in r.answer for rd in rrset] == ["64:ff9b:1:a00:0:200::"]
    r = dns.query.tcp(query("v4.example.", "AAAA"), "::1", port=p2, timeout=3)
    assert sorted(rd.to_text() for rrset in r.answer for rd in rrset) == [
        "64:ff9b:1:a00:0:100::",
        "64:ff9b:1:c000:2:2100::",
    ]


def test_block_after_prefix_is_ignored_with_a_warning(tmp_path: Path) -> None:
    code, err, conf = validate_block(tmp_path, "  dns64 64:ff9b:1::/48 {\n    translate_all\n  }\n")
    assert code == 0 and f"{conf}:2 - dns64: the block after PREFIX is ignored" in err, err


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  dns64 64:ff9b::/100\n", 2, "invalid prefix length"),
        ("  dns64 64:ff9b::/28\n", 2, "invalid prefix length"),
        ("  dns64 10.0.0.0/8\n", 2, "IPv6 address"),
        ("  dns64 nonsense\n", 2, "invalid CIDR address"),
        ("  dns64 a b\n", 2, "wrong argument count"),
        ("  dns64 {\n    prefix\n  }\n", 3, "wrong argument count"),
        ("  dns64 {\n    other\n  }\n", 3, "unknown property 'other'"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


DIFF = f"""
.:@PORT@ {{
    bind 127.0.0.1
    dns64 {{
        prefix 64:ff9b::/96
        allow_ipv4
    }}
    {HOSTS}
}}
.:@P1@ {{
    bind 127.0.0.1
    dns64 {{
        prefix 2001:db8:1200::/40
        allow_ipv4
        translate_all
    }}
    {HOSTS}
}}
"""


def test_same_as_coredns(tmp_path: Path) -> None:
    names = [("v4.example.", "AAAA"), ("v6.example.", "AAAA"), ("both.example.", "AAAA"),
             ("v4.example.", "A"), ("none.example.", "AAAA")]  # fmt: skip
    with pair(DIFF, tmp_path) as (ours, ref):
        for i in (0, 1):
            po = ours.port if i == 0 else ours.ports["P1"]
            pr = ref.port if i == 0 else ref.ports["P1"]
            for name, rdtype in names:
                for proto in ("udp", "tcp"):
                    q = query(name, rdtype)
                    a = summary(ours.send(q, proto, po))
                    b = summary(ref.send(q, proto, pr))
                    assert a == b, f"{name} {rdtype} {proto}: ClusterDNS {a}\n CoreDNS {b}"
