"""A small Kubernetes API server for tests: namespaces, services, endpointslices, pods.

It speaks the parts of the real API that a DNS server's list/watch client uses, closely enough
that a real client library cannot tell the difference:

- list with `resourceVersion`, `limit`/`continue` (consistent snapshots; expired tokens → 410),
  `labelSelector` (equality and set-based) and `fieldSelector` (`a.b=v`, `a.b!=v`);
- cluster-wide and per-namespace paths (`/api/v1/services`, `/api/v1/namespaces/NS/services`,
  `/apis/discovery.k8s.io/v1/endpointslices`, …) and discovery (`/api`, `/apis`, `/version`);
- `watch=1` streams of JSON lines (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR) starting from a
  resourceVersion (or, with `sendInitialEvents=true`, a watch-list: the current objects, then a
  bookmark annotated `k8s.io/initial-events-end`), replayed from a bounded event history; a resourceVersion older than the
  history gets 410 Gone (an ERROR event, as the watch cache sends it, or an HTTP 410);
  objects moving in or out of a watch's selector arrive as ADDED/DELETED, as on the real server;
- bearer-token checking (401 otherwise), optional TLS with client certificates.

Tests drive it with hooks (`apply`, `delete`, `bookmark`, `expire_history`, `drop_watches`,
`down`/`up`, `fail_next`, `requests`). It runs its own event loop in a background thread so
both in-process clients and server subprocesses can use it. `python -m tests.k8s_apiserver`
serves generated objects on its own (used by the client-library benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import itertools
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str  # "" for core/v1
    version: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("namespaces", "Namespace", "", "v1", False),
        Resource("services", "Service", "", "v1", True),
        Resource("endpoints", "Endpoints", "", "v1", True),
        Resource("pods", "Pod", "", "v1", True),
        Resource("endpointslices", "EndpointSlice", "discovery.k8s.io", "v1", True),
        Resource("serviceimports", "ServiceImport", "multicluster.x-k8s.io", "v1alpha1", True),
    )
}
BY_KIND = {r.kind: r for r in RESOURCES.values()}


# ---- selectors ------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_top(text: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Kubernetes label selector (equality and set-based); raises ValueError when malformed."""
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for part in _split_top(text or ""):
        m = _EQ_RE.match(part)
        if m:
            key, op, val = m.groups()
            if op == "!=":
                tests.append(lambda lb, k=key, v=val: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=val: lb.get(k) == v)
            continue
        m = _SET_RE.match(part)
        if not m:
            raise ValueError(f"unable to parse requirement: {part!r}")
        neg, key, op, vals = m.groups()
        if op:
            if neg:
                raise ValueError(f"unable to parse requirement: {part!r}")
            values = {v.strip() for v in vals.split(",")}
            if op == "in":
                tests.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                tests.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif neg:
            tests.append(lambda lb, k=key: k not in lb)
        else:
            tests.append(lambda lb, k=key: k in lb)
    return lambda labels: all(t(labels) for t in tests)


