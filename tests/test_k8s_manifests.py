"""`manifests PATH…` (offline mode): files → Store in-process, then the real server answering.

The in-process tests drive ManifestSource against a Store directly, so each format rule and
each error path is checked on the records themselves; the server tests check that the same
files are served over DNS and that edits are picked up within 2 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from clusterdns.plugins.kubernetes import records
from clusterdns.plugins.kubernetes.manifest_files import _yaml_chunks, changed, scan
from clusterdns.plugins.kubernetes.manifests import ManifestSource
from clusterdns.plugins.kubernetes.source import SourceOptions
from clusterdns.plugins.kubernetes.store import KINDS, Store
from tests.harness import Case, Server, check, metric

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cluster"
ALL = frozenset(KINDS)
T = TypeVar("T")


def svc(name: str, ns: str | None = "demo", ip: str = "10.96.0.50", **extra: str) -> str:
    """A Service document in YAML (no `---`)."""
    ns_line = f"\n  namespace: {ns}" if ns else ""
    labels = "".join(f"\n    {k}: {v!r}" for k, v in extra.items())
    label_block = f"\n  labels:{labels}" if labels else ""
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}{ns_line}{label_block}\n"
        f"spec:\n  clusterIP: {ip}\n  ports:\n  - name: http\n    port: 80\n"
    )


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def load(paths: list[Path], options: SourceOptions | None = None) -> Store:
    """Load once through start()/stop() and return the filled store."""
    store = Store()

    async def go() -> Store:
        src = ManifestSource([str(p) for p in paths], store, options or SourceOptions(ALL))
        await src.start()
        assert src.synced()
        await src.stop()
        return store

    return run(go)


def service_names(store: Store) -> set[str]:
    return {f"{ns}/{name}" for ns, name in store.services}


# ---- formats -----------------------------------------------------------------------------


def test_multi_document_yaml_and_default_namespace(tmp_path: Path) -> None:
    f = tmp_path / "svcs.yaml"
    f.write_text(
        "---\n# comment only before\n"
        + svc("a")
        + "---\n"
        + svc("b", ns=None, ip="10.96.0.51")
        + "...\n---\n\n---\n"  # an end marker and an empty document are fine
        + svc("c", ip="10.96.0.52")
    )
    store = load([f])
    assert service_names(store) == {"demo/a", "default/b", "demo/c"}
    assert [s.name for s in store.services_by_ip["10.96.0.51"]] == ["b"]
    # implicit namespaces for the objects' namespaces, with the API server's name label
    assert set(store.namespaces) == {"demo", "default"}
    assert dict(store.namespaces["demo"].labels) == {"kubernetes.io/metadata.name": "demo"}
    assert {"Service", "Endpoints", "Pod", "Namespace"} <= store.synced


def test_lists_json_and_typed_items(tmp_path: Path) -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "n1"},
             "spec": {"clusterIP": "10.96.1.1"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
        ],
    }  # fmt: skip
    typed = {  # as the API returns a list: items without kind/apiVersion
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [
            {"metadata": {"name": "p", "namespace": "n2"}, "status": {"podIP": "10.244.0.9"}}
        ],
    }
    f = tmp_path / "objs.json"
    f.write_text(json.dumps(listed, indent=1) + "\n" + json.dumps(typed))  # a JSON stream
    g = tmp_path / "list.yml"
    g.write_text(
        "apiVersion: v1\nkind: ServiceList\nitems:\n"
        "- metadata: {name: y, namespace: n1}\n  spec: {clusterIP: 10.96.1.2}\n"
    )
    store = load([f, g])
    assert service_names(store) == {"n1/x", "n1/y"}
    assert store.pods[("n2", "p")].ips == ("10.244.0.9",)


def test_directory_recursion_sorted_hidden_skipped(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "deep").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.yaml").write_text(svc("a"))
    (tmp_path / "b" / "deep" / "c.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "c", "namespace": "demo"}, "spec": {"clusterIP": "None"}})
    )  # fmt: skip
    (tmp_path / "b" / "notes.txt").write_text("not: [a manifest")
    (tmp_path / ".hidden.yaml").write_text(svc("hidden"))
    (tmp_path / ".git" / "x.yaml").write_text(svc("git"))
    os.symlink(tmp_path, tmp_path / "b" / "loop")  # a symlink loop is walked once
    store = load([tmp_path])
    assert service_names(store) == {"demo/a", "demo/c"}
    assert store.services[("demo", "c")].headless


def test_other_groups_and_kinds_ignored(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: kn}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n" + svc("real")
    )
    store = load([f])
    assert service_names(store) == {"demo/real"}


def test_unknown_kinds_and_versions_warned_with_file_document_and_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A kind Kubernetes does not have is what the API server would refuse: say so."""
    f = tmp_path / "x.yaml"
    f.write_text(
        svc("real")
        + "---\napiVersion: v1\nkind: Servise\nmetadata: {name: typo, namespace: demo}\n"  # 2
        + "---\napiVersion: v2\nkind: Service\nmetadata: {name: v2, namespace: demo}\n"  # 3
        + "---\napiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n"  # 4: apps/v1 is
        + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"  # 5: fine
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"  # 6: fine
        + "---\napiVersion: example.com/v1\nkind: Servise\nmetadata: {name: crd}\n"  # 7: CRD
        + "---\napiVersion: v1\nkind: ServiseList\nitems:\n- metadata: {name: i}\n"  # 8
    )
    j = tmp_path / "y.json"
    j.write_text('{"apiVersion": "discovery.k8s.io/v2", "kind": "EndpointSlice"}')
    with caplog.at_level(logging.DEBUG, "clusterdns.plugins.kubernetes"):
        store = load([f, j])
    assert service_names(store) == {"demo/real"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    p = "plugin/kubernetes: manifests: "
    assert warnings == [
        f"{p}{f}: document 2: unknown kind Servise (apiVersion v1): the core API group "
        "(apiVersion v1) has no kind Servise; document ignored",
        f"{p}{f}: document 3: unknown kind Service (apiVersion v2): Service has no apiVersion v2 "
        "(it has v1); document ignored",
        f"{p}{f}: document 4: unknown kind Deployment (apiVersion v1): the core API group "
        "(apiVersion v1) has no kind Deployment; document ignored",
        f"{p}{f}: document 8, item 1: unknown kind Servise (apiVersion v1): the core API group "
        "(apiVersion v1) has no kind Servise; document ignored",
        f"{p}{j}: document 1: unknown kind EndpointSlice (apiVersion discovery.k8s.io/v2): "
        "EndpointSlice has no apiVersion discovery.k8s.io/v2 (it has discovery.k8s.io/v1, "
        "discovery.k8s.io/v1beta1); document ignored",
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("document 5: apps/v1 Deployment ignored (not served)" in m for m in debug)
    assert any("document 7: example.com/v1 Servise ignored (a custom resource)" in m for m in debug)


def test_yaml_chunks_keep_line_numbers() -> None:
    text = "%YAML 1.1\n---\na: 1\n--- {b: 2}\n...\n# tail\nc: 3\n"
    chunks = list(_yaml_chunks(text))
    assert [line for line, _ in chunks] == [1, 4, 5]  # the third starts on the `...` line
    assert chunks[1][1].startswith("--- {b: 2}")


# ---- endpoints ---------------------------------------------------------------------------

LEGACY = """\
apiVersion: v1
kind: Endpoints
metadata: {name: old, namespace: demo}
subsets:
- addresses:
  - {ip: 10.244.3.1, hostname: old-0, nodeName: n1, targetRef: {kind: Pod, name: old-0}}
  notReadyAddresses:
  - {ip: 10.244.3.2}
  ports: [{name: http, port: 8080, protocol: TCP}]
- addresses: [{ip: "fd00:10:244::3"}]
  ports: [{name: http, port: 8080}]
"""

SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: demo
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
endpoints:
- addresses: [{ip}]
  conditions: {{ready: true}}
ports: [{{name: http, port: 8080}}]
"""


def test_legacy_endpoints_converted_like_the_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "_KEEP_TARGETS", [True])  # as `endpoint_pod_names` sets it
    f = tmp_path / "ep.yaml"
    f.write_text(svc("old", ip="None") + "---\n" + LEGACY)
    store = load([f])
    eps = store.service_endpoints("demo", "old")
    addrs = {(a.ip, a.ready, a.hostname, a.target) for e in eps for a in e.addresses}
    assert addrs == {
        ("10.244.3.1", True, "old-0", "old-0"),
        ("10.244.3.2", False, "", ""),
        ("fd00:10:244::3", True, "", ""),
    }
    assert len(eps) == 2  # one per subset


def test_slices_win_over_legacy_endpoints(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "ep.yaml"
    f.write_text(
        LEGACY
        + "---\n"
        + SLICE.format(name="old-abcde", service="old", ip="10.244.9.9")
        # skip-mirror: never mirrored even without slices
        + "---\napiVersion: v1\nkind: Endpoints\nmetadata:\n  name: skip\n  namespace: demo\n"
        "  labels: {endpointslice.kubernetes.io/skip-mirror: 'true'}\n"
        "subsets: [{addresses: [{ip: 10.244.9.8}]}]\n"
    )
    store = load([f])
    eps = store.service_endpoints("demo", "old")
    assert [a.ip for e in eps for a in e.addresses] == ["10.244.9.9"]
    assert store.service_endpoints("demo", "skip") == []


# ---- errors ------------------------------------------------------------------------------


def test_malformed_documents_skipped_with_file_and_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "mixed.yaml"
    f.write_text(
        svc("one", ip="10.96.0.61")
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: broken\n"  # 2: syntax
        + "---\n"
        + svc("three", ip="10.96.0.63")
        + "---\n- just\n- a list\n"  # 4: not a mapping
        + "---\napiVersion: v1\nmetadata: {name: nokind}\n"  # 5: no kind
        + "---\n"
        + svc("six", ip="not-an-ip")  # 6: converter rejects
        + "---\n"
        + svc("seven", ip="10.96.0.67")
    )
    j = tmp_path / "bad.json"
    j.write_text(
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}, "spec": {}}\n{'
    )
    with caplog.at_level(logging.ERROR, "clusterdns.plugins.kubernetes"):
        store = load([f, j, tmp_path / "missing.yaml"])
    assert service_names(store) == {"demo/one", "demo/three", "demo/seven", "default/j"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    expect = [
        (f"{f}: document 2: YAML syntax error at line", "flow mapping at line 14"),
        (f"{f}: document 4: not a Kubernetes object (a list)", ""),
        (f"{f}: document 5: kind is missing", ""),
        (f"{f}: document 6 (Service demo/six): spec.clusterIPs: 'not-an-ip'", ""),
        (f"{j}: document 2: JSON syntax error", ""),
        (f"{tmp_path / 'missing.yaml'}: no such file or directory", ""),
    ]
    assert len(errors) == len(expect), errors
    for msg, (prefix, extra) in zip(errors, expect, strict=True):
        assert msg.startswith("plugin/kubernetes: manifests: " + prefix), msg
        assert extra in msg


# ---- filters -----------------------------------------------------------------------------


def test_namespaces_filter(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other, labels: {a: b}}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo, labels: {a: b}}\n---\n"
        + svc("in")
        + "---\n"
        + svc("out", ns="other", ip="10.96.0.2")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: other}\n"
        "status: {podIP: 10.244.0.1}\n"
    )
    store = load([f], SourceOptions(ALL, namespaces=("demo",)))
    assert service_names(store) == {"demo/in"}
    assert store.pods == {}
    assert set(store.namespaces) == {"demo"}
    assert dict(store.namespaces["demo"].labels) == {
        "a": "b",
        "kubernetes.io/metadata.name": "demo",
    }


def test_label_selector_applied_locally(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(
        svc("web", app="web")
        + "---\n"
        + svc("db", ip="10.96.0.3", app="db")
        + "---\n"
        + SLICE.format(name="web-1", service="web", ip="10.244.0.1").replace(
            "labels: {", "labels: {app: web, "
        )
        + "---\n"
        + SLICE.format(name="db-1", service="db", ip="10.244.0.2")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: web}}\n"
        "status: {podIP: 10.244.0.1}\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\nstatus: {podIP: 10.244.0.2}\n"
    )
    store = load([f], SourceOptions(ALL, label_selector="app in (web)"))
    assert service_names(store) == {"demo/web"}
    assert set(store.endpoints) == {("demo", "web-1")}
    assert set(store.pods) == {("default", "p")}
    assert set(store.namespaces) == {"demo", "default"}  # namespaces are not label-filtered


def test_only_wanted_kinds_replaced(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(svc("a") + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {}\n")
    store = load([f], SourceOptions(frozenset({"Service", "Endpoints"})))
    assert store.synced == {"Service", "Endpoints"}
    assert store.pods == {} and store.namespaces == {}


def test_finished_pods_left_out(tmp_path: Path) -> None:
    f = tmp_path / "pods.yaml"
    docs = [
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {phase.lower()}}}\n"
        f"status: {{phase: {phase}, podIP: 10.244.0.{i}}}\n"
        for i, phase in enumerate(["Running", "Pending", "Succeeded", "Failed", "Unknown"], 1)
    ]
    f.write_text("---\n".join(docs))
    store = load([f])
    assert {name for _, name in store.pods} == {"running", "pending"}


# ---- watching ----------------------------------------------------------------------------


def test_scan_sees_same_size_rewrite_within_a_tick(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text(svc("a", ip="10.96.0.5"))
    before = scan([str(tmp_path)])
    st = f.stat()
    f.write_text(svc("a", ip="10.96.0.6"))  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    after = scan([str(tmp_path)])
    assert changed(before, after)
    assert not changed(after, scan([str(tmp_path)]))


def test_watch_reloads_edits_additions_and_removals(tmp_path: Path) -> None:
    store = Store()
    (tmp_path / "a.yaml").write_text(svc("a", ip="10.96.0.5"))

    async def until(cond: Callable[[], bool], what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < 2.0:
            if cond():
                return time.monotonic() - start
            await asyncio.sleep(0.02)
        raise AssertionError(f"not within 2 s: {what}")

    async def go() -> None:
        src = ManifestSource([str(tmp_path)], store, SourceOptions(ALL))
        await src.start()
        try:
            gen = store.generation
            await asyncio.sleep(0.7)  # an idle poll or two does not reload
            assert store.generation == gen
            (tmp_path / "a.yaml").write_text(svc("a", ip="10.96.0.6"))
            await until(lambda: "10.96.0.6" in store.services_by_ip, "edit")
            assert "10.96.0.5" not in store.services_by_ip
            (tmp_path / "sub").mkdir()
            (tmp_path / "sub" / "b.yaml").write_text(svc("b", ip="10.96.0.7"))
            await until(lambda: ("demo", "b") in store.services, "new file in a new directory")
            (tmp_path / "a.yaml").unlink()
            await until(lambda: ("demo", "a") not in store.services, "removed file")
            assert service_names(store) == {"demo/b"}
        finally:
            await src.stop()

    run(go)


def test_configmap_volume_swap(tmp_path: Path) -> None:
    """A ConfigMap volume: `x.yaml -> ..data/x.yaml`, `..data -> ..<ts>`, swapped by rename."""

    def version(n: int, ip: str) -> None:
        d = tmp_path / f"..v{n}"
        d.mkdir()
        (d / "x.yaml").write_text(svc("x", ip=ip))
        os.symlink(d.name, tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    version(1, "10.96.0.11")
    os.symlink("..data/x.yaml", tmp_path / "x.yaml")
    store = Store()

    async def go() -> None:
        src = ManifestSource([str(tmp_path)], store, SourceOptions(ALL))
        await src.start()
        try:
            assert list(store.services_by_ip) == ["10.96.0.11"]  # read once, not per directory
            version(2, "10.96.0.12")
            deadline = time.monotonic() + 2
            while "10.96.0.12" not in store.services_by_ip:
                assert time.monotonic() < deadline, "swap not seen within 2 s"
                await asyncio.sleep(0.02)
            assert list(store.services_by_ip) == ["10.96.0.12"]
        finally:
            await src.stop()

    run(go)


# ---- the example cluster -----------------------------------------------------------------


def test_example_cluster_loads_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "clusterdns.plugins.kubernetes"):
        store = load([EXAMPLE])
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert service_names(store) == {
        "default/kubernetes", "kube-system/kube-dns", "demo/web", "demo/db", "demo/search",
    }  # fmt: skip
    assert set(store.namespaces) == {"default", "kube-system", "demo"}
    assert store.services[("demo", "web")].cluster_ips == ("10.96.100.10", "fd00:10:96::100:a")
    db = [a for e in store.service_endpoints("demo", "db") for a in e.addresses]
    assert {(a.hostname, a.ready) for a in db} == {("db-0", True), ("db-1", True), ("db-2", False)}
    assert "manifests loaded: 5 services, 5 endpoint slices, 7 pods, 3 namespaces" in caplog.text


# ---- the real server ---------------------------------------------------------------------

NX = 3  # dns.rcode.NXDOMAIN, without importing dnspython's enum for one constant


def corefile(path: Path | str, *options: str) -> str:
    lines = "".join(f"        {o}\n" for o in options)
    return (
        ".:@PORT@ {\n    bind 127.0.0.1\n"
        "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
        f"        manifests {path}\n{lines}    }}\n}}\n"
    )


def a(name: str, *ips: str) -> list[str]:
    kind = "AAAA" if ips and ":" in ips[0] else "A"
    return [f"{name}.svc.cluster.local. 5 IN {kind} {ip}" for ip in ips]


def answers(srv: Server, name: str, rdtype: str = "A") -> set[str]:
    return {rr.to_text() for rrset in srv.query(name, rdtype).answer for rr in rrset}


def test_server_example_cluster(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(corefile(EXAMPLE, "pods verified"))
    srv.wait_output(r"manifests loaded: 5 services, 5 endpoint slices, 7 pods, 3 namespaces")
    assert "[ERROR]" not in srv.output and "[WARNING]" not in srv.output
    cases = [
        Case("kubernetes.default.svc.cluster.local.", answer=a("kubernetes.default", "10.96.0.1")),
        Case("kube-dns.kube-system.svc.cluster.local.",
             answer=a("kube-dns.kube-system", "10.96.0.10")),
        Case("web.demo.svc.cluster.local.", answer=a("web.demo", "10.96.100.10"), proto="tcp"),
        Case("web.demo.svc.cluster.local.", "AAAA", answer=a("web.demo", "fd00:10:96::100:a")),
        # headless: the ready endpoints only (db-2 is not ready)
        Case("db.demo.svc.cluster.local.", answer=a("db.demo", "10.244.1.20", "10.244.2.20")),
        Case("db-1.db.demo.svc.cluster.local.", answer=a("db-1.db.demo", "10.244.2.20")),
        Case("search.demo.svc.cluster.local.", "CNAME",
             answer=["search.demo.svc.cluster.local. 5 IN CNAME www.example.com."]),
        Case("10.0.96.10.in-addr.arpa.", "PTR",
             answer=["10.0.96.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.cluster.local."]),
        Case("10-244-0-3.kube-system.pod.cluster.local.",
             answer=["10-244-0-3.kube-system.pod.cluster.local. 5 IN A 10.244.0.3"]),
        Case("nope.demo.svc.cluster.local.", rcode=NX, answer=[]),
    ]  # fmt: skip
    check(srv, cases)


def test_server_formats_and_errors(tmp_path: Path, server_factory: Callable[..., Server]) -> None:
    d = tmp_path / "m"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "multi.yaml").write_text(
        svc("one", ip="10.96.0.61")
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: broken\n"
        + "---\n"
        + svc("three", ip="10.96.0.63")
    )
    (d / "sub" / "list.json").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ServiceList",
                "items": [
                    {
                        "metadata": {"name": "four", "namespace": "demo"},
                        "spec": {"clusterIP": "10.96.0.64"},
                    },
                ],
            }
        )
    )
    (d / "sub" / "deeper" / "legacy.yml").write_text(
        svc("old", ip="None") + "---\n" + LEGACY + "---\n" + svc("bad", ip="10.96.0.999")
    )
    srv = server_factory(corefile(d))
    srv.wait_output(
        r"\[ERROR\] plugin/kubernetes: manifests: \S*multi\.yaml: document 2: YAML syntax error"
    )
    srv.wait_output(
        r"\[ERROR\] plugin/kubernetes: manifests: \S*legacy\.yml: document 3 \(Service demo/bad\)"
    )
    check(srv, [
        Case("one.demo.svc.cluster.local.", answer=a("one.demo", "10.96.0.61")),
        Case("three.demo.svc.cluster.local.", answer=a("three.demo", "10.96.0.63")),
        Case("four.demo.svc.cluster.local.", answer=a("four.demo", "10.96.0.64"), proto="tcp"),
        Case("broken.demo.svc.cluster.local.", rcode=NX, answer=[]),
        Case("bad.demo.svc.cluster.local.", rcode=NX, answer=[]),
        # legacy Endpoints: ready addresses (both families), not the notReadyAddresses one
        Case("old.demo.svc.cluster.local.", answer=a("old.demo", "10.244.3.1")),
        Case("old.demo.svc.cluster.local.", "AAAA", answer=a("old.demo", "fd00:10:244::3")),
        Case("old-0.old.demo.svc.cluster.local.", answer=a("old-0.old.demo", "10.244.3.1")),
    ])  # fmt: skip


def wait_answer(srv: Server, name: str, want: set[str], limit: float = 2.0) -> float:
    """Seconds until `name` answers exactly `want`; fails past `limit` (the 2 s promise)."""
    start = time.monotonic()
    while True:
        got = answers(srv, name)
        elapsed = time.monotonic() - start
        if got == want:
            return elapsed
        assert elapsed < limit, f"{name}: still {got} after {elapsed:.1f}s, want {want}"
        time.sleep(0.05)


def test_server_follows_file_changes(tmp_path: Path, server_factory: Callable[..., Server]) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "live.yaml").write_text(svc("live", ip="10.96.0.80"))
    srv = server_factory(corefile("m"))  # relative to the Corefile's directory
    check(srv, [Case("live.demo.svc.cluster.local.", answer=a("live.demo", "10.96.0.80"))])

    (d / "live.yaml").write_text(svc("live", ip="10.96.0.81"))
    wait_answer(srv, "live.demo.svc.cluster.local.", {"10.96.0.81"})
    srv.wait_output(r"manifests reloaded: 1 services")

    (d / "new").mkdir()
    (d / "new" / "added.yaml").write_text(svc("added", ip="10.96.0.82"))
    wait_answer(srv, "added.demo.svc.cluster.local.", {"10.96.0.82"})

    (d / "live.yaml").unlink()
    wait_answer(srv, "live.demo.svc.cluster.local.", set())
    check(srv, [Case("live.demo.svc.cluster.local.", rcode=NX, answer=None)])

    # a broken edit drops only the broken document
    (d / "new" / "added.yaml").write_text(
        svc("added", ip="10.96.0.83") + "---\n" + svc("worse", ip="10.96.0.300")
    )
    wait_answer(srv, "added.demo.svc.cluster.local.", {"10.96.0.83"})
    srv.wait_output(r"\[ERROR\] plugin/kubernetes: manifests: \S*added\.yaml: document 2")


def test_server_label_selector_and_namespaces(
    tmp_path: Path, server_factory: Callable[..., Server]
) -> None:
    f = tmp_path / "all.yaml"
    f.write_text(
        svc("web", ip="10.96.0.90", app="web")
        + "---\n"
        + svc("db", ip="10.96.0.91", app="db")
        + "---\n"
        + svc("web", ns="other", ip="10.96.0.92", app="web")
    )
    by_label = server_factory(corefile(f, "labels app in (web)"))
    check(by_label, [
        Case("web.demo.svc.cluster.local.", answer=a("web.demo", "10.96.0.90")),
        Case("web.other.svc.cluster.local.", answer=a("web.other", "10.96.0.92")),
        Case("db.demo.svc.cluster.local.", rcode=NX, answer=[]),
    ])  # fmt: skip
    by_ns = server_factory(corefile(f, "namespaces demo"), tmp=_subdir(tmp_path, "ns"))
    check(by_ns, [
        Case("web.demo.svc.cluster.local.", answer=a("web.demo", "10.96.0.90")),
        Case("db.demo.svc.cluster.local.", answer=a("db.demo", "10.96.0.91")),
        Case("web.other.svc.cluster.local.", rcode=NX, answer=[]),
    ])  # fmt: skip


def _subdir(root: Path, name: str) -> Path:
    (root / name).mkdir(exist_ok=True)
    return root / name


def test_heap_trimmed_after_each_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parsed documents are garbage once converted: their pages go back to the OS."""
    from clusterdns import heap

    calls: list[int] = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(len(calls)))
    f = tmp_path / "a.yaml"
    f.write_text(svc("web"))
    store = load([f])
    assert service_names(store) == {"demo/web"} and calls == [0]


def test_server_exports_the_plugin_metrics(
    tmp_path: Path, server_factory: Callable[..., Server]
) -> None:
    """clusterdns_kubernetes_objects, _skipped_objects_total and _staleness_seconds, as with the
    API; the API-only ones (watch events, relists) stay absent or zero."""
    f = tmp_path / "x.yaml"
    f.write_text(
        svc("a") + "---\n" + svc("b", ip="10.96.0.51") + "---\n" + svc("bad", ip="not-an-ip")
    )
    cf = corefile(f).replace(
        "    bind 127.0.0.1\n", "    bind 127.0.0.1\n    prometheus 127.0.0.1:@P1@\n"
    )
    srv = server_factory(cf)
    text = srv.metrics()
    assert metric(text, "clusterdns_kubernetes_objects", kind="Service") == 2
    assert metric(text, "clusterdns_kubernetes_objects", kind="Namespace") == 1
    assert metric(text, "clusterdns_kubernetes_skipped_objects_total", kind="Service") == 1
    assert metric(text, "clusterdns_kubernetes_staleness_seconds") == 0
    assert not metric(text, "clusterdns_kubernetes_relists_total", kind="Service")
    f.write_text(
        svc("a") + "---\n" + svc("c", ip="10.96.0.52") + "---\n" + svc("d", ip="10.96.0.53")
    )
    until_true(lambda: metric(srv.metrics(), "clusterdns_kubernetes_objects", kind="Service") == 3)
    assert metric(srv.metrics(), "clusterdns_kubernetes_skipped_objects_total", kind="Service") == 1


def until_true(fn: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.1)
