"""`multicluster [ZONES…]`: MCS-API ServiceImports answered in clusterset zones, as CoreDNS 1.14.7.

One Corefile serves cluster.local and clusterset.local with `multicluster clusterset.local`
(@PORT@) and the same zones without the option (@P1@), from the test API server; the same
questions go to the reference CoreDNS when it is there, and the answers must be the same. The
expected answers are also written out, so the test stands without it. Manifests, changes,
setup errors and the RBAC `clusterdns manifests` writes are checked too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest
import yaml

from tests.coredns_ref import binary, same_as_coredns, serve_coredns
from tests.harness import Case, Server, check, rrs, run_cli, serve, setup_error
from tests.k8s_apiserver import (
    ApiServer,
    Obj,
    mc_slice,
    namespace,
    service,
    service_import,
)
from tests.xfr_client import records as xfr_records
from tests.xfr_client import transfer

NX = dns.rcode.NXDOMAIN
WEB = "web.prod.svc.clusterset.local."
DB = "db.prod.svc.clusterset.local."
PORTS = (("http", "TCP", 80), ("dns", "UDP", 53))


def objects() -> list[Obj]:
    """prod: a ClusterSetIP import `web` (two ports, dual-stack) with a slice from `east`;
    a Headless import `db` with slices from `east` (db-0 by hostname, one by IP, one not
    ready) and `west`; `noports` (ClusterSetIP without ports); a plain Service `web` with
    its own cluster IP, to show that clusterset names do not come from Services."""
    return [
        namespace("prod"),
        service("web", "prod", "10.96.0.5", PORTS),
        service_import("web", "prod", ["10.100.0.1", "fd00::1"], PORTS),
        mc_slice("web-east", "prod", "web", "east", [("10.1.1.1", True, "w0")], PORTS),
        service_import("db", "prod", headless=True, ports=PORTS),
        mc_slice(
            "db-east",
            "prod",
            "db",
            "east",
            [("10.1.0.1", True, "db-0"), ("10.1.0.2", True), ("10.1.0.3", False)],
            (("http", "TCP", 80),),
        ),
        mc_slice("db-west", "prod", "db", "west", [("10.2.0.1", True)], (("http", "TCP", 80),)),
        service_import("noports", "prod", ["10.100.0.9"], ()),
    ]


COREFILE = """cluster.local:@PORT@ clusterset.local:@PORT@ {
    bind 127.0.0.1
    kubernetes cluster.local clusterset.local {
        endpoint URL
        multicluster clusterset.local
    }
}
cluster.local:@P1@ clusterset.local:@P1@ {
    bind 127.0.0.1
    kubernetes cluster.local clusterset.local {
        endpoint URL
    }
}
"""

QUESTIONS = [
    (WEB, "A"),
    (WEB, "AAAA"),
    (WEB, "SRV"),
    (WEB, "TXT"),
    (WEB, "MX"),
    (f"_http._tcp.{WEB}", "SRV"),
    (f"_dns._udp.{WEB}", "SRV"),
    (f"_http._udp.{WEB}", "SRV"),
    (f"w0.east.{WEB}", "A"),
    (DB, "A"),
    (DB, "AAAA"),
    (DB, "SRV"),
    (f"_http._tcp.{DB}", "SRV"),
    (f"db-0.east.{DB}", "A"),
    (f"DB-0.East.{DB}", "A"),
    (f"10-1-0-2.east.{DB}", "A"),
    (f"10-1-0-3.east.{DB}", "A"),
    (f"db-0.west.{DB}", "A"),
    (f"db-0.{DB}", "A"),
    (f"x.y.z.{DB}", "A"),
    ("noports.prod.svc.clusterset.local.", "A"),
    ("nosuch.prod.svc.clusterset.local.", "A"),
    ("web.nons.svc.clusterset.local.", "A"),
    ("prod.svc.clusterset.local.", "A"),
    ("clusterset.local.", "NS"),
    ("dns-version.clusterset.local.", "TXT"),
    ("web.prod.svc.cluster.local.", "A"),
    ("10-0-0-1.prod.pod.clusterset.local.", "A"),
]


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    with ApiServer() as a:
        a.apply(*objects())
        yield a


@pytest.fixture(scope="module")
def ours(api: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE.replace("URL", api.url), tmp_path_factory.mktemp("mc")) as s:
        yield s


def soa(zone: str, serial: int) -> list[str]:
    return [f"{zone} 5 IN SOA ns.dns.{zone} hostmaster.{zone} {serial} 7200 1800 86400 5"]


def a(name: str, *ips: str, rtype: str = "A") -> list[str]:
    return [f"{name} 5 IN {rtype} {ip}" for ip in ips]


def srv(name: str, *rows: tuple[int, int, str]) -> list[str]:
    return [f"{name} 5 IN SRV 0 {w} {port} {target}" for w, port, target in rows]


def serial(s: Server, zone: str, port: int | None = None) -> int:
    return int(s.query(zone, "SOA", port=port).answer[0][0].serial)


def test_clusterset_names(ours: Server) -> None:
    neg = soa("clusterset.local.", serial(ours, "clusterset.local."))
    e, w = "east." + DB, "west." + DB
    check(ours, [
        Case(WEB, answer=a(WEB, "10.100.0.1")),
        Case(WEB, "AAAA", answer=a(WEB, "fd00::1", rtype="AAAA")),
        # one SRV per port and IP (the same record twice, once per IP: one on the wire as
        # in CoreDNS), each target the import's name, weight 100/4
        Case(WEB, "SRV", answer=srv(WEB, (25, 80, WEB), (25, 53, WEB)), extra=None),
        Case(f"_http._tcp.{WEB}", "SRV", answer=srv(f"_http._tcp.{WEB}", (50, 80, WEB)),
             extra=[*a(WEB, "10.100.0.1"), *a(WEB, "fd00::1", rtype="AAAA")]),
        Case(f"_dns._udp.{WEB}", "SRV", answer=None),
        Case(f"_http._udp.{WEB}", "SRV", rcode=NX, ns=neg),  # no such port
        Case(WEB, "TXT", answer=[], ns=neg),
        Case(WEB, "MX", answer=[], ns=neg),
        # an endpoint name of a ClusterSetIP import: ENDPOINT.CLUSTER.…
        Case(f"w0.east.{WEB}", answer=a(f"w0.east.{WEB}", "10.1.1.1")),
        # Headless: the ready addresses of every cluster's slices
        Case(DB, answer=a(DB, "10.1.0.1", "10.1.0.2", "10.2.0.1")),
        Case(DB, "AAAA", answer=[], ns=neg),
        Case(DB, "SRV", answer=srv(DB, (33, 80, "db-0." + e), (33, 80, "10-1-0-2." + e),
                                   (33, 80, "10-2-0-1." + w)),
             extra=[*a("db-0." + e, "10.1.0.1"), *a("10-1-0-2." + e, "10.1.0.2"),
                    *a("10-2-0-1." + w, "10.2.0.1")]),
        Case(f"db-0.east.{DB}", answer=a(f"db-0.east.{DB}", "10.1.0.1")),
        Case(f"DB-0.East.{DB}", answer=a(f"DB-0.East.{DB}", "10.1.0.1")),
        Case(f"10-1-0-2.east.{DB}", answer=a(f"10-1-0-2.east.{DB}", "10.1.0.2")),
        Case(f"10-1-0-3.east.{DB}", rcode=NX, ns=neg),  # not ready
        Case(f"db-0.west.{DB}", rcode=NX, ns=neg),  # wrong cluster
        Case(f"db-0.{DB}", rcode=NX, ns=neg),  # no cluster label in the name
        Case(f"x.y.z.{DB}", rcode=NX, ns=neg),
        Case("noports.prod.svc.clusterset.local.", rcode=NX, ns=neg),  # as CoreDNS
        Case("nosuch.prod.svc.clusterset.local.", rcode=NX, ns=neg),
        Case("web.nons.svc.clusterset.local.", rcode=NX, ns=neg),
        Case("prod.svc.clusterset.local.", answer=[], ns=neg),
        # cluster.local is untouched: the Service, not the import
        Case("web.prod.svc.cluster.local.", answer=a("web.prod.svc.cluster.local.", "10.96.0.5")),
    ])  # fmt: skip


def test_option_off_serves_services_not_imports(ours: Server) -> None:
    p1 = ours.ports["P1"]
    r = ours.query(WEB, "A", port=p1)
    assert rrs(r.answer) == a(WEB, "10.96.0.5")  # the Service, as in any cluster zone
    for name in (DB, f"db-0.east.{DB}", "noports.prod.svc.clusterset.local."):
        assert ours.query(name, "A", port=p1).rcode() == NX, name


def test_same_answers_as_coredns(ours: Server, api: ApiServer, tmp_path: Path) -> None:
    if binary() is None:
        pytest.skip("the reference CoreDNS binary is not available")
    same_as_coredns(ours, COREFILE.replace("URL", api.url), tmp_path, QUESTIONS, ("PORT", "P1"))


def until(fn: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.1)


def test_changes_are_followed(tmp_path: Path) -> None:
    """Imports and slices added, changed and removed show in answers (fast path included).
    SOA serials as CoreDNS's informer handlers: adding or deleting an import moves the
    cluster zones' serial, only changing one moves the multicluster zone's."""
    name = "cache.prod.svc.clusterset.local."
    with ApiServer() as api:
        api.apply(namespace("prod"))
        with serve(COREFILE.replace("URL", api.url), tmp_path) as s:
            assert s.query(name, "A").rcode() == NX
            assert s.query(name, "A").rcode() == NX  # a second time: a fast-path replay
            assert serial(s, "clusterset.local.") == 0
            api.apply(service_import("cache", "prod", ["10.100.0.7"]))
            until(lambda: rrs(s.query(name, "A").answer) == a(name, "10.100.0.7"))
            assert serial(s, "cluster.local.") > 0
            assert serial(s, "clusterset.local.") == 0  # an add is not a change, as CoreDNS
            api.apply(service_import("cache", "prod", headless=True))
            until(lambda: s.query(name, "A").rcode() == NX)  # headless, no endpoints yet
            assert serial(s, "clusterset.local.") > 0
            api.apply(mc_slice("cache-a", "prod", "cache", "a", [("10.3.0.1", True)]))
            until(lambda: rrs(s.query(name, "A").answer) == a(name, "10.3.0.1"))
            api.apply(mc_slice("cache-a", "prod", "cache", "a", [("10.3.0.2", True)]))
            until(lambda: rrs(s.query(name, "A").answer) == a(name, "10.3.0.2"))
            api.delete("ServiceImport", "prod", "cache")
            until(lambda: s.query(name, "A").rcode() == NX)


def manifest_docs() -> str:
    versions = {
        "EndpointSlice": "discovery.k8s.io/v1",
        "ServiceImport": "multicluster.x-k8s.io/v1alpha1",
    }
    return "\n".join(
        json.dumps({"apiVersion": versions.get(o["kind"], "v1"), **o}) for o in objects()
    )


def test_imports_from_manifests(tmp_path: Path) -> None:
    f = tmp_path / "objects.json"
    f.write_text(manifest_docs())
    cf = (
        ".:@PORT@ {\n    bind 127.0.0.1\n    kubernetes cluster.local clusterset.local {\n"
        f"        manifests {f}\n        multicluster clusterset.local\n    }}\n}}\n"
        ".:@P1@ {\n    bind 127.0.0.1\n    kubernetes cluster.local clusterset.local {\n"
        f"        manifests {f}\n    }}\n}}\n"
    )
    with serve(cf, tmp_path) as s:
        check(s, [
            Case(WEB, answer=a(WEB, "10.100.0.1")),
            Case(DB, answer=a(DB, "10.1.0.1", "10.1.0.2", "10.2.0.1")),
            Case(f"db-0.east.{DB}", answer=a(f"db-0.east.{DB}", "10.1.0.1")),
            Case("noports.prod.svc.clusterset.local.", rcode=NX, ns=None),
        ])  # fmt: skip
        assert rrs(s.query(WEB, "A", port=s.ports["P1"]).answer) == a(WEB, "10.96.0.5")
        assert s.query(DB, "A", port=s.ports["P1"]).rcode() == NX
        # a file change is followed
        f.write_text(manifest_docs().replace("10.100.0.1", "10.100.0.2"))
        until(lambda: rrs(s.query(WEB, "A").answer) == a(WEB, "10.100.0.2"))
        assert (
            "1 namespaces, 3 service imports, 3 multicluster endpoint slices from 1 files "
            "(0 errors, 0 documents of unknown kinds)" in s.output
        )


def test_setup_errors(tmp_path: Path) -> None:
    setup_error(
        tmp_path,
        "kubernetes cluster.local {\n multicluster clusterset.local\n}\n",
        3,
        "kubernetes: is not authoritative for the multicluster zone clusterset.local. "
        "(authoritative zones: [cluster.local.])",
    )
    setup_error(
        tmp_path,
        "kubernetes cluster.local clusterset.local {\n multicluster clusterset.local other.local\n}\n",
        3,
        "kubernetes: is not authoritative for the multicluster zone other.local. "
        "(authoritative zones: [cluster.local. clusterset.local.])",
    )


def _role(tmp_path: Path, corefile: str) -> list[dict[str, list[str]]]:
    f = tmp_path / "Corefile"
    f.write_text(corefile)
    r = run_cli("manifests", "--cluster-ip", "10.96.0.10", "--corefile", str(f))
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    rules: list[dict[str, list[str]]] = next(d for d in docs if d["kind"] == "ClusterRole")["rules"]
    return rules


MC_RULE = {
    "apiGroups": ["multicluster.x-k8s.io"],
    "resources": ["serviceimports"],
    "verbs": ["list", "watch"],
}


def test_rbac_only_with_multicluster(tmp_path: Path) -> None:
    base = ".:53 {\n    health\n    ready\n    kubernetes cluster.local clusterset.local {\n"
    with_mc = _role(tmp_path, base + "        multicluster clusterset.local\n    }\n}\n")
    assert with_mc.count(MC_RULE) == 1
    without = _role(tmp_path, base + "    }\n}\n")
    assert MC_RULE not in without
    assert with_mc == [*without, MC_RULE]


OPTIONS_COREFILE = """clusterset.local:@PORT@ {
    bind 127.0.0.1
    kubernetes clusterset.local {
        endpoint URL
        multicluster clusterset.local
        ignore empty_service
        endpoint_pod_names
        namespace_labels team=a
    }
}
"""


def options_objects() -> list[Obj]:
    """`empty` has no ready address; `pods`'s slice has pod names and no cluster label;
    `unlabelled` lacks the team label that `namespace_labels` asks of imports (CoreDNS)."""
    pods = mc_slice("pods-x", "prod", "pods", "", [("10.4.0.1", True), ("10.4.0.2", False)])
    del pods["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"]
    pods["endpoints"][0]["targetRef"] = {"kind": "Pod", "name": "pods-abc"}
    team = {"team": "a"}
    return [
        namespace("prod", team),
        service_import("empty", "prod", ["10.100.1.1"], labels=team),
        mc_slice("empty-x", "prod", "empty", "c1", [("10.4.1.1", False)]),
        service_import("full", "prod", ["10.100.1.2"], labels=team),
        mc_slice("full-x", "prod", "full", "c1", [("10.4.1.2", True)]),
        service_import("pods", "prod", headless=True, labels=team),
        pods,
        service_import("unlabelled", "prod", ["10.100.1.3"]),
    ]


OPTION_QUESTIONS = [
    ("empty.prod.svc.clusterset.local.", "A"),
    ("full.prod.svc.clusterset.local.", "A"),
    ("pods.prod.svc.clusterset.local.", "A"),
    ("pods-abc.pods.prod.svc.clusterset.local.", "A"),
    ("unlabelled.prod.svc.clusterset.local.", "A"),
]


def test_options_with_imports(tmp_path: Path) -> None:
    """ignore empty_service, endpoint_pod_names, a slice without cluster label and the
    namespace_labels selector on imports: written out, and the same as CoreDNS's."""
    p = "pods.prod.svc.clusterset.local."
    with ApiServer() as api:
        api.apply(*options_objects())
        (tmp_path / "ours").mkdir()
        with serve(OPTIONS_COREFILE.replace("URL", api.url), tmp_path / "ours") as s:
            check(s, [
                Case("empty.prod.svc.clusterset.local.", rcode=NX, ns=None),
                Case("full.prod.svc.clusterset.local.",
                     answer=a("full.prod.svc.clusterset.local.", "10.100.1.2")),
                Case(p, answer=a(p, "10.4.0.1")),
                Case(p, "SRV", answer=srv(p, (100, 80, f"pods-abc.{p}")), extra=a(f"pods-abc.{p}", "10.4.0.1")),
                Case(f"pods-abc.{p}", answer=a(f"pods-abc.{p}", "10.4.0.1")),
                Case("unlabelled.prod.svc.clusterset.local.", rcode=NX, ns=None),
            ])  # fmt: skip
            # `pods`'s SRV is left out below: CoreDNS builds its target with an empty label
            # for the missing cluster, cannot pack the reply and sends none at all.
            if binary() is None:
                pytest.skip("the reference CoreDNS binary is not available")
            with serve_coredns(OPTIONS_COREFILE.replace("URL", api.url), tmp_path / "ref") as ref:
                for name, qtype in OPTION_QUESTIONS:
                    mine, theirs = s.query(name, qtype), ref.query(name, qtype)
                    assert mine.rcode() == theirs.rcode(), (name, qtype)
                    assert rrs(mine.answer) == rrs(theirs.answer), (name, qtype)