def field_selector(text: str) -> Callable[[Obj], bool]:
    """`a.b=v`, `a.b==v`, `a.b!=v` terms joined by commas, on dotted object paths."""
    tests: list[Callable[[Obj], bool]] = []
    for part in _split_top(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ValueError(f"invalid field selector: {part!r}")
        path, op, val = m.groups()

        def get(obj: Obj, path: str = path) -> str:
            cur: Any = obj
            for p in path.split("."):
                cur = cur.get(p) if isinstance(cur, dict) else None
            return "" if cur is None else str(cur)

        if op == "!=":
            tests.append(lambda o, g=get, v=val: g(o) != v)
        else:
            tests.append(lambda o, g=get, v=val: g(o) == v)
    return lambda obj: all(t(obj) for t in tests)


# ---- object builders for tests ----------------------------------------------------------------


def namespace(name: str, labels: Mapping[str, str] | None = None) -> Obj:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


def service(
    name: str,
    ns: str = "default",
    cluster_ip: str | list[str] | None = "10.0.0.1",
    ports: Iterable[tuple[str, str, int]] = (("http", "TCP", 80),),
    labels: Mapping[str, str] | None = None,
    external_name: str = "",
    publish_not_ready: bool = False,
) -> Obj:
    """A Service; cluster_ip None or "None" makes it headless, a list makes it dual-stack."""
    spec: Obj = {"ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports]}
    if external_name:
        spec.update(type="ExternalName", externalName=external_name)
    else:
        ips = cluster_ip if isinstance(cluster_ip, list) else [cluster_ip or "None"]
        spec.update(type="ClusterIP", clusterIP=ips[0], clusterIPs=ips)
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    meta = {"name": name, "namespace": ns, "labels": dict(labels or {})}
    return {"kind": "Service", "metadata": meta, "spec": spec}


def endpoint_slice(
    name: str,
    ns: str = "default",
    service_name: str = "",
    endpoints: Iterable[tuple[str, bool] | tuple[str, bool, str]] = (),
    ports: Iterable[tuple[str, str, int]] = (("http", "TCP", 80),),
    labels: Mapping[str, str] | None = None,
    address_type: str = "IPv4",
) -> Obj:
    """An EndpointSlice; each endpoint is (ip, ready) or (ip, ready, hostname)."""
    lb = {"kubernetes.io/service-name": service_name or name, **dict(labels or {})}
    eps = []
    for e in endpoints:
        ep: Obj = {"addresses": [e[0]], "conditions": {"ready": e[1]}}
        if len(e) > 2 and e[2]:
            ep["hostname"] = e[2]
        eps.append(ep)
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": lb},
        "addressType": address_type,
        "endpoints": eps,
        "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports],
    }


def service_import(
    name: str,
    ns: str = "default",
    ips: Iterable[str] = (),
    ports: Iterable[tuple[str, str, int]] = (("http", "TCP", 80),),
    headless: bool = False,
    labels: Mapping[str, str] | None = None,
) -> Obj:
    """A ServiceImport (multicluster.x-k8s.io/v1alpha1): ClusterSetIP with `ips`, or Headless."""
    spec: Obj = {
        "type": "Headless" if headless else "ClusterSetIP",
        "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports],
    }
    if ips:
        spec["ips"] = list(ips)
    meta = {"name": name, "namespace": ns, "labels": dict(labels or {})}
    return {"kind": "ServiceImport", "metadata": meta, "spec": spec}


def mc_slice(
    name: str,
    ns: str,
    service_name: str,
    cluster: str,
    endpoints: Iterable[tuple[str, bool] | tuple[str, bool, str]] = (),
    ports: Iterable[tuple[str, str, int]] = (("http", "TCP", 80),),
) -> Obj:
    """An EndpointSlice an MCS implementation writes for import `service_name` from `cluster`."""
    labels = {
        "multicluster.kubernetes.io/service-name": service_name,
        "multicluster.kubernetes.io/source-cluster": cluster,
    }
    obj = endpoint_slice(name, ns, "", endpoints, ports, labels)
    del obj["metadata"]["labels"]["kubernetes.io/service-name"]
    return obj


def pod(name: str, ns: str, ip: str, phase: str = "Running") -> Obj:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def bench_slice(i: int) -> Obj:
    """A realistic EndpointSlice of a 3-replica service (about 1.6 KB of JSON)."""
    a, b = divmod(i, 250)
    ns = f"ns-{i % 50}"
    svc = f"svc-{i}"
    eps = []
    for r in range(3):
        eps.append(
            {
                "addresses": [f"10.{(a >> 8) % 256}.{a % 256}.{b + 1 if r == 0 else (b + r * 7) % 250 + 1}"],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node-{(i + r) % 500}",
                "targetRef": {"kind": "Pod", "name": f"{svc}-7d9f8c6b5-{r}x{i % 97}", "namespace": ns,
                              "uid": f"5e0f{i:08x}-aaaa-bbbb-cccc-{r:012x}"},
                "zone": f"zone-{r}",
            }
        )  # fmt: skip
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-abcde",
            "namespace": ns,
            "generateName": f"{svc}-",
            "uid": f"7c1d{i:08x}-1111-2222-3333-444455556666",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "generation": 3,
            "labels": {
                "app": svc,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": svc,
            },
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc,
                                 "uid": f"9a9a{i:08x}-0000-0000-0000-000000000000",
                                 "blockOwnerDeletion": True, "controller": True}],
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "metrics", "port": 9090, "protocol": "TCP"}],
    }  # fmt: skip


