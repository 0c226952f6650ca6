"""What exists under the plugin's zones: CoreDNS's Records/Services/Reverse, on the Store.

A lookup returns Items (CoreDNS's msg.Service: a host that is an IP, a name or empty, a port,
the name an SRV/NS record would point at, a TXT text) and whether the name does not exist
(CoreDNS's errNoItems/errNsNotExposed/errInvalidRequest, all answered NXDOMAIN). answers.py turns
them into records. Every lookup goes through the Store's indexes, so its cost follows the
answer, not the cluster.

Names are handled lower-cased (`Query.labels`); `Query.zone` keeps the zone as the client wrote
it, because CoreDNS builds SRV/NS targets and the SOA from the zone in the query's case.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from dataclasses import dataclass, field
from functools import lru_cache

from clusterdns.plugins.kubernetes.records import Address, Endpoints, Port, Record, Service
from clusterdns.plugins.kubernetes.setup import Settings, is_reverse
from clusterdns.plugins.kubernetes.store import MC_KINDS, Store

DNS_SCHEMA_VERSION = "1.1.0"
TXT_TTL = 28800
NS_NAME = "ns.dns."
_NO_PORT = (Port("", "", -1),)  # CoreDNS's sentinel for objects without ports

A, AAAA, CNAME, TXT = "A", "AAAA", "CNAME", "TXT"
#: `zonal` names: TOPOZONE.pin._zone.… (zone-local endpoints only) or .prefer._zone.…
#: (zone-local endpoints, else all).
ZONE_LABEL, PIN, PREFER = "_zone", "pin", "prefer"


@dataclass(slots=True)
class Item:
    host: str = ""  # an IP, a domain name (CNAME/PTR target), or "" with text (TXT)
    port: int = 0
    target: str = ""  # SRV/NS target: CoreDNS's msg.Domain(Key)
    text: str = ""
    ttl: int = 5


@dataclass(slots=True)
class Query:
    """One name being looked up: lower-cased labels (no root) and the zone in query case."""

    labels: list[str]
    zone: str  # text, query case, trailing dot
    nz: int  # labels in the zone

    @property
    def name(self) -> str:
        return ".".join(self.labels) + "." if self.labels else "."


@dataclass(slots=True)
class RecordRequest:
    port: str = ""
    protocol: str = ""
    endpoint: str = ""
    cluster: str = ""  # `multicluster` zones: ENDPOINT.CLUSTER.service.namespace.svc.zone
    service: str = ""
    namespace: str = ""
    pod_or_svc: str = ""
    #: `zonal`: the topology zone of TOPOZONE.(pin|prefer)._zone.service.namespace.svc.ZONE,
    #: and whether the directive was `prefer` (all endpoints when the zone holds none).
    zone: str = ""
    zone_prefer: bool = False


@lru_cache(maxsize=4096)
def host_type(host: str) -> tuple[str, str]:
    """CoreDNS's HostType: (A|AAAA, ip text) for an address, (CNAME, "") for anything else.

    Like Go's net.ParseIP: no IPv6 zones, IPv4-mapped IPv6 counts as IPv4.
    """
    if "%" in host:
        return CNAME, ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return CNAME, ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return A, str(ip.ipv4_mapped)
        return AAAA, str(ip)
    return A, str(ip)


def address_from_reverse(labels: list[str]) -> str:
    """dnsutil.ExtractAddressFromReverse on lower-case labels; "" when it is no address."""
    if len(labels) > 2 and labels[-1] == "arpa" and labels[-2] == "in-addr":
        kind, ip = host_type(".".join(reversed(labels[:-2])))
        return ip if kind == A and ":" not in ip else ""
    if len(labels) > 2 and labels[-1] == "arpa" and labels[-2] == "ip6":
        nibbles = list(reversed(labels[:-2]))
        groups = ["".join(nibbles[i * 4 : i * 4 + 4]) for i in range(len(nibbles) // 4)]
        kind, ip = host_type(":".join(groups))
        return ip if kind != CNAME else ""
    return ""


def is_default_ns(q: Query) -> bool:
    """CoreDNS's isDefaultNS: `ns.dns.` then the zone as the query wrote it, found where
    expected (so a zone asked in another case, or the root zone, never matches)."""
    name = q.name
    return name.startswith(NS_NAME) and name.find(q.zone) == len(NS_NAME)


def endpoint_hostname(addr: Address, pod_names: bool) -> str:
    """The endpoint's label: hostname, else (endpoint_pod_names) pod name, else dashed IP."""
    if addr.hostname:
        return addr.hostname
    if pod_names and addr.target:
        return addr.target
    if "." in addr.ip:
        return addr.ip.replace(".", "-")
    if ":" in addr.ip:
        dashed = addr.ip.replace(":", "-")
        return dashed + "0" if dashed.endswith("-") else dashed
    return ""


