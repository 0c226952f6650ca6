"""k8s_external: external IPs, LoadBalancer ingress, headless endpoints, the apex, fallthrough.

The cluster is served by the test API server (tests/k8s_apiserver.py) to the kubernetes plugin
(`endpoint`), so the same Corefile runs the reference CoreDNS 1.14.7 in the differential test.
Expected answers are CoreDNS's; SOA serials are timestamps and are read from the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest

from tests import coredns_ref
from tests.harness import Case, Server, check, rrs, serve, setup_error, start
from tests.k8s_apiserver import ApiServer, endpoint_slice, namespace, service

NX, OK, SERVFAIL = dns.rcode.NXDOMAIN, dns.rcode.NOERROR, dns.rcode.SERVFAIL


def ext(obj: dict[str, Any], ips: list[str] | None = None, lb: list[Any] | None = None) -> Any:
    """A Service with spec.externalIPs and/or status.loadBalancer.ingress."""
    if ips:
        obj["spec"]["externalIPs"] = ips
    if lb:
        obj["status"] = {"loadBalancer": {"ingress": lb}}
    return obj


OBJECTS = [
    namespace("testns"),
    namespace("kube-system"),
    ext(service("svc1", "testns", "10.0.0.1"), ["1.2.3.4"]),
    ext(service("svc6", "testns", "10.0.0.6"), ["1:2::5"]),
    ext(
        service("lb", "testns", "10.0.0.7", ports=[("https", "TCP", 443), ("dns", "UDP", 53)]),
        lb=[{"ip": "5.6.7.8"}],
    ),
    ext(service("lbhost", "testns", "10.0.0.8"), lb=[{"hostname": "lb.example.net"}]),
    service("noext", "testns", "10.0.0.9"),
    service("hdls1", "testns", None),
    endpoint_slice(
        "hdls1-a",
        "testns",
        "hdls1",
        [("172.0.0.2", True, "h1"), ("172.0.0.3", True), ("172.0.0.4", False)],
    ),
    ext(service("hdlsext", "testns", None), ["1.2.3.5"]),
    ext(service("noports", "testns", "10.0.0.10", ports=[]), ["1.2.3.9"]),
    ext(
        service("multi", "testns", "10.0.0.11", ports=[("a", "TCP", 1), ("b", "TCP", 2)]),
        ["1.2.3.10", "1.2.3.11"],
    ),
    service("kube-dns", "kube-system", "10.96.0.10", ports=[("dns", "UDP", 53)]),
]

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    hosts {
        9.9.9.9 lb.example.net
        fallthrough
    }
    kubernetes cluster.local {
        endpoint URL
    }
    k8s_external example.com in-addr.arpa ip6.arpa {
        headless
    }
}
.:@P1@ {
    bind 127.0.0.1
    kubernetes cluster.local {
        endpoint URL
    }
    k8s_external example.org {
        apex ns
        ttl 30
        fallthrough
    }
    whoami
}
"""


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    with ApiServer() as a:
        a.load(OBJECTS)
        yield a


@pytest.fixture(scope="module")
def srv(api: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE.replace("URL", api.url), tmp_path_factory.mktemp("k8s_ext")) as s:
        yield s


def soa(zone: str, serial: int, apex: str = "dns", ttl: int = 5) -> str:
    return f"{zone} {ttl} IN SOA ns1.{apex}.{zone} hostmaster.{apex}.{zone} {serial} 7200 1800 86400 {ttl}"


def serial_of(s: Server, zone: str = "example.com.", port: int | None = None) -> int:
    return int(s.query(zone, "SOA", port=port).answer[0][0].serial)


