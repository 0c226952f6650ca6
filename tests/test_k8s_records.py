"""kubernetes plugin: every record kind and option, served end to end from manifest files.

The tables follow the shape of CoreDNS's plugin/kubernetes handler tests (svc1, svc6, hdls1,
external…) with our own cluster (`CLUSTER`). Expected answers are CoreDNS's, including its
corners (a headless service without ready endpoints is NXDOMAIN, TXT on a namespace name is
NXDOMAIN, SOA below the apex is NODATA…). The SOA serial is a timestamp, read from the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.reversename
import pytest

from clusterdns.plugins.kubernetes import Kubernetes
from clusterdns.plugins.kubernetes.lookup import TimedStore
from clusterdns.plugins.kubernetes.records import (
    to_endpoint_slice,
    to_namespace,
    to_service,
)
from clusterdns.plugins.kubernetes.setup import Settings
from clusterdns.request import Request
from tests.harness import Case, Server, check, rrs

NX, SERVFAIL, OK = dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.NOERROR

CLUSTER = """
apiVersion: v1
kind: Namespace
metadata: {name: testns, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {team: b}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: emptyns}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec: {clusterIP: 10.96.0.10, ports: [{name: dns, port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: testns, labels: {app: web}}
spec: {clusterIP: 10.0.0.1, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc1-abc, namespace: testns, labels: {kubernetes.io/service-name: svc1, app: web}}
addressType: IPv4
endpoints: [{addresses: [172.0.0.1], conditions: {ready: true}, hostname: ep1}]
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-dual, namespace: testns}
spec:
  clusterIP: 10.0.0.3
  clusterIPs: [10.0.0.3, "fd00::3"]
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: svc6, namespace: testns}
spec: {clusterIP: "1234:abcd::1", ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: svcempty, namespace: testns}
spec: {clusterIP: 10.0.0.4, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: multiport, namespace: testns}
spec:
  clusterIP: 10.0.0.6
  ports:
    - {name: http, port: 80, protocol: TCP}
    - {name: dns, port: 53, protocol: UDP}
    - {name: metrics, port: 9153, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: noports, namespace: testns}
