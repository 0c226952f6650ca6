"""acl: allow, block, filter and drop by zone, type and client network; first match wins."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.exception
import dns.rcode
import pytest

from tests.harness import HOST, Case, Server, check, metric, serve, setup_error
from tests.refdiff import pair, query, same

REFUSED = dns.rcode.REFUSED
HOSTS = """
    hosts {
        10.0.0.1 a.example. b.example. a.other. a.sub.other.
        fallthrough
    }
"""
COREFILE = f"""
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    log
    acl example. {{
        block type MX TXT
        filter type AAAA net 127.0.0.1
        drop type SRV net 127.0.0.0/8 ::1
        block net 10.0.0.0/8
        allow type A
        block
    }}
    acl other. {{
        allow net 192.168.0.0/16
        filter type * net *
    }}
    acl sub.other. {{
        block
    }}
    {HOSTS}
}}
"""
A = "10.0.0.1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("acl")) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def ede(srv: Server, name: str, rdtype: str, proto: str = "udp") -> list[int]:
    r = srv.send(query(name, rdtype), proto)
    return [o.code for o in r.options if isinstance(o, dns.edns.EDEOption)]


def test_first_matching_policy_decides(srv: Server) -> None:
    check(srv, both([
        Case("a.example.", "MX", REFUSED, answer=[]),
        Case("a.example.", "TXT", REFUSED, answer=[]),
        Case("a.example.", "AAAA", answer=[]),  # filtered: empty NOERROR
        Case("a.example.", answer=[f"a.example. 3600 IN A {A}"]),  # allowed
        Case("a.example.", "NS", REFUSED),  # the last, catch-all, block
        # The first rule whose zone holds the name decides: other. filters everything from us.
        Case("a.other.", answer=[]),
        # No policy of a matching rule matches: the query goes on (sub.other. is never tried
        # for a.sub.other., as other. filtered it first).
        Case("a.sub.other.", answer=[]),
        Case("a.unlisted.", rcode=dns.rcode.SERVFAIL),  # no rule: passed on, nothing answers it
    ]))  # fmt: skip


def test_extended_errors(srv: Server) -> None:
    assert ede(srv, "a.example.", "MX") == [dns.edns.EDECode.BLOCKED]
    assert ede(srv, "a.example.", "AAAA", "tcp") == [dns.edns.EDECode.FILTERED]
    assert ede(srv, "a.example.", "A") == []
    # Even without EDNS in the query, the reply has CoreDNS's OPT (4096, DO) with the EDE.
    r = srv.send(query("a.example.", "MX", edns=False))
    assert (r.edns, r.payload, bool(r.ednsflags & dns.flags.DO)) == (0, 4096, True)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_drop_sends_nothing(srv: Server, proto: str) -> None:
    with pytest.raises((dns.exception.Timeout, EOFError, ConnectionError)):
        srv.send(query("a.example.", "SRV"), proto, timeout=0.5)


def test_drop_is_logged_and_counted_as_nothing_written(srv: Server) -> None:
    q = query("dropped.example.", "SRV")
    with pytest.raises(dns.exception.Timeout):
        srv.send(q, timeout=0.5)
    # As CoreDNS: no rcode, no flags, size 0.
    srv.wait_output(rf'- {q.id} "SRV IN dropped\.example\. udp \d+ false 1232" - - 0 ')
    assert metric(srv.metrics(), "coredns_dns_responses_total", server=f"dns://{HOST}:{srv.port}",
                  zone=".", view="", rcode="NOERROR", plugin="")  # fmt: skip


def counter(srv: Server, name: str, **labels: str) -> float:
    return metric(srv.metrics(), f"coredns_acl_{name}_requests_total",
                  server=f"dns://{HOST}:{srv.port}", view="", **labels) or 0  # fmt: skip


def test_metrics(srv: Server) -> None:
    before = {
        "blocked": counter(srv, "blocked", zone="example."),
        "filtered": counter(srv, "filtered", zone="other."),
        "dropped": counter(srv, "dropped", zone="example."),
        "allowed": counter(srv, "allowed"),
    }
    srv.query("a.example.", "MX")
    srv.query("a.other.", "A")
    srv.query("a.example.", "A")
    srv.query("a.unlisted.", "A")
    with pytest.raises(dns.exception.Timeout):
        srv.query("a.example.", "SRV", timeout=0.5)
    assert counter(srv, "blocked", zone="example.") == before["blocked"] + 1
    assert counter(srv, "filtered", zone="other.") == before["filtered"] + 1
    assert counter(srv, "dropped", zone="example.") == before["dropped"] + 1
    assert counter(srv, "allowed") == before["allowed"] + 2


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  acl {\n    deny\n  }\n", 3, "unexpected token 'deny'; expect 'allow', 'block'"),
        ("  acl {\n    block type\n  }\n", 3, "no token specified in 'type' section"),
        ("  acl {\n    block type a\n  }\n", 3, "unexpected token 'a'; expect legal QTYPE"),
        ("  acl {\n    block net 10.0.0.300\n  }\n", 3, "illegal CIDR notation '10.0.0.300/32'"),
        ("  acl {\n    block zone x\n  }\n", 3, "unexpected token 'zone'; expect 'type | net'"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


DIFF = f"""
.:@PORT@ {{
    bind 127.0.0.1
    acl example. {{
        block type MX
        filter type AAAA TXT net 127.0.0.0/8
        block net 10.0.0.0/8
        allow type A
        block
    }}
    acl {{
        filter type TXT
    }}
    {HOSTS}
}}
"""


def test_same_as_coredns(tmp_path: Path) -> None:
    with pair(DIFF, tmp_path) as servers:
        for name, rdtype in [("a.example.", "MX"), ("a.example.", "AAAA"), ("a.example.", "TXT"),
                             ("a.example.", "A"), ("a.example.", "NS"), ("a.other.", "TXT"),
                             ("a.other.", "A")]:  # fmt: skip
            for q in (query(name, rdtype), query(name, rdtype, edns=False),
                      query(name, rdtype, do=True, nsid=True)):  # fmt: skip
                same(servers, q)
                same(servers, q, "tcp")