def test_answers(srv: Server) -> None:
    z = "testns.example.com."
    serial = serial_of(srv)
    assert serial > 1_000_000_000  # a Unix time: the last change of Services with external IPs
    S = [soa("example.com.", serial)]
    aa = {"AA"}
    check(
        srv,
        [
            # external IPs, LoadBalancer ingress IPs
            Case(f"svc1.{z}", "A", answer=[f"svc1.{z} 5 IN A 1.2.3.4"], flags=aa),
            Case(f"svc1.{z}", "AAAA", answer=[], ns=S, flags=aa),
            Case(f"svc1.{z}", "TXT", answer=[], ns=S),
            Case(f"svc6.{z}", "AAAA", answer=[f"svc6.{z} 5 IN AAAA 1:2::5"]),
            Case(f"lb.{z}", "A", answer=[f"lb.{z} 5 IN A 5.6.7.8"]),
            Case(
                f"lb.{z}",
                "SRV",
                answer=[f"lb.{z} 5 IN SRV 0 50 443 lb.{z}", f"lb.{z} 5 IN SRV 0 50 53 lb.{z}"],
                extra=[f"lb.{z} 5 IN A 5.6.7.8"],
            ),
            Case(
                f"_https._tcp.lb.{z}",
                "SRV",
                answer=[f"_https._tcp.lb.{z} 5 IN SRV 0 100 443 lb.{z}"],
                extra=[f"lb.{z} 5 IN A 5.6.7.8"],
            ),
            Case(f"_https._udp.lb.{z}", "SRV", NX, ns=S),
            # CoreDNS's corner: an endpoint label on a Service with external IPs is ignored
            Case(f"_http.svc1.{z}", "A", answer=[f"_http.svc1.{z} 5 IN A 1.2.3.4"]),
            Case(f"x.y.z.svc1.{z}", "A", NX, ns=S),
            # an ingress hostname: a CNAME (the kubernetes TTL), its target resolved here
            Case(
                f"lbhost.{z}",
                "A",
                answer=[
                    f"lbhost.{z} 5 IN CNAME lb.example.net.",
                    "lb.example.net. 3600 IN A 9.9.9.9",
                ],
            ),
            Case(f"noports.{z}", "A", answer=[f"noports.{z} 5 IN A 1.2.3.9"]),
            Case(f"noports.{z}", "SRV", answer=[], ns=S),
            Case(
                f"multi.{z}",
                "A",
                answer=[f"multi.{z} 5 IN A 1.2.3.10", f"multi.{z} 5 IN A 1.2.3.11"],
            ),
            # not external, not there
            Case(f"noext.{z}", "A", NX, ns=S),
            Case(f"nope.{z}", "A", NX, ns=S),
            Case("svc1.nons.example.com.", "A", NX, ns=S),
            Case(z, "A", answer=[], ns=S),
            # headless: the ready endpoints, by name too
            Case(
                f"hdls1.{z}",
                "A",
                answer=[f"hdls1.{z} 5 IN A 172.0.0.2", f"hdls1.{z} 5 IN A 172.0.0.3"],
            ),
            Case(
                f"hdls1.{z}",
                "SRV",
                answer=[
                    f"hdls1.{z} 5 IN SRV 0 50 80 h1.hdls1.{z}",
                    f"hdls1.{z} 5 IN SRV 0 50 80 172-0-0-3.hdls1.{z}",
                ],
                extra=[f"h1.hdls1.{z} 5 IN A 172.0.0.2", f"172-0-0-3.hdls1.{z} 5 IN A 172.0.0.3"],
            ),
            Case(f"h1.hdls1.{z}", "A", answer=[f"h1.hdls1.{z} 5 IN A 172.0.0.2"]),
            Case(f"172-0-0-4.hdls1.{z}", "A", NX, ns=S),
            Case(f"hdlsext.{z}", "A", answer=[f"hdlsext.{z} 5 IN A 1.2.3.5"]),
            # PTR for external IPs (under the first zone), nothing for others
            Case(
                "4.3.2.1.in-addr.arpa.", "PTR", answer=[f"4.3.2.1.in-addr.arpa. 5 IN PTR svc1.{z}"]
            ),
            Case("9.9.9.1.in-addr.arpa.", "PTR", NX, ns=[soa("in-addr.arpa.", serial)]),
            # the apex and its dns subdomain
            Case("example.com.", "SOA", answer=S, flags=aa),
            Case("example.com.", "NS", answer=["example.com. 5 IN NS ns1.dns.example.com."]),
            Case("example.com.", "A", answer=[], ns=S),
            Case("dns.example.com.", "A", answer=[], ns=S),
            Case("ns1.dns.example.com.", "A", answer=[], ns=S),
            Case("x.dns.example.com.", "A", NX, ns=S),
            Case("a.b.dns.example.com.", "A", NX, ns=S),
        ],
    )


