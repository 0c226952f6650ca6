"""The plugin's view of the cluster: records plus the indexes queries need.

Sources (API watch, manifest files) write through `upsert`, `delete` and `replace`; the handler
reads. The by-IP indexes of endpoints and pods hold the record itself (a tuple of records only
for an IP several share): one dict slot per address, not a list and a pair as well, which was
a third of an endpoint's bytes (docs/performance.md, "Where the memory goes").

Everything runs on the event loop, and each write is one synchronous call, so a query
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
R = TypeVar("R", Endpoints, Pod)
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
    #: (namespace, service) -> its one EndpointSlice, or a dict of them by key when several.
    endpoints_by_service: dict[Key, Endpoints | dict[Key, Endpoints]] = field(default_factory=dict)
    #: IP -> the EndpointSlice holding it (a tuple when several do): see endpoints_at.
    endpoints_by_ip: dict[str, Endpoints | tuple[Endpoints, ...]] = field(default_factory=dict)
    #: IP -> the pod with it (a tuple when several have it): see pods_at.
    pods_by_ip: dict[str, Pod | tuple[Pod, ...]] = field(default_factory=dict)
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
        got = self.endpoints_by_service.get((namespace, name))
        if got is None:
            return []
        return list(got.values()) if isinstance(got, dict) else [got]

    def import_endpoints(self, namespace: str, name: str) -> list[MultiClusterEndpoints]:
        return list(self.mc_endpoints_by_service.get((namespace, name), {}).values())

    def get(self, kind: str, key: Key) -> Record | None:
        """The record of `kind` held for `key` (a Namespace's key is ("", name))."""
        if kind == "Namespace":
            return self.namespaces.get(key[1])
        got = self._table(kind).get(key)
        return got  # type: ignore[return-value]

    def namespace_exists(self, name: str) -> bool:
        return name in self.namespaces

    def endpoints_at(self, ip: str) -> list[tuple[Endpoints, Address]]:
        """Every (slice, address) with this IP, in the order the slices were added."""
        got = self.endpoints_by_ip.get(ip)
        if got is None:
            return []
        eps = got if isinstance(got, tuple) else (got,)
        return [(ep, a) for ep in eps for a in ep.addresses if a.ip == ip]

    def pods_at(self, ip: str) -> tuple[Pod, ...]:
        """The pods with this IP (any of theirs), in the order they were added."""
        got = self.pods_by_ip.get(ip)
        if got is None:
            return ()
        return got if isinstance(got, tuple) else (got,)

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
            skey = (rec.namespace, rec.service)
            got = self.endpoints_by_service.get(skey)
            if got is None or (not isinstance(got, dict) and got.key == rec.key):
                self.endpoints_by_service[skey] = rec
            elif isinstance(got, dict):
                got[rec.key] = rec
            else:
                self.endpoints_by_service[skey] = {got.key: got, rec.key: rec}
            for a in rec.addresses:
                _index(self.endpoints_by_ip, a.ip, rec)
        elif isinstance(rec, Pod):
            self.pods[rec.key] = rec
            for ip in rec.ips:
                _index(self.pods_by_ip, ip, rec)
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
                skey = (ep.namespace, ep.service)
                bucket = self.endpoints_by_service.get(skey)
                if isinstance(bucket, dict):
                    bucket.pop(key, None)
                    if len(bucket) == 1:
                        self.endpoints_by_service[skey] = next(iter(bucket.values()))
                elif bucket is not None and bucket.key == key:
                    del self.endpoints_by_service[skey]
                for ip in {a.ip for a in ep.addresses}:
                    _unindex(self.endpoints_by_ip, ip, key)
        elif kind == "Pod":
            pod = self.pods.pop(key, None)
            if pod is not None:
                for ip in set(pod.ips):
                    _unindex(self.pods_by_ip, ip, key)
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


def _index(index: dict[str, R | tuple[R, ...]], ip: str, rec: R) -> None:
    """Add `rec` under `ip` once, however often the record lists that IP."""
    got: R | tuple[R, ...] | None = index.get(ip)
    if got is None:
        index[ip] = rec
    elif got is rec or (isinstance(got, tuple) and any(r is rec for r in got)):
        return
    elif isinstance(got, tuple):
        index[ip] = got + (rec,)  # noqa: RUF005 (mypy cannot star a constrained TypeVar's tuple)
    else:
        index[ip] = (got, rec)


def _unindex(index: dict[str, R | tuple[R, ...]], ip: str, key: Key) -> None:
    got: R | tuple[R, ...] | None = index.get(ip)
    if got is None:
        return
    if not isinstance(got, tuple):
        if got.key == key:
            del index[ip]
        return
    keep = tuple(r for r in got if r.key != key)
    if not keep:
        del index[ip]
    else:
        index[ip] = keep[0] if len(keep) == 1 else keep