spec: {clusterIP: 10.0.0.5}
---
apiVersion: v1
kind: Service
metadata: {name: hdls1, namespace: testns}
spec: {clusterIP: None, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls1-v4, namespace: testns, labels: {kubernetes.io/service-name: hdls1}}
addressType: IPv4
endpoints:
  - addresses: [172.0.0.2]
    conditions: {ready: true}
    targetRef: {kind: Pod, name: hdls1-pod-a, namespace: testns}
  - addresses: [172.0.0.3]
    conditions: {ready: true}
    hostname: web-0
    targetRef: {kind: Pod, name: web-0, namespace: testns}
  - {addresses: [172.0.0.4], conditions: {ready: false}, hostname: web-1}
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls1-v6, namespace: testns, labels: {kubernetes.io/service-name: hdls1}}
addressType: IPv6
endpoints: [{addresses: ["5678:abcd::1"], conditions: {ready: true}}]
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: hdls-pub, namespace: testns}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports: [{name: peer, port: 7000, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls-pub-1, namespace: testns, labels: {kubernetes.io/service-name: hdls-pub}}
addressType: IPv4
endpoints: [{addresses: [172.0.0.6], conditions: {ready: false}, hostname: db-0}]
ports: [{name: peer, port: 7000, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: hdls-empty, namespace: testns}
spec: {clusterIP: None, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: hdls-noports, namespace: testns}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls-noports-1, namespace: testns, labels: {kubernetes.io/service-name: hdls-noports}}
addressType: IPv4
endpoints: [{addresses: [172.0.0.20]}]
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: testns}
spec: {type: ExternalName, externalName: ext.example.org}
---
apiVersion: v1
kind: Service
metadata: {name: ext-internal, namespace: testns}
spec: {type: ExternalName, externalName: svc1.testns.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: ext-missing, namespace: testns}
spec: {type: ExternalName, externalName: missing.testns.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: svc2, namespace: other}
spec: {clusterIP: 10.0.1.1, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc2-1, namespace: other, labels: {kubernetes.io/service-name: svc2}}
addressType: IPv4
endpoints: [{addresses: [172.0.1.1], hostname: other-ep}]
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Pod
metadata: {name: pod-x, namespace: testns}
status:
  phase: Running
  podIP: 10.240.0.1
  podIPs: [{ip: 10.240.0.1}, {ip: "fd00::240:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: pod-y, namespace: other}
status: {phase: Running, podIP: "fd00::240:2", podIPs: [{ip: "fd00::240:2"}]}
"""

EXAMPLE_ORG = """
example.org:@PORT@ {
    bind 127.0.0.1
    hosts {
        192.0.2.10 ext.example.org
        2001:db8::10 ext.example.org
    }
}
"""

S = "testns.svc.cluster.local."


def corefile(
    *options: str, zones: str = "cluster.local in-addr.arpa ip6.arpa", extra: str = ""
) -> str:
    opts = "\n        ".join(("manifests cluster.yaml", *options))
    return f""".:@PORT@ {{
    bind 127.0.0.1
    {extra}
    kubernetes {zones} {{
        {opts}
    }}
}}
{EXAMPLE_ORG}"""


Factory = Callable[..., Server]


def start(factory: Factory, tmp_path: Path, *options: str, **kw: str) -> Server:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    return factory(corefile(*options, **kw))


def serial_of(srv: Server, zone: str = "cluster.local.") -> int:
    r = srv.query(zone, "SOA")
    return int(r.answer[0][0].serial)


def soa(serial: int, zone: str = "cluster.local.", ttl: int = 5, minimum: int = 5) -> list[str]:
    return [
        f"{zone} {ttl} IN SOA ns.dns.{zone} hostmaster.{zone} {serial} 7200 1800 86400 {minimum}"
    ]


def ptr_name(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text()


def a(name: str, *ips: str, ttl: int = 5) -> list[str]:
    return [f"{name} {ttl} IN {'AAAA' if ':' in ip else 'A'} {ip}" for ip in ips]


# ---- the default configuration --------------------------------------------------------------


def service_cases(z: int) -> list[Case]:
    """Services, endpoints, SRV, ExternalName, TXT, apex and other types (pods disabled)."""
    neg = soa(z)
    return [
        # A/AAAA for ClusterIP services, dual stack, IPv6 only, no ports.
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1"), flags={"AA"}),
        Case(f"svc1.{S}", "AAAA", answer=[], ns=neg, flags={"AA"}),
        Case(f"svc-dual.{S}", "A", answer=a(f"svc-dual.{S}", "10.0.0.3")),
        Case(f"svc-dual.{S}", "AAAA", answer=a(f"svc-dual.{S}", "fd00::3")),
        Case(f"svc6.{S}", "AAAA", answer=a(f"svc6.{S}", "1234:abcd::1")),
        Case(f"svc6.{S}", "A", answer=[], ns=neg),
        Case(f"svcempty.{S}", "A", answer=a(f"svcempty.{S}", "10.0.0.4")),
        Case(f"noports.{S}", "A", answer=a(f"noports.{S}", "10.0.0.5")),
        Case(f"noports.{S}", "SRV", answer=[], ns=neg),
        # Names that do not exist; names that exist without records.
        Case(f"svc0.{S}", "A", NX, answer=[], ns=neg, flags={"AA"}),
        Case(f"svc0.{S}", "AAAA", NX, ns=neg),
        Case("svc1.nons.svc.cluster.local.", "A", NX, ns=neg),
        Case(S, "A", answer=[], ns=neg),
        Case("emptyns.svc.cluster.local.", "A", answer=[], ns=neg),
        Case("nons.svc.cluster.local.", "A", NX, ns=neg),
        Case("svc.cluster.local.", "A", answer=[], ns=neg),
        Case("pod.cluster.local.", "A", answer=[], ns=neg),
        Case("cluster.local.", "A", answer=[], ns=neg),
        Case("cluster.local.", "SRV", answer=[], ns=neg),
        Case("foo.cluster.local.", "A", NX, ns=neg),
        Case(f"a.b.c.svc1.{S}", "A", NX, ns=neg),
        # Endpoint names: hostname, else dashed IP; only ready ones (or publishNotReady).
        Case(f"ep1.svc1.{S}", "A", answer=a(f"ep1.svc1.{S}", "172.0.0.1")),
        Case(f"hdls1.{S}", "A", answer=a(f"hdls1.{S}", "172.0.0.2", "172.0.0.3")),
        Case(f"hdls1.{S}", "AAAA", answer=a(f"hdls1.{S}", "5678:abcd::1")),
        Case(f"172-0-0-2.hdls1.{S}", "A", answer=a(f"172-0-0-2.hdls1.{S}", "172.0.0.2")),
        Case(f"web-0.hdls1.{S}", "A", answer=a(f"web-0.hdls1.{S}", "172.0.0.3")),
        Case(f"web-1.hdls1.{S}", "A", NX, ns=neg),
        Case(f"hdls1-pod-a.hdls1.{S}", "A", NX, ns=neg),
        Case(
            f"5678-abcd--1.hdls1.{S}", "AAAA", answer=a(f"5678-abcd--1.hdls1.{S}", "5678:abcd::1")
        ),
        Case(f"hdls-pub.{S}", "A", answer=a(f"hdls-pub.{S}", "172.0.0.6")),
        Case(f"db-0.hdls-pub.{S}", "A", answer=a(f"db-0.hdls-pub.{S}", "172.0.0.6")),
        Case(f"hdls-empty.{S}", "A", NX, ns=neg),
        Case(f"hdls-noports.{S}", "A", answer=a(f"hdls-noports.{S}", "172.0.0.20")),
        Case(
            f"172-0-0-20.hdls-noports.{S}",
            "A",
            answer=a(f"172-0-0-20.hdls-noports.{S}", "172.0.0.20"),
        ),
        Case(f"hdls-noports.{S}", "SRV", answer=[], ns=neg),
        # SRV: priority 0, weight 100/n, targets and their addresses in the additional section.
        Case(
            f"_http._tcp.svc1.{S}",
            "SRV",
            answer=[f"_http._tcp.svc1.{S} 5 IN SRV 0 100 80 svc1.{S}"],
            extra=a(f"svc1.{S}", "10.0.0.1"),
            flags={"AA"},
        ),
        Case(
            f"svc1.{S}",
            "SRV",
            answer=[f"svc1.{S} 5 IN SRV 0 100 80 svc1.{S}"],
            extra=a(f"svc1.{S}", "10.0.0.1"),
        ),
        Case(f"_http._udp.svc1.{S}", "SRV", NX, ns=neg),
        Case(f"_https._tcp.svc1.{S}", "SRV", NX, ns=neg),
        Case(
            f"svc-dual.{S}",
            "SRV",
            answer=[f"svc-dual.{S} 5 IN SRV 0 50 80 svc-dual.{S}"],
            extra=a(f"svc-dual.{S}", "10.0.0.3", "fd00::3"),
        ),
        Case(
            f"multiport.{S}",
            "SRV",
            answer=[
                f"multiport.{S} 5 IN SRV 0 33 53 multiport.{S}",
                f"multiport.{S} 5 IN SRV 0 33 80 multiport.{S}",
                f"multiport.{S} 5 IN SRV 0 33 9153 multiport.{S}",
            ],
            extra=a(f"multiport.{S}", "10.0.0.6"),
        ),
        Case(
            f"_dns._udp.multiport.{S}",
            "SRV",
            answer=[f"_dns._udp.multiport.{S} 5 IN SRV 0 100 53 multiport.{S}"],
            extra=a(f"multiport.{S}", "10.0.0.6"),
        ),
        Case(
            f"_http._tcp.hdls1.{S}",
            "SRV",
            answer=[
                f"_http._tcp.hdls1.{S} 5 IN SRV 0 33 80 172-0-0-2.hdls1.{S}",
                f"_http._tcp.hdls1.{S} 5 IN SRV 0 33 80 5678-abcd--1.hdls1.{S}",
                f"_http._tcp.hdls1.{S} 5 IN SRV 0 33 80 web-0.hdls1.{S}",
            ],
            extra=[
                *a(f"172-0-0-2.hdls1.{S}", "172.0.0.2"),
                *a(f"5678-abcd--1.hdls1.{S}", "5678:abcd::1"),
                *a(f"web-0.hdls1.{S}", "172.0.0.3"),
            ],
        ),
        Case(
            f"hdls-pub.{S}",
            "SRV",
            answer=[f"hdls-pub.{S} 5 IN SRV 0 100 7000 db-0.hdls-pub.{S}"],
            extra=a(f"db-0.hdls-pub.{S}", "172.0.0.6"),
        ),
        # ExternalName: CNAME; inside the zone it is followed, outside resolved by the server.
        Case(f"external.{S}", "CNAME", answer=[f"external.{S} 5 IN CNAME ext.example.org."]),
        Case(
            f"external.{S}",
            "A",
            answer=[
                f"external.{S} 5 IN CNAME ext.example.org.",
                "ext.example.org. 3600 IN A 192.0.2.10",
            ],
        ),
        Case(
            f"external.{S}",
            "AAAA",
            answer=[
                f"external.{S} 5 IN CNAME ext.example.org.",
                "ext.example.org. 3600 IN AAAA 2001:db8::10",
            ],
        ),
        Case(
            f"ext-internal.{S}",
            "A",
            answer=[f"ext-internal.{S} 5 IN CNAME svc1.{S}", *a(f"svc1.{S}", "10.0.0.1")],
        ),
        Case(f"ext-internal.{S}", "AAAA", answer=[], ns=neg),
        Case(f"ext-missing.{S}", "A", answer=[], ns=neg),
        Case(f"external.{S}", "SRV", answer=[], ns=neg),
        Case(f"_http._tcp.external.{S}", "SRV", NX, ns=neg),
        Case(f"endpoint.external.{S}", "CNAME", NX, ns=neg),
        Case(f"svc1.{S}", "CNAME", answer=[], ns=neg),
        # TXT: only dns-version; other names NODATA if they hold records, else NXDOMAIN.
        Case(
            "dns-version.cluster.local.",
            "TXT",
            answer=['dns-version.cluster.local. 28800 IN TXT "1.1.0"'],
        ),
        Case(f"svc1.{S}", "TXT", answer=[], ns=neg),
        Case(f"svc0.{S}", "TXT", NX, ns=neg),
        Case(S, "TXT", NX, ns=neg),
        # Other types: NODATA when the name exists.
        Case(f"svc1.{S}", "MX", answer=[], ns=neg),
        Case(f"svc0.{S}", "MX", NX, ns=neg),
        Case(f"svc1.{S}", "HINFO", answer=[], ns=neg),
        Case(f"svc1.{S}", "SOA", answer=[], ns=neg),
        Case("foo.cluster.local.", "SOA", answer=[], ns=neg),
        Case("cluster.local.", "SOA", answer=neg, ns=[], flags={"AA"}),
        Case("cluster.local.", "AXFR", dns.rcode.REFUSED, answer=[]),
        # NS at the apex: a bound server knows no address of its own, as CoreDNS (which
        # cannot parse its bound hosts), so NODATA; test_k8s_ns.py has the derivation.
        Case("cluster.local.", "NS", answer=[], ns=neg),
        Case("svc.cluster.local.", "NS", answer=[], ns=neg),
        Case("foo.cluster.local.", "NS", NX, ns=neg),
        Case("ns.dns.cluster.local.", "A", answer=[], ns=neg),
        Case("ns.dns.cluster.local.", "AAAA", answer=[], ns=neg),
        # Pods are disabled by default.
        Case("10-240-0-1.testns.pod.cluster.local.", "A", NX, ns=neg),
    ]


def reverse_cases(z: int) -> list[Case]:
    """PTR for service and endpoint IPs (IPv4 and IPv6), inside the plugin's reverse zones."""
    v4, v6 = soa(z, "in-addr.arpa."), soa(z, "ip6.arpa.")
    return [
        Case(ptr_name("10.0.0.1"), "PTR", answer=[f"{ptr_name('10.0.0.1')} 5 IN PTR svc1.{S}"]),
        Case(
            ptr_name("172.0.0.1"), "PTR", answer=[f"{ptr_name('172.0.0.1')} 5 IN PTR ep1.svc1.{S}"]
        ),
        Case(
            ptr_name("172.0.0.2"),
            "PTR",
            answer=[f"{ptr_name('172.0.0.2')} 5 IN PTR 172-0-0-2.hdls1.{S}"],
        ),
        Case(
            ptr_name("172.0.0.6"),
            "PTR",
            answer=[f"{ptr_name('172.0.0.6')} 5 IN PTR db-0.hdls-pub.{S}"],
        ),
        Case(ptr_name("fd00::3"), "PTR", answer=[f"{ptr_name('fd00::3')} 5 IN PTR svc-dual.{S}"]),
        Case(
            ptr_name("1234:abcd::1"),
            "PTR",
            answer=[f"{ptr_name('1234:abcd::1')} 5 IN PTR svc6.{S}"],
        ),
        Case(
            ptr_name("5678:abcd::1"),
            "PTR",
            answer=[f"{ptr_name('5678:abcd::1')} 5 IN PTR 5678-abcd--1.hdls1.{S}"],
        ),
        Case(ptr_name("172.0.0.4"), "PTR", NX, ns=v4),  # not ready
        Case(ptr_name("10.99.99.99"), "PTR", NX, ns=v4, flags={"AA"}),
        Case(ptr_name("fd00::99"), "PTR", NX, ns=v6),
        Case("0.0.10.in-addr.arpa.", "PTR", NX, ns=v4),
        Case(ptr_name("10.0.0.1"), "A", NX, ns=v4),
        Case(f"svc1.{S}", "PTR", answer=[], ns=soa(z)),
        Case("in-addr.arpa.", "SOA", answer=v4),
    ]


def test_services_endpoints_srv_external_txt_apex(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path)
    z = serial_of(srv)
    check(srv, service_cases(z))
    check(
        srv,
        [
            Case(c.qname, c.qtype, c.rcode, c.answer, c.ns, c.extra, proto="tcp")
            for c in service_cases(z)[:12]
        ],
    )


def test_reverse(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path)
    check(srv, reverse_cases(serial_of(srv)))


def test_case_insensitive_and_preserved(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path)
    z = serial_of(srv)
    mixed = "SvC1.TeStNs.SvC.cLuStEr.LoCaL."
    check(srv, [
        Case(mixed, "A", answer=[f"{mixed} 5 IN A 10.0.0.1"]),
        Case(
            "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV",
            answer=["_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL. 5 IN SRV 0 100 80 svc1.testns.svc.cLuStEr.LoCaL."],
        ),
        Case("not-a-service.testns.svc.ClUsTeR.lOcAl.", "A", NX, ns=soa(z, "ClUsTeR.lOcAl.")),
        Case("Cluster.local.", "SOA", answer=soa(z, "Cluster.local.")),
        Case(
            "EXTERNAL.TESTNS.SVC.CLUSTER.LOCAL.", "CNAME",
            answer=["EXTERNAL.TESTNS.SVC.CLUSTER.LOCAL. 5 IN CNAME ext.example.org."],
        ),
        Case("CLUSTER.LOCAL.", "NS", answer=[], ns=soa(z, "CLUSTER.LOCAL.")),
    ])  # fmt: skip
    # An additional record's owner may be compressed against the question on the wire, and
    # name compression ignores case: compare it case-insensitively.
    r = srv.query("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV")
    assert [x.lower() for x in rrs(r.additional)] == [
        "svc1.testns.svc.cluster.local. 5 in a 10.0.0.1"
    ]


def test_pods_insecure(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "pods insecure")
    neg = soa(serial_of(srv))
    p = "testns.pod.cluster.local."
    check(srv, [
        Case(f"10-240-0-1.{p}", "A", answer=a(f"10-240-0-1.{p}", "10.240.0.1")),
        Case(f"172-0-0-2.{p}", "A", answer=a(f"172-0-0-2.{p}", "172.0.0.2")),  # not checked
        Case(f"fd00--240-1.{p}", "AAAA", answer=a(f"fd00--240-1.{p}", "fd00::240:1")),
        Case(f"fd00--240-1.{p}", "A", answer=[], ns=neg),
        Case(f"blah.{p}", "A", NX, ns=neg),
        Case(f"blah.{p}", "AAAA", NX, ns=neg),
        Case(f"blah.{p}", "HINFO", NX, ns=neg),
        Case("10-240-0-1.pod-nons.pod.cluster.local.", "A", NX, ns=neg),
        Case(p, "A", answer=[], ns=neg),
        Case(
            f"10-240-0-1.{p}", "SRV",
            answer=[f"10-240-0-1.{p} 5 IN SRV 0 100 0 10-240-0-1.{p}"],
            extra=a(f"10-240-0-1.{p}", "10.240.0.1"),
        ),
    ])  # fmt: skip


def test_pods_verified(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "pods verified")
    neg = soa(serial_of(srv))
    p = "testns.pod.cluster.local."
    check(srv, [
        Case(f"10-240-0-1.{p}", "A", answer=a(f"10-240-0-1.{p}", "10.240.0.1")),
        Case(f"172-0-0-2.{p}", "A", NX, ns=neg),
        Case("10-240-0-1.other.pod.cluster.local.", "A", NX, ns=neg),
        Case(
            "fd00--240-2.other.pod.cluster.local.", "AAAA",
            answer=a("fd00--240-2.other.pod.cluster.local.", "fd00::240:2"),
        ),
        # CoreDNS indexes a pod by its primary IP only.
        Case(f"fd00--240-1.{p}", "AAAA", NX, ns=neg),
        Case(p, "A", answer=[], ns=neg),
        Case("pod-nons.pod.cluster.local.", "A", NX, ns=neg),
    ])  # fmt: skip


def test_ignore_empty_service(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "ignore empty_service")
    neg = soa(serial_of(srv))
    check(srv, [
        Case(f"svcempty.{S}", "A", NX, ns=neg),
        Case(f"svcempty.{S}", "SRV", NX, ns=neg),
        Case(f"svc-dual.{S}", "A", NX, ns=neg),
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1")),
        Case(f"hdls-empty.{S}", "A", NX, ns=neg),
        Case(f"external.{S}", "CNAME", answer=[f"external.{S} 5 IN CNAME ext.example.org."]),
    ])  # fmt: skip


def test_noendpoints(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "noendpoints")
    z = serial_of(srv)
    check(srv, [
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1")),
        Case(f"hdls1.{S}", "A", NX, ns=soa(z)),
        Case(f"ep1.svc1.{S}", "A", NX, ns=soa(z)),
        Case(ptr_name("172.0.0.1"), "PTR", NX, ns=soa(z, "in-addr.arpa.")),
        Case(ptr_name("10.0.0.1"), "PTR", answer=[f"{ptr_name('10.0.0.1')} 5 IN PTR svc1.{S}"]),
    ])  # fmt: skip


def test_namespaces(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "namespaces testns emptyns")
    z = serial_of(srv)
    check(srv, [
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1")),
        Case("svc2.other.svc.cluster.local.", "A", NX, ns=soa(z)),
        Case("other.svc.cluster.local.", "A", NX, ns=soa(z)),
        Case("emptyns.svc.cluster.local.", "A", answer=[], ns=soa(z)),
        Case(ptr_name("10.0.1.1"), "PTR", NX, ns=soa(z, "in-addr.arpa.")),
        Case(ptr_name("10.0.0.1"), "PTR", answer=[f"{ptr_name('10.0.0.1')} 5 IN PTR svc1.{S}"]),
    ])  # fmt: skip


def test_namespace_labels(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "namespace_labels team in (b, c)")
    z = serial_of(srv)
    check(srv, [
        Case("svc2.other.svc.cluster.local.", "A", answer=a("svc2.other.svc.cluster.local.", "10.0.1.1")),
        Case(f"svc1.{S}", "A", NX, ns=soa(z)),
        Case(S, "A", NX, ns=soa(z)),
        Case("other.svc.cluster.local.", "A", answer=[], ns=soa(z)),
        # As in CoreDNS, reverse lookups are filtered by `namespaces` only.
        Case(ptr_name("10.0.0.1"), "PTR", answer=[f"{ptr_name('10.0.0.1')} 5 IN PTR svc1.{S}"]),
    ])  # fmt: skip


def test_labels(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "labels app=web")
    z = serial_of(srv)
    check(srv, [
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1")),
        Case(f"ep1.svc1.{S}", "A", answer=a(f"ep1.svc1.{S}", "172.0.0.1")),
        Case(f"svc-dual.{S}", "A", NX, ns=soa(z)),
        Case(f"hdls1.{S}", "A", NX, ns=soa(z)),
        Case(S, "A", answer=[], ns=soa(z)),
    ])  # fmt: skip


def test_endpoint_pod_names(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "endpoint_pod_names")
    z = serial_of(srv)
    check(srv, [
        Case(f"hdls1-pod-a.hdls1.{S}", "A", answer=a(f"hdls1-pod-a.hdls1.{S}", "172.0.0.2")),
        Case(f"172-0-0-2.hdls1.{S}", "A", NX, ns=soa(z)),
        Case(f"web-0.hdls1.{S}", "A", answer=a(f"web-0.hdls1.{S}", "172.0.0.3")),
        Case(f"5678-abcd--1.hdls1.{S}", "AAAA", answer=a(f"5678-abcd--1.hdls1.{S}", "5678:abcd::1")),
        Case(ptr_name("172.0.0.2"), "PTR", answer=[f"{ptr_name('172.0.0.2')} 5 IN PTR hdls1-pod-a.hdls1.{S}"]),
    ])  # fmt: skip


def test_ttl(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "ttl 600")
    z = serial_of(srv)
    check(srv, [
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1", ttl=600)),
        Case(
            f"svc1.{S}", "SRV",
            answer=[f"svc1.{S} 600 IN SRV 0 100 80 svc1.{S}"], extra=a(f"svc1.{S}", "10.0.0.1", ttl=600),
        ),
        Case(ptr_name("10.0.0.1"), "PTR", answer=[f"{ptr_name('10.0.0.1')} 600 IN PTR svc1.{S}"]),
        Case(f"external.{S}", "CNAME", answer=[f"external.{S} 600 IN CNAME ext.example.org."]),
        # The SOA's TTL is capped at 300, its minimum is the ttl; dns-version keeps 28800.
        Case(f"svc0.{S}", "A", NX, ns=soa(z, ttl=300, minimum=600)),
        Case("dns-version.cluster.local.", "TXT", answer=['dns-version.cluster.local. 28800 IN TXT "1.1.0"']),
    ])  # fmt: skip


def test_ttl_zero(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "ttl 0")
    z = serial_of(srv)
    check(srv, [
        Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1", ttl=0)),
        Case(f"svc0.{S}", "A", NX, ns=soa(z, ttl=0, minimum=0)),
    ])  # fmt: skip


def test_fallthrough(server_factory: Factory, tmp_path: Path) -> None:
    """Names that do not exist in the listed zones go on down the chain (to whoami here)."""
    srv = start(server_factory, tmp_path, "fallthrough in-addr.arpa ip6.arpa", extra="whoami")
    z = serial_of(srv)
    passed = srv.query(ptr_name("10.99.99.99"), "PTR")
    assert passed.rcode() == OK and not passed.answer
    assert "127.0.0.1" in " ".join(rrs(passed.additional)), passed
    check(srv, [
        Case(f"svc0.{S}", "A", NX, ns=soa(z)),
        Case(ptr_name("10.0.0.1"), "PTR", answer=[f"{ptr_name('10.0.0.1')} 5 IN PTR svc1.{S}"]),
    ])  # fmt: skip


def test_fallthrough_everywhere(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "fallthrough", extra="whoami")
    passed = srv.query(f"svc0.{S}", "A")
    assert passed.rcode() == OK and not passed.answer and passed.additional
    check(srv, [Case(f"svc1.{S}", "A", answer=a(f"svc1.{S}", "10.0.0.1"))])


def test_changes_are_served_and_move_the_serial(server_factory: Factory, tmp_path: Path) -> None:
    srv = start(server_factory, tmp_path, "ttl 1")
    before = serial_of(srv)
    while time.time() < before + 1.05:  # the serial counts seconds
        time.sleep(0.05)
    extra = "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: testns}\n"
    extra += "spec: {clusterIP: 10.0.0.77}\n"
    (tmp_path / "cluster.yaml").write_text(CLUSTER + extra)
    deadline = time.monotonic() + 5
    while srv.query(f"late.{S}", "A").rcode() != OK:
        assert time.monotonic() < deadline, "the new service was never served"
        time.sleep(0.1)
    after = serial_of(srv)
    assert after > before
    check(srv, [Case(f"late.{S}", "A", answer=a(f"late.{S}", "10.0.0.77", ttl=1))])


def test_ready_and_metrics_registered(server_factory: Factory, tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    srv = server_factory(corefile(extra="ready 127.0.0.1:@P1@\n    prometheus 127.0.0.1:@P2@"))
    assert srv.http("P1", "/ready") == (200, "OK")
    assert "# TYPE coredns_kubernetes_dns_programming_duration_seconds histogram" in srv.metrics(
        "P2"
    )


def test_unsynced_api_servfail_then_ready_stays_false(
    server_factory: Factory, tmp_path: Path
) -> None:
    """Before the first sync, missing names are SERVFAIL (with the SOA); start waits for it."""
    cf = """.:@PORT@ {
    bind 127.0.0.1
    ready 127.0.0.1:@P1@
    kubernetes cluster.local {
        endpoint http://127.0.0.1:@P2@
        startup_timeout 1.2s
    }
}"""
    srv = server_factory(cf)
    srv.wait_output(
        r"\[INFO\] plugin/kubernetes: waiting for Kubernetes API before starting server"
    )
    srv.wait_output(r"\[WARNING\] plugin/kubernetes: starting server with unsynced Kubernetes API")
    r = srv.query(f"svc0.{S}", "A")
    assert r.rcode() == SERVFAIL and r.flags & dns.flags.AA
    assert rrs(r.authority)[0].startswith("cluster.local. 5 IN SOA ns.dns.cluster.local.")
    check(
        srv,
        [
            Case(
                "dns-version.cluster.local.",
                "TXT",
                answer=['dns-version.cluster.local. 28800 IN TXT "1.1.0"'],
            )
        ],
    )
    status, body = srv.http("P1", "/ready")
    assert status == 503 and "kubernetes" in body


# ---- the handler on a Store filled directly (no server, no source) --------------------------


class _FakeSource:
    def __init__(self, synced: bool) -> None:
        self._synced = synced

    def synced(self) -> bool:
        return self._synced


def _plugin(synced: bool = True) -> Kubernetes:
    k = Kubernetes(Settings(zones=["cluster.local."], primary_zone="cluster.local."))
    store = TimedStore()
    store.replace("Namespace", [to_namespace({"metadata": {"name": "testns"}})])
    store.replace("Service", [
        to_service({"metadata": {"name": "svc1", "namespace": "testns"},
                    "spec": {"clusterIP": "10.0.0.1", "ports": [{"name": "http", "port": 80}]}}),
        to_service({"metadata": {"name": "external", "namespace": "testns"},
                    "spec": {"type": "ExternalName", "externalName": "ext.example.org"}}),
    ])  # fmt: skip
    store.replace("Endpoints", [to_endpoint_slice({
        "metadata": {"name": "svc1-x", "namespace": "testns",
                     "labels": {"kubernetes.io/service-name": "svc1"}},
        "endpoints": [{"addresses": ["172.0.0.1"], "hostname": "ep1"}],
    })])  # fmt: skip
    k.backend.store = store
    k.source = _FakeSource(synced)  # type: ignore[assignment]

    async def nxt(req: Request) -> dns.message.Message:
        m = req.reply(dns.rcode.NOERROR)
        m.flags |= dns.flags.RA  # a marker: the next plugin answered
        return m

    k.next = nxt
    return k


def _ask(k: Kubernetes, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    req = Request(msg=q, remote_ip="127.0.0.1", remote_port=5353, proto="udp", size=0)
    return asyncio.run(k.serve(req))


def test_handler_on_a_store() -> None:
    k = _plugin()
    assert rrs(_ask(k, f"svc1.{S}").answer) == [f"svc1.{S} 5 IN A 10.0.0.1"]
    assert rrs(_ask(k, f"ep1.svc1.{S}").answer) == [f"ep1.svc1.{S} 5 IN A 172.0.0.1"]
    assert _ask(k, f"svc0.{S}").rcode() == NX
    # Outside the zones: the next plugin.
    assert _ask(k, "example.org.").flags & dns.flags.RA
    # No server to resolve through: the out-of-zone CNAME is left out, as CoreDNS does.
    r = _ask(k, f"external.{S}")
    assert (
        r.rcode() == OK
        and not r.answer
        and rrs(r.authority)[0].startswith("cluster.local. 5 IN SOA")
    )
    assert k.ready() is True


def test_handler_not_synced() -> None:
    k = _plugin(synced=False)
    r = _ask(k, f"svc0.{S}")
    assert r.rcode() == SERVFAIL and rrs(r.authority)[0].startswith("cluster.local. 5 IN SOA")
    assert rrs(_ask(k, f"svc1.{S}").answer) == [f"svc1.{S} 5 IN A 10.0.0.1"]  # partial data served
    assert k.ready() is False


@pytest.mark.parametrize(
    ("options", "kinds"),
    [
        ((), {"Service", "Endpoints", "Namespace"}),
        (("noendpoints",), {"Service", "Namespace"}),
        (("pods verified",), {"Service", "Endpoints", "Namespace", "Pod"}),
        (("pods insecure", "endpoint_pod_names"), {"Service", "Endpoints", "Namespace"}),
    ],
)
def test_source_kinds(options: tuple[str, ...], kinds: set[str]) -> None:
    from clusterdns.corefile.keys import ZoneAddr
    from clusterdns.corefile.parser import parse_corefile_text
    from clusterdns.plugin import SetupContext

    body = "\n".join(options)
    sb = parse_corefile_text(f"cluster.local {{\n kubernetes {{\n{body}\n}}\n}}\n", "Corefile")[0]
    ctx = SetupContext(file="Corefile", keys=[ZoneAddr("cluster.local.", 53)])
    k = Kubernetes.setup(sb.directives, ctx)
    assert k.source_options().kinds == kinds


def test_programming_duration_observed() -> None:
    from prometheus_client import REGISTRY

    from clusterdns.plugins.kubernetes.metrics import TRIGGER_TIME, observe_programming

    store = TimedStore()
    store.replace("Service", [
        to_service({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"clusterIP": "10.0.0.9"}}),
        to_service({"metadata": {"name": "db", "namespace": "ns"}, "spec": {"clusterIP": "None"}}),
    ])  # fmt: skip

    def count(kind: str) -> float:
        name = "coredns_kubernetes_dns_programming_duration_seconds_count"
        return REGISTRY.get_sample_value(name, {"service_kind": kind}) or 0.0

    def slice_for(svc: str, when: str | None) -> dict[str, object]:
        meta: dict[str, object] = {"name": f"{svc}-1", "namespace": "ns",
                                   "labels": {"kubernetes.io/service-name": svc}}  # fmt: skip
        if when is not None:
            meta["annotations"] = {TRIGGER_TIME: when}
        return {"kind": "EndpointSlice", "metadata": meta}

    now = 1_700_000_010.0
    before = count("cluster_ip"), count("headless_with_selector")
    observe_programming(slice_for("web", "2023-11-14T22:13:20.5Z"), store, now=now)
    observe_programming(slice_for("db", "2023-11-14T22:13:25.123456789Z"), store, now=now)
    observe_programming(slice_for("web", None), store, now=now)  # no annotation: not observed
    observe_programming(slice_for("gone", "2023-11-14T22:13:20Z"), store, now=now)  # no service
    observe_programming(slice_for("web", "yesterday"), store, now=now)  # malformed: logged only
    assert (count("cluster_ip"), count("headless_with_selector")) == (before[0] + 1, before[1] + 1)
    le = REGISTRY.get_sample_value(
        "coredns_kubernetes_dns_programming_duration_seconds_bucket",
        {"service_kind": "cluster_ip", "le": "16.384"},
    )
    assert le is not None and le >= 1  # 9.5 s falls in the 16.384 s bucket


def test_autopath_search_for_a_known_pod() -> None:
    from clusterdns.plugins.kubernetes.records import to_pod

    k = _plugin()
    k.settings.pod_mode = "verified"
    k.search = ["example.org."]
    k.backend.store.replace("Pod", [to_pod({
        "metadata": {"name": "p", "namespace": "testns"},
        "status": {"podIP": "10.240.0.9", "podIPs": [{"ip": "10.240.0.9"}, {"ip": "fd00::9"}]},
    })])  # fmt: skip

    def search(client: str, qname: str = "web.cluster.local.") -> list[str] | None:
        q = dns.message.make_query(qname, "A")
        return k.autopath_search(
            Request(msg=q, remote_ip=client, remote_port=1, proto="udp", size=0)
        )

    assert search("10.240.0.9") == [
        "testns.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "example.org.", "",
    ]  # fmt: skip
    assert search("fd00::9") is None  # known by its primary IP only
    assert search("10.240.0.10") is None
    assert search("10.240.0.9", "example.com.") is None
    k.settings.pod_mode = "insecure"
    assert search("10.240.0.9") is None


def test_externalname_loop_across_zones_is_cut(server_factory: Factory, tmp_path: Path) -> None:
    """Two ExternalNames pointing at each other through two server blocks: a bounded answer."""
    loop = """
---
apiVersion: v1
kind: Service
metadata: {name: loop-a, namespace: testns}
spec: {type: ExternalName, externalName: loop-b.testns.svc.other.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop-b, namespace: testns}
spec: {type: ExternalName, externalName: loop-a.testns.svc.cluster.local}
"""
    (tmp_path / "cluster.yaml").write_text(CLUSTER + loop)
    srv = server_factory(
        corefile(zones="cluster.local")
        + "other.local:@PORT@ {\n bind 127.0.0.1\n kubernetes {\n  manifests cluster.yaml\n }\n}\n"
    )
    r = srv.query(f"loop-a.{S}", "A")
    assert r.rcode() == OK
    assert rrs(r.answer) == [
        f"loop-a.{S} 5 IN CNAME loop-b.testns.svc.other.local.",
        f"loop-b.testns.svc.other.local. 5 IN CNAME loop-a.{S}",
    ]
