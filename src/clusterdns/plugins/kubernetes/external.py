"""The kubernetes plugin's side of *k8s_external* (clusterdns.pkg.external.Externaler).

As CoreDNS's plugin/kubernetes/external.go: a name under an external zone is
`service.namespace.ZONE`, `endpoint.service.namespace.ZONE` or
`_port._proto.service.namespace.ZONE`. It holds the Service's external IPs (spec.externalIPs,
then LoadBalancer ingress IPs or hostnames) or, with `headless`, for a headless Service
without external IPs or for any endpoint name, its ready endpoints' addresses. A Service
without any of those does not exist there (NXDOMAIN). Kept apart from the internal lookups
(lookup.py), which it only reads.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dns.rcode
import dns.rdatatype

from clusterdns.pkg.external import ExternalService
from clusterdns.plugins.kubernetes.lookup import (
    _NO_PORT,
    CNAME,
    RecordRequest,
    TimedStore,
    _port_match,
    _strip,
    address_from_reverse,
    endpoint_hostname,
    host_type,
)
from clusterdns.plugins.kubernetes.records import Endpoints, Service

if TYPE_CHECKING:
    from clusterdns.plugins.kubernetes.handler import Handler
    from clusterdns.plugins.kubernetes.lookup import Backend
    from clusterdns.plugins.kubernetes.setup import Settings

NX, OK, SERVFAIL = dns.rcode.NXDOMAIN, dns.rcode.NOERROR, dns.rcode.SERVFAIL


class External:
    """Mixed into the Kubernetes plugin class: the Externaler methods."""

    backend: Backend
    settings: Settings
    resolver: Handler
    #: (store generation seen, external data fingerprint, serial, reverse index)
    _ext_state: tuple[int, frozenset[object], int, dict[str, list[Service]]] | None = None

    def _synced(self) -> bool:
        raise NotImplementedError

    def external(
        self, qname: str, zone: str, qtype: int, headless: bool
    ) -> tuple[list[ExternalService], int]:
        b, ttl = self.backend, self.settings.ttl
        labels = [label for label in qname.split(".") if label]
        if qtype == dns.rdatatype.PTR:
            ip = address_from_reverse(labels)
            if ip:
                rev = self._external_reverse(ip)
                return rev, OK if rev else NX
            # not a reverse address: the name's existence decides NXDOMAIN or NODATA below
        nz = 0 if zone == "." else zone.count(".")
        segs = labels[: len(labels) - nz]
        if not segs:
            return [], SERVFAIL
        namespace = segs.pop()
        if not b.namespace_exposed(namespace):
            return [], NX
        if not segs:
            return [], OK
        service = segs.pop()
        r = RecordRequest()
        if len(segs) == 1:
            r.endpoint = _strip(segs[0])
        elif len(segs) == 2:
            r.port, r.protocol = _strip(segs[0]), _strip(segs[1])
        elif segs:
            return [], NX  # too long
        svc = b.store.service(namespace, service)
        if svc is None:
            return [], NX
        out: list[ExternalService] = []
        zone_part = "" if zone == "." else zone
        base = f"{svc.name}.{svc.namespace}.{zone_part}".rstrip(".")
        if headless and not svc.external_ips and (svc.headless or r.endpoint):
            pod_names = self.settings.endpoint_pod_names
            for ep in b.store.service_endpoints(svc.namespace, svc.name):
                for addr in ep.addresses:
                    if not b._ready(addr, svc):
                        continue
                    label = endpoint_hostname(addr, pod_names)
                    if r.endpoint and r.endpoint != label.lower():
                        continue
                    for p in ep.ports or _NO_PORT:
                        if _port_match(r, p):
                            out.append(ExternalService(addr.ip, p.port, f"{label}.{base}", ttl))
        else:
            for ip in svc.external_ips:
                for p in svc.ports or _NO_PORT:
                    if _port_match(r, p):
                        out.append(ExternalService(ip, p.port, base, ttl))
        if qtype == dns.rdatatype.PTR:
            return [], OK if out else NX
        return out, OK if out else NX

    def external_address(self, zone: str, headless: bool) -> list[str]:
        """CoreDNS's nsAddrs(external=true): the external IPs (with `headless`, the endpoint
        addresses of a headless Service) of the Services whose endpoints hold our own
        addresses; when none does, our local addresses (none when bound, as CoreDNS)."""
        b = self.backend
        store = b.store
        found: list[tuple[Service, Endpoints | None]] = []
        for lip in b.local_ips:
            for local_ep, _ in store.endpoints_at(lip):
                svc = store.service(local_ep.namespace, local_ep.service)
                if svc is not None:
                    found.append((svc, local_ep))
        if not found:
            return list(b.local_ips)
        out: list[str] = []
        for svc, ep in found:
            if headless and svc.headless:
                if ep is not None:
                    out.extend(a.ip for a in ep.addresses if b._ready(a, svc))
            else:
                out.extend(svc.external_ips)
        return list(dict.fromkeys(out))

    def external_serial(self, zone: str) -> int:
        return self._ext()[2]

    def external_slot(self) -> int:
        return self.resolver.slot if self._synced() else 0

    def _external_reverse(self, ip: str) -> list[ExternalService]:
        """CoreDNS's ExternalReverse: the Services with that external IP (`name.namespace`)."""
        b, only = self.backend, bool(self.settings.namespaces)
        return [
            ExternalService(f"{svc.name}.{svc.namespace}", ttl=self.settings.ttl)
            for svc in self._ext()[3].get(ip, ())
            if not only or b.namespace_exposed(svc.namespace)
        ]

    def _ext(self) -> tuple[int, frozenset[object], int, dict[str, list[Service]]]:
        """The external view, rebuilt when the store changed: the serial moves (as CoreDNS's
        extModified) only when a Service with external IPs came, went or changed."""
        store = self.backend.store
        state = self._ext_state
        if state is not None and state[0] == store.generation:
            return state
        ext = [s for s in store.services.values() if s.external_ips]
        fp = frozenset(dataclasses_key(s) for s in ext)
        serial = state[2] if state is not None else 0
        if (state is None or fp != state[1]) and (fp or state is not None):
            modified = store.modified if isinstance(store, TimedStore) else 0.0
            serial = int(modified or time.time())
        index: dict[str, list[Service]] = {}
        for s in ext:
            for ip in s.external_ips:
                kind, text = host_type(ip)
                index.setdefault(text if kind != CNAME else ip, []).append(s)
        self._ext_state = (store.generation, fp, serial, index)
        return self._ext_state


def dataclasses_key(s: Service) -> object:
    return (s.namespace, s.name, s.external_ips, s.ports, s.type)
