"""ApiSource: the store kept in step with the Kubernetes API by list + watch, as informers do.

Per kind (Services and EndpointSlices; Pods and Namespaces when the options ask for them;
with `multicluster` also ServiceImports of multicluster.x-k8s.io/v1alpha1 and a second
EndpointSlice list+watch selecting `multicluster.kubernetes.io/service-name`, as CoreDNS's
two extra informers):

1. a paginated list (limit 500, `continue`), every object converted to a record at once;
   the whole list goes into the store with one `replace` — never an empty or half state;
2. a watch from the list's resourceVersion with bookmarks: ADDED/MODIFIED upsert, DELETED
   deletes, BOOKMARK moves the resourceVersion on. The server ends a watch after
   `timeoutSeconds` (5 to 10 min, drawn at random as client-go does); it is reopened from the
   last resourceVersion without a list;
3. 410 Gone (HTTP status or ERROR event: the resourceVersion left the server's history) →
   list again and `replace` in one step: queries see the old state until the new one is
   complete, never a gap;
4. any other error or disconnect → reopen from the last resourceVersion after an exponential
   backoff with jitter (0.25 s doubling up to 30 s). Nothing is removed from the store while
   the API is away: the last-known state keeps being served, a warning says for how long
   (at most every 10 s), and `clusterdns_kubernetes_staleness_seconds` grows. While the API
   is unreachable one probe request checks whether it is back, and the first request that
   succeeds again wakes every stalled stream at once (recovery.py), so changes made during
   an outage are served seconds after the API returns, not after each stream's backoff.

`labels` goes to the API server as labelSelector for Services, EndpointSlices and Pods (CoreDNS
does the same); Pods are listed with CoreDNS's field selector that leaves out finished pods.
With `namespaces`, each namespaced kind is listed and watched per namespace (one watch per
namespace and kind) rather than cluster-wide and filtered: nothing outside those namespaces is
transferred or converted, and namespaced RBAC (Roles) is enough for them. Namespaces themselves
are cluster-scoped: they are watched cluster-wide and filtered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from clusterdns.plugins.kubernetes import api_metrics
from clusterdns.plugins.kubernetes.api_client import (
    ApiError,
    Backoff,
    Gone,
    Requester,
    Unreachable,
)
from clusterdns.plugins.kubernetes.api_config import connect
from clusterdns.plugins.kubernetes.metrics import observe_programming
from clusterdns.plugins.kubernetes.records import (
    MC_SERVICE_NAME_LABEL,
    BadObject,
    Endpoints,
    MultiClusterEndpoints,
    Record,
    reuse,
    to_endpoint_slice,
    to_multicluster_slice,
    to_namespace,
    to_pod,
    to_service,
    to_service_import,
)
from clusterdns.plugins.kubernetes.recovery import Recovery
from clusterdns.plugins.kubernetes.source import ApiSettings, SourceOptions
from clusterdns.plugins.kubernetes.store import Key, Store

log = logging.getLogger("clusterdns.plugins.kubernetes")

#: CoreDNS's pod list field selector: finished pods have no DNS records.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
WARN_EVERY = 10.0
RESOURCE_NAMES = {
    "Service": "services",
    "Endpoints": "endpointslices",
    "Pod": "pods",
    "Namespace": "namespaces",
    "ServiceImport": "serviceimports",
    "MultiClusterEndpoints": "multicluster endpointslices",
}


def _convert_slice(obj: dict[str, Any]) -> Endpoints | None:
    if obj.get("addressType") == "FQDN":  # CoreDNS ignores FQDN slices
        return None
    return to_endpoint_slice(obj)


def _convert_mc_slice(obj: dict[str, Any]) -> MultiClusterEndpoints | None:
    if obj.get("addressType") == "FQDN":
        return None
    return to_multicluster_slice(obj)


CONVERTERS: dict[str, Callable[[dict[str, Any]], Record | None]] = {
    "Service": to_service,
    "Endpoints": _convert_slice,
    "Pod": to_pod,
    "Namespace": to_namespace,
    "ServiceImport": to_service_import,
    "MultiClusterEndpoints": _convert_mc_slice,
}


class _Stream:
    """One list+watch: a kind, cluster-wide ("") or in one namespace."""

    def __init__(self, namespace: str, started: float) -> None:
        self.namespace = namespace
        self.rv = ""
        self.live = False  # a watch is open and delivering
        self.last_live = started  # when it was last known current


class ApiSource:
    """Feeds a Store from the Kubernetes API (see the module docstring)."""

    #: Each stream's backoff after a failure: base·2ⁿ up to cap (api_client.Backoff).
    BACKOFF_BASE = 0.25
    BACKOFF_CAP = 30.0

    def __init__(self, settings: ApiSettings, store: Store, options: SourceOptions) -> None:
        self.settings = settings
        self.store = store
        self.options = options
        self.kinds = sorted(options.kinds)
        self._requester: Requester | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[_Stream] = []
        self._kinds_of_streams: list[tuple[str, _Stream]] = []
        self._down_since: float | None = None
        self._last_warn = 0.0
        self.recovery = Recovery(self._probe, self._contact)
        #: First lists held back while the store serves a snapshot, to replace it in one step.
        self._held: dict[str, list[Record]] = {}
        self._swapped = asyncio.Event()

    # ---- Source protocol ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (raises ApiConfigError when that is impossible) and sync in the background."""
        conn = await connect(self.settings)
        self._requester = Requester(conn, self.settings)
        log.info("plugin/kubernetes: watching the Kubernetes API at %s (%s)", conn.host, conn.how)
        api_metrics.track(self)
        now = time.time()
        for kind in self.kinds:
            namespaced = kind != "Namespace" and bool(self.options.namespaces)
            streams = [_Stream(ns, now) for ns in self.options.namespaces] if namespaced else []
            streams = streams or [_Stream("", now)]
            self._streams.extend(streams)
            self._kinds_of_streams.extend((kind, s) for s in streams)
            task = asyncio.get_running_loop().create_task(self._run_kind(kind, streams))
            self._tasks.append(task)

    async def stop(self) -> None:
        api_metrics.untrack(self)
        await self.recovery.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self._requester is not None:
            await self._requester.close()
            self._requester = None

    def synced(self) -> bool:
        return all(k in self.store.synced for k in self.kinds)

    @property
    def host(self) -> str:
        """The API server's host[:port] (known once started)."""
        return self._requester.host if self._requester is not None else ""

    def versions(self) -> dict[str, dict[str, str]]:
        """Each kind's streams' resourceVersions (namespace, "" cluster-wide), for snapshots."""
        out: dict[str, dict[str, str]] = {}
        for kind, s in self._kinds_of_streams:
            out.setdefault(kind, {})[s.namespace] = s.rv
        return out

    def restored_at(self, written: float) -> None:
        """The store now serves a snapshot written at `written`: staleness counts from then."""
        for s in self._streams:
            if not s.live:
                s.last_live = min(s.last_live, written)

    def staleness(self) -> float:
        """0 while every watch streams; else seconds since the oldest broken one was current."""
        broken = [s.last_live for s in self._streams if not s.live]
        return max(0.0, time.time() - min(broken)) if broken else 0.0

    # ---- one kind ----------------------------------------------------------------------------

    async def _run_kind(self, kind: str, streams: list[_Stream]) -> None:
        records: list[Record] = []
        for s in streams:
            records.extend(await self._list_until_done(kind, s, first=True))
        await self._first_list(kind, records)
        log.debug("plugin/kubernetes: %s synced: %d records", kind, len(records))
        await asyncio.gather(*(self._watch_loop(kind, s) for s in streams))

    async def _first_list(self, kind: str, records: list[Record]) -> None:
        """Store a kind's first list. While the store serves a snapshot, the lists of its kinds
        are held until all are in, then replace the snapshot's data in one synchronous step
        (a query sees the snapshot or the fresh state, never a mix); their watches start
        after that, so no event is applied to data the swap then overwrites."""
        restored = self.store.restored
        if kind not in restored:
            self.store.replace(kind, records)
            return
        self._held[kind] = records
        if not restored <= set(self._held):
            await self._swapped.wait()
            return
        held, self._held = self._held, {}
        for k, recs in held.items():
            self.store.replace(k, recs)
        log.info("plugin/kubernetes: fresh lists from the API replaced the snapshot's data")
        self._swapped.set()

    def _backoff(self) -> Backoff:
        return Backoff(self.BACKOFF_BASE, self.BACKOFF_CAP)

    async def _list_until_done(self, kind: str, s: _Stream, first: bool = False) -> list[Record]:
        backoff = self._backoff()
        expired = False
        woken = False
        while True:
            try:
                return await self._list(kind, s, first)
            except Gone as e:
                # A continue token expired between pages: start the list over at once; a
                # second 410 in a row is no longer that, and backs off like any error.
                if expired:
                    self._failed(kind, e)
                    woken = await self.recovery.pause(backoff.next(), not woken)
                expired = True
            except (ApiError, Unreachable) as e:
                expired = False
                self._failed(kind, e)
                woken = await self.recovery.pause(backoff.next(), not woken)

    async def _list(self, kind: str, s: _Stream, first: bool) -> list[Record]:
        """All pages of one stream's list; the first list of a kind feeds the latency SLI
        (informers report initial items as adds; relists are not changes)."""
        assert self._requester is not None
        records: list[Record] = []
        params = self._selectors(kind)
        cont = ""
        while True:
            page = await self._requester.list_items(
                kind, s.namespace, **params, **({"_continue": cont} if cont else {})
            )
            self._contact()
            for obj in page.items():  # one object decoded at a time, converted, dropped
                rec = self._convert(kind, obj)
                if rec is not None and self._wanted(kind, rec):
                    # a relist: the held record's objects wherever they are unchanged
                    records.append(reuse(rec, self.store.get(kind, rec.key)))
                    if first and kind == "Endpoints":
                        observe_programming(obj, self.store)
            meta = page.head.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                s.rv = str(meta.get("resourceVersion") or "")
                return records

    def _replace_stream(self, kind: str, s: _Stream, fresh: list[Record]) -> None:
        """A relist of one stream: its namespace gets `fresh`, the other namespaces stay."""
        if s.namespace:
            table: list[Record] = list(self.store._table(kind).values())  # type: ignore[arg-type]
            others: list[Record] = [r for r in table if getattr(r, "namespace", "") != s.namespace]
            fresh = others + fresh
        self.store.replace(kind, fresh)

    async def _watch_loop(self, kind: str, s: _Stream) -> None:
        backoff = self._backoff()
        woken = False
        while True:
            opened = time.monotonic()
            try:
                delivered = await self._watch(kind, s)
                self._stream_down(s)
                woken = False
                if delivered or time.monotonic() - opened > 1.0:
                    backoff.reset()
                else:
                    await asyncio.sleep(backoff.next())  # ended at once: do not spin
            except Gone:
                self._stream_down(s)
                api_metrics.RELISTS.labels(kind).inc()
                log.info(
                    "plugin/kubernetes: %s watch expired (410 Gone), listing again",
                    RESOURCE_NAMES[kind],
                )
                fresh = await self._list_until_done(kind, s)
                self._replace_stream(kind, s, fresh)
                woken = False
            except (ApiError, Unreachable) as e:
                self._stream_down(s)
                self._failed(kind, e)
                # A stream woken early whose retry failed again sleeps its next delay in full.
                woken = await self.recovery.pause(backoff.next(), not woken)

    async def _watch(self, kind: str, s: _Stream) -> int:
        """One watch request from s.rv until the server ends it; returns events handled."""
        assert self._requester is not None
        params = self._selectors(kind)
        params["timeout_seconds"] = random.randint(300, 600)
        if s.rv:
            params["resource_version"] = s.rv
        n = 0
        async with self._requester.watch(kind, s.namespace, **params) as events:
            s.live = True
            s.last_live = time.time()
            self._contact()
            async for ev in events:
                self._handle(kind, s, ev)
                s.last_live = time.time()
                n += 1
        return n

    def _handle(self, kind: str, s: _Stream, ev: dict[str, Any]) -> None:
        etype = str(ev.get("type") or "")
        obj = ev.get("object")
        if not isinstance(obj, dict):
            raise ApiError(200, f"watch event {etype} without an object")
        if etype == "ERROR":
            code = int(obj.get("code") or 500)
            raise (Gone if code == 410 else ApiError)(code, str(obj.get("message") or ""))
        meta = obj.get("metadata") or {}
        api_metrics.WATCH_EVENTS.labels(kind, etype).inc()
        self.store.touch()
        rv = str(meta.get("resourceVersion") or "")
        if etype == "BOOKMARK":
            s.rv = rv or s.rv
            return
        key: Key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if etype == "DELETED":
            self.store.delete(kind, key)
        elif etype in ("ADDED", "MODIFIED"):
            rec = self._convert(kind, obj)
            if rec is not None and self._wanted(kind, rec):
                self.store.upsert(rec)
            else:  # no longer convertible or wanted: what we held for it is wrong now
                self.store.delete(kind, key)
        if kind == "Endpoints" and etype in ("ADDED", "MODIFIED", "DELETED"):
            observe_programming(obj, self.store)
        s.rv = rv or s.rv

    # ---- helpers -----------------------------------------------------------------------------

    def _selectors(self, kind: str) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.options.label_selector and kind in ("Service", "Endpoints", "Pod"):
            params["label_selector"] = self.options.label_selector
        if kind == "Pod":
            params["field_selector"] = POD_FIELD_SELECTOR
        if kind == "MultiClusterEndpoints":  # CoreDNS adds "the label exists" to `labels`
            sel = self.options.label_selector
            params["label_selector"] = ",".join(x for x in (sel, MC_SERVICE_NAME_LABEL) if x)
        if kind == "ServiceImport" and self.options.import_selector:
            params["label_selector"] = self.options.import_selector
        return params

    def _wanted(self, kind: str, rec: Record) -> bool:
        if kind == "Namespace" and self.options.namespaces:
            return rec.name in self.options.namespaces
        return True

    def _convert(self, kind: str, obj: dict[str, Any]) -> Record | None:
        try:
            return CONVERTERS[kind](obj)
        except BadObject as e:
            meta = obj.get("metadata")
            if not isinstance(meta, dict):
                meta = {}
            name = "/".join(str(x) for x in (meta.get("namespace"), meta.get("name")) if x)
            api_metrics.SKIPPED.labels(kind).inc()
            log.warning(
                "plugin/kubernetes: skipping %s %s: %s",
                "EndpointSlice" if kind in ("Endpoints", "MultiClusterEndpoints") else kind,
                name or "(unnamed)",
                e,
            )
            return None

    def _stream_down(self, s: _Stream) -> None:
        if s.live:
            s.live = False
            s.last_live = time.time()

    async def _probe(self) -> bool:
        return self._requester is not None and await self._requester.probe()

    def _contact(self) -> None:
        self.store.touch()
        if self._down_since is not None:
            log.info(
                "plugin/kubernetes: API reachable again after %.0fs, resyncing",
                time.monotonic() - self._down_since,
            )
            self._down_since = None
            self._last_warn = 0.0
            self.recovery.back()  # every stalled stream retries now (recovery.py)

    def _failed(self, kind: str, err: Exception) -> None:
        now = time.monotonic()
        self.recovery.failed(err)
        if self._down_since is None:
            self._down_since = now
        if now - self._last_warn < WARN_EVERY:
            return
        self._last_warn = now
        what = "API unreachable" if isinstance(err, Unreachable) else "API error"
        state = "serving last-known state" if self.synced() else "not synced yet"
        log.warning(
            "plugin/kubernetes: %s for %.0fs, %s (%s: %s)",
            what,
            now - self._down_since,
            state,
            RESOURCE_NAMES[kind],
            err,
        )
