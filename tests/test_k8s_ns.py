"""The zones' name servers: apex NS, `ns.dns.ZONE` and the SOA, derived as CoreDNS's nsAddrs.

The server's own addresses come from its interfaces (no `bind`); the tests give it addresses
through CLUSTERDNS_TEST_INTERFACE_ADDRS (test-only) and put them, or not, in endpoints served by
the test API server or by manifest files. The last tests ask the reference CoreDNS the same
questions with the machine's real interfaces.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rcode
import psutil
import pytest

from clusterdns.plugins.kubernetes.local import TEST_ADDRS_ENV
from tests.coredns_ref import serve_coredns
from tests.harness import Case, Server, check, exchange, rrs, start
from tests.k8s_apiserver import ApiServer, Obj, endpoint_slice, namespace, service

NX = dns.rcode.NXDOMAIN
DNS_PORTS = (("dns", "UDP", 53),)


def objects(ours: str = "192.0.2.77", headless: str = "192.0.2.78") -> list[Obj]:
    """kube-dns (not us), `mine` (a ClusterIP Service whose endpoint is `ours`), `hl` (headless,
    one endpoint `headless`) and `idle` (its only endpoint 192.0.2.79 is not ready)."""
    return [
        namespace("kube-system"),
        namespace("default"),
        service("kube-dns", "kube-system", "10.96.0.10", DNS_PORTS),
        endpoint_slice("kube-dns-a", "kube-system", "kube-dns", [("10.244.0.5", True)], DNS_PORTS),
        service("mine", "default", "10.96.0.20", DNS_PORTS),
        endpoint_slice("mine-a", "default", "mine", [(ours, True)], DNS_PORTS),
        service("hl", "default", None, DNS_PORTS),
        endpoint_slice(
            "hl-a", "default", "hl",
            [(headless, True, "h1"), ("10.1.1.1", True), ("10.1.1.2", False)], DNS_PORTS,
        ),
        service("idle", "default", "10.96.0.30", DNS_PORTS),
        endpoint_slice("idle-a", "default", "idle", [("192.0.2.79", False)], DNS_PORTS),
    ]  # fmt: skip


def corefile(source: str, bind: str = "") -> str:
    bind_line = f"    bind {bind}\n" if bind else ""
    return (
        ".:@PORT@ {\n" + bind_line + "    kubernetes cluster.local in-addr.arpa {\n"
        f"        {source}\n    }}\n}}\n"
    )


def start_unbound(cf: str, tmp: Path, env: dict[str, str] | None = None) -> Server:
    """Start the server; unbound, it listens on every address, where a port found free on
    127.0.0.1 may be taken: try again on another."""
    for attempt in range(5):
        try:
            return start(cf, tmp, env=env)
        except AssertionError as e:
            if "Address already in use" not in str(e) or attempt == 4:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    with ApiServer() as a:
        a.apply(*objects())
        yield a


@pytest.fixture
def ours(api: ApiServer, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def go(addrs: str, bind: str = "", source: str = "") -> Server:
        cf = corefile(source or f"endpoint {api.url}", bind)
        srv = start_unbound(cf, tmp_path, {TEST_ADDRS_ENV: addrs})
        started.append(srv)
        return srv

    yield go
    for s in started:
        s.stop()


def serial(srv: Server) -> int:
    return int(srv.query("cluster.local.", "SOA").answer[0][0].serial)


def soa(zone: str, z: int) -> list[str]:
    return [f"{zone} 5 IN SOA ns.dns.{zone} hostmaster.{zone} {z} 7200 1800 86400 5"]


MINE = "mine.default.svc."
HL = "hl.default.svc."


def found_cases(z: int) -> list[Case]:
    """Our addresses 192.0.2.77 (mine) and 192.0.2.78 (hl, headless) are endpoints."""
    cl, arpa = "cluster.local.", "in-addr.arpa."
    return [
        Case(cl, "NS", answer=[
            f"{cl} 5 IN NS {MINE}{cl}",
            f"{cl} 5 IN NS h1.{HL}{cl}",
            f"{cl} 5 IN NS 10-1-1-1.{HL}{cl}",
        ], extra=[
            f"{MINE}{cl} 5 IN A 10.96.0.20",
            f"h1.{HL}{cl} 5 IN A 192.0.2.78",
            f"10-1-1-1.{HL}{cl} 5 IN A 10.1.1.1",
        ], flags={"AA"}),
        Case(f"ns.dns.{cl}", "A", answer=[
            f"ns.dns.{cl} 5 IN A {ip}" for ip in ("10.96.0.20", "192.0.2.78", "10.1.1.1")
        ]),
        Case(f"ns.dns.{cl}", "AAAA", answer=[], ns=soa(cl, z)),
        Case(f"ns.dns.{cl}", "TXT", NX, ns=soa(cl, z)),
        Case(f"ns.dns.{cl}", "MX", answer=[], ns=soa(cl, z)),
        # The reverse zones name the same Services, under the reverse zone (as CoreDNS does).
        Case(arpa, "NS", answer=[
            f"{arpa} 5 IN NS {MINE}{arpa}",
            f"{arpa} 5 IN NS h1.{HL}{arpa}",
            f"{arpa} 5 IN NS 10-1-1-1.{HL}{arpa}",
        ], extra=[
            f"{MINE}{arpa} 5 IN A 10.96.0.20",
            f"h1.{HL}{arpa} 5 IN A 192.0.2.78",
            f"10-1-1-1.{HL}{arpa} 5 IN A 10.1.1.1",
        ]),
        Case(f"ns.dns.{arpa}", "A", answer=[
            f"ns.dns.{arpa} 5 IN A {ip}" for ip in ("10.96.0.20", "192.0.2.78", "10.1.1.1")
        ]),
        # CoreDNS compares the lower-cased name with the zone as asked.
        Case("Cluster.Local.", "NS", answer=[], ns=soa("Cluster.Local.", z)),
        # (its SOA's mname compresses against the question, case-insensitively: not compared)
        Case("NS.dns.Cluster.Local.", "A", NX, ns=None),
        Case(f"svc.{cl}", "NS", answer=[], ns=soa(cl, z)),
        Case(cl, "SOA", answer=soa(cl, z), ns=[]),
        Case("Cluster.Local.", "SOA", answer=soa("Cluster.Local.", z)),
    ]  # fmt: skip


def test_endpoints_holding_our_addresses_name_the_services(ours: Callable[..., Server]) -> None:
    srv = ours("127.0.0.1,192.0.2.77,fd00::77,192.0.2.78")
    z = serial(srv)
    assert abs(z - time.time()) < 3600  # the Unix time of the last change of the data
    check(srv, found_cases(z))


def test_the_same_from_manifests(ours: Callable[..., Server], tmp_path: Path) -> None:
    files = tmp_path / "objects.json"
    files.write_text("\n".join(json.dumps({"apiVersion": _version(o), **o}) for o in objects()))
    srv = ours("192.0.2.77,192.0.2.78", source=f"manifests {files}")
    check(srv, found_cases(serial(srv)))


def _version(o: Obj) -> str:
    return "discovery.k8s.io/v1" if o["kind"] == "EndpointSlice" else "v1"


def test_no_endpoint_holds_them_ns_dns_with_our_addresses(ours: Callable[..., Server]) -> None:
    # 192.0.2.79 is an endpoint of `idle`, but not a ready one: CoreDNS does not index it.
    srv = ours("192.0.2.99,::1,fd00::99,fe80::1%eth0,192.0.2.79")
    z = serial(srv)
    cl = "cluster.local."
    v6 = ("fd00::99", "fe80::1")
    check(srv, [
        Case(cl, "NS", answer=[f"{cl} 5 IN NS ns.dns.{cl}"], extra=[
            f"ns.dns.{cl} 5 IN A 192.0.2.99",
            f"ns.dns.{cl} 5 IN A 192.0.2.79",
            *(f"ns.dns.{cl} 5 IN AAAA {ip}" for ip in v6),
        ]),
        Case(f"ns.dns.{cl}", "A", answer=[
            f"ns.dns.{cl} 5 IN A 192.0.2.99", f"ns.dns.{cl} 5 IN A 192.0.2.79",
        ]),
        Case(f"ns.dns.{cl}", "AAAA", answer=[f"ns.dns.{cl} 5 IN AAAA {ip}" for ip in v6]),
        Case("in-addr.arpa.", "NS", answer=["in-addr.arpa. 5 IN NS ns.dns.in-addr.arpa."]),
        Case(f"ns.dns.{cl}", "SRV", answer=[], ns=soa(cl, z)),
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("addrs", "bind"),
    [
        ("127.0.0.1,127.0.0.53,::1", ""),  # loopback only (all of 127.0.0.0/8 is loopback)
        ("192.0.2.77,192.0.2.78", "127.0.0.1"),  # bound: CoreDNS then knows no address
    ],
    ids=["loopback-only", "bound"],
)
def test_no_address_of_our_own_nodata(ours: Callable[..., Server], addrs: str, bind: str) -> None:
    srv = ours(addrs, bind)
    z = serial(srv)
    cl, arpa = "cluster.local.", "in-addr.arpa."
    check(srv, [
        Case(cl, "NS", answer=[], ns=soa(cl, z), flags={"AA"}),
        Case(f"ns.dns.{cl}", "A", answer=[], ns=soa(cl, z)),
        Case(f"ns.dns.{cl}", "AAAA", answer=[], ns=soa(cl, z)),
        Case(arpa, "NS", answer=[], ns=soa(arpa, z)),
        Case(f"ns.dns.{arpa}", "A", answer=[], ns=soa(arpa, z)),
        Case(f"mine.default.svc.{cl}", "A", answer=[f"mine.default.svc.{cl} 5 IN A 10.96.0.20"]),
    ])  # fmt: skip


# ---- the reference CoreDNS, with this machine's real interfaces -------------------------------

QUESTIONS = [
    ("cluster.local.", "NS"), ("ns.dns.cluster.local.", "A"), ("ns.dns.cluster.local.", "AAAA"),
    ("in-addr.arpa.", "NS"), ("ns.dns.in-addr.arpa.", "A"), ("cluster.local.", "SOA"),
    ("Cluster.Local.", "NS"), ("NS.dns.Cluster.Local.", "A"), ("ns.dns.cluster.local.", "TXT"),
    ("ns.dns.cluster.local.", "MX"), ("missing.default.svc.cluster.local.", "A"),
]  # fmt: skip


def machine_address(family: int = socket.AF_INET) -> str | None:
    """A non-loopback, non-link-local address of this machine of that family, or None."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family != family:
                continue
            ip = ipaddress.ip_address(a.address.split("%")[0])
            if not ip.is_loopback and not ip.is_link_local:
                return str(ip)
    return None