def parse_request(
    q: Query, zonal: bool = False, multicluster: bool = False
) -> tuple[RecordRequest, bool]:
    """CoreDNS's parseRequest: [_port._proto.|endpoint.]service.namespace.(svc|pod).zone, and
    with `zonal` TOPOZONE.(pin|prefer)._zone.service.namespace.svc.zone (TOPOZONE may span
    labels: every label left of the directive). In a multicluster zone two labels left of
    the service without a leading underscore are ENDPOINT.CLUSTER, and zonal names are not
    defined. Anything else longer is invalid (NXDOMAIN)."""
    r = RecordRequest()
    segs = q.labels[: len(q.labels) - q.nz]
    if not segs or segs == ["svc"] or segs == ["pod"]:
        return r, False
    r.pod_or_svc = segs[-1]
    if r.pod_or_svc not in ("svc", "pod"):
        return r, True
    rest = segs[:-1]
    if rest:
        r.namespace = rest.pop()
    if rest:
        r.service = rest.pop()
    if len(rest) == 1:
        r.endpoint = rest[0]
    elif len(rest) == 2:
        if multicluster and not rest[0].startswith("_") and not rest[1].startswith("_"):
            r.endpoint, r.cluster = rest
        else:
            r.port, r.protocol = _strip(rest[0]), _strip(rest[1])
    elif rest:
        if not zonal or multicluster or rest[-1] != ZONE_LABEL or r.pod_or_svc != "svc":
            return r, True
        if rest[-2] not in (PIN, PREFER):
            return r, True
        r.zone, r.zone_prefer = ".".join(rest[:-2]), rest[-2] == PREFER
    return r, False


