"""Metrics of the API data source.

CoreDNS's names for what CoreDNS exports (client-go's rest client metrics, registered under the
kubernetes subsystem), our own `clusterdns_kubernetes_*` names for the rest (the DNS
programming latency is in metrics.py; this source feeds it):

- `coredns_kubernetes_rest_client_requests_total{code,method,host}` — every API request, by
  HTTP status (`<error>` when no response came);
- `coredns_kubernetes_rest_client_request_duration_seconds{verb,host}` — latency of list
  requests (watches are long-lived and, as in client-go, not timed);
- `coredns_kubernetes_rest_client_rate_limiter_duration_seconds{verb,host}` — time spent
  waiting for the `apiserver_qps`/`apiserver_burst` token bucket (only when it is set);
- `clusterdns_kubernetes_staleness_seconds` — 0 while every watch is streaming; else how long
  the served data has possibly been out of date (since the oldest broken stream was last known
  current). It grows during an API outage, while the last-known state is served;
- `clusterdns_kubernetes_objects{kind}` — records held, per kind (Service, Endpoints, Pod,
  Namespace);
- `clusterdns_kubernetes_watch_events_total{kind,type}` — watch events received;
- `clusterdns_kubernetes_relists_total{kind}` — full relists after 410 Gone;
- `clusterdns_kubernetes_skipped_objects_total{kind}` — objects that could not be converted.

Staleness, object counts and skipped objects are exported in manifests mode too (manifests.py).

Staleness and object counts are read at scrape time from the running sources (several server
blocks may each run one; their staleness is the largest, their objects are added up).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from clusterdns.plugins.kubernetes.store import KINDS, Store

#: prometheus.DefBuckets, which CoreDNS uses for the rest client histograms.
DEF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "rest_client_requests_total",
    "Number of HTTP requests, partitioned by status code, method, and host.",
    ["code", "method", "host"],
    namespace="coredns",
    subsystem="kubernetes",
)
REQUEST_DURATION = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb and host.",
    ["verb", "host"],
    namespace="coredns",
    subsystem="kubernetes",
    buckets=DEF_BUCKETS,
)
RATE_LIMITER_DURATION = Histogram(
    "rest_client_rate_limiter_duration_seconds",
    "Client side rate limiter latency in seconds. Broken down by verb and host.",
    ["verb", "host"],
    namespace="coredns",
    subsystem="kubernetes",
    buckets=DEF_BUCKETS,
)
WATCH_EVENTS = Counter(
    "watch_events_total",
    "Watch events received from the Kubernetes API, by kind and event type.",
    ["kind", "type"],
    namespace="clusterdns",
    subsystem="kubernetes",
)
RELISTS = Counter(
    "relists_total",
    "Full relists of a kind after the API answered 410 Gone to a watch.",
    ["kind"],
    namespace="clusterdns",
    subsystem="kubernetes",
)
SKIPPED = Counter(
    "skipped_objects_total",
    "Kubernetes objects (from the API or manifest files) that could not be converted and "
    "were skipped.",
    ["kind"],
    namespace="clusterdns",
    subsystem="kubernetes",
)


class Tracked(Protocol):
    """What the scrape-time collector reads from a running source."""

    store: Store

    def staleness(self) -> float: ...


_SOURCES: weakref.WeakSet[Tracked] = weakref.WeakSet()
_LOCK = threading.Lock()


def track(source: Tracked) -> None:
    with _LOCK:
        _SOURCES.add(source)


def untrack(source: Tracked) -> None:
    with _LOCK:
        _SOURCES.discard(source)


class _SourceCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        with _LOCK:
            sources = list(_SOURCES)
        stale = GaugeMetricFamily(
            "clusterdns_kubernetes_staleness_seconds",
            "Seconds the served Kubernetes data may be out of date: 0 while every watch is "
            "streaming, else the time since the oldest broken stream was last current.",
        )
        stale.add_metric([], max((s.staleness() for s in sources), default=0.0))
        yield stale
        objects = GaugeMetricFamily(
            "clusterdns_kubernetes_objects",
            "Kubernetes objects held as records, by kind.",
            labels=["kind"],
        )
        for kind in KINDS:
            objects.add_metric([kind], float(sum(_count(s.store, kind) for s in sources)))
        yield objects


def _count(store: Store, kind: str) -> int:
    if kind == "Service":
        return len(store.services)
    if kind == "Endpoints":
        return len(store.endpoints)
    if kind == "Pod":
        return len(store.pods)
    if kind == "ServiceImport":
        return len(store.imports)
    if kind == "MultiClusterEndpoints":
        return len(store.mc_endpoints)
    return len(store.namespaces)


REGISTRY.register(_SourceCollector())
