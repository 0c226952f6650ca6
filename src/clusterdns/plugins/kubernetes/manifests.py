"""`manifests PATH…`: serve Kubernetes objects from YAML or JSON files, without an API server.

What is read: every PATH, a file (read whatever its name) or a directory (recursively: files
ending .yaml, .yml or .json, in sorted order; names starting with "." are skipped, which also
makes ConfigMap volume mounts — `..data` and its timestamped twins — read exactly once).
A YAML file may hold several documents; a JSON file one object or several concatenated.
`kind: List` and typed lists (`ServiceList`, `kind: PodList`… whose items may omit kind and
apiVersion, as the API returns them) are unpacked; in JSON their items are decoded and
converted one at a time (jsonitems.py), so a 20 MB `kubectl get -A -o json` file never exists
as one parse tree.

Kinds used: Namespace, Service (v1), EndpointSlice (discovery.k8s.io v1/v1beta1), Endpoints
(legacy v1) and Pod (v1), and with `multicluster` ServiceImport (multicluster.x-k8s.io
v1alpha1) plus the EndpointSlices labelled multicluster.kubernetes.io/service-name; other
Kubernetes kinds and custom resources — including a `Service` of
another API group, e.g. Knative's — are ignored (debug log). A kind Kubernetes does not have
(`kind: Servise`, `apiVersion: v1` with `kind: Deployment`, `apiVersion: v2` with `kind: Service`)
is ignored with a warning naming the file, the document and the kind (manifest_kinds.py). The
objects are served exactly as if the API had returned them:

* an object without metadata.namespace is in "default", as `kubectl apply` would put it;
* legacy Endpoints are converted as the EndpointSlice mirroring controller would (addresses
  ready, notReadyAddresses not ready), except when EndpointSlices exist for the same service or
  the Endpoints carry `endpointslice.kubernetes.io/skip-mirror: "true"` — then the slices win
  and the Endpoints are ignored, as the controller would not mirror them;
* namespaces: the declared Namespace objects plus, for any namespace a Service, EndpointSlice,
  Endpoints or Pod of the files lives in but that has no Namespace document, an implicit one
  with no labels of its own (a cluster would have refused those objects otherwise, so treating
  the namespace as present is the least surprising). Every namespace gets the
  `kubernetes.io/metadata.name` label the API server adds;
* the `labels` selector is applied here to the labels of Services, EndpointSlices, Endpoints
  and Pods (CoreDNS passes it to the API server for all of their lists), the `namespaces`
  option to every kind; pods whose status.phase is Succeeded, Failed or Unknown are left out,
  as CoreDNS's pod list field selector does.

A malformed document (YAML/JSON syntax error, not a mapping, no kind, a field the converters
reject) is skipped with an `[ERROR]` line naming the file and the 1-based document number; the
rest is served. YAML files are split at their `---`/`...` markers, so a syntax error only costs
its own document.

Metrics (as in API mode, api_metrics.py): `clusterdns_kubernetes_objects{kind}` counts the
records held, `clusterdns_kubernetes_skipped_objects_total{kind}` the objects the converters
rejected (at every read), `clusterdns_kubernetes_staleness_seconds` is 0 unless polling or
re-reading the files keeps failing (then the time since it last worked). Watch events, relists
and REST client metrics have no meaning here and stay at zero.

Watching: every 0.5 s the file set is stat()ed — (device, inode, size, mtime) of every file,
new and removed files included. Files changed in the last 2 s are also hashed, because two
writes within one timestamp tick can leave size and mtime unchanged. On any change everything
is re-read off the event loop and each kind is swapped into the Store with `replace`, all in one
synchronous step, so a query sees either the old set or the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterdns import heap
from clusterdns.plugins.kubernetes import api_metrics
from clusterdns.plugins.kubernetes.jsonitems import JsonObject, items_at
from clusterdns.plugins.kubernetes.manifest_files import (
    Scan,
    changed,
    json_error,
    list_files,
    read_documents,
    scan,
)
from clusterdns.plugins.kubernetes.manifest_kinds import SKIP, UNKNOWN, verdict
from clusterdns.plugins.kubernetes.records import (
    MC_SERVICE_NAME_LABEL,
    SERVICE_NAME_LABEL,
    BadObject,
    Endpoints,
    Record,
    reuse,
    to_endpoint_slice,
    to_endpoints,
    to_multicluster_slice,
    to_namespace,
    to_pod,
    to_service,
    to_service_import,
)
from clusterdns.plugins.kubernetes.selector import Selector, parse_selector
from clusterdns.plugins.kubernetes.source import SourceOptions
from clusterdns.plugins.kubernetes.store import KINDS, MC_KINDS, Store

log = logging.getLogger("clusterdns.plugins.kubernetes")

POLL_INTERVAL = 0.5
NAME_LABEL = "kubernetes.io/metadata.name"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


# ---- converting -----------------------------------------------------------------------------

#: CoreDNS lists pods with `status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown`.
_GONE_PHASES = {"Succeeded", "Failed", "Unknown"}


@dataclass
class Loaded:
    """The outcome of reading every file: records per kind plus counts for the log line."""

    records: dict[str, dict[tuple[str, str], Record]] = field(
        default_factory=lambda: {k: {} for k in KINDS}
    )
    #: (namespace, service) of every EndpointSlice seen, to drop mirrored legacy Endpoints.
    sliced: set[tuple[str, str]] = field(default_factory=set)
    legacy: list[tuple[tuple[str, str], list[Endpoints]]] = field(default_factory=list)
    used_namespaces: set[str] = field(default_factory=set)
    files: int = 0
    errors: int = 0
    warnings: int = 0  # documents of a kind Kubernetes does not have


class _Reader:
    def __init__(self, options: SourceOptions, store: Store | None = None) -> None:
        self.options = options
        #: The store being served, read (never written) from the reading thread: each dict
        #: lookup is atomic, and only the event loop's `apply` changes it, after the read.
        self.store = store
        self.namespaces = set(options.namespaces)
        self.selector: Selector | None = None
        if options.label_selector:
            self.selector = parse_selector(options.label_selector)
        self.imports: Selector | None = None
        if options.import_selector:
            self.imports = parse_selector(options.import_selector)
        self.out = Loaded()

    def error(self, where: str, reason: str) -> None:
        self.out.errors += 1
        log.error("plugin/kubernetes: manifests: %s: %s", where, reason)

    def read(self, paths: list[str]) -> Loaded:
        unreadable: list[tuple[str, str]] = []
        for path, exists in list_files(paths, unreadable):
            if not exists:
                self.error(path, "no such file or directory")
                continue
            self.out.files += 1
            for doc in read_documents(path):
                where = f"{path}: document {doc.number}" if doc.number else path
                if doc.error:
                    self.error(where, doc.error)
                elif doc.stream is not None:
                    self.take_stream(doc.stream, where)
                elif doc.obj is not None:  # empty documents are allowed, as kubectl does
                    self.take(doc.obj, where, "", "")
        for directory, reason in unreadable:
            self.error(directory, reason)
        return self.finish()

    def take(self, obj: Any, where: str, kind_default: str, version_default: str) -> None:
        if not isinstance(obj, Mapping):
            self.error(where, f"not a Kubernetes object (a {_type_name(obj)})")
            return
        kind = obj.get("kind") or kind_default
        version = obj.get("apiVersion") or version_default
        if not isinstance(kind, str) or not kind:
            self.error(where, "kind is missing")
            return
        if kind.endswith("List") and "items" in obj:
            items = obj.get("items") or []
            if not isinstance(items, list):
                self.error(where, f"{kind}.items is not a list")
                return
            item_kind = kind[: -len("List")]  # "" for a plain List: items name their kind
            for i, item in enumerate(items, 1):
                self.take(item, f"{where}, item {i}", item_kind, str(version or ""))
            return
        try:
            self.convert(obj, kind, str(version or ""), where)
        except BadObject as e:
            self.error(f"{where} ({kind} {_name(obj)})", str(e))
            api_metrics.SKIPPED.labels("Endpoints" if kind == "EndpointSlice" else kind).inc()

    def take_stream(self, doc: JsonObject, where: str) -> None:
        """A JSON object read member by member: a List's items are converted as they are
        decoded (never the whole tree at once). As for a document decoded whole, a syntax
        error anywhere in it means none of it is served: its records go to a reader of their
        own, merged into this one when the object ended well."""
        part = _Reader(self.options, self.store)
        try:
            for i, item in enumerate(doc.items(), 1):
                part.take(item, f"{where}, item {i}", *_item_defaults(doc.head))
            if doc.deferred >= 0 and _is_list(doc.head):
                for i, item in enumerate(items_at(doc.text, doc.deferred), 1):
                    part.take(item, f"{where}, item {i}", *_item_defaults(doc.head))
            elif doc.deferred >= 0:  # not a List after all: `items` is one of its fields
                doc.head["items"] = json.JSONDecoder().raw_decode(doc.text, doc.deferred)[0]
        except json.JSONDecodeError as e:
            doc.end = -1
            self.error(where, json_error(e))
            return
        if doc.array and _is_list(doc.head):
            self.merge(part.out, where)
        else:
            self.take(doc.head, where, "", "")

    def merge(self, part: Loaded, where: str) -> None:
        out = self.out
        for table in part.records.values():
            for rec in table.values():
                self.put(rec, where)
        out.sliced |= part.sliced
        out.legacy += part.legacy
        out.used_namespaces |= part.used_namespaces
        out.errors += part.errors
        out.warnings += part.warnings

    def convert(self, obj: Mapping[str, Any], kind: str, version: str, where: str) -> None:
        wanted = self.options.kinds
        judged, why = verdict(version, kind)
        if judged == UNKNOWN:
            self.out.warnings += 1
            log.warning(
                "plugin/kubernetes: manifests: %s: unknown kind %s (apiVersion %s): %s; "
                "document ignored", where, kind, version or "missing", why,
            )  # fmt: skip
            return
        if judged == SKIP:
            log.debug(
                "plugin/kubernetes: manifests: %s: %s %s ignored (%s)", where, version, kind, why
            )
            return
        record_kind = "Endpoints" if kind == "EndpointSlice" else kind
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            raise BadObject("metadata is missing")
        meta = dict(meta)
        labels = meta.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise BadObject("metadata.labels is not a map")
        plain = {str(k): str(v) for k, v in labels.items()}
        if kind == "Namespace":
            name = meta.get("name")
            if isinstance(name, str) and name:
                meta["labels"] = {**plain, NAME_LABEL: name}
            rec: Record = to_namespace({**obj, "metadata": meta})
            if record_kind in wanted and (not self.namespaces or rec.name in self.namespaces):
                self.put(rec, where)
            return
        ns = str(meta.get("namespace") or "default")
        if self.namespaces and ns not in self.namespaces:
            return
        # What exists whatever the filters below: the namespace, and a slice for the service
        # (the mirroring controller looks at all slices, not at the ones we keep).
        self.out.used_namespaces.add(ns)
        if kind == "EndpointSlice":
            self.out.sliced.add((ns, plain.get(SERVICE_NAME_LABEL, "")))
        if kind in ("ServiceImport", "EndpointSlice") and MC_KINDS & wanted:
            self.multicluster(obj, kind, meta, ns, plain, where)
        if record_kind not in wanted or kind == "ServiceImport":
            return
        if self.selector is not None and not self.selector.matches(plain):
            return
        if kind == "Pod" and _pod_phase(obj) in _GONE_PHASES:
            return
        meta["namespace"] = ns
        obj = {**obj, "metadata": meta}
        if kind == "Service":
            self.put(to_service(obj), where)
        elif kind == "Pod":
            self.put(to_pod(obj), where)
        elif kind == "EndpointSlice":
            ep = to_endpoint_slice(obj)
            if not ep.service and MC_SERVICE_NAME_LABEL not in plain:
                log.warning(
                    "plugin/kubernetes: manifests: %s: EndpointSlice %s/%s has no %s label, "
                    "it belongs to no service",
                    where, ns, ep.name, SERVICE_NAME_LABEL,
                )  # fmt: skip
            self.put(ep, where)
        elif plain.get(SKIP_MIRROR_LABEL, "").lower() == "true":
            log.debug("plugin/kubernetes: manifests: %s: Endpoints not mirrored", where)
        else:
            self.out.legacy.append(((ns, str(meta.get("name"))), to_endpoints(obj)))

    def multicluster(
        self,
        obj: Mapping[str, Any],
        kind: str,
        meta: dict[str, Any],
        ns: str,
        plain: dict[str, str],
        where: str,
    ) -> None:
        """`multicluster`: ServiceImports (their label selector is `namespace_labels`', as
        CoreDNS lists them) and the EndpointSlices labelled with an import's name (under
        `labels`, as CoreDNS's second EndpointSlice informer)."""
        obj = {**obj, "metadata": {**meta, "namespace": ns}}
        if kind == "ServiceImport":
            if self.imports is None or self.imports.matches(plain):
                self.put(to_service_import(obj), where)
        elif MC_SERVICE_NAME_LABEL in plain and (
            self.selector is None or self.selector.matches(plain)
        ):
            self.put(to_multicluster_slice(obj), where)

    def put(self, rec: Record, where: str) -> None:
        kind = type(rec).__name__
        if self.store is not None:  # a reload: share the unchanged records (records.reuse)
            rec = reuse(rec, self.store.get(kind, rec.key))
        table = self.out.records[kind]
        if rec.key in table:
            log.warning(
                "plugin/kubernetes: manifests: %s: %s %s declared again, this one wins",
                where, kind, "/".join(k for k in rec.key if k),
            )  # fmt: skip
        table[rec.key] = rec

    def finish(self) -> Loaded:
        out = self.out
        endpoints = out.records["Endpoints"]
        for service_key, recs in out.legacy:
            if service_key in out.sliced:
                log.debug(
                    "plugin/kubernetes: manifests: Endpoints %s/%s ignored: "
                    "EndpointSlices exist for that service",
                    *service_key,
                )
                continue
            for rec in recs:
                endpoints.setdefault(rec.key, rec)
        if "Namespace" in self.options.kinds:
            namespaces = out.records["Namespace"]
            for ns in sorted(out.used_namespaces):
                if ("", ns) not in namespaces:
                    namespaces[("", ns)] = to_namespace(
                        {"metadata": {"name": ns, "labels": {NAME_LABEL: ns}}}
                    )
        return out


