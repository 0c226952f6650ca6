"""autopath: the search path walked on the server, from a resolv.conf or from the kubernetes
plugin (`pods verified`: the client 127.0.0.1 is a pod of namespace `demo` in the manifests).

The chain is autopath → hosts (the "external" name www.ext.test) → kubernetes, which serves
`cluster.local` and also `.`: every name it does not know is NXDOMAIN with an SOA, so each
step of the walk that finds nothing is a clean NXDOMAIN whatever this machine's own
resolv.conf search domains (which `@kubernetes` appends) are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.config import build
from clusterdns.corefile.parser import parse_corefile_text
from clusterdns.errors import ConfigErrors
from tests.harness import DEMO_WEB, HOST, Case, Server, check, exchange, metric, serve

NX = dns.rcode.NXDOMAIN


def k8s(pod_ip: str) -> str:
    return (
        DEMO_WEB
        + f"""\
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: demo
status:
  phase: Running
  podIP: {pod_ip}
  podIPs:
  - ip: {pod_ip}
"""
    )


HOSTS = "10.9.9.9 www.ext.test\n"


def corefile(autopath: str, pods: str = "verified") -> str:
    return f"""
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    {autopath}
    hosts hosts.txt ext.test {{
        ttl 60
    }}
    kubernetes cluster.local . {{
        manifests k8s.yaml
        pods {pods}
    }}
}}
"""


def start_server(tmp: Path, autopath: str, pod_ip: str = "127.0.0.1",
                 pods: str = "verified", resolv: str = "") -> Iterator[Server]:  # fmt: skip
    files = {"hosts.txt": HOSTS, "k8s.yaml": k8s(pod_ip)}
    if resolv:
        files["resolv.conf"] = resolv
    with serve(corefile(autopath, pods), tmp, files=files) as s:
        yield s


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("kube"), "autopath @kubernetes")


def successes(srv: Server) -> float:
    return metric(srv.metrics(), "coredns_autopath_success_total",
                  server=f"dns://{HOST}:{srv.port}") or 0  # fmt: skip


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def test_pod_search_path_in_one_query(kube: Server) -> None:
    before = successes(kube)
    check(kube, both([
        # The external name, asked with the pod's first search domain: a CNAME to it.
        Case("www.ext.test.demo.svc.cluster.local.", answer=[
            "www.ext.test.demo.svc.cluster.local. 60 IN CNAME www.ext.test.",
            "www.ext.test. 60 IN A 10.9.9.9",
        ]),
        # Found at the first step: the answer as it is, no CNAME.
        Case("web.demo.svc.cluster.local.", answer=["web.demo.svc.cluster.local. 5 IN A 10.96.0.50"]),
        # The found name only has an A: its NODATA is the answer (no record, no CNAME).
        Case("www.ext.test.demo.svc.cluster.local.", "AAAA", answer=[]),
    ]))  # fmt: skip
    assert successes(kube) == before + 6


def test_names_not_in_the_first_search_domain_are_left_alone(kube: Server) -> None:
    before = successes(kube)
    r = kube.query("www.ext.test.other.svc.cluster.local.", "A")
    assert r.rcode() == NX
    r = kube.query("web.svc.cluster.local.", "A")
    assert r.rcode() == NX
    # The first search element itself: CoreDNS fails it (SERVFAIL); here it goes on untouched.
    r = kube.query("demo.svc.cluster.local.", "A")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert successes(kube) == before


def test_nothing_found_returns_the_first_answer(kube: Server) -> None:
    before = successes(kube)
    for proto in ("udp", "tcp"):
        r = kube.query("nothing.demo.svc.cluster.local.", "A", proto=proto)
        assert r.rcode() == NX and not r.answer
        assert str(r.question[0].name) == "nothing.demo.svc.cluster.local."
        assert [rr.name.to_text() for rr in r.authority] == ["cluster.local."]
    assert successes(kube) == before


def test_cname_owner_is_the_name_as_asked(kube: Server) -> None:
    q = dns.message.make_query("WWW.Ext.Test.Demo.SVC.cluster.local.", "A")
    wire, _ = exchange(kube, q)
    r = dns.message.from_wire(wire)
    assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
    assert b"\x03WWW\x03Ext\x04Test\x04Demo\x03SVC\x07cluster\x05local\x00" in wire
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert r.answer[0][0].target.to_text() == "www.ext.test."


@pytest.mark.parametrize(("pod_ip", "pods"), [("10.0.0.99", "verified"), ("127.0.0.1", "insecure")])
def test_no_autopath_without_a_verified_pod(tmp_path: Path, pod_ip: str, pods: str) -> None:
    for srv in start_server(tmp_path, "autopath @kubernetes", pod_ip=pod_ip, pods=pods):
        r = srv.query("www.ext.test.demo.svc.cluster.local.", "A")
        assert r.rcode() == NX and not r.answer
        assert successes(srv) == 0


RESOLV = """\
# a comment
nameserver 127.0.0.1
search Demo.svc.cluster.local svc.cluster.local cluster.local ext.test
options ndots:5
"""


def test_search_path_from_a_resolv_conf(tmp_path: Path) -> None:
    for srv in start_server(tmp_path, "autopath cluster.local resolv.conf", pod_ip="10.0.0.99",
                            resolv=RESOLV):  # fmt: skip
        check(srv, both([
            # …, then ext.test (the fourth search domain) has it.
            Case("www.demo.svc.cluster.local.", answer=[
                "www.demo.svc.cluster.local. 60 IN CNAME www.ext.test.",
                "www.ext.test. 60 IN A 10.9.9.9",
            ]),
            Case("web.demo.svc.cluster.local.", answer=["web.demo.svc.cluster.local. 5 IN A 10.96.0.50"]),
            Case("nothing.demo.svc.cluster.local.", rcode=NX, answer=[]),
            # Outside autopath's zone: not touched.
            Case("www.ext.test.", answer=["www.ext.test. 60 IN A 10.9.9.9"]),
        ]))  # fmt: skip
        assert successes(srv) == 4


BAD = [
    ("autopath", "no resolv-conf specified"),
    ("autopath missing.conf", 'failed to parse "missing.conf"'),
    ("autopath @", "a plugin name must follow '@'"),
    ("autopath @hosts", "hosts does not implement the AutoPather interface"),
    ("autopath @kubernetes {\n    }", "unexpected block"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_setup_errors(tmp_path: Path, text: str, message: str) -> None:
    conf = f".:53 {{\n    {text}\n    whoami\n}}\n"
    path = str(tmp_path / "Corefile")
    with pytest.raises(ConfigErrors) as e:
        build(parse_corefile_text(conf, path), path, conf)
    err = e.value.errors[0]
    assert message in str(err)
    assert (err.file, err.line) == (path, 2)


def test_setup_zones_and_search(tmp_path: Path) -> None:
    (tmp_path / "r.conf").write_text("domain Example.COM\nsearch a.example b.example.\n")
    path = str(tmp_path / "Corefile")
    conf = "example.org:53 {\n    autopath r.conf\n    whoami\n}\n.:53 {\n    autopath a.test. b.test @kubernetes\n}\n"
    cfg = build(parse_corefile_text(conf, path), path, conf)
    first = cfg.blocks[0].find("autopath")
    second = cfg.blocks[1].find("autopath")
    assert (first.zones, first.search, first.source) == (  # type: ignore[union-attr]
        ["example.org."],
        ["a.example.", "b.example.", ""],
        "",
    )
    assert (second.zones, second.search, second.source) == (  # type: ignore[union-attr]
        ["a.test.", "b.test."],
        [],
        "kubernetes",
    )