def test_query_case_and_other_block(srv: Server) -> None:
    r = srv.query("SVC1.TestNs.Example.COM.", "A")
    assert rrs(r.answer) == ["SVC1.TestNs.Example.COM. 5 IN A 1.2.3.4"]
    # apex `ns`, ttl 30 (SRV records keep the kubernetes TTL); fallthrough to whoami
    p1 = srv.ports["P1"]
    serial = serial_of(srv, "example.org.", p1)
    z = "testns.example.org."
    r = srv.query(f"svc1.{z}", "SRV", port=p1)
    assert rrs(r.answer) == [f"svc1.{z} 5 IN SRV 0 100 80 svc1.{z}"]
    assert rrs(r.additional) == [f"svc1.{z} 30 IN A 1.2.3.4"]
    r = srv.query("example.org.", "SOA", port=p1)
    assert rrs(r.answer) == [soa("example.org.", serial, "ns", 30)]
    r = srv.query("x.ns.example.org.", "A", port=p1)
    assert r.rcode() == NX
    r = srv.query(f"nope.{z}", "A", port=p1)  # whoami answers what k8s_external passed on
    assert r.rcode() == OK and any("IN A 127.0.0.1" in x for x in rrs(r.additional))
    r = srv.query(f"noext.{z}", "A", port=p1)
    assert r.rcode() == OK and r.additional


