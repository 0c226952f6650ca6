"""kubernetes: the Kubernetes DNS-Based Service Discovery specification, as CoreDNS serves it.

Syntax::

    kubernetes [ZONES...] {
        endpoint URL
        tls CERT KEY CACERT
        kubeconfig KUBECONFIG [CONTEXT]
        namespaces NAMESPACE...
        namespace_labels EXPRESSION
        labels EXPRESSION
        pods disabled|insecure|verified
        endpoint_pod_names
        ttl TTL
        noendpoints
        fallthrough [ZONES...]
        ignore empty_service
        multicluster [ZONES...]
        zonal
        startup_timeout DURATION
        apiserver_qps QPS
        apiserver_burst BURST
        apiserver_max_inflight MAX
        manifests PATH...
        snapshot FILE [INTERVAL] {
            max_age DURATION
        }
    }

ZONES default to the server block's; CIDRs stand for their reverse zones. Objects come from the
Kubernetes API (in-cluster, `endpoint`+`tls`, or `kubeconfig`), or — our own option — from the
YAML/JSON files and directories given to `manifests`, watched for changes. `ttl` is 0-3600
(default 5). `startup_timeout` (default 5s) is how long starting the server waits for the first
sync; until that sync is done, names that do not exist get SERVFAIL instead of NXDOMAIN.
`snapshot` (ours) keeps the records in FILE, rewritten at most every INTERVAL (10s) after
changes, and serves them when the API is not reachable within `startup_timeout` at start, if
not older than `max_age` (24h) (snapshot_runtime.py; not used with `manifests`). `upstream`
is accepted and ignored (deprecated). `multicluster ZONES` answers names in those zones from
MCS-API ServiceImports and their multicluster EndpointSlices, watched only then
(lookup.py's find_multicluster_services; xfr.py). `zonal` adds
TOPOZONE.(pin|prefer)._zone.SERVICE.NS.svc.ZONE names for headless services (lookup.py).
The records served, and where they differ from the specification, are in
docs/plugins/kubernetes.md.

The NS records at the apex name this server's Service, found as CoreDNS finds it: the Services
whose endpoints hold one of our own addresses (local.py); when none does, `ns.dns.ZONE` with
those addresses; with none (bound, or loopback only), NODATA.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import dns.message
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.pkg.metadata import Func
from clusterdns.plugin import Plugin, RelayQuestion, Replay, ReplayableHook, SetupContext
from clusterdns.plugins.kubernetes.autopath_search import RESOLV_CONF, resolv_search
from clusterdns.plugins.kubernetes.external import External
from clusterdns.plugins.kubernetes.handler import Handler
from clusterdns.plugins.kubernetes.local import local_ips
from clusterdns.plugins.kubernetes.lookup import Backend, TimedStore
from clusterdns.plugins.kubernetes.metadata import published
from clusterdns.plugins.kubernetes.metrics import DNS_PROGRAMMING
from clusterdns.plugins.kubernetes.setup import Settings, parse
from clusterdns.plugins.kubernetes.source import Source, SourceOptions
from clusterdns.plugins.kubernetes.store import MC_KINDS
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.plugins.kubernetes.api import ApiSource
    from clusterdns.plugins.kubernetes.snapshot_runtime import SnapshotKeeper
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.kubernetes")

# DNS_PROGRAMMING is re-exported so that loading the plugin registers (and exposes) its metric.
__all__ = ["DNS_PROGRAMMING", "PLUGIN", "Kubernetes"]


class Kubernetes(External, Plugin):
    """The plugin; `External` (external.py) serves the k8s_external plugin's lookups."""

    name = "kubernetes"
    replay = Replay.ALWAYS  # depends on its store slot; SRV case marked

    def __init__(self, settings: Settings, search: list[str] | None = None) -> None:
        self.settings = settings
        #: /etc/resolv.conf's search domains, for autopath (read at setup, as CoreDNS).
        self.search = search or []
        self.backend = Backend(settings)
        self.source: Source | None = None
        self.keeper: SnapshotKeeper | None = None
        self.resolver = Handler(settings, self.backend, self._next, self._synced, self._serial)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Kubernetes:
        return cls(parse(directives, ctx), resolv_search(RESOLV_CONF))

    async def _next(self, req: Request) -> dns.message.Message:
        return await self.next(req)

    def _synced(self) -> bool:
        return self.source is not None and self.source.synced()

    def _serial(self, zone: str = "") -> int:
        """The SOA serial: when the zone's data last changed (multicluster zones: imports)."""
        store = self.backend.store
        if not isinstance(store, TimedStore):
            return 0
        if zone and self.settings.multicluster and self.settings.is_multicluster(zone):
            return int(store.mc_modified)
        return int(store.modified)

    def source_options(self) -> SourceOptions:
        """What to fetch, as CoreDNS's informers: Services and Namespaces always (a name in a
        namespace that does not exist is NXDOMAIN), EndpointSlices unless `noendpoints`, Pods
        only for `pods verified`; with `multicluster`, ServiceImports and the multicluster
        EndpointSlices (whatever `noendpoints` says, as CoreDNS). ServiceImports are listed
        with the `namespace_labels` selector as their label selector, as CoreDNS does."""
        s = self.settings
        kinds = {"Service", "Namespace"}
        if not s.noendpoints:
            kinds.add("Endpoints")
        if s.pod_mode == "verified":
            kinds.add("Pod")
        imports = ""
        if s.multicluster:
            kinds |= MC_KINDS
            imports = str(s.namespace_labels) if s.namespace_labels is not None else ""
        return SourceOptions(
            frozenset(kinds), s.labels, tuple(sorted(s.namespaces)), import_selector=imports
        )

    async def start(self, rt: Runtime) -> None:
        s = self.settings
        store = TimedStore()
        # Every change of the data voids the fast path's answers made from it (handler.py).
        slot = fastpath.new_slot()
        store.on_change = partial(fastpath.bump, slot)
        self.resolver.slot = slot
        options = self.source_options()
        source: Source
        keeper: SnapshotKeeper | None = None
        if s.manifests:
            from clusterdns.plugins.kubernetes.manifests import ManifestSource

            source = ManifestSource(list(s.manifests), store, options)
        else:
            from clusterdns.plugins.kubernetes.api import ApiSource

            source = api_source = ApiSource(s.api, store, options)
        self.backend.store = store
        self.backend.local_ips = local_ips(s.bind_hosts)
        self.resolver.runtime = rt
        await source.start()
        self.source = source
        if s.snapshot is not None and not s.manifests:
            from clusterdns.plugins.kubernetes.snapshot_runtime import SnapshotKeeper

            identity = self._identity(api_source)
            keeper = SnapshotKeeper(s.snapshot, store, api_source, identity)
        await self._wait_synced(source, s.startup_timeout)
        if keeper is not None:
            if not source.synced():
                await keeper.restore(s.startup_timeout)
            keeper.start()
            self.keeper = keeper

    def _identity(self, source: ApiSource) -> dict[str, Any]:
        """What the stored records depend on: a snapshot written for other values is foreign."""
        s, options = self.settings, self.source_options()
        return {
            "zones": list(s.zones),
            "kinds": sorted(options.kinds),
            "labels": options.label_selector,
            "namespaces": list(options.namespaces),
            "api": source.host,
            # endpoints' pod names are only kept with endpoint_pod_names (records.keep_targets)
            **({"pod_names": True} if s.endpoint_pod_names else {}),
        }

    async def _wait_synced(self, source: Source, timeout: float) -> None:
        """CoreDNS's onStart: poll every 100ms, say so every 500ms, give up after `timeout`."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_log = start + 0.5
        while not source.synced():
            now = loop.time()
            if now - start >= timeout:
                log.warning("plugin/kubernetes: starting server with unsynced Kubernetes API")
                return
            if now >= next_log:
                log.info("plugin/kubernetes: waiting for Kubernetes API before starting server")
                next_log += 0.5
            await asyncio.sleep(min(0.1, max(0.0, start + timeout - now)))

    async def stop(self) -> None:
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            await keeper.stop()
        source, self.source = self.source, None
        self.resolver.runtime = None
        if source is not None:
            await source.stop()

    def ready(self) -> bool | None:
        return self._synced()

    def rbac_rules(self) -> list[dict[str, Any]]:
        """RBAC rules this configuration needs beyond the ClusterRole `clusterdns manifests`
        always writes: `multicluster` lists and watches ServiceImports."""
        if not self.settings.multicluster:
            return []
        return [
            {
                "apiGroups": ["multicluster.x-k8s.io"],
                "resources": ["serviceimports"],
                "verbs": ["list", "watch"],
            }
        ]

    def autopath_search(self, req: Request) -> list[str] | None:
        """The client's search path for the *autopath* plugin (CoreDNS's AutoPath), or None.

        Only with `pods verified`, for names in our zones, when the client's address is a
        pod's (primary) IP: `NS.svc.ZONE`, `svc.ZONE`, `ZONE`, the search domains of
        /etc/resolv.conf, then "" (the name as asked).
        """
        s = self.settings
        zone = longest_match(s.zones, req.qname)
        if not zone or s.pod_mode != "verified":
            return None
        pods = self.backend.store.pods_at(req.remote_ip)
        pod = next((p for p in pods if p.ips[0] == req.remote_ip and not p.deleting), None)
        if pod is None:
            return None
        ns = pod.namespace
        if zone == ".":
            search = [f"{ns}.svc.", "svc.", "."]
        else:
            search = [f"{ns}.svc.{zone}", f"svc.{zone}", zone]
        return [*search, *self.search, ""]

    def metadata(self, req: Request) -> dict[str, Func]:
        """What the *metadata* plugin publishes for `req` (clusterdns.pkg.metadata.Provider)."""
        return published(self.settings, self.backend, req)

    def relay_pass(self, q: RelayQuestion) -> tuple[ReplayableHook, ...] | None:
        """Names outside its zones go to the next plugin untouched (Handler.serve)."""
        return None if longest_match(self.settings.zones, q.name) else ()

    async def serve(self, req: Request) -> dns.message.Message:
        return await self.resolver.serve(req)

    def transfer(self, zone: str, serial: int) -> list[dns.rrset.RRset]:
        """clusterdns.pkg.xfr.Transferer: the cluster zone for the *transfer* plugin."""
        from clusterdns.plugins.kubernetes.xfr import transfer

        return transfer(self.backend, self.settings.zones, zone, serial, self._serial(zone.lower()))


PLUGIN = Kubernetes