def load(paths: list[str], options: SourceOptions, store: Store | None = None) -> Loaded:
    """Read and convert every file (blocking: run it off the event loop); records equal to
    `store`'s are taken from it (records.reuse)."""
    return _Reader(options, store).read(paths)


def _is_list(head: Mapping[str, Any]) -> bool:
    kind = head.get("kind")
    return isinstance(kind, str) and kind.endswith("List")


def _item_defaults(head: Mapping[str, Any]) -> tuple[str, str]:
    """A List's items' kind and apiVersion defaults, as take() gives them."""
    kind = str(head.get("kind") or "")
    return kind[: -len("List")], str(head.get("apiVersion") or "")


def _pod_phase(obj: Mapping[str, Any]) -> str:
    status = obj.get("status")
    return str(status.get("phase") or "") if isinstance(status, Mapping) else ""


def _type_name(obj: Any) -> str:
    return {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}.get(
        type(obj), type(obj).__name__
    )


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        ns, name = meta.get("namespace"), meta.get("name")
        return f"{ns}/{name}" if ns else str(name)
    return "?"


# ---- the source -----------------------------------------------------------------------------


class ManifestSource:
    """Fills the Store from manifest files and keeps it in step with them."""

    def __init__(self, paths: list[str], store: Store, options: SourceOptions) -> None:
        self.paths = list(paths)
        self.store = store
        self.options = options
        self.interval = POLL_INTERVAL
        self._scan: Scan | None = None
        self._task: asyncio.Task[None] | None = None
        self._loaded = False
        #: time.time() of the last poll that could read the files, and whether the latest did.
        self._last_good = time.time()
        self._failing = False

    async def start(self) -> None:
        """Load once (so the plugin is ready at once), then watch in the background."""
        await self._reload(first=True)
        self._task = asyncio.create_task(self._watch(), name="kubernetes-manifests")
        api_metrics.track(self)

    async def stop(self) -> None:
        api_metrics.untrack(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def synced(self) -> bool:
        return self._loaded

    def staleness(self) -> float:
        """clusterdns_kubernetes_staleness_seconds: 0 while the files are polled and read, else
        the time since the last poll that could (a reload that keeps failing)."""
        return max(0.0, time.time() - self._last_good) if self._failing else 0.0

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                new = await asyncio.to_thread(scan, self.paths)
                if self._scan is None or changed(self._scan, new):
                    await self._reload(new)
                self._last_good, self._failing = time.time(), False
            except asyncio.CancelledError:
                raise
            except Exception:
                self._failing = True
                log.exception("plugin/kubernetes: manifests: reload failed")

    async def _reload(self, fingerprint: Scan | None = None, first: bool = False) -> None:
        # Fingerprint before reading: a write racing the read is then seen by the next poll.
        if fingerprint is None:
            fingerprint = await asyncio.to_thread(scan, self.paths)
        loaded = await asyncio.to_thread(load, self.paths, self.options, self.store)
        self.apply(loaded, "loaded" if first else "reloaded")
        self._scan = fingerprint
        del loaded  # the old records and the parsed documents are garbage now
        heap.trim()

    def apply(self, loaded: Loaded, verb: str = "loaded") -> None:
        """Swap every wanted kind in at once (no await between: readers see old or new)."""
        for kind in KINDS:
            if kind in self.options.kinds:
                self.store.replace(kind, list(loaded.records[kind].values()))
        self.store.touch()
        self._loaded = True
        r = loaded.records
        log.info(
            "plugin/kubernetes: manifests %s: %d services, %d endpoint slices, %d pods, "
            "%d namespaces%s from %d files (%d errors, %d documents of unknown kinds)",
            verb, len(r["Service"]), len(r["Endpoints"]), len(r["Pod"]), len(r["Namespace"]),
            f", {len(r['ServiceImport'])} service imports, {len(r['MultiClusterEndpoints'])} "
            "multicluster endpoint slices" if MC_KINDS & self.options.kinds else "",
            loaded.files, loaded.errors, loaded.warnings,
        )  # fmt: skip