def _strip(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def _port_match(r: RecordRequest, p: Port) -> bool:
    """matchPortAndProtocol: an empty request part matches anything, else case-insensitively."""
    return (not r.port or r.port == p.name.lower()) and (
        not r.protocol or r.protocol == p.protocol.lower()
    )


def _same(a: Record, b: Record) -> bool:
    return a == b or dataclasses.replace(a, version="") == dataclasses.replace(b, version="")


@dataclass
class TimedStore(Store):
    """A Store that remembers when DNS data last changed: CoreDNS's SOA serial.

    As CoreDNS's controller: a change that only bumps resourceVersion, a relist that brings
    back the same objects, and Namespace changes leave it alone. The multicluster kinds
    follow CoreDNS's informer handlers exactly: adding or deleting a ServiceImport or a
    multicluster EndpointSlice moves `modified` (the cluster zones' serial), only a real
    change of one moves `mc_modified` (the multicluster zones' serial).
    """

    modified: float = field(default=0.0)
    #: When a ServiceImport or multicluster EndpointSlice last changed: multicluster zones'.
    mc_modified: float = field(default=0.0)

    def _mark(self, kind: str, added_or_deleted: bool) -> None:
        if kind in MC_KINDS and not added_or_deleted:
            self.mc_modified = time.time()
        elif kind != "Namespace":
            self.modified = time.time()

    def _old(self, kind: str, key: tuple[str, str]) -> Record | None:
        if kind == "Namespace":
            return self.namespaces.get(key[1])
        table: dict[tuple[str, str], Record] = self._table(kind)  # type: ignore[assignment]
        return table.get(key)

    def upsert(self, rec: Record) -> None:
        kind = type(rec).__name__
        old = self._old(kind, rec.key)
        super().upsert(rec)
        if old is None or not _same(old, rec):
            self._mark(kind, old is None)

    def delete(self, kind: str, key: tuple[str, str]) -> None:
        existed = self._old(kind, key) is not None
        super().delete(kind, key)
        if existed:
            self._mark(kind, True)

    def replace(self, kind: str, records: list[Record]) -> None:
        added_or_deleted = changed = False
        if kind != "Namespace":
            old: dict[tuple[str, str], Record] = dict(self._table(kind).items())  # type: ignore[arg-type]
            new_keys = {r.key for r in records}
            added_or_deleted = any(k not in old for k in new_keys) or any(
                k not in new_keys for k in old
            )
            changed = any((o := old.get(r.key)) is not None and not _same(o, r) for r in records)
        super().replace(kind, records)
        if added_or_deleted:
            self._mark(kind, True)
        if changed:
            self._mark(kind, False)


class Backend:
    """The lookups of one plugin instance; `store` is swapped in by the plugin's start()."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.store: Store = TimedStore()
        self.local_ips: list[str] = []
        self._ns_cache: dict[str, tuple[object, bool]] = {}

    # ---- namespaces ---------------------------------------------------------------------

    def namespace_exposed(self, ns: str) -> bool:
        """Listed by `namespaces` (if given), existing, and matching `namespace_labels`."""
        if self.s.namespaces and ns not in self.s.namespaces:
            return False
        rec = self.store.namespaces.get(ns)
        if rec is None:
            return False
        sel = self.s.namespace_labels
        if sel is None:
            return True
        cached = self._ns_cache.get(ns)
        if cached is not None and cached[0] is rec:
            return cached[1]
        ok = sel.matches(dict(rec.labels))
        self._ns_cache[ns] = (rec, ok)
        return ok

    def _ready(self, addr: Address, svc: Service | None) -> bool:
        """CoreDNS drops not-ready addresses; the API marks all ready for publishNotReady."""
        return addr.ready or (svc is not None and svc.publish_not_ready)

    # ---- Services() ---------------------------------------------------------------------

    def services(self, q: Query, qtype: str) -> tuple[list[Item], bool]:
        """CoreDNS's Kubernetes.Services for one query type ("A", "SRV", "TXT", "NS"…)."""
        ttl = self.s.ttl
        if qtype == TXT:
            if q.labels[: len(q.labels) - q.nz] == ["dns-version"]:
                return [Item(text=DNS_SCHEMA_VERSION, ttl=TXT_TTL)], False
            items, nx = self.records(q)
            mc = self.s.is_multicluster(q.zone.lower())
            if not items and not nx and self.s.zonal and parse_request(q, True, mc)[0].zone:
                return [], False  # a zonal name that exists but holds nothing: NODATA
            return [], not items  # NODATA if the name holds other records, else NXDOMAIN
        if qtype == "NS":
            return [
                Item(host=ip, target=name, ttl=ttl) for name, ip in self.ns_addrs(q.zone)
            ], False
        if is_default_ns(q):
            items = []
            for _, ip in self.ns_addrs(q.zone):
                if host_type(ip)[0] == qtype:
                    items.append(Item(host=ip, ttl=ttl))
            return items, False
        items, nx = self.records(q)
        if qtype == "SRV":
            items = [i for i in items if host_type(i.host)[0] != CNAME]
        return items, nx

    def records(self, q: Query) -> tuple[list[Item], bool]:
        mc = bool(self.s.multicluster) and self.s.is_multicluster(q.zone.lower())
        r, invalid = parse_request(q, self.s.zonal, mc)
        if invalid:
            return [], True
        if not r.pod_or_svc:
            return [], False
        if is_reverse(q.name):
            return [], True
        if not self.namespace_exposed(r.namespace):
            return [], True
        if r.pod_or_svc == "pod":
            return self.find_pods(r, q.zone)
        if mc:
            return self.find_multicluster_services(r, q.zone)
        return self.find_services(r, q.zone)

    def find_pods(self, r: RecordRequest, zone: str) -> tuple[list[Item], bool]:
        mode = self.s.pod_mode
        if mode == "disabled":
            return [], True
        podname = r.service
        if not podname:
            return [], False
        if podname.count("-") == 3 and "--" not in podname:
            ip = podname.replace("-", ".")
        else:
            ip = podname.replace("-", ":")
        item = Item(host=ip, target=f"{podname}.{r.namespace}.pod.{zone}", ttl=self.s.ttl)
        if mode == "insecure":
            return ([item], False) if host_type(ip)[0] != CNAME else ([], True)
        # verified: a pod of that namespace whose (primary) IP is this one, as CoreDNS's index.
        items = [
            item
            for pod in self.store.pods_at(ip)
            if pod.ips and pod.ips[0] == ip and pod.namespace == r.namespace and not pod.deleting
        ]
        return items, not items

    def find_services(self, r: RecordRequest, zone: str) -> tuple[list[Item], bool]:
        if not r.service:
            return [], False
        svc = self.store.service(r.namespace, r.service)
        if svc is None:
            return [], True
        ttl = self.s.ttl
        is_external = svc.type == "ExternalName"
        eps: list[Endpoints] | None = None
        if self.s.ignore_empty_service and not is_external and not svc.headless:
            eps = self.store.service_endpoints(svc.namespace, svc.name)
            if not any(self._ready(a, svc) for ep in eps for a in ep.addresses):
                return [], True
        if r.zone and not svc.headless:
            return [], True  # zonal names are for headless services only (ExternalName too)
        if is_external:
            if r.endpoint or r.port or r.protocol:
                return [], True
            host = svc.external_name
            if host_type(host)[0] != CNAME:
                return [], True
            return [Item(host=host, ttl=ttl)], False
        items: list[Item] = []
        found = False
        base = f"{svc.name}.{svc.namespace}.svc.{zone}"
        if svc.headless or r.endpoint:
            if eps is None:
                eps = self.store.service_endpoints(svc.namespace, svc.name)
            self._endpoint_items(r, svc, eps, base, r.zone, items)
            if r.zone:
                if not items and r.zone_prefer:
                    self._endpoint_items(r, svc, eps, base, "", items)
                return items, False  # the name exists: no endpoint in that zone is NODATA
            return items, not items
        for p in svc.ports or _NO_PORT:
            if not _port_match(r, p):
                continue
            found = True
            for ip in svc.cluster_ips:
                items.append(Item(ip, p.port, base, ttl=ttl))
        return items, not found

    def find_multicluster_services(self, r: RecordRequest, zone: str) -> tuple[list[Item], bool]:
        """CoreDNS's findMultiClusterServices: a ClusterSetIP import answers its IPs per
        matching port (no port: NXDOMAIN, as CoreDNS); a Headless import — or an endpoint
        name ENDPOINT.CLUSTER.… — answers the ready addresses of the import's multicluster
        EndpointSlices, SRV targets ENDPOINT.CLUSTER.service.namespace.svc.ZONE."""
        if not r.service:
            return [], False
        imp = self.store.imports.get((r.namespace, r.service))
        if imp is None:
            return [], True
        ttl, pod_names = self.s.ttl, self.s.endpoint_pod_names
        base = f"{imp.name}.{imp.namespace}.svc.{zone}"
        if self.s.ignore_empty_service and not imp.headless:
            eps = self.store.import_endpoints(imp.namespace, imp.name)
            if not any(ep.addresses for ep in eps):
                return [], True
        items: list[Item] = []
        if imp.headless or r.endpoint:
            for ep in self.store.import_endpoints(imp.namespace, imp.name):
                cluster = ep.cluster.lower()
                for addr in ep.addresses:
                    label = endpoint_hostname(addr, pod_names)
                    if r.endpoint and (r.cluster != cluster or r.endpoint != label.lower()):
                        continue
                    target = f"{label}.{ep.cluster}.{base}" if ep.cluster else f"{label}.{base}"
                    for p in ep.ports or _NO_PORT:
                        if _port_match(r, p):
                            items.append(Item(addr.ip, p.port, target, ttl=ttl))
            return items, not items
        found = False
        for p in imp.ports:
            if _port_match(r, p):
                found = True
                items.extend(Item(ip, p.port, base, ttl=ttl) for ip in imp.ips)
        return items, not found

    def _endpoint_items(
        self,
        r: RecordRequest,
        svc: Service,
        eps: list[Endpoints],
        base: str,
        zone: str,
        out: list[Item],
    ) -> None:
        """The items of a headless service or endpoint query (in `zone` only, if given)."""
        pod_names, ttl = self.s.endpoint_pod_names, self.s.ttl
        for ep in eps:
            ports = ep.ports or _NO_PORT
            for i, addr in enumerate(ep.addresses):
                if not self._ready(addr, svc) or (zone and ep.zone_of(i) != zone):
                    continue
                label = endpoint_hostname(addr, pod_names)
                if r.endpoint and r.endpoint != label.lower():
                    continue
                for p in ports:
                    if _port_match(r, p):
                        out.append(Item(addr.ip, p.port, f"{label}.{base}", ttl=ttl))

    # ---- Reverse() ----------------------------------------------------------------------

    def reverse(self, q: Query) -> tuple[list[Item], bool]:
        ip = address_from_reverse(q.labels)
        if not ip:
            _, nx = self.records(q)
            return [], nx
        items = self.service_record_for_ip(ip)
        return items, not items

    def service_record_for_ip(self, ip: str) -> list[Item]:
        """PTR targets: a Service with that cluster IP, else every endpoint with that IP."""
        store, primary, ttl = self.store, self.s.primary_zone, self.s.ttl
        only = bool(self.s.namespaces)
        for svc in store.services_by_ip.get(ip, ()):
            if only and not self.namespace_exposed(svc.namespace):
                continue
            return [Item(host=f"{svc.name}.{svc.namespace}.svc.{primary}", ttl=ttl)]
        items: list[Item] = []
        for ep, addr in store.endpoints_at(ip):
            if only and not self.namespace_exposed(ep.namespace):
                continue
            if not ep.service or not self._ready(addr, store.service(ep.namespace, ep.service)):
                continue
            label = endpoint_hostname(addr, self.s.endpoint_pod_names)
            items.append(Item(host=f"{label}.{ep.service}.{ep.namespace}.svc.{primary}", ttl=ttl))
        return items

    # ---- the zone's name servers --------------------------------------------------------

    def ns_addrs(self, zone: str) -> list[tuple[str, str]]:
        """(name, IP) of this DNS server, as CoreDNS's nsAddrs (plugin/kubernetes/ns.go).

        For each of our own addresses (local.py), the endpoints holding it (ready addresses
        only, as CoreDNS indexes them) name their Service: its cluster IPs, or for a headless
        one every ready address of that endpoint object under its endpoint name. When no
        endpoint holds one of them: `ns.dns.ZONE` with our addresses. With no address of our
        own: nothing, and the apex NS and `ns.dns.ZONE` are NODATA.
        """
        store = self.store
        out: list[tuple[str, str]] = []
        found = False
        for lip in self.local_ips:
            for ep, addr in store.endpoints_at(lip):
                svc = store.service(ep.namespace, ep.service)
                if not self._ready(addr, svc):
                    continue
                found = True
                if svc is not None:
                    self._service_ns(svc, [ep], zone, out)
        if found:
            return out  # duplicates kept: CoreDNS writes the glue of each find
        return [(NS_NAME + zone, ip) for ip in self.local_ips]

    def _service_ns(
        self, svc: Service, eps: list[Endpoints], zone: str, out: list[tuple[str, str]]
    ) -> None:
        name = f"{svc.name}.{svc.namespace}.svc.{zone}"
        if not svc.headless:
            out.extend((name, ip) for ip in svc.cluster_ips)
            return
        for ep in eps:
            for a in ep.addresses:
                if self._ready(a, svc):
                    label = endpoint_hostname(a, self.s.endpoint_pod_names)
                    out.append((f"{label}.{name}", a.ip))
