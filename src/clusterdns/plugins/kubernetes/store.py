"""The plugin's view of the cluster: records plus the indexes queries need.

Sources (API watch, manifest files) write through `upsert`, `delete` and `replace`; the handler
reads. Everything runs on the event loop, and each write is one synchronous call, so a query
never sees a half-applied change — `replace` (a relist) swaps a whole kind at once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from clusterdns.plugins.kubernetes.records import (
    Address,
    Endpoints,
    MultiClusterEndpoints,
    Namespace,
    Pod,
    Record,
    Service,
    ServiceImport,
)

T = TypeVar("T")
KINDS = ("Service", "Endpoints", "Pod", "Namespace", "ServiceImport", "MultiClusterEndpoints")
#: The kinds of the `multicluster` option (fetched only when it is on).
MC_KINDS = frozenset({"ServiceImport", "MultiClusterEndpoints"})
Key = tuple[str, str]


def kind_of(rec: Record) -> str:
    return type(rec).__name__


@dataclass
class Store:
    services: dict[Key, Service] = field(default_factory=dict)
    endpoints: dict[Key, Endpoints] = field(default_factory=dict)
    pods: dict[Key, Pod] = field(default_factory=dict)
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    # indexes
    services_by_ip: dict[str, list[Service]] = field(default_factory=lambda: defaultdict(list))
    endpoints_by_service: dict[Key, dict[Key, Endpoints]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    endpoints_by_ip: dict[str, list[tuple[Endpoints, Address]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    pods_by_ip: dict[str, list[Pod]] = field(default_factory=lambda: defaultdict(list))
    #: `multicluster`: ServiceImports, and the multicluster EndpointSlices by import.
    imports: dict[Key, ServiceImport] = field(default_factory=dict)
    mc_endpoints: dict[Key, MultiClusterEndpoints] = field(default_factory=dict)
    mc_endpoints_by_service: dict[Key, dict[Key, MultiClusterEndpoints]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    #: Kinds that had their first full list; the plugin is ready when all it needs are in.
    synced: set[str] = field(default_factory=set)
    #: Kinds whose records came from a snapshot file and no fresh list has replaced yet.
    restored: set[str] = field(default_factory=set)
    #: Bumped on every change, so answer caches can tell they are stale.
    generation: int = 0
    #: time.time() of the last successful contact with the source (list, event or bookmark).
    last_contact: float = 0.0
    #: Called after every change (the fast path voids the answers made from this store).
    on_change: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    # ---- writes ----------------------------------------------------------------------------

    def _changed(self) -> None:
        self.generation += 1
        if self.on_change is not None:
            self.on_change()

    def upsert(self, rec: Record) -> None:
        self._remove(kind_of(rec), rec.key)
        self._add(rec)
        self._changed()

    def delete(self, kind: str, key: Key) -> None:
        self._remove(kind, key)
        self._changed()

    def replace(self, kind: str, records: list[Record]) -> None:
        """Make `kind` exactly `records` in one step (a full list, or a relist after 410)."""
        for key in list(self._table(kind)):
            self._remove(kind, key if kind != "Namespace" else ("", key[1]))
        for rec in records:
            self._add(rec)
        self.synced.add(kind)
        self.restored.discard(kind)
        self._changed()

    def restore(self, tables: dict[str, list[Record]]) -> None:
        """Fill kinds from a snapshot (snapshot_runtime.py), all in one step; they count as
        synced — the last-known state, as after an outage — until a fresh list replaces them."""
        for kind, records in tables.items():
            self.replace(kind, records)
        self.restored |= set(tables)

    def touch(self) -> None:
        self.last_contact = time.time()

    # ---- reads -----------------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> Service | None:
        return self.services.get((namespace, name))

    def service_endpoints(self, namespace: str, name: str) -> list[Endpoints]:
        return list(self.endpoints_by_service.get((namespace, name), {}).values())

    def import_endpoints(self, namespace: str, name: str) -> list[MultiClusterEndpoints]:
        return list(self.mc_endpoints_by_service.get((namespace, name), {}).values())

    def namespace_exists(self, name: str) -> bool:
        return name in self.namespaces

    # ---- internals -------------------------------------------------------------------------

    def _table(self, kind: str) -> dict[Key, object]:
        if kind == "Service":
            return self.services  # type: ignore[return-value]
        if kind == "Endpoints":
            return self.endpoints  # type: ignore[return-value]
        if kind == "Pod":
            return self.pods  # type: ignore[return-value]
        if kind == "Namespace":
            return {("", n): v for n, v in self.namespaces.items()}
        if kind == "ServiceImport":
            return self.imports  # type: ignore[return-value]
        if kind == "MultiClusterEndpoints":
            return self.mc_endpoints  # type: ignore[return-value]
        raise KeyError(kind)

    def _add(self, rec: Record) -> None:
        if isinstance(rec, Service):
            self.services[rec.key] = rec
            for ip in rec.cluster_ips:
                self.services_by_ip[ip].append(rec)
        elif isinstance(rec, Endpoints):
            self.endpoints[rec.key] = rec
            self.endpoints_by_service[(rec.namespace, rec.service)][rec.key] = rec
            for a in rec.addresses:
                self.endpoints_by_ip[a.ip].append((rec, a))
        elif isinstance(rec, Pod):
            self.pods[rec.key] = rec
            for ip in rec.ips:
                self.pods_by_ip[ip].append(rec)
        elif isinstance(rec, ServiceImport):
            self.imports[rec.key] = rec
        elif isinstance(rec, MultiClusterEndpoints):
            self.mc_endpoints[rec.key] = rec
            self.mc_endpoints_by_service[(rec.namespace, rec.service)][rec.key] = rec
        else:
            self.namespaces[rec.name] = rec

    def _remove(self, kind: str, key: Key) -> None:
        if kind == "Service":
            svc = self.services.pop(key, None)
            if svc is not None:
                for ip in svc.cluster_ips:
                    _drop(self.services_by_ip, ip, lambda s: s.key == key)
        elif kind == "Endpoints":
            ep = self.endpoints.pop(key, None)
            if ep is not None:
                bucket = self.endpoints_by_service.get((ep.namespace, ep.service))
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del self.endpoints_by_service[(ep.namespace, ep.service)]
                for a in ep.addresses:
                    _drop(self.endpoints_by_ip, a.ip, lambda t: t[0].key == key)
        elif kind == "Pod":
            pod = self.pods.pop(key, None)
            if pod is not None:
                for ip in pod.ips:
                    _drop(self.pods_by_ip, ip, lambda p: p.key == key)
        elif kind == "Namespace":
            self.namespaces.pop(key[1], None)
        elif kind == "ServiceImport":
            self.imports.pop(key, None)
        elif kind == "MultiClusterEndpoints":
            mc = self.mc_endpoints.pop(key, None)
            if mc is not None:
                group = self.mc_endpoints_by_service.get((mc.namespace, mc.service))
                if group is not None:
                    group.pop(key, None)
                    if not group:
                        del self.mc_endpoints_by_service[(mc.namespace, mc.service)]
        else:
            raise KeyError(kind)


def _drop(index: dict[str, list[T]], ip: str, match: Callable[[T], bool]) -> None:
    items = index.get(ip)
    if not items:
        return
    keep = [x for x in items if not match(x)]
    if keep:
        index[ip] = keep
    else:
        del index[ip]
