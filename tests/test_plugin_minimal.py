"""minimal: NOERROR answers lose their authority and additional sections; nothing else changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import DEMO_WEB, Case, Server, check, rrs, serve, setup_error
from tests.refdiff import pair, query, same

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    minimal
    local
    kubernetes cluster.local {
        manifests k8s.yaml
    }
    whoami
}
example.test:@PORT@ {
    bind 127.0.0.1
    minimal
    file db.example.test
}
.:@P1@ {
    bind 127.0.0.1
    kubernetes cluster.local {
        manifests k8s.yaml
    }
}
example.test:@P1@ {
    bind 127.0.0.1
    file db.example.test
}
"""
#: A zone whose NS answer carries glue in the additional section.
ZONE = """$TTL 300
@ IN SOA ns1 hostmaster 1 7200 1800 86400 300
@ IN NS ns1
ns1 IN A 192.0.2.53
"""
K8S = (
    DEMO_WEB
    + """\
---
apiVersion: v1
kind: Namespace
metadata:
  name: kube-system
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: dns
    port: 53
    protocol: UDP
"""
)
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 5"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(
        COREFILE,
        tmp_path_factory.mktemp("minimal"),
        files={"k8s.yaml": K8S, "db.example.test": ZONE},
    ) as s:
        yield s


def test_noerror_answers_are_stripped(srv: Server) -> None:
    # whoami's additional records go; what is left is an empty NOERROR.
    check(srv, [Case("who.example.", answer=[], ns=[], extra=[])])
    # The NS answer keeps its records but loses the glue it has without minimal.
    full = srv.query("example.test.", "NS", port=srv.ports["P1"])
    assert rrs(full.additional) == ["ns1.example.test. 300 IN A 192.0.2.53"]
    ns = ["example.test. 300 IN NS ns1.example.test."]
    assert rrs(full.answer) == ns
    check(srv, [Case("example.test.", "NS", answer=ns, ns=[], extra=[], flags={"AA"})])


def test_denials_and_errors_pass_unchanged(srv: Server) -> None:
    soa = srv.query("cluster.local.", "SOA").answer[0]
    serial = soa[0].serial
    check(
        srv,
        [
            # NODATA and NXDOMAIN keep the SOA that says how long to cache the denial.
            Case(
                "web.demo.svc.cluster.local.", "TXT", ns=[SOA.format(serial=serial)], flags={"AA"}
            ),
            Case(
                "nope.demo.svc.cluster.local.",
                rcode=dns.rcode.NXDOMAIN,
                ns=[SOA.format(serial=serial)],
            ),
            Case(
                "localhost.",
                "MX",
                ns=["localhost. 604800 IN SOA localhost. root.localhost. 1 0 0 0 604800"],
            ),
        ],
    )


def test_setup_errors(tmp_path: Path) -> None:
    setup_error(tmp_path, "  minimal x\n", 2, "wrong argument count")


DIFF = """
.:@PORT@ {
    bind 127.0.0.1
    minimal
    local
    whoami
}
"""


def test_same_as_coredns(tmp_path: Path) -> None:
    with pair(DIFF, tmp_path) as servers:
        for q in (
            query("who.example."),
            query("who.example.", edns=False),
            query("who.example.", nsid=True),
            query("localhost."),
            query("localhost.", "MX"),
            query("2.0.0.127.in-addr.arpa.", "PTR"),
        ):
            same(servers, q)
            same(servers, q, "tcp")
