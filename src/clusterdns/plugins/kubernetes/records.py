"""Compact records: only what DNS needs from Kubernetes objects, built as soon as they arrive.

Both data sources (the API watch and manifest files) hand plain JSON-shaped dicts to the
`to_*` converters here; the raw objects are never kept. Records are immutable so a reader on
the serving path never sees one half-updated.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

Obj = Mapping[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: MCS-API labels of the EndpointSlices an MCS implementation writes for a ServiceImport.
MC_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
MC_SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    protocol: str  # "TCP", "UDP", "SCTP"
    port: int


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str
    type: str  # ClusterIP, NodePort, LoadBalancer, ExternalName
    cluster_ips: tuple[str, ...]  # empty for headless and ExternalName services
    headless: bool
    external_name: str
    ports: tuple[Port, ...]
    publish_not_ready: bool
    labels: tuple[tuple[str, str], ...] = ()
    version: str = ""
    #: spec.externalIPs then status.loadBalancer.ingress (IP, else hostname): k8s_external's.
    external_ips: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Address:
    """One endpoint address; `hostname`/`target` feed the endpoint's DNS name (`target` is
    only kept for `endpoint_pod_names`: keep_targets)."""

    ip: str
    hostname: str
    node_name: str
    target: str  # the pod name of targetRef (empty when not a Pod or too long for a label)
    ready: bool


@dataclass(frozen=True, slots=True)
class Endpoints:
    """One EndpointSlice (or a legacy Endpoints object) belonging to service `service`.

    `zones` is the topology zone of each address (lower-cased, "" for none), parallel to
    `addresses`; it is only kept when a `zonal` kubernetes plugin asked for it (`keep_zones`),
    so the default configuration holds nothing more, as CoreDNS's cache.
    """

    name: str
    namespace: str
    service: str
    addresses: tuple[Address, ...]
    ports: tuple[Port, ...]
    version: str = ""
    zones: tuple[str, ...] = ()

    def zone_of(self, i: int) -> str:
        return self.zones[i] if self.zones else ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    ips: tuple[str, ...]
    deleting: bool
    version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...]
    version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return ("", self.name)


@dataclass(frozen=True, slots=True)
class ServiceImport:
    """A ServiceImport (multicluster.x-k8s.io/v1alpha1): CoreDNS's object.ServiceImport.

    `headless` is spec.type == Headless (anything else answers as ClusterSetIP); port
    protocols are kept as written ("" when absent), as CoreDNS compares them.
    """

    name: str
    namespace: str
    headless: bool
    ips: tuple[str, ...]
    ports: tuple[Port, ...]
    version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class MultiClusterEndpoints:
    """An EndpointSlice labelled multicluster.kubernetes.io/service-name: CoreDNS's
    object.MultiClusterEndpoints. Only ready addresses are kept (nothing can publish the
    not-ready ones of an import); `cluster` is the source-cluster label ("" if none)."""

    name: str
    namespace: str
    service: str
    cluster: str
    addresses: tuple[Address, ...]
    ports: tuple[Port, ...]
    version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


Record = Service | Endpoints | Pod | Namespace | ServiceImport | MultiClusterEndpoints
R = TypeVar("R", bound=Record)


def reuse(new: R, old: Record | None) -> R:
    """`new`, made of `old`'s objects wherever they are equal: `old` itself when nothing but
    the object changed, else a record sharing old's strings, tuples and unchanged addresses.

    A relist (410 Gone, a manifests reload) converts every object again while the store still
    holds the old records: without this the process briefly held the cluster twice; with it
    the fresh copies are garbage as soon as they are compared, and what stays is the same
    objects as before — a relist that brings back the same cluster costs no memory.
    """
    if old is None or type(old) is not type(new):
        return new
    if new == old:
        return old
    kept: dict[str, Any] = {}
    for f in dataclasses.fields(new):
        mine, theirs = getattr(new, f.name), getattr(old, f.name)
        if mine is not theirs and mine == theirs:
            kept[f.name] = theirs
    if "addresses" not in kept and isinstance(new, (Endpoints, MultiClusterEndpoints)):
        olds = {a.ip: a for a in getattr(old, "addresses", ())}
        kept["addresses"] = tuple(o if (o := olds.get(a.ip)) == a else a for a in new.addresses)
    return dataclasses.replace(new, **kept) if kept else new


#: Whether EndpointSlice zones are kept: set once a `zonal` plugin is configured, for the rest
#: of the process (the converters are shared by every source; a reload that drops `zonal`
#: only keeps a few strings more than needed).
_KEEP_ZONES = [False]


def keep_zones() -> None:
    _KEEP_ZONES[0] = True


#: Whether endpoints keep their targetRef pod name: only `endpoint_pod_names` answers with it,
#: and a unique name per endpoint is a fifth of an endpoint's bytes. Set as `_KEEP_ZONES` is,
#: by the plugin's setup, before any source converts an object.
_KEEP_TARGETS = [False]


def keep_targets() -> None:
    _KEEP_TARGETS[0] = True


class BadObject(ValueError):
    """An object that cannot be turned into a record (missing or malformed fields)."""


#: Port tuples already built, so the services and slices that expose the same ports (most of a
#: cluster: http/80, dns/53…) share one tuple of Port records instead of holding copies.
_PORT_TUPLES: dict[tuple[tuple[str, str, int], ...], tuple[Port, ...]] = {}
#: Distinct port lists kept at most (past that the table starts over: sharing is only a saving).
PORT_TUPLES_MAX = 4096


def shared_ports(ports: tuple[Port, ...]) -> tuple[Port, ...]:
    """The one tuple equal to `ports` (records.py's memory note: tuples shared, not copied)."""
    key = tuple((p.name, p.protocol, p.port) for p in ports)
    got = _PORT_TUPLES.get(key)
    if got is None:
        if len(_PORT_TUPLES) >= PORT_TUPLES_MAX:
            _PORT_TUPLES.clear()
        got = _PORT_TUPLES[key] = ports
    return got


def _meta(obj: Obj) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise BadObject("metadata is missing")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise BadObject("metadata.name is missing")
    ns = meta.get("namespace") or ""
    labels = meta.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise BadObject("metadata.labels is not a map")
    return (
        name,
        sys.intern(str(ns)),  # a few namespaces, named by every record
        str(meta.get("resourceVersion") or ""),
        tuple(sorted((sys.intern(str(k)), str(v)) for k, v in labels.items())),
    )


def _ports(raw: Any, where: str) -> tuple[Port, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadObject(f"{where} is not a list")
    out = []
    for p in raw:
        if not isinstance(p, Mapping):
            raise BadObject(f"{where} entry is not a map")
        port = p.get("port")
        if port is None:  # EndpointSlice ports may omit the number ("all ports")
            port = -1
        if not isinstance(port, int):
            raise BadObject(f"{where}.port is not a number")
        out.append(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"), port))
    return shared_ports(tuple(out))


def _ip(text: Any, where: str) -> str:
    """The address in canonical text form. An IPv4 address inet_pton accepts is canonical
    already (glibc and musl refuse leading zeros and short forms), so it is kept as given:
    ipaddress, the general path, costs ten times more per address."""
    if type(text) is str:
        try:
            socket.inet_pton(socket.AF_INET, text)
            return text
        except (OSError, ValueError):
            pass
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        raise BadObject(f"{where}: '{text}' is not an IP address") from None


def to_service(obj: Obj) -> Service:
    name, ns, version, labels = _meta(obj)
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise BadObject("spec is not a map")
    stype = sys.intern(str(spec.get("type") or "ClusterIP"))
    raw_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    headless = any(str(ip) == "None" for ip in raw_ips) or (stype != "ExternalName" and not raw_ips)
    ips = () if headless else tuple(_ip(ip, "spec.clusterIPs") for ip in raw_ips if ip)
    return Service(
        name=name,
        namespace=ns,
        type=stype,
        cluster_ips=ips,
        headless=headless and stype != "ExternalName",
        external_name=str(spec.get("externalName") or "").rstrip(".").lower(),
        ports=_ports(spec.get("ports"), "spec.ports"),
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
        labels=labels,
        version=version,
        external_ips=_external_ips(spec, obj.get("status")),
    )


def _external_ips(spec: Obj, status: Any) -> tuple[str, ...]:
    """As CoreDNS's object.ToService: externalIPs, then each LoadBalancer ingress' IP or
    hostname (a hostname is answered as a CNAME by k8s_external)."""
    out = [str(ip) for ip in spec.get("externalIPs") or () if ip]
    lb = status.get("loadBalancer") if isinstance(status, Mapping) else None
    for ing in (lb.get("ingress") if isinstance(lb, Mapping) else None) or ():
        if isinstance(ing, Mapping) and (ing.get("ip") or ing.get("hostname")):
            out.append(str(ing.get("ip") or ing.get("hostname")))
    return tuple(out)


def to_endpoint_slice(obj: Obj) -> Endpoints:
    """EndpointSlice (discovery.k8s.io/v1) → Endpoints; a nil `ready` counts as ready."""
    name, ns, version, labels = _meta(obj)
    service = dict(labels).get(SERVICE_NAME_LABEL, "")
    addrs: list[Address] = []
    zones: list[str] = []
    keep, targets = _KEEP_ZONES[0], _KEEP_TARGETS[0]
    zone = target = ""
    for e in obj.get("endpoints") or []:
        if type(e) is not dict and not isinstance(e, Mapping):
            raise BadObject("endpoints entry is not a map")
        if keep:
            zone = sys.intern(str(e.get("zone") or "").lower())
        cond = e.get("conditions") or {}
        ready = cond.get("ready")
        if targets:
            ref = e.get("targetRef") or {}
            target = str(ref.get("name") or "") if ref.get("kind", "Pod") == "Pod" else ""
            if len(target) > 63:
                target = ""
        hostname = str(e.get("hostname") or "")
        node = sys.intern(str(e.get("nodeName") or ""))  # a few nodes, named by every endpoint
        is_ready = ready is None or bool(ready)
        for a in e.get("addresses") or []:
            addrs.append(Address(_ip(a, "endpoints.addresses"), hostname, node, target, is_ready))
            if keep:
                zones.append(zone)
    ports = _ports(obj.get("ports"), "ports")
    kept = tuple(zones) if any(zones) else ()
    return Endpoints(name, ns, service, tuple(addrs), ports, version, kept)


def to_endpoints(obj: Obj) -> list[Endpoints]:
    """Legacy core/v1 Endpoints → one Endpoints record per subset, as the slice mirror would."""
    name, ns, version, _ = _meta(obj)
    out: list[Endpoints] = []
    for i, sub in enumerate(obj.get("subsets") or []):
        if not isinstance(sub, Mapping):
            raise BadObject("subsets entry is not a map")
        addrs: list[Address] = []
        for ready, field in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in sub.get(field) or []:
                ref = (a.get("targetRef") or {}) if _KEEP_TARGETS[0] else {}
                target = str(ref.get("name") or "") if ref.get("kind", "Pod") == "Pod" else ""
                addrs.append(
                    Address(
                        ip=_ip(a.get("ip"), f"subsets.{field}.ip"),
                        hostname=str(a.get("hostname") or ""),
                        node_name=sys.intern(str(a.get("nodeName") or "")),
                        target=target if len(target) <= 63 else "",
                        ready=ready,
                    )
                )
        ports = _ports(sub.get("ports"), "subsets.ports")
        out.append(Endpoints(f"{name}-{i}", ns, name, tuple(addrs), ports, version))
    return out


def to_pod(obj: Obj) -> Pod:
    name, ns, version, _ = _meta(obj)
    status = obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, Mapping)]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    meta = obj.get("metadata") or {}
    return Pod(
        name=name,
        namespace=ns,
        ips=tuple(_ip(ip, "status.podIPs") for ip in ips if ip),
        deleting=meta.get("deletionTimestamp") is not None,
        version=version,
    )


def to_namespace(obj: Obj) -> Namespace:
    name, _, version, labels = _meta(obj)
    return Namespace(name, labels, version)


def to_service_import(obj: Obj) -> ServiceImport:
    name, ns, version, _ = _meta(obj)
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise BadObject("spec is not a map")
    ips = spec.get("ips") or []
    if not isinstance(ips, list):
        raise BadObject("spec.ips is not a list")
    raw = spec.get("ports") or []
    if not isinstance(raw, list) or not all(isinstance(p, Mapping) for p in raw):
        raise BadObject("spec.ports is not a list of maps")
    ports: list[Port] = []
    for p in raw:
        port = p.get("port")
        if not isinstance(port, int):
            raise BadObject("spec.ports.port is not a number")
        ports.append(Port(str(p.get("name") or ""), str(p.get("protocol") or ""), port))
    return ServiceImport(
        name=name,
        namespace=ns,
        headless=spec.get("type") == "Headless",
        ips=tuple(_ip(ip, "spec.ips") for ip in ips if ip),
        ports=shared_ports(tuple(ports)),
        version=version,
    )


def to_multicluster_slice(obj: Obj) -> MultiClusterEndpoints:
    """An EndpointSlice as CoreDNS's EndpointSliceToMultiClusterEndpoints: its service is the
    multicluster.kubernetes.io/service-name label, only ready addresses count."""
    ep = to_endpoint_slice(obj)
    labels = dict(_meta(obj)[3])
    return MultiClusterEndpoints(
        name=ep.name,
        namespace=ep.namespace,
        service=labels.get(MC_SERVICE_NAME_LABEL, ""),
        cluster=sys.intern(labels.get(MC_SOURCE_CLUSTER_LABEL, "")),
        addresses=tuple(a for a in ep.addresses if a.ready),
        ports=ep.ports,
        version=ep.version,
    )
