"""The kubernetes plugin's memory-shaped facts: Lists read item by item, records sharing their
parts, by-IP indexes without per-address lists, relists and reloads reusing what they hold.

Structural checks only (what is shared, what is decoded when); the bytes themselves are
measured by bench/memory_profile.py and written up in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from clusterdns.plugins.kubernetes import jsonitems, records
from clusterdns.plugins.kubernetes.api import ApiSource
from clusterdns.plugins.kubernetes.jsonitems import JsonObject, items_at
from clusterdns.plugins.kubernetes.manifests import ManifestSource
from clusterdns.plugins.kubernetes.manifests import load as load_files
from clusterdns.plugins.kubernetes.records import (
    Port,
    Service,
    reuse,
    shared_ports,
    to_endpoint_slice,
    to_pod,
    to_service,
)
from clusterdns.plugins.kubernetes.source import ApiSettings, SourceOptions
from clusterdns.plugins.kubernetes.store import KINDS, Store
from tests.k8s_apiserver import ApiServer, endpoint_slice, service

ALL = frozenset(KINDS)
BASIC = frozenset({"Service", "Endpoints"})


def slice_obj(name: str, ips: list[str], ns: str = "demo", node: str = "node-1") -> dict[str, Any]:
    obj = endpoint_slice(name, ns, service_name=name.split("-")[0], endpoints=[])
    obj["apiVersion"] = "discovery.k8s.io/v1"
    obj["endpoints"] = [
        {"addresses": [ip], "conditions": {"ready": True}, "nodeName": node,
         "targetRef": {"kind": "Pod", "name": f"{name}-{i}"}}
        for i, ip in enumerate(ips)
    ]  # fmt: skip
    return obj


def load(paths: list[Path]) -> Store:
    store = Store()

    async def go() -> None:
        src = ManifestSource([str(p) for p in paths], store, SourceOptions(ALL))
        await src.start()
        await src.stop()

    asyncio.run(go())
    return store


# ---- jsonitems ---------------------------------------------------------------------------------


def test_items_are_handed_out_before_the_rest_is_decoded() -> None:
    text = '{"kind": "List", "apiVersion": "v1", "items": [{"a": 1}, {"b": 2}, {"c": ' + "[" * 5
    doc = JsonObject(text)
    got = doc.items()
    assert next(got) == {"a": 1}  # the broken tail is not read yet
    assert next(got) == {"b": 2}
    with pytest.raises(json.JSONDecodeError):
        next(got)


def test_members_and_items_read_as_json_loads_would() -> None:
    obj = {"kind": "PodList", "metadata": {"continue": "x", "n": [1, {"y": None}]},
           "items": [{"i": i, "s": "é\\\"\n"} for i in range(5)], "z": True}  # fmt: skip
    for text in (json.dumps(obj), json.dumps(obj, indent=3)):
        doc = JsonObject(text)
        assert list(doc.items()) == obj["items"]
        assert doc.head == {k: v for k, v in obj.items() if k != "items"}
        assert doc.end == len(text) and doc.deferred == -1 and doc.array


def test_items_before_the_kind_are_deferred_then_walked_again() -> None:
    text = '{"apiVersion": "v1", "items": [{"x": 1}, {"y": 2}], "kind": "List"}'
    doc = JsonObject(text, stream=lambda head: "kind" in head)
    assert list(doc.items()) == []
    assert doc.head == {"apiVersion": "v1", "kind": "List"}
    assert list(items_at(text, doc.deferred)) == [{"x": 1}, {"y": 2}]


@pytest.mark.parametrize(
    "bad", ['{"items": [1, 2', '{"a" 1}', '{"items": [1 2]}', "[1]", '{"a": 1', '{"a": 1,}']
)
def test_syntax_errors_are_json_errors(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        list(JsonObject(bad).items())


# ---- manifests: a big List read item by item -------------------------------------------------


def big_list(n: int, kubectl_order: bool) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "demo"}}]  # fmt: skip
    for i in range(n):
        svc = service(f"s{i:04d}", "demo", cluster_ip=f"10.96.{i // 250}.{i % 250 + 1}")
        svc["apiVersion"] = "v1"
        items.append(svc)
        items.append(
            slice_obj(f"s{i:04d}-1", [f"10.{128 + i // 65536}.{i // 256 % 256}.{i % 256}"])
        )
    if kubectl_order:  # as `kubectl get -A -o json` writes it: items before kind
        return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}}
    return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}


@pytest.mark.parametrize("kubectl_order", [False, True])
def test_a_big_list_file_is_decoded_one_item_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubectl_order: bool
) -> None:
    f = tmp_path / "all.json"
    f.write_text(json.dumps(big_list(2000, kubectl_order), indent=1))
    size = f.stat().st_size
    longest = [0]
    decode = jsonitems._DECODER.raw_decode

    def spy(text: str, pos: int = 0) -> tuple[Any, int]:
        obj, end = decode(text, pos)
        longest[0] = max(longest[0], end - pos)
        return obj, end

    monkeypatch.setattr(jsonitems._DECODER, "raw_decode", spy)
    store = load([f])
    assert len(store.services) == 2000 and len(store.endpoints) == 2000
    assert store.endpoints_at("10.128.7.207")[0][0].service == "s1999"
    assert longest[0] < size / 1000  # never more than one object's text at a time


def test_a_syntax_error_in_a_list_serves_nothing_of_it(tmp_path: Path) -> None:
    good = tmp_path / "a.json"
    good.write_text(json.dumps(big_list(3, False)))
    bad = tmp_path / "b.json"
    text = json.dumps({"kind": "List", "apiVersion": "v1", "items": [
        {**service("x1", "other", cluster_ip="10.96.9.1"), "apiVersion": "v1"},
        {**service("x2", "other", cluster_ip="10.96.9.2"), "apiVersion": "v1"},
    ]})  # fmt: skip
    bad.write_text(text[: text.rindex("]")] + ", {")
    store = load([good, bad])
    assert sorted(k[1] for k in store.services) == ["s0000", "s0001", "s0002"]
    assert "other" not in store.namespaces


def test_typed_list_items_take_the_list_kind(tmp_path: Path) -> None:
    f = tmp_path / "svcs.json"
    items = [{"metadata": {"name": f"t{i}", "namespace": "demo"},
              "spec": {"clusterIP": f"10.96.0.{i + 1}"}} for i in range(3)]  # fmt: skip
    f.write_text(json.dumps({"items": items, "kind": "ServiceList", "apiVersion": "v1"}))
    assert sorted(k[1] for k in load([f]).services) == ["t0", "t1", "t2"]


def test_a_non_list_object_with_items_is_one_object(tmp_path: Path) -> None:
    f = tmp_path / "svc.json"
    obj = {**service("plain", "demo", cluster_ip="10.96.0.9"), "apiVersion": "v1"}
    f.write_text(json.dumps({"items": [{"kind": "Service"}], **obj}))
    assert list(load([f]).services) == [("demo", "plain")]


# ---- shared parts ------------------------------------------------------------------------------


def test_equal_port_lists_and_node_names_are_one_object() -> None:
    a = to_endpoint_slice(slice_obj("a-1", ["10.1.0.1", "10.1.0.2"], node="node-" + "7"))
    b = to_endpoint_slice(slice_obj("b-1", ["10.1.0.3"], node="-".join(["node", "7"])))
    assert a.ports is b.ports
    assert a.addresses[0].node_name is b.addresses[0].node_name
    assert a.namespace is b.namespace
    s1 = to_service(service("x", cluster_ip="10.0.0.1", ports=[("http", "TCP", 8080)]))
    s2 = to_service(service("y", cluster_ip="10.0.0.2", ports=[("http", "TCP", 8080)]))
    assert s1.ports is s2.ports
    assert shared_ports((Port("http", "TCP", 8080),)) is s1.ports


def test_pod_names_are_only_kept_for_endpoint_pod_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "_KEEP_TARGETS", [False])
    assert to_endpoint_slice(slice_obj("a-1", ["10.1.0.1"])).addresses[0].target == ""
    monkeypatch.setattr(records, "_KEEP_TARGETS", [True])
    assert to_endpoint_slice(slice_obj("a-1", ["10.1.0.1"])).addresses[0].target == "a-1-0"


def test_reuse_keeps_the_held_objects_where_equal() -> None:
    old = to_endpoint_slice(slice_obj("a-1", ["10.1.0.1", "10.1.0.2"]))
    same = to_endpoint_slice(slice_obj("a-1", ["10.1.0.1", "10.1.0.2"]))
    assert same is not old and reuse(same, old) is old
    moved = to_endpoint_slice(slice_obj("a-1", ["10.1.0.1", "10.1.0.9"]))
    got = reuse(moved, old)
    assert got == moved
    assert got.addresses[0] is old.addresses[0] and got.addresses[1] is moved.addresses[1]
    assert got.name is old.name and got.ports is old.ports
    bumped = Service("s", "demo", "ClusterIP", ("10.0.0.1",), False, "", (), False, (), "2")
    held = Service("s", "demo", "ClusterIP", ("10.0.0.1",), False, "", (), False, (), "1")
    fresh = reuse(bumped, held)
    assert fresh.version == "2" and fresh.cluster_ips is held.cluster_ips
    assert reuse(bumped, None) is bumped


# ---- the store's by-IP indexes -----------------------------------------------------------------


def test_ip_indexes_hold_records_and_tuples_for_shared_ips() -> None:
    store = Store()
    a = to_endpoint_slice(slice_obj("a-1", ["10.1.0.1", "10.1.0.2"]))
    b = to_endpoint_slice(slice_obj("b-1", ["10.1.0.2"]))
    store.replace("Endpoints", [a, b])
    assert store.endpoints_by_ip["10.1.0.1"] is a
    assert store.endpoints_by_ip["10.1.0.2"] == (a, b)
    assert store.endpoints_at("10.1.0.2") == [(a, a.addresses[1]), (b, b.addresses[0])]
    store.delete("Endpoints", a.key)
    assert store.endpoints_by_ip == {"10.1.0.2": b}
    assert store.endpoints_at("10.1.0.1") == []
    p1 = to_pod({"metadata": {"name": "p1", "namespace": "demo"}, "status": {"podIP": "10.2.0.1"}})
    p2 = to_pod({"metadata": {"name": "p2", "namespace": "x"}, "status": {"podIP": "10.2.0.1"}})
    store.replace("Pod", [p1, p2])
    assert store.pods_at("10.2.0.1") == (p1, p2)
    store.delete("Pod", p1.key)
    assert store.pods_by_ip == {"10.2.0.1": p2} and store.pods_at("10.9.9.9") == ()


def test_a_slice_listing_an_ip_twice_is_indexed_once() -> None:
    """Even apart in its list: each of its addresses with that IP is found once."""
    store = Store()
    a = to_endpoint_slice(slice_obj("a-1", ["10.1.0.1", "10.1.0.2", "10.1.0.1"]))
    b = to_endpoint_slice(slice_obj("b-1", ["10.1.0.1"]))
    store.replace("Endpoints", [a, b])
    assert store.endpoints_by_ip["10.1.0.1"] == (a, b)
    assert store.endpoints_at("10.1.0.1") == [
        (a, a.addresses[0]), (a, a.addresses[2]), (b, b.addresses[0])
    ]  # fmt: skip


# ---- relists and reloads reuse what the store holds --------------------------------------------


def test_a_relist_after_410_reuses_the_held_records() -> None:
    with ApiServer(gone="event") as api:
        api.load(service(f"s{i}", cluster_ip=f"10.1.0.{i + 1}") for i in range(20))
        api.load(
            endpoint_slice(f"s{i}-1", service_name=f"s{i}", endpoints=[(f"10.8.0.{i + 1}", True)])
            for i in range(20)
        )

        async def main() -> None:
            store = Store()
            src = ApiSource(ApiSettings(endpoint=api.url), store, SourceOptions(BASIC))
            await src.start()
            try:
                while api.watch_count() < 2:
                    await asyncio.sleep(0.01)
                before = dict(store.endpoints)
                svc_before = dict(store.services)
                moved = endpoint_slice("s3-1", service_name="s3", endpoints=[("10.9.9.9", True)])
                await asyncio.to_thread(api.gap, [moved])
                while store.endpoints[("default", "s3-1")].addresses[0].ip != "10.9.9.9":
                    await asyncio.sleep(0.01)
                while store.services.keys() != svc_before.keys():
                    await asyncio.sleep(0.01)
            finally:
                await src.stop()
            for key, rec in before.items():
                if key != ("default", "s3-1"):
                    assert store.endpoints[key].addresses is rec.addresses
            assert store.endpoints_at("10.9.9.9")[0][0].service == "s3"
            assert store.endpoints_at("10.8.0.4") == []

        asyncio.run(main())


def test_a_manifests_reload_reuses_the_held_records(tmp_path: Path) -> None:
    f = tmp_path / "all.json"
    f.write_text(json.dumps(big_list(5, False)))
    first = Store()
    opts = SourceOptions(ALL)
    for kind, recs in load_files([str(f)], opts).records.items():
        first.replace(kind, list(recs.values()))
    again = load_files([str(f)], opts, first).records
    for kind in ("Service", "Endpoints", "Namespace"):
        held = first.namespaces if kind == "Namespace" else first._table(kind)
        for key, rec in again[kind].items():
            assert rec is (held[key[1]] if kind == "Namespace" else held[key])  # type: ignore[index]


def test_streamed_list_warnings_name_the_item(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "l.json"
    items = [{"apiVersion": "v1", "kind": "Servise", "metadata": {"name": "x"}}]
    f.write_text(json.dumps({"kind": "List", "apiVersion": "v1", "items": items}))
    with caplog.at_level(logging.WARNING, "clusterdns.plugins.kubernetes"):
        load([f])
    assert any(f"{f}: document 1, item 1: unknown kind Servise" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_service_with_one_slice_is_indexed_without_a_dict() -> None:
    store = Store()
    a, b, c = (to_endpoint_slice(slice_obj(f"web-{i}", [f"10.3.0.{i}"])) for i in (1, 2, 3))
    store.replace("Endpoints", [a])
    assert store.endpoints_by_service[("demo", "web")] is a
    store.upsert(b)
    store.upsert(c)
    assert store.service_endpoints("demo", "web") == [a, b, c]
    store.delete("Endpoints", a.key)
    assert store.service_endpoints("demo", "web") == [b, c]
    store.delete("Endpoints", c.key)
    assert store.endpoints_by_service[("demo", "web")] is b
    store.delete("Endpoints", b.key)
    assert store.endpoints_by_service == {} and store.service_endpoints("demo", "web") == []


def test_a_snapshot_without_pod_names_does_not_fit_endpoint_pod_names() -> None:
    from clusterdns.plugins.kubernetes import snapshot

    base = {"zones": ["cluster.local."], "kinds": ["Endpoints"], "labels": "", "namespaces": []}
    assert snapshot.mismatch(base, base) == ""
    assert "pod_names" in snapshot.mismatch(base, {**base, "pod_names": True})