def answers(srv: Server) -> list[tuple[object, ...]]:
    out = []
    for name, qtype in QUESTIONS:
        r = srv.query(name, qtype)
        # The serial is the time each server last saw a change: not comparable.
        norm = [re.sub(r" SOA (\S+) (\S+) \d+ ", r" SOA \1 \2 SERIAL ", x) for x in rrs(r.answer)]
        auth = [
            re.sub(r" SOA (\S+) (\S+) \d+ ", r" SOA \1 \2 SERIAL ", x) for x in rrs(r.authority)
        ]
        # dnspython compresses names case-insensitively (the SOA's mname against the question
        # NS.dns.Cluster.Local. shows that spelling), miekg/dns does not: compare those lower-cased.
        extra = [x.lower() for x in rrs(r.additional)]
        # the header's record counts too: dnspython merges duplicate records when it parses
        raw = exchange(srv, dns.message.make_query(name, qtype))[0]
        counts = (raw[6:8], raw[8:10], raw[10:12])
        out.append((name, qtype, r.rcode(), norm, [x.lower() for x in auth], extra, counts))
    return out


@pytest.mark.parametrize("bind", ["", "127.0.0.1"], ids=["unbound", "bound"])
def test_same_answers_as_coredns(tmp_path: Path, bind: str) -> None:
    ip = machine_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    differential(tmp_path, bind, objects(ours=ip))