XFR_COREFILE = """clusterset.local:@PORT@ {
    bind 127.0.0.1
    kubernetes clusterset.local {
        endpoint URL
        multicluster clusterset.local
    }
    transfer {
        to *
    }
}
"""


def _zone_body(port: int) -> list[str]:
    msgs = transfer(port, dns.message.make_query("clusterset.local.", "AXFR"))
    lines = [" ".join(x.split()) for x in xfr_records(msgs)]
    assert lines[0].startswith("clusterset.local. 5 IN SOA ns.dns.clusterset.local.")
    return [x for x in lines[1:-1] if " NS " not in x and not x.startswith("ns.dns.")]


def test_zone_transfer_of_imports(api: ApiServer, tmp_path: Path) -> None:
    """AXFR of a multicluster zone lists the imports (CoreDNS's transferMultiClusterServices:
    Headless endpoint names without the cluster label), not the Services."""
    (tmp_path / "ours").mkdir()
    with serve(XFR_COREFILE.replace("URL", api.url), tmp_path / "ours") as s:
        body = _zone_body(s.port)
        assert body[:3] == [
            f"{DB} 5 IN A 10.1.0.1",
            f"db-0.{DB} 5 IN A 10.1.0.1",
            f"_http._tcp.{DB} 5 IN SRV 0 50 80 db-0.{DB}",
        ]
        assert f"{WEB} 5 IN A 10.100.0.1" in body
        assert f"_dns._udp.{WEB} 5 IN SRV 0 100 53 {WEB}" in body
        assert "noports.prod.svc.clusterset.local. 5 IN A 10.100.0.9" in body
        assert not any("10.96.0.5" in x for x in body)  # the Service is not in this zone
        if binary() is None:
            pytest.skip("the reference CoreDNS binary is not available")
        with serve_coredns(XFR_COREFILE.replace("URL", api.url), tmp_path / "ref") as ref:
            # The same records; CoreDNS's order of endpoints from two clusters follows its
            # informer's maps, which vary from run to run.
            assert sorted(body) == sorted(_zone_body(ref.port))