# ---- the server -------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    auth: str
    status: int = 0

    @property
    def watch(self) -> bool:
        return go_bool(self.query.get("watch"))

    @property
    def resource(self) -> str:
        parts = [p for p in self.path.split("/") if p]
        return parts[-1] if parts else ""


@dataclass(eq=False)
class _Watcher:
    res: Resource
    ns: str
    labels: Callable[[Mapping[str, str]], bool]
    fields: Callable[[Obj], bool]
    bookmarks: bool
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)

    def visible(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.ns and meta.get("namespace", "") != self.ns:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(obj)

    def translate(self, etype: str, obj: Obj, old: Obj | None) -> str | None:
        """The event type this watcher sees (selector moves turn into ADDED/DELETED)."""
        now, before = self.visible(obj), self.visible(old)
        if etype == "DELETED":
            return "DELETED" if before or now else None
        if now and not before:
            return "ADDED"
        if before and not now:
            return "DELETED"
        return etype if now else None


def go_bool(text: str | None) -> bool:
    """Go's strconv.ParseBool truth, which the API server uses for query parameters."""
    return text in ("1", "t", "T", "true", "TRUE", "True")


def _status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class ApiServer:
    """The fake API server; `with ApiServer() as api:` starts it on 127.0.0.1:random."""

    def __init__(
        self,
        token: str | None = None,
        history: int = 1000,
        gone: str = "event",
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
        bookmark_interval: float = 0.0,
    ) -> None:
        self.token = token
        self.gone = gone  # "event": 200 + ERROR event (watch cache); "http": HTTP 410
        self.ssl_context = ssl_context
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.list_delay = 0.0  # seconds each non-watch request takes (to observe concurrency)
        self.rv = 100
        self.floor = 100  # watches from a resourceVersion below this get 410
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in RESOURCES}
        self.history: collections.deque[tuple[int, Resource, str, Obj, Obj | None]] = (
            collections.deque(maxlen=history)
        )
        self.watchers: set[_Watcher] = set()
        self.snapshots: collections.OrderedDict[str, tuple[int, list[Obj]]] = (
            collections.OrderedDict()
        )
        self.seen: list[Seen] = []
        self.is_down = False
        self.inflight = 0  # list requests being answered right now
        self.max_inflight = 0  # the most seen at once
        self._fail: list[tuple[int, int, Callable[[Seen], bool]]] = []
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._streams: dict[web.StreamResponse, web.Request] = {}

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> ApiServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test API server did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        routes: list[tuple[str, Callable[[web.Request], Any]]] = [
            ("/version", self._version),
            ("/api", self._api_versions),
            ("/apis", self._api_groups),
            ("/api/v1", self._resource_list),
            ("/apis/{group}/{version}", self._resource_list),
            ("/api/v1/{res}", self._collection),
            ("/api/v1/namespaces/{ns}/{res}", self._collection),
            ("/api/v1/namespaces/{name}", self._get_namespace),
            ("/apis/{group}/{version}/{res}", self._collection),
            ("/apis/{group}/{version}/namespaces/{ns}/{res}", self._collection),
        ]
        for path, handler in routes:  # some clients add a trailing slash
            app.router.add_get(path, handler)
            app.router.add_get(path + "/", handler)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()
        if self.bookmark_interval > 0:
            asyncio.get_running_loop().create_task(self._bookmark_ticker())

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await self._site.start()
        server = self._site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _cleanup(self) -> None:
        self._end_watches()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop (all state lives there) and return its result."""
        assert self._loop is not None

        async def run() -> Any:
            res = fn()
            if asyncio.iscoroutine(res):
                res = await res
            return res

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # ---- hooks for tests ---------------------------------------------------------------------

    def apply(self, *objs: Obj) -> int:
        """Create or replace objects (ADDED or MODIFIED events); returns the last resourceVersion."""
        return int(self.call(lambda: [self._apply(o) for o in objs][-1] if objs else self.rv))

    def delete(self, kind: str, ns: str, name: str) -> int:
        return int(self.call(lambda: self._delete(BY_KIND[kind], ns, name)))

    def get(self, kind: str, ns: str, name: str) -> Obj | None:
        res = BY_KIND[kind]
        return self.call(lambda: self.objects[res.plural].get((ns if res.namespaced else "", name)))

    def bookmark(self) -> int:
        """Send a BOOKMARK with the current resourceVersion to every watch that asked for them."""
        return int(self.call(self._bookmark))

    def expire_history(self) -> None:
        """Forget all events: watches from any resourceVersion before now get 410 Gone."""

        def run() -> None:
            self.history.clear()
            self.floor = self.rv

        self.call(run)

    def gap(self, apply: Iterable[Obj] = (), delete: Iterable[tuple[str, str, str]] = ()) -> int:
        """End every watch, make changes no watch sees, and expire the history.

        Clients must relist (their resourceVersion is now too old) to learn of the changes:
        the 410 Gone path, in one step.
        """

        def run() -> int:
            self._end_watches()
            for obj in apply:
                self._apply(obj)
            for kind, ns, name in delete:
                self._delete(BY_KIND[kind], ns, name)
            self.history.clear()
            self.floor = self.rv
            return self.rv

        return int(self.call(run))

    def expire_continue_tokens(self) -> None:
        self.call(self.snapshots.clear)

    def drop_watches(self, abort: bool = False) -> int:
        """End every open watch stream (cleanly, or by cutting the connection)."""
        return int(self.call(lambda: self._end_watches(abort)))

    def watch_count(self, resource: str | None = None) -> int:
        return int(
            self.call(lambda: sum(1 for w in self.watchers if resource in (None, w.res.plural)))
        )

    def down(self) -> None:
        """Stop listening and cut every connection: clients see refused connections."""

        async def run() -> None:
            self.is_down = True
            self._end_watches(abort=True)
            if self._site is not None:
                await self._site.stop()
                self._site = None
            assert self._runner is not None and self._runner.server is not None
            for conn in self._runner.server.connections:
                conn.force_close()
                if conn.transport is not None:
                    conn.transport.close()

        self.call(run)

    def up(self) -> None:
        async def run() -> None:
            await self._listen()
            self.is_down = False

        self.call(run)

    def fail_next(
        self, count: int, code: int = 500, match: Callable[[Seen], bool] | None = None
    ) -> None:
        """Answer the next `count` matching requests with HTTP `code`."""
        self._fail.append((count, code, match or (lambda s: True)))

    def requests(self, resource: str | None = None, watch: bool | None = None) -> list[Seen]:
        out = list(self.seen)
        return [
            s
            for s in out
            if (resource is None or s.resource == resource) and (watch is None or s.watch == watch)
        ]

    def load(self, objs: Iterable[Obj]) -> None:
        """Bulk-create objects without recording events (for big fixtures)."""

        def run() -> None:
            for o in objs:
                self._apply(o, record=False)

        self.call(run)

    # ---- state changes (server loop only) ----------------------------------------------------

    def _apply(self, obj: Obj, record: bool = True) -> int:
        res = BY_KIND[obj["kind"]]
        obj = json.loads(json.dumps(obj))  # a private copy: stored objects are never mutated
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "default") if res.namespaced else ""
        if res.namespaced:
            meta["namespace"] = ns
        key = (ns, meta["name"])
        old = self.objects[res.plural].get(key)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{next(self._ids)}")
        meta.setdefault("creationTimestamp", "2024-05-01T10:00:00Z")
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        self.objects[res.plural][key] = obj
        if record:
            self._event(res, "MODIFIED" if old else "ADDED", obj, old)
        return self.rv

    def _delete(self, res: Resource, ns: str, name: str) -> int:
        old = self.objects[res.plural].pop((ns if res.namespaced else "", name), None)
        if old is None:
            raise KeyError(f"{res.kind} {ns}/{name} does not exist")
        self.rv += 1
        gone = json.loads(json.dumps(old))
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._event(res, "DELETED", gone, old)
        return self.rv

    def _event(self, res: Resource, etype: str, obj: Obj, old: Obj | None) -> None:
        if len(self.history) == self.history.maxlen:
            self.floor = self.history[0][0]
        self.history.append((self.rv, res, etype, obj, old))
        for w in list(self.watchers):
            if w.res is res:
                self._offer(w, etype, obj, old)

    def _offer(self, w: _Watcher, etype: str, obj: Obj, old: Obj | None) -> None:
        seen_as = w.translate(etype, obj, old)
        if seen_as is not None:
            w.queue.put_nowait({"type": seen_as, "object": self._typed(w.res, obj)})

    def _bookmark(self) -> int:
        for w in self.watchers:
            if w.bookmarks:
                w.queue.put_nowait(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": w.res.kind,
                            "apiVersion": w.res.api_version,
                            "metadata": {"resourceVersion": str(self.rv)},
                        },
                    }
                )
        return self.rv

    async def _bookmark_ticker(self) -> None:
        while True:
            await asyncio.sleep(self.bookmark_interval)
            self._bookmark()

    def _end_watches(self, abort: bool = False) -> int:
        n = len(self.watchers)
        for w in list(self.watchers):
            w.queue.put_nowait(None)
        self.watchers.clear()
        if abort:
            for req in list(self._streams.values()):
                if req.transport is not None:
                    req.transport.close()
        return n

    @staticmethod
    def _typed(res: Resource, obj: Obj) -> Obj:
        return {"kind": res.kind, "apiVersion": res.api_version, **obj}

    # ---- HTTP --------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if self.is_down:  # a kept-alive connection that survived down(): cut it
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        seen = Seen(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Authorization", ""),
        )
        self.seen.append(seen)
        if self.token is not None and seen.auth != f"Bearer {self.token}":
            seen.status = 401
            return web.json_response(_status(401, "Unauthorized", "Unauthorized"), status=401)
        for i, (count, code, match) in enumerate(self._fail):
            if count > 0 and match(seen):
                self._fail[i] = (count - 1, code, match)
                seen.status = code
                return web.json_response(
                    _status(code, "InternalError", "injected failure"), status=code
                )
        if seen.watch:
            resp: web.StreamResponse = await handler(request)
        else:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            try:
                await asyncio.sleep(self.list_delay)
                resp = await handler(request)
            finally:
                self.inflight -= 1
        seen.status = resp.status
        return resp

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
        )

    async def _api_versions(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": []})  # fmt: skip

    async def _api_groups(self, request: web.Request) -> web.Response:
        groups = []
        for name, version in sorted({(r.group, r.version) for r in RESOURCES.values() if r.group}):
            gv = {"groupVersion": f"{name}/{version}", "version": version}
            groups.append({"name": name, "versions": [gv], "preferredVersion": gv})
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _resource_list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info.get("version", "v1")
        items = [
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "list", "watch", "create", "update", "delete"],
            }
            for r in RESOURCES.values()
            if r.group == group and r.version == version
        ]
        if not items:
            raise web.HTTPNotFound()
        gv = f"{group}/{version}" if group else version
        return web.json_response(
            {"kind": "APIResourceList", "groupVersion": gv, "resources": items}
        )

    async def _get_namespace(self, request: web.Request) -> web.Response:
        obj = self.objects["namespaces"].get(("", request.match_info["name"]))
        if obj is None:
            return web.json_response(_status(404, "NotFound", "namespace not found"), status=404)
        return web.json_response(self._typed(RESOURCES["namespaces"], obj))

    def _resource(self, request: web.Request) -> Resource:
        res = RESOURCES.get(request.match_info["res"])
        group = request.match_info.get("group", "")
        if res is None or res.group != group:
            raise web.HTTPNotFound()
        if "ns" in request.match_info and not res.namespaced:
            raise web.HTTPNotFound()
        return res

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        res = self._resource(request)
        q = request.query
        ns = request.match_info.get("ns", "")
        try:
            labels = label_selector(q.get("labelSelector", ""))
            fields = field_selector(q.get("fieldSelector", ""))
        except ValueError as e:
            return web.json_response(_status(400, "BadRequest", str(e)), status=400)
        if go_bool(q.get("watch")):
            w = _Watcher(res, ns, labels, fields, go_bool(q.get("allowWatchBookmarks")))
            return await self._watch(request, w)
        return self._list(res, ns, labels, fields, q)

    def _list(
        self,
        res: Resource,
        ns: str,
        labels: Callable[[Mapping[str, str]], bool],
        fields: Callable[[Obj], bool],
        q: Mapping[str, str],
    ) -> web.Response:
        limit = int(q.get("limit") or 0)
        token = q.get("continue", "")
        if token:
            try:
                snap_id, offset = json.loads(base64.b64decode(token))
            except ValueError:
                return web.json_response(
                    _status(400, "BadRequest", "invalid continue token"), status=400
                )
            snap = self.snapshots.get(snap_id)
            if snap is None:
                msg = "The provided continue parameter is too old to display a consistent list result."
                return web.json_response(_status(410, "Expired", msg), status=410)
            rv, items = snap
        else:
            rv, offset = self.rv, 0
            w = _Watcher(res, ns, labels, fields, False)
            items = [o for _, o in sorted(self.objects[res.plural].items()) if w.visible(o)]
            snap_id = str(next(self._ids))
        page = items[offset : offset + limit] if limit else items[offset:]
        meta: Obj = {"resourceVersion": str(rv)}
        nxt = offset + len(page)
        if limit and nxt < len(items):
            self.snapshots[snap_id] = (rv, items)
            while len(self.snapshots) > 32:
                self.snapshots.popitem(last=False)
            meta["continue"] = base64.b64encode(json.dumps([snap_id, nxt]).encode()).decode()
            meta["remainingItemCount"] = len(items) - nxt
        else:
            self.snapshots.pop(snap_id, None)
        body = {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": meta,
            "items": page,
        }
        return web.Response(
            body=json.dumps(body, separators=(",", ":")), content_type="application/json"
        )

    async def _watch(self, request: web.Request, w: _Watcher) -> web.StreamResponse:
        q = request.query
        start = q.get("resourceVersion", "")
        timeout = float(q.get("timeoutSeconds") or 1800)
        if start not in ("", "0"):
            if not start.isdigit():
                return web.json_response(
                    _status(400, "BadRequest", "invalid resourceVersion"), status=400
                )
            if int(start) < self.floor:
                msg = f"too old resource version: {start} ({self.floor})"
                if self.gone == "http":
                    return web.json_response(_status(410, "Expired", msg), status=410)
                w.queue.put_nowait({"type": "ERROR", "object": _status(410, "Expired", msg)})
                w.queue.put_nowait(None)
            else:
                for rv, res, etype, obj, old in self.history:
                    if res is w.res and rv > int(start):
                        self._offer(w, etype, obj, old)
                self.watchers.add(w)
        else:
            for _, obj in sorted(self.objects[w.res.plural].items()):
                if w.visible(obj):
                    w.queue.put_nowait({"type": "ADDED", "object": self._typed(w.res, obj)})
            if go_bool(q.get("sendInitialEvents")):
                # A watch-list (client-go's WatchListClient, used by CoreDNS 1.14): the initial
                # state ends with a bookmark carrying this annotation.
                meta = {
                    "resourceVersion": str(self.rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                w.queue.put_nowait(
                    {
                        "type": "BOOKMARK",
                        "object": {"kind": w.res.kind, "apiVersion": w.res.api_version,
                                   "metadata": meta},
                    }
                )  # fmt: skip
            self.watchers.add(w)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self._streams[resp] = request
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(w.queue.get(), left)
                except TimeoutError:
                    break
                if ev is None:
                    break
                await resp.write(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.watchers.discard(w)
            self._streams.pop(resp, None)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp


# ---- TLS material ---------------------------------------------------------------------------


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def make_certs(d: Path) -> Certs:
    """A CA and a server (IP 127.0.0.1) and client certificate signed by it, via openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed")
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (d / f"{name}.ext").write_text(ext + "\n")
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    return Certs(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
    )


