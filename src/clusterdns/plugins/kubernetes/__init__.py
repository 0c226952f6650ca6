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
        startup_timeout DURATION
        apiserver_qps QPS
        apiserver_burst BURST
        apiserver_max_inflight MAX
        manifests PATH...
    }

ZONES default to the server block's; CIDRs stand for their reverse zones. Objects come from the
Kubernetes API (in-cluster, `endpoint`+`tls`, or `kubeconfig`), or — our own option — from the
YAML/JSON files and directories given to `manifests`, watched for changes. `ttl` is 0-3600
(default 5). `startup_timeout` (default 5s) is how long starting the server waits for the first
sync; until that sync is done, names that do not exist get SERVFAIL instead of NXDOMAIN.
`upstream` is accepted and ignored (deprecated); `zonal` and `multicluster` are not supported
yet. The records served, and where they differ from the specification, are in
docs/plugins/kubernetes.md.

The NS records at the apex name this server's Service, found as CoreDNS finds it: the Service
whose endpoints hold one of our own addresses. When none does — outside a cluster, or serving
manifests — the `kube-dns` Service in `kube-system` stands for it (it is what CoreDNS finds in a
cluster), else `ns.dns.ZONE` with our addresses, CoreDNS's own fallback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from functools import partial
from typing import TYPE_CHECKING

import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, SetupContext
from clusterdns.plugins.kubernetes.autopath_search import RESOLV_CONF, resolv_search
from clusterdns.plugins.kubernetes.external import External
from clusterdns.plugins.kubernetes.handler import Handler
from clusterdns.plugins.kubernetes.lookup import Backend, TimedStore
from clusterdns.plugins.kubernetes.metrics import DNS_PROGRAMMING
from clusterdns.plugins.kubernetes.setup import Settings, parse
from clusterdns.plugins.kubernetes.source import Source, SourceOptions
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.kubernetes")

# DNS_PROGRAMMING is re-exported so that loading the plugin registers (and exposes) its metric.
__all__ = ["DNS_PROGRAMMING", "PLUGIN", "Kubernetes"]


class Kubernetes(External, Plugin):
    """The plugin; `External` (external.py) serves the k8s_external plugin's lookups."""

    name = "kubernetes"

    def __init__(self, settings: Settings, search: list[str] | None = None) -> None:
        self.settings = settings
        #: /etc/resolv.conf's search domains, for autopath (read at setup, as CoreDNS).
        self.search = search or []
        self.backend = Backend(settings)
        self.source: Source | None = None
        self.resolver = Handler(settings, self.backend, self._next, self._synced, self._serial)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Kubernetes:
        return cls(parse(directives, ctx), resolv_search(RESOLV_CONF))

    async def _next(self, req: Request) -> dns.message.Message:
        return await self.next(req)

    def _synced(self) -> bool:
        return self.source is not None and self.source.synced()

    def _serial(self) -> int:
        store = self.backend.store
        return int(store.modified) if isinstance(store, TimedStore) else 0

    def source_options(self) -> SourceOptions:
        """What to fetch, as CoreDNS's informers: Services and Namespaces always (a name in a
        namespace that does not exist is NXDOMAIN), EndpointSlices unless `noendpoints`, Pods
        only for `pods verified`."""
        s = self.settings
        kinds = {"Service", "Namespace"}
        if not s.noendpoints:
            kinds.add("Endpoints")
        if s.pod_mode == "verified":
            kinds.add("Pod")
        return SourceOptions(frozenset(kinds), s.labels, tuple(sorted(s.namespaces)))

    async def start(self, rt: Runtime) -> None:
        s = self.settings
        store = TimedStore()
        # Every change of the data voids the fast path's answers made from it (handler.py).
        slot = fastpath.new_slot()
        store.on_change = partial(fastpath.bump, slot)
        self.resolver.slot = slot
        options = self.source_options()
        source: Source
        if s.manifests:
            from clusterdns.plugins.kubernetes.manifests import ManifestSource

            source = ManifestSource(list(s.manifests), store, options)
        else:
            from clusterdns.plugins.kubernetes.api import ApiSource

            source = ApiSource(s.api, store, options)
        self.backend.store = store
        self.backend.local_ips = local_ips(s.bind_hosts)
        self.resolver.runtime = rt
        await source.start()
        self.source = source
        await self._wait_synced(source, s.startup_timeout)

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
        source, self.source = self.source, None
        self.resolver.runtime = None
        if source is not None:
            await source.stop()

    def ready(self) -> bool | None:
        return self._synced()

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
        pods = self.backend.store.pods_by_ip.get(req.remote_ip, ())
        pod = next((p for p in pods if p.ips[0] == req.remote_ip and not p.deleting), None)
        if pod is None:
            return None
        ns = pod.namespace
        if zone == ".":
            search = [f"{ns}.svc.", "svc.", "."]
        else:
            search = [f"{ns}.svc.{zone}", f"svc.{zone}", zone]
        return [*search, *self.search, ""]

    async def serve(self, req: Request) -> dns.message.Message:
        return await self.resolver.serve(req)


def local_ips(bind_hosts: list[str]) -> list[str]:
    """Our own non-loopback addresses: the bound ones, else every interface's (CoreDNS's
    boundIPs), used to find the Service this server is an endpoint of."""
    texts = [h for h in bind_hosts if h and h not in ("0.0.0.0", "::")]
    if not texts:
        try:
            import psutil

            for addrs in psutil.net_if_addrs().values():
                for a in addrs:
                    if a.family in (socket.AF_INET, socket.AF_INET6):
                        texts.append(str(a.address))
        except Exception:  # no interfaces to read (sandbox): no local addresses
            texts = []
    out: list[str] = []
    for t in texts:
        try:
            ip = ipaddress.ip_address(t.split("%", 1)[0])
        except ValueError:
            continue
        if not ip.is_loopback and not ip.is_unspecified and str(ip) not in out:
            out.append(str(ip))
    return out


PLUGIN = Kubernetes