def test_imports_are_fetched_only_with_the_option(tmp_path: Path) -> None:
    """Without `multicluster` nothing of the MCS API is asked for; with it, ServiceImports are
    listed and watched cluster-wide and the second EndpointSlice stream asks for the
    multicluster label (after `labels`, as CoreDNS adds it to that selector)."""
    plain = "clusterset.local:@PORT@ {\n bind 127.0.0.1\n kubernetes {\n  endpoint URL\n }\n}\n"
    with_mc = (
        "clusterset.local:@PORT@ {\n bind 127.0.0.1\n kubernetes {\n  endpoint URL\n"
        "  labels app=x\n  multicluster clusterset.local\n }\n}\n"
    )
    with ApiServer() as api:
        (tmp_path / "plain").mkdir()
        with serve(plain.replace("URL", api.url), tmp_path / "plain"):
            pass
        assert api.requests("serviceimports") == []
        assert all("multicluster" not in s.query.get("labelSelector", "") for s in api.requests())
        (tmp_path / "mc").mkdir()
        first = len(api.requests("endpointslices"))
        with serve(with_mc.replace("URL", api.url), tmp_path / "mc"):
            until(lambda: len(api.requests("serviceimports", watch=True)) > 0)
        imports = api.requests("serviceimports")
        assert {s.path for s in imports} == {"/apis/multicluster.x-k8s.io/v1alpha1/serviceimports"}
        later = api.requests("endpointslices")[first:]
        selectors = {s.query.get("labelSelector", "") for s in later}
        assert selectors == {"app=x", "app=x,multicluster.kubernetes.io/service-name"}


def test_snapshot_keeps_only_its_kinds(tmp_path: Path) -> None:
    """With `snapshot`, imports are not written (nor namespaces under their name)."""
    snap = tmp_path / "k8s.snap"
    cf = (
        "clusterset.local:@PORT@ {\n bind 127.0.0.1\n kubernetes {\n  endpoint URL\n"
        f"  multicluster clusterset.local\n  snapshot {snap} 1s\n }}\n}}\n"
    )
    with ApiServer() as api:
        api.apply(*objects())
        with serve(cf.replace("URL", api.url), tmp_path) as s:
            assert rrs(s.query(WEB, "A").answer) == a(WEB, "10.100.0.1")
            until(snap.exists)
    r = run_cli("snapshot", "inspect", str(snap))
    assert r.returncode == 0, r.stderr
    assert "import" not in r.stdout.lower(), r.stdout
    assert "namespaces: 1 (" in r.stdout, r.stdout
