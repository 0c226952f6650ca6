"""The kubernetes plugin as a metadata provider (CoreDNS's plugin/kubernetes/metadata.go).

With `pods verified`, a client whose address is a pod's gets `kubernetes/client-namespace` and
`kubernetes/client-pod-name` (`kubernetes/client-label/*` is not published: pod labels are not
kept). For names in the plugin's zones: `kubernetes/port-name`, `kubernetes/protocol`,
`kubernetes/endpoint`, `kubernetes/service`, `kubernetes/namespace` and `kubernetes/kind` (`svc`
or `pod`) from the name, or `kubernetes/parse-error` when it is not a valid service/pod name.
"""

from __future__ import annotations

import dns.name

from clusterdns.pkg.metadata import Func
from clusterdns.plugins.kubernetes.lookup import Backend, Query, parse_request
from clusterdns.plugins.kubernetes.setup import Settings
from clusterdns.request import Request
from clusterdns.zones import longest_match


def _const(v: str) -> Func:
    return lambda: v


def published(settings: Settings, backend: Backend, req: Request) -> dict[str, Func]:
    md: dict[str, Func] = {}
    if settings.pod_mode == "verified":
        pods = backend.store.pods_at(req.remote_ip)
        if pods:
            md["kubernetes/client-namespace"] = _const(pods[0].namespace)
            md["kubernetes/client-pod-name"] = _const(pods[0].name)
    zone = longest_match(settings.zones, req.qname)
    if not zone:
        return md
    owner: dns.name.Name = req.name
    nz = 0 if zone == "." else zone.count(".")
    labels = [label.lower().decode("latin-1") for label in owner.labels if label]
    mc = bool(settings.multicluster) and settings.is_multicluster(zone)
    r, bad = parse_request(Query(labels, zone, nz), settings.zonal, mc)
    if bad:
        md["kubernetes/parse-error"] = _const("invalid query name")
        return md
    md["kubernetes/port-name"] = _const(r.port)
    md["kubernetes/protocol"] = _const(r.protocol)
    md["kubernetes/endpoint"] = _const(r.endpoint)
    md["kubernetes/service"] = _const(r.service)
    md["kubernetes/namespace"] = _const(r.namespace)
    md["kubernetes/kind"] = _const(r.pod_or_svc)
    return md