def test_changes(api: ApiServer, srv: Server) -> None:
    """A change of the data is answered at once (the fast path keeps no stale answer); the SOA
    serial moves. The apex's glue stays empty: a bound server has no address of its own to find
    its Service by (CoreDNS's boundIPs), and kube-dns does not stand in for it."""
    name = "svc1.testns.example.com."
    for _ in range(3):
        assert rrs(srv.query(name).answer) == [f"{name} 5 IN A 1.2.3.4"]
    before = serial_of(srv)
    time.sleep(1.1)  # the serial has a resolution of one second
    api.apply(
        ext(service("svc1", "testns", "10.0.0.1"), ["1.2.3.40"]),
        ext(service("kube-dns", "kube-system", "10.96.0.10"), ["192.0.2.53", "2001:db8::53"]),
    )
    try:
        deadline = time.monotonic() + 5
        while rrs(srv.query(name).answer) != [f"{name} 5 IN A 1.2.3.40"]:
            assert time.monotonic() < deadline, "the change never showed"
            time.sleep(0.05)
        assert serial_of(srv) > before
        check(
            srv,
            [
                Case(
                    "example.com.",
                    "NS",
                    answer=["example.com. 5 IN NS ns1.dns.example.com."],
                    extra=[],
                ),
                Case("ns1.dns.example.com.", "A", answer=[], ns=None),
                Case("ns1.dns.example.com.", "AAAA", answer=[], ns=None),
                Case(
                    "40.3.2.1.in-addr.arpa.",
                    "PTR",
                    answer=[f"40.3.2.1.in-addr.arpa. 5 IN PTR {name}"],
                ),
                Case("4.3.2.1.in-addr.arpa.", "PTR", NX, ns=None),
            ],
        )
    finally:
        api.apply(OBJECTS[2], OBJECTS[-1])
        deadline = time.monotonic() + 5
        while rrs(srv.query(name).answer) != [f"{name} 5 IN A 1.2.3.4"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# ---- against the reference CoreDNS ----------------------------------------------------------

DIFF_NAMES = [
    "example.com.", "dns.example.com.", "ns1.dns.example.com.", "x.dns.example.com.",
    "a.b.dns.example.com.", "svc1.testns.example.com.", "svc6.testns.example.com.",
    "lb.testns.example.com.", "_https._tcp.lb.testns.example.com.",
    "_dns._udp.lb.testns.example.com.", "_dns._tcp.lb.testns.example.com.",
    "lbhost.testns.example.com.", "noext.testns.example.com.", "hdls1.testns.example.com.",
    "h1.hdls1.testns.example.com.", "172-0-0-3.hdls1.testns.example.com.",
    "172-0-0-4.hdls1.testns.example.com.", "hdlsext.testns.example.com.",
    "x.hdlsext.testns.example.com.", "noports.testns.example.com.",
    "multi.testns.example.com.", "_a._tcp.multi.testns.example.com.", "testns.example.com.",
    "nons.example.com.", "x.y.z.svc1.testns.example.com.", "_http._tcp.svc1.testns.example.com.",
    "_http.svc1.testns.example.com.", "h1.svc1.testns.example.com.", "4.3.2.1.in-addr.arpa.",
    "9.9.9.1.in-addr.arpa.", "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.ip6.arpa.",
    "in-addr.arpa.", "foo.in-addr.arpa.", "svc1.foo.example.com.",
]  # fmt: skip
DIFF_TYPES = ["A", "AAAA", "SRV", "PTR", "SOA", "NS", "TXT", "MX"]
DIFF_P1 = [
    "example.org.", "ns.example.org.", "ns1.ns.example.org.", "svc1.testns.example.org.",
    "hdls1.testns.example.org.", "h1.hdls1.testns.example.org.",
]  # fmt: skip


def _norm(r: dns.message.Message) -> tuple[object, ...]:
    def section(s: list[Any]) -> list[str]:
        out = []
        for line in rrs(s):
            f = line.split()
            if len(f) > 6 and f[3] == "SOA":
                f[6] = "SERIAL"  # a timestamp of when each server saw the data change
            if f[3] == "SRV" and f[-1] == ".":
                f[-2] = "PORT"  # whoami: the client's port
            out.append(" ".join(f))
        return out

    return (r.rcode(), r.flags, section(r.answer), section(r.authority), section(r.additional))


def test_same_answers_as_coredns(api: ApiServer, srv: Server, tmp_path: Path) -> None:
    coredns_ref.require()
    with pytest.MonkeyPatch.context() as mp:
        # client-go's streaming list (WatchList) is not something the test API server speaks.
        mp.setenv("KUBE_FEATURE_WatchListClient", "false")
        ref_cm = coredns_ref.serve_coredns(COREFILE.replace("URL", api.url), tmp_path)
        ref = ref_cm.__enter__()
    try:
        queries = [(n, t, srv.port, ref.port) for n in DIFF_NAMES for t in DIFF_TYPES]
        p1 = [(n, t, srv.ports["P1"], ref.ports["P1"]) for n in DIFF_P1 for t in ("A", "NS")]
        deadline = time.monotonic() + 10
        while ref.query("svc1.testns.example.com.").rcode() != OK:  # its first sync
            assert time.monotonic() < deadline, ref.output
            time.sleep(0.1)
        diffs = []
        for name, rdtype, ours, theirs in queries + p1:
            a = _norm(srv.query(name, rdtype, port=ours))
            b = _norm(ref.query(name, rdtype, port=theirs))
            if a != b:
                diffs.append(f"{name} {rdtype}:\n  ours {a}\n  ref  {b}")
        assert not diffs, "\n".join(diffs)
    finally:
        ref_cm.__exit__(None, None, None)


# ---- setup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("k8s_external {\n    ttl 3601\n  }", 3, "ttl must be in range [0, 3600]: 3601"),
        ("k8s_external {\n    ttl x\n  }", 3, "'x' is not a number"),
        ("k8s_external {\n    ttl\n  }", 3, "wrong argument count"),
        ("k8s_external {\n    apex\n  }", 3, "wrong argument count"),
        ("k8s_external {\n    bogus\n  }", 3, "unknown property 'bogus'"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


def test_needs_kubernetes(tmp_path: Path) -> None:
    s = start(
        ".:@PORT@ {\n    bind 127.0.0.1\n    k8s_external example.com\n}\n", tmp_path, wait=False
    )
    try:
        assert s.proc.wait(15) == 1
        s._reader.join(2)
        assert f"{s.conf}:3 - plugin/k8s_external: kubernetes plugin not loaded" in s.output
    finally:
        s.stop()
