"""loadbalance: A/AAAA (and MX) records come back in changing order, the set unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.plugins.loadbalance import round_robin
from tests.harness import Server, serve, setup_error

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    loadbalance round_robin
    hosts {
        10.0.0.1 five.example.org
        10.0.0.2 five.example.org
        10.0.0.3 five.example.org
        10.0.0.4 five.example.org
        10.0.0.5 five.example.org
        fd00::1 three.example.org
        fd00::2 three.example.org
        fd00::3 three.example.org
    }
}
.:@P1@ {
    bind 127.0.0.1
    hosts {
        10.0.0.1 five.example.org
        10.0.0.2 five.example.org
        10.0.0.3 five.example.org
        10.0.0.4 five.example.org
        10.0.0.5 five.example.org
    }
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("loadbalance")) as s:
        yield s


def orders(srv: Server, name: str, rdtype: str, n: int = 30, proto: str = "udp",
           port: int | None = None) -> set[tuple[str, ...]]:  # fmt: skip
    seen = set()
    for _ in range(n):
        r = srv.query(name, rdtype, proto=proto, port=port)
        assert r.rcode() == dns.rcode.NOERROR
        seen.add(tuple(rd.to_text() for rrset in r.answer for rd in rrset))
    return seen


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_a_records_are_shuffled(srv: Server, proto: str) -> None:
    seen = orders(srv, "five.example.org.", "A", proto=proto)
    # 30 identical orders out of 120 possible would be a broken shuffle, not bad luck.
    assert len(seen) > 1
    assert {frozenset(o) for o in seen} == {frozenset(f"10.0.0.{i}" for i in range(1, 6))}
    assert all(len(o) == 5 for o in seen)


def test_aaaa_records_are_shuffled(srv: Server) -> None:
    seen = orders(srv, "three.example.org.", "AAAA")
    assert len(seen) > 1
    assert {frozenset(o) for o in seen} == {frozenset({"fd00::1", "fd00::2", "fd00::3"})}


def test_without_loadbalance_the_order_is_fixed(srv: Server) -> None:
    seen = orders(srv, "five.example.org.", "A", n=10, port=srv.ports["P1"])
    assert seen == {tuple(f"10.0.0.{i}" for i in range(1, 6))}


def test_errors_pass_untouched(srv: Server) -> None:
    r = srv.query("missing.example.org.", "A")
    assert r.rcode() == dns.rcode.SERVFAIL  # hosts' answer for an unknown name


def _rr(text: str) -> dns.rrset.RRset:
    name, ttl, rdclass, rdtype, *data = text.split()
    return dns.rrset.from_text(name, int(ttl), rdclass, rdtype, " ".join(data))


def test_section_order_cname_rest_addresses_mx() -> None:
    """The reordering CoreDNS does: CNAMEs, other records, then shuffled A/AAAA, then MX."""
    section = [
        _rr("mx.test. 60 IN MX 10 mail1.test."),
        _rr("a.test. 60 IN A 10.0.0.1"),
        _rr("txt.test. 60 IN TXT hello"),
        _rr("www.test. 60 IN CNAME a.test."),
        _rr("a.test. 60 IN AAAA fd00::1"),
    ]
    section[0].add(dns.rdata.from_text("IN", "MX", "20 mail2.test."))
    section[1].add(dns.rdata.from_text("IN", "A", "10.0.0.2"))
    firsts: set[str] = set()
    for _ in range(40):
        out = round_robin(section)
        types = [(rrset.rdtype, rd) for rrset in out for rd in rrset]
        kinds = [dns.rdatatype.to_text(t) for t, _ in types]
        assert kinds[:2] == ["CNAME", "TXT"]
        assert sorted(kinds[2:5]) == ["A", "A", "AAAA"]
        assert kinds[5:] == ["MX", "MX"]
        firsts.add(types[2][1].to_text())
    assert len(firsts) > 1  # the addresses are shuffled together, A and AAAA mixed
    # The input RRsets are left as they were (they may be shared, e.g. by a cache).
    assert [rd.to_text() for rd in section[1]] == ["10.0.0.1", "10.0.0.2"]
    assert round_robin([]) == []
    single = [_rr("a.test. 60 IN A 10.0.0.1")]
    assert round_robin(single) == single


@pytest.mark.parametrize(
    ("args", "line", "message"),
    [
        ("weighted db.weights", 2, "'weighted' policy is not supported yet"),
        ("random", 2, "unknown policy: random"),
        ("round_robin extra", 2, "unknown property for round_robin"),
        ("round_robin {\n    prefer 10.0.0.0/8\n  }", 3, "unknown property 'prefer'"),
        ("\n  loadbalance", 3, "can only be used once"),
    ],
)
def test_setup_errors(tmp_path: Path, args: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  loadbalance {args}\n", line, message)
