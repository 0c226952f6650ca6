"""loadbalance: A/AAAA (and MX) records come back in changing order, the set unchanged."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.plugins.loadbalance import round_robin
from tests.harness import Server, serve, setup_error, start

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
        ("random", 2, "unknown policy: random"),
        ("round_robin extra", 2, "unknown property for round_robin"),
        ("round_robin {\n    reload 1s\n  }", 3, "unknown property 'reload'"),
        ("{\n    prefer 10.0.0.300/8\n  }", 3, 'invalid CIDR "10.0.0.300/8"'),
        ("weighted", 2, "missing weight file argument"),
        ("weighted a b", 2, "unexpected argument(s)"),
        ("weighted w {\n    reload\n  }", 3, "reload duration value is missing"),
        ("weighted w {\n    reload 1s 2s\n  }", 3, "unexpected argument"),
        ("weighted w {\n    reload soon\n  }", 3, "invalid duration 'soon'"),
        # the weighted block holds only `reload`: prefer goes with round_robin
        ("weighted w {\n    prefer 10.0.0.0/8\n  }", 3, "unknown property 'prefer'"),
        ("\n  loadbalance", 3, "can only be used once"),
    ],
)
def test_setup_errors(tmp_path: Path, args: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  loadbalance {args}\n", line, message)


# ---- prefer ---------------------------------------------------------------------------------

PREFER = """
.:@PORT@ {
    bind 127.0.0.1
    loadbalance {
        prefer 10.0.0.0/24 192.168.0.0/16
        prefer fd00::/64
    }
    hosts {
        172.16.0.1 www.example.org
        192.168.1.1 www.example.org
        10.0.0.1 www.example.org
        10.0.0.2 www.example.org
        192.168.1.2 www.example.org
        2001:db8::1 www.example.org
        fd00::1 www.example.org
    }
}
"""


def test_prefer(tmp_path: Path) -> None:
    with serve(PREFER, tmp_path) as s:
        seen = orders(s, "www.example.org.", "A", n=30)
        for order in seen:  # the preferred subnets first, in their order; the rest after
            assert sorted(order[:2]) == ["10.0.0.1", "10.0.0.2"]
            assert sorted(order[2:4]) == ["192.168.1.1", "192.168.1.2"]
            assert order[4] == "172.16.0.1"
        assert len(seen) > 1  # still shuffled within each group
        assert all(o[0] == "fd00::1" for o in orders(s, "www.example.org.", "AAAA", n=5))


# ---- weighted -------------------------------------------------------------------------------

WEIGHTED = """
.:@PORT@ {
    bind 127.0.0.1
    loadbalance weighted db.weights {
        reload 100ms
    }
    hosts {
        10.0.0.1 www.example.org
        10.0.0.2 www.example.org
        10.0.0.3 www.example.org
        10.0.0.4 other.example.org
        10.0.0.5 other.example.org
    }
}
"""


def replace(path: Path, text: str) -> None:
    """Write the file in one step: a reload never reads it half-written."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def tops(s: Server, name: str, n: int = 40) -> list[str]:
    out = []
    for _ in range(n):
        r = s.query(name, "A")
        out.append(r.answer[0][0].to_text())
    return out


def test_weighted(tmp_path: Path) -> None:
    (tmp_path / "db.weights").write_text(
        "# weights\nwww.example.org\n10.0.0.2 255\n\nother.example.org.\n10.0.0.9 5\n"
    )
    with serve(WEIGHTED, tmp_path) as s:
        # 10.0.0.2 weighs 255 against 1 and 1: on top about 99% of the time
        assert tops(s, "www.example.org.").count("10.0.0.2") >= 30
        # one address moved to the front, the others keep their order
        for _ in range(20):
            r = s.query("www.example.org.", "A")
            order = [rd.to_text() for rrset in r.answer for rd in rrset]
            rest = [ip for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] if ip != order[0]]
            top = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].index(order[0])
            want = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            want[0], want[top] = want[top], want[0]
            assert order == want, (order, rest)
        # unlisted addresses weigh 1 each: both come on top
        assert set(tops(s, "other.example.org.")) == {"10.0.0.4", "10.0.0.5"}
        # the file is re-read when it changes
        replace(tmp_path / "db.weights", "www.example.org\n10.0.0.3 255\n")
        s.wait_output("Successfully reloaded weight file")
        deadline = time.monotonic() + 10
        while tops(s, "www.example.org.", 10).count("10.0.0.3") < 8:
            assert time.monotonic() < deadline, "the new weights never applied"
            time.sleep(0.1)
        # a bad file is logged and the weights in force stay
        replace(tmp_path / "db.weights", "www.example.org\n10.0.0.3 256\n")
        s.wait_output('wrong weight value:"256"')
        assert tops(s, "www.example.org.").count("10.0.0.3") >= 30


@pytest.mark.parametrize(
    ("weights", "reload", "message"),
    [
        ("10.0.0.1 5\n", "1s", "missing domain name in weight file"),
        ("www.example.org\n10.0.0.1\n", "1s", 'wrong domain name:"10.0.0.1"'),
        ("www.example.org\nnot-an-ip 5\n", "1s", 'wrong IP address:"not-an-ip"'),
        ("www.example.org\n10.0.0.1 0\n", "1s", 'wrong weight value:"0"'),
        ("www.example.org\n10.0.0.1 1 2\n", "1s", "could not parse weight line"),
        (None, "0s", "weight file open error"),
    ],
)
def test_weight_file_errors_stop_the_start(
    tmp_path: Path, weights: str | None, reload: str, message: str
) -> None:
    if weights is not None:
        (tmp_path / "db.weights").write_text(weights)
    corefile = WEIGHTED.replace("100ms", reload)
    s = start(corefile, tmp_path, wait=False)
    try:
        assert s.proc.wait(15) == 1
        s._reader.join(2)
        assert f"{s.conf}:4 - plugin/loadbalance: " in s.output and message in s.output
    finally:
        s.stop()


def test_missing_weight_file_is_retried(tmp_path: Path) -> None:
    with serve(WEIGHTED, tmp_path) as s:
        s.wait_output("Failed to open weight file")
        assert tops(s, "www.example.org.", 5)  # answers meanwhile
        (tmp_path / "db.weights").write_text("www.example.org\n10.0.0.3 255\n")
        s.wait_output("Successfully reloaded weight file")
