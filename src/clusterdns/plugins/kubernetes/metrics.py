"""Metrics of the kubernetes plugin that are not the API client's own.

`coredns_kubernetes_dns_programming_duration_seconds{service_kind}` is CoreDNS's DNS
programming latency SLI: for each EndpointSlice (or Endpoints) added, updated or deleted, the
time from its `endpoints.kubernetes.io/last-change-trigger-time` annotation (set by the
endpoints controllers) to now. As in CoreDNS, it is only observed when the annotation is there
and exactly one Service of that name is known; `service_kind` is `headless_with_selector` for a
headless Service, else `cluster_ip` (CoreDNS's third kind, `headless_without_selector`, is never
observed: such slices carry no trigger time).

Data sources call `observe_programming(obj, store)` with the raw object (a JSON-shaped dict)
as each watch event or list item is applied, before the raw object is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Histogram

from clusterdns.plugins.kubernetes.records import SERVICE_NAME_LABEL
from clusterdns.plugins.kubernetes.store import Store

log = logging.getLogger("clusterdns.plugins.kubernetes")

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"

#: From 1 ms to ~17 minutes, CoreDNS's prometheus.ExponentialBuckets(0.001, 2, 20).
_BUCKETS = tuple(0.001 * 2**i for i in range(20))

DNS_PROGRAMMING = Histogram(
    "dns_programming_duration_seconds",
    "Histogram of the time (in seconds) it took to program a dns instance.",
    ["service_kind"],
    namespace="coredns",
    subsystem="kubernetes",
    buckets=_BUCKETS,
)


def parse_rfc3339(text: str) -> float:
    """Go's time.RFC3339Nano → POSIX seconds; ValueError if it is not one."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    # Python before 3.11 refuses more than 6 fraction digits; Go allows 9: cut, never round.
    head, dot, rest = t.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        t = head + "." + rest[: min(digits, 6)] + rest[digits:]
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        raise ValueError("no time zone")
    return dt.timestamp()


def observe_programming(obj: Mapping[str, Any], store: Store, now: float | None = None) -> None:
    """Record the programming latency of one EndpointSlice/Endpoints object, as CoreDNS does.

    Call it for every add, update and delete the source applies (the Service it belongs to is
    looked up in `store`). Objects without the trigger-time annotation are ignored; a malformed
    one is logged as CoreDNS logs it and ignored.
    """
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return
    annotations = meta.get("annotations")
    if not isinstance(annotations, Mapping) or TRIGGER_TIME not in annotations:
        return
    namespace = str(meta.get("namespace") or "")
    value = str(annotations[TRIGGER_TIME])
    try:
        when = parse_rfc3339(value)
    except ValueError:
        log.warning(
            "plugin/kubernetes: DnsProgrammingLatency cannot be calculated for Endpoints "
            "'%s/%s'; invalid %r annotation RFC3339 value of %r",
            namespace,
            meta.get("name"),
            TRIGGER_TIME,
            value,
        )
        return
    if obj.get("kind") == "Endpoints":
        service_name = str(meta.get("name") or "")
    else:
        labels = meta.get("labels")
        service_name = (
            str(labels.get(SERVICE_NAME_LABEL, "")) if isinstance(labels, Mapping) else ""
        )
    svc = store.service(namespace, service_name)
    if svc is None:
        return
    kind = "headless_with_selector" if svc.headless else "cluster_ip"
    elapsed = (time.time() if now is None else now) - when
    DNS_PROGRAMMING.labels(kind).observe(elapsed)