def kubeconfig(
    server: str,
    token: str = "",
    token_file: str = "",
    context: str = "test",
    extra_contexts: Mapping[str, str] | None = None,
) -> str:
    """A kubeconfig (JSON is valid YAML) whose context `context` points at `server`."""
    user: Obj = {}
    if token:
        user["token"] = token
    if token_file:
        user["tokenFile"] = token_file
    clusters = [{"name": "test", "cluster": {"server": server}}]
    contexts = [{"name": context, "context": {"cluster": "test", "user": "test"}}]
    for name, url in (extra_contexts or {}).items():
        clusters.append({"name": name, "cluster": {"server": url}})
        contexts.append({"name": name, "context": {"cluster": name, "user": "test"}})
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": clusters,
            "contexts": contexts,
            "users": [{"name": "test", "user": user}],
        },
        indent=1,
    )


@contextlib.contextmanager
def running(**kw: Any) -> Iterator[ApiServer]:
    api = ApiServer(**kw).start()
    try:
        yield api
    finally:
        api.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description="serve generated objects from the test API server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--slices", type=int, default=0, help="EndpointSlices to generate")
    args = ap.parse_args()
    api = ApiServer(port=args.port).start()
    api.load(bench_slice(i) for i in range(args.slices))
    print(f"READY {api.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