def test_dual_stack_dns_service_same_as_coredns(tmp_path: Path) -> None:
    """kube-dns dual-stack, our IPv4 and IPv6 addresses in its two slices: one NS, both glue
    records once (CoreDNS finds the Service twice, and writes it once)."""
    v4, v6 = machine_address(), machine_address(socket.AF_INET6)
    if v4 is None or v6 is None:
        pytest.skip("this machine has no non-loopback IPv4 and IPv6 addresses")
    dual = [
        namespace("kube-system"),
        service("kube-dns", "kube-system", ["10.96.0.10", "fd00:10::a"], DNS_PORTS),
        endpoint_slice("kube-dns-4", "kube-system", "kube-dns", [(v4, True)], DNS_PORTS),
        endpoint_slice(
            "kube-dns-6", "kube-system", "kube-dns", [(v6, True)], DNS_PORTS, address_type="IPv6"
        ),
    ]
    differential(tmp_path, "", dual)


def differential(tmp_path: Path, bind: str, objs: list[Obj]) -> None:
    with ApiServer() as a:
        a.apply(*objs)
        cf = corefile(f"endpoint {a.url}", bind)
        with serve_coredns(cf, tmp_path / "coredns") as ref:
            srv = start_unbound(cf, tmp_path)
            try:
                ref.wait_output(r"CoreDNS-1\.14\.7")
                assert answers(srv) == answers(ref)
            finally:
                srv.stop()
