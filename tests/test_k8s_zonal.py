"""`zonal`: TOPOZONE.(pin|prefer)._zone.SERVICE.NS.svc.ZONE for headless services (CoreDNS 1.14).

One Corefile serves cluster.local twice, with `zonal` (@PORT@) and without (@P1@), from the test
API server; the same questions go to the reference CoreDNS when it is there, and the answers
must be the same. The expected answers are also written out, so the test stands without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.coredns_ref import binary, same_as_coredns
from tests.harness import Case, Server, check, serve, setup_error
from tests.k8s_apiserver import ApiServer, Obj, endpoint_slice, namespace, service

NX = dns.rcode.NXDOMAIN
HTTP = (("http", "TCP", 80),)
S = "db.prod.svc.cluster.local."


def zoned_slice() -> Obj:
    """db's endpoints: db-0 in us-west-2a, one in us-west-2b, one in Corp.Example.com (a zone
    label with dots, in upper case), one without zone, one not ready in us-west-2a."""
    sl = endpoint_slice(
        "db-a", "prod", "db",
        [("10.0.1.1", True, "db-0"), ("10.0.1.2", True), ("10.0.1.3", True), ("10.0.1.4", True),
         ("10.0.1.5", False)],
        HTTP,
    )  # fmt: skip
    for ep, zone in zip(
        sl["endpoints"],
        ["us-west-2a", "us-west-2b", "Corp.Example.com", None, "us-west-2a"],
        strict=True,
    ):
        if zone:
            ep["zone"] = zone
    return sl


def objects() -> list[Obj]:
    web = endpoint_slice("web-a", "prod", "web", [("10.0.2.1", True)], HTTP)
    web["endpoints"][0]["zone"] = "us-west-2a"
    return [
        namespace("prod"),
        service("db", "prod", None, HTTP),
        zoned_slice(),
        service("web", "prod", "10.96.0.5", HTTP),
        web,
        service("ext", "prod", external_name="example.org"),
    ]


COREFILE = """cluster.local:@PORT@ {
    bind 127.0.0.1
    kubernetes {
        endpoint URL
        zonal
    }
}
cluster.local:@P1@ {
    bind 127.0.0.1
    kubernetes {
        endpoint URL
    }
}
"""

QUESTIONS = [
    (f"us-west-2a.pin._zone.{S}", "A"),
    (f"US-West-2A.pin._zone.{S}", "A"),
    (f"us-west-2c.pin._zone.{S}", "A"),
    (f"us-west-2c.prefer._zone.{S}", "A"),
    (f"us-west-2b.prefer._zone.{S}", "A"),
    (f"corp.example.com.pin._zone.{S}", "A"),
    (f"us-west-2a.pin._zone.{S}", "SRV"),
    (f"us-west-2c.prefer._zone.{S}", "SRV"),
    (f"us-west-2a.pin._zone.{S}", "TXT"),
    (f"us-west-2c.pin._zone.{S}", "TXT"),
    (f"us-west-2a.pin._zone.{S}", "AAAA"),
    (f"us-west-2a.pin._zone.{S}", "MX"),
    ("us-west-2a.pin._zone.web.prod.svc.cluster.local.", "A"),
    ("us-west-2a.pin._zone.ext.prod.svc.cluster.local.", "A"),
    ("us-west-2a.pin._zone.nosuch.prod.svc.cluster.local.", "A"),
    (f"us-west-2a.bogus._zone.{S}", "A"),
    (f"us-west-2a.pin.zone.{S}", "A"),
    ("us-west-2a.pin._zone.db.prod.pod.cluster.local.", "A"),
    (f"pin._zone.{S}", "A"),
    (S, "A"),
    (f"db-0.{S}", "A"),
]


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    with ApiServer() as a:
        a.apply(*objects())
        yield a


@pytest.fixture(scope="module")
def ours(api: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE.replace("URL", api.url), tmp_path_factory.mktemp("zonal")) as s:
        yield s


def soa(z: int) -> list[str]:
    return [
        f"cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. {z} 7200 1800 86400 5"
    ]


def a(name: str, *ips: str) -> list[str]:
    return [f"{name} 5 IN A {ip}" for ip in ips]


def test_zone_scoped_names(ours: Server) -> None:
    z = int(ours.query("cluster.local.", "SOA").answer[0][0].serial)
    neg = soa(z)
    all_ready = ("10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4")
    srv_rr = "5 IN SRV 0 {w} 80 {t}"
    check(ours, [
        Case(f"us-west-2a.pin._zone.{S}", answer=a(f"us-west-2a.pin._zone.{S}", "10.0.1.1")),
        Case(f"US-West-2A.pin._zone.{S}", answer=a(f"US-West-2A.pin._zone.{S}", "10.0.1.1")),
        Case(f"us-west-2c.pin._zone.{S}", answer=[], ns=neg),  # no endpoint there: NODATA
        Case(f"us-west-2c.prefer._zone.{S}", answer=a(f"us-west-2c.prefer._zone.{S}", *all_ready)),
        Case(f"us-west-2b.prefer._zone.{S}", answer=a(f"us-west-2b.prefer._zone.{S}", "10.0.1.2")),
        Case(f"corp.example.com.pin._zone.{S}",
             answer=a(f"corp.example.com.pin._zone.{S}", "10.0.1.3")),
        Case(f"us-west-2a.pin._zone.{S}", "SRV",
             answer=[f"us-west-2a.pin._zone.{S} " + srv_rr.format(w=100, t=f"db-0.{S}")],
             extra=a(f"db-0.{S}", "10.0.1.1")),
        Case(f"us-west-2a.pin._zone.{S}", "TXT", answer=[], ns=neg),
        Case(f"us-west-2c.pin._zone.{S}", "TXT", answer=[], ns=neg),
        Case(f"us-west-2a.pin._zone.{S}", "AAAA", answer=[], ns=neg),
        Case(f"us-west-2a.pin._zone.{S}", "MX", answer=[], ns=neg),
        # headless services only; unknown directives and other shapes stay NXDOMAIN
        Case("us-west-2a.pin._zone.web.prod.svc.cluster.local.", rcode=NX, ns=neg),
        Case("us-west-2a.pin._zone.ext.prod.svc.cluster.local.", rcode=NX, ns=neg),
        Case("us-west-2a.pin._zone.nosuch.prod.svc.cluster.local.", rcode=NX, ns=neg),
        Case(f"us-west-2a.bogus._zone.{S}", rcode=NX, ns=neg),
        Case(f"us-west-2a.pin.zone.{S}", rcode=NX, ns=neg),
        Case("us-west-2a.pin._zone.db.prod.pod.cluster.local.", rcode=NX, ns=neg),
        Case(S, answer=a(S, *all_ready)),
    ])  # fmt: skip
    # Without `zonal` (the second server block), the same names are too long: NXDOMAIN.
    for name, qtype in QUESTIONS[:12]:
        r = ours.query(name, qtype, port=ours.ports["P1"])
        assert r.rcode() == NX, (name, qtype)


def test_same_answers_as_coredns(ours: Server, api: ApiServer, tmp_path: Path) -> None:
    if binary() is None:
        pytest.skip("the reference CoreDNS binary is not available")
    same_as_coredns(ours, COREFILE.replace("URL", api.url), tmp_path, QUESTIONS, ("PORT", "P1"))


def test_zones_from_manifests(tmp_path: Path) -> None:
    f = tmp_path / "objects.json"
    f.write_text(
        "\n".join(
            json.dumps({"apiVersion": "discovery.k8s.io/v1" if o["kind"] == "EndpointSlice"
                        else "v1", **o}) for o in objects()
        )
    )  # fmt: skip
    cf = f".:@PORT@ {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        manifests {f}\n        zonal\n    }}\n}}\n"
    with serve(cf, tmp_path) as srv:
        check(srv, [
            Case(f"us-west-2b.pin._zone.{S}", answer=a(f"us-west-2b.pin._zone.{S}", "10.0.1.2")),
            Case(f"corp.example.com.prefer._zone.{S}",
                 answer=a(f"corp.example.com.prefer._zone.{S}", "10.0.1.3")),
        ])  # fmt: skip


def test_setup(tmp_path: Path) -> None:
    setup_error(tmp_path, "kubernetes {\n zonal\n noendpoints\n}\n", 4,
                "kubernetes: zonal requires the endpoint cache; remove noendpoints")  # fmt: skip
    setup_error(tmp_path, "kubernetes {\n zonal x\n}\n", 3,
                "kubernetes: wrong argument count or unexpected line ending after 'zonal'")  # fmt: skip
