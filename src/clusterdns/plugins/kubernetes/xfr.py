"""The cluster zone as a zone transfer gives it (CoreDNS's Kubernetes.Transfer, xfr.go).

For the *transfer* plugin (clusterdns.pkg.xfr.Transferer): the SOA, an NS record per name
server and their addresses, then per exposed Service (sorted by name): ClusterIP services their
A/AAAA and SRV records (one at the service name with weight 100 for every port, one per named
port), headless services an A/AAAA at the service name and at the endpoint's name per ready
address and an SRV per named port, ExternalName services their CNAME; the SOA again last. IXFR
with the current serial gets the SOA alone. Any name under the plugin's zones is answered as if
it were the zone, as CoreDNS does.

A `multicluster` zone transfers ServiceImports instead (CoreDNS's transferMultiClusterServices):
a ClusterSetIP import as a ClusterIP service; any other its multicluster endpoints as a headless
service's — the endpoint names without the cluster label, as CoreDNS writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.IN.SRV
import dns.rrset

from clusterdns.pkg.xfr import NotAuthoritative
from clusterdns.plugins.kubernetes.answers import Answers, address
from clusterdns.plugins.kubernetes.lookup import CNAME, Backend, endpoint_hostname, host_type
from clusterdns.plugins.kubernetes.records import Address, Endpoints, MultiClusterEndpoints, Port
from clusterdns.zones import longest_match

_IN = dns.rdataclass.IN
_T = dns.rdatatype


def _rrset(owner: str, ttl: int, rd: dns.rdata.Rdata) -> dns.rrset.RRset:
    return dns.rrset.from_rdata(dns.name.from_text(owner), ttl, rd)


def _srv(owner: str, ttl: int, weight: int, port: int, target: str) -> dns.rrset.RRset:
    t = dns.name.from_text(target) if target else dns.name.root
    rd = dns.rdtypes.IN.SRV.SRV(_IN, _T.SRV, 0, weight, port, t)  # type: ignore[no-untyped-call]
    return _rrset(owner, ttl, rd)


def _address(owner: str, ttl: int, ip: str) -> dns.rrset.RRset | None:
    kind, text = host_type(ip)
    return None if kind == CNAME else _rrset(owner, ttl, address(text, kind))


def srv_weight(n: int) -> int:
    """CoreDNS's calcSRVWeight: 100 split over `n` records, at least 1."""
    return max(1, int(100.0 / (100 * n) * 100)) if n > 0 else 1


def transfer(backend: Backend, zones: list[str], zone: str, serial: int, soa_serial: int) -> list[
    dns.rrset.RRset
]:  # fmt: skip
    if not longest_match(zones, zone):
        raise NotAuthoritative(zone)
    s, store = backend.s, backend.store
    ttl = s.ttl
    soa_rr = Answers(backend, _no_upstream).soa(dns.name.from_text(zone), soa_serial)
    if soa_rr is None:  # a zone too long for an SOA has nothing to transfer
        raise NotAuthoritative(zone)
    owner, soa_ttl, soa_rd = soa_rr
    soa = dns.rrset.from_rdata(owner, soa_ttl, soa_rd)
    if serial != 0 and soa_serial & 0xFFFFFFFF == serial:
        return [soa]
    out: list[dns.rrset.RRset] = [soa]
    ns_addrs = backend.ns_addrs(zone)
    hosts: list[str] = []
    for host, _ in ns_addrs:
        if host not in hosts:
            hosts.append(host)
            ns = dns.rdtypes.ANY.NS.NS(_IN, _T.NS, dns.name.from_text(host))  # type: ignore[no-untyped-call]
            out.append(_rrset(zone, ttl, ns))
    for host, ip in ns_addrs:
        rr = _address(host, ttl, ip)
        if rr is not None:
            out.append(rr)
    if s.multicluster and s.is_multicluster(zone.lower()):
        _imports(backend, zone, out)
        out.append(soa)
        return out
    for svc in sorted(store.services.values(), key=lambda v: v.name):
        if not backend.namespace_exposed(svc.namespace):
            continue
        base = f"{svc.name}.{svc.namespace}.svc.{zone}"
        if svc.type in ("ClusterIP", "NodePort", "LoadBalancer") and svc.cluster_ips:
            _cluster_ip(base, ttl, svc.cluster_ips, svc.ports, out)
            continue
        if svc.type == "ExternalName":
            if host_type(svc.external_name)[0] == CNAME:
                target = dns.name.from_text(svc.external_name)
                rd = dns.rdtypes.ANY.CNAME.CNAME(_IN, _T.CNAME, target)  # type: ignore[no-untyped-call]
                out.append(_rrset(base, ttl, rd))
            continue
        eps = store.service_endpoints(svc.namespace, svc.name)
        ready = [[a for a in ep.addresses if backend._ready(a, svc)] for ep in eps]
        _endpoints(backend, base, ready, eps, out)
    out.append(soa)
    return out


def _endpoints(
    backend: Backend,
    base: str,
    ready: list[list[Address]],
    eps: Sequence[Endpoints | MultiClusterEndpoints],
    out: list[dns.rrset.RRset],
) -> None:
    """A headless service's (or import's) records: per ready address an A/AAAA at `base` and
    at its endpoint name, and an SRV per named port."""
    ttl, pod_names = backend.s.ttl, backend.s.endpoint_pod_names
    for ep, addrs in zip(eps, ready, strict=True):
        weight = srv_weight(len(addrs))
        for a in addrs:
            rr = _address(base, ttl, a.ip)
            if rr is not None:
                out.append(rr)
            name = f"{endpoint_hostname(a, pod_names)}.{base}"
            rr = _address(name, ttl, a.ip)
            if rr is not None:
                out.append(rr)
            for p in ep.ports:
                if p.name:
                    named = f"_{p.name.lower()}._{p.protocol.lower()}.{base}"
                    out.append(_srv(named, ttl, weight, p.port, name if rr else ""))


def _cluster_ip(
    base: str, ttl: int, ips: Sequence[str], ports: Sequence[Port], out: list[dns.rrset.RRset]
) -> None:
    """A ClusterIP service's (or ClusterSetIP import's) records."""
    host = ""
    for ip in ips:
        rr = _address(base, ttl, ip)
        host = base if rr is not None else ""
        if rr is not None:
            out.append(rr)
    for p in ports:
        out.append(_srv(base, ttl, 100, p.port, host))
        if p.name:
            named = f"_{p.name.lower()}._{p.protocol.lower()}.{base}"
            out.append(_srv(named, ttl, 100, p.port, host))


def _imports(backend: Backend, zone: str, out: list[dns.rrset.RRset]) -> None:
    store = backend.store
    for imp in sorted(store.imports.values(), key=lambda v: v.name):
        if not backend.namespace_exposed(imp.namespace):
            continue
        base = f"{imp.name}.{imp.namespace}.svc.{zone}"
        if imp.ips:
            _cluster_ip(base, backend.s.ttl, imp.ips, imp.ports, out)
            continue
        eps = store.import_endpoints(imp.namespace, imp.name)
        _endpoints(backend, base, [list(ep.addresses) for ep in eps], eps, out)


async def _no_upstream(target: str, qtype: int) -> None:
    return None
