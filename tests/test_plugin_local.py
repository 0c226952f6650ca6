"""local: localhost and the loopback reverse zones are answered here, never passed on."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import HOST, Case, Server, check, metric, serve, setup_error
from tests.refdiff import pair, query, same

NX = dns.rcode.NXDOMAIN
COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    local
    hosts {
        10.0.0.1 a.example.
        10.0.0.2 localhost.example.
    }
}
.:@P2@ {
    bind 127.0.0.1
    local {
        localhost_prefix off
    }
    hosts {
        10.0.0.2 localhost.example.
    }
}
"""


def soa(owner: str) -> str:
    return f"{owner} 604800 IN SOA localhost. root.localhost. 1 0 0 0 604800"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("local")) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def test_localhost(srv: Server) -> None:
    check(srv, both([
        Case("localhost.", answer=["localhost. 604800 IN A 127.0.0.1"], no_flags={"AA"}),
        Case("LocalHost.", "AAAA", answer=["LocalHost. 604800 IN AAAA ::1"]),
        Case("localhost.", "NS", answer=["localhost. 604800 IN NS localhost."]),
        Case("localhost.", "SOA", answer=[soa("localhost.")]),
        Case("localhost.", "MX", ns=[soa("localhost.")]),
    ]))  # fmt: skip


def test_reverse_zones(srv: Server) -> None:
    check(srv, both([
        Case("1.0.0.127.in-addr.arpa.", "PTR", answer=["1.0.0.127.in-addr.arpa. 604800 IN PTR localhost."]),
        Case("1.0.0.127.in-addr.arpa.", "A", ns=[soa("127.in-addr.arpa.")]),
        Case("2.0.0.127.IN-ADDR.arpa.", "PTR", NX, ns=[soa("127.IN-ADDR.arpa.")]),
        Case("127.in-addr.arpa.", "A", ns=[soa("127.in-addr.arpa.")]),
        Case("0.in-addr.arpa.", "NS", answer=["0.in-addr.arpa. 604800 IN NS localhost."]),
        Case("255.in-addr.arpa.", "SOA", answer=[soa("255.in-addr.arpa.")]),
        Case("1.255.in-addr.arpa.", "PTR", NX, ns=[soa("255.in-addr.arpa.")]),
    ]))  # fmt: skip


def localhost_requests(srv: Server) -> float:
    return metric(srv.metrics(), "coredns_local_localhost_requests_total") or 0


def test_localhost_subdomains_and_legacy_prefix(srv: Server) -> None:
    before = localhost_requests(srv)
    check(srv, both([
        Case("app.localhost.", answer=["app.localhost. 604800 IN A 127.0.0.1"]),
        Case("app.localhost.", "AAAA", answer=["app.localhost. 604800 IN AAAA ::1"]),
        Case("app.localhost.", "TXT", ns=[soa("app.localhost.")]),
        # The legacy localhost.<domain>: on by default, so hosts never sees it.
        Case("localhost.example.", answer=["localhost.example. 604800 IN A 127.0.0.1"]),
    ]))  # fmt: skip
    assert localhost_requests(srv) == before + 8
    # localhost. itself is not counted.
    srv.query("localhost.")
    assert localhost_requests(srv) == before + 8


def test_localhost_prefix_off(srv: Server) -> None:
    p2 = srv.ports["P2"]
    r = srv.query("localhost.example.", port=p2)
    assert [rd.to_text() for rd in r.answer[0]] == ["10.0.0.2"]
    r = srv.query("app.localhost.", port=p2)
    assert [rd.to_text() for rd in r.answer[0]] == ["127.0.0.1"]


def test_other_names_pass_on_and_metrics_name_local(srv: Server) -> None:
    check(srv, [Case("a.example.", answer=["a.example. 3600 IN A 10.0.0.1"])])
    # ...and local's own answers are counted as its (the `plugin` label).
    srv.query("9.0.0.127.in-addr.arpa.", "PTR")
    assert metric(srv.metrics(), "coredns_dns_responses_total", server=f"dns://{HOST}:{srv.port}",
                  zone=".", view="", rcode="NXDOMAIN", plugin="local")  # fmt: skip


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  local x\n", 2, "wrong argument count"),
        ("  local {\n    localhost_prefix maybe\n  }\n", 3, "expects 'on' or 'off'"),
        ("  local {\n    localhost_prefix\n  }\n", 3, "wrong argument count"),
        ("  local {\n    other\n  }\n", 3, "unknown property 'other'"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


DIFF = """
.:@PORT@ {
    bind 127.0.0.1
    local
    hosts {
        10.0.0.1 a.example.
    }
}
"""


def test_same_as_coredns(tmp_path: Path) -> None:
    names = [
        ("localhost.", "A"), ("LOCALHOST.", "AAAA"), ("localhost.", "NS"), ("localhost.", "SOA"),
        ("localhost.", "TXT"), ("a.b.localhost.", "A"), ("x.localhost.", "MX"),
        ("localhost.example.", "AAAA"), ("1.0.0.127.in-addr.arpa.", "PTR"),
        ("1.0.0.127.in-addr.arpa.", "TXT"), ("2.0.0.127.in-addr.arpa.", "PTR"),
        ("0.in-addr.arpa.", "NS"), ("127.in-addr.arpa.", "AAAA"), ("3.2.1.255.in-addr.arpa.", "A"),
        ("a.example.", "A"),
    ]  # fmt: skip
    with pair(DIFF, tmp_path) as servers:
        for name, rdtype in names:
            same(servers, query(name, rdtype))
            same(servers, query(name, rdtype, edns=False, rd=False), "tcp")
