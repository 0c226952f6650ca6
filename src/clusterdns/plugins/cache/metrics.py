"""The cache's metrics, with CoreDNS's names, help texts and labels (plugin/cache/metrics.go).

`zones` is the cache's zones joined with "," and `view` is "" (there is no view plugin), as
CoreDNS reports them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

NS = "coredns"
SUB = "cache"
VIEW = ""
SUCCESS = "success"
DENIAL = "denial"

ENTRIES = Gauge(
    "entries",
    "The number of elements in the cache.",
    ["server", "type", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
REQUESTS = Counter(
    "requests_total",
    "The count of cache requests.",
    ["server", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
HITS = Counter(
    "hits_total",
    "The count of cache hits.",
    ["server", "type", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
MISSES = Counter(
    "misses_total",
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    ["server", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
PREFETCH = Counter(
    "prefetch_total",
    "The number of times the cache has prefetched a cached item.",
    ["server", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
DROPS = Counter(
    "drops_total",
    "The number responses that are not cached, because the reply is malformed.",
    ["server", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
SERVED_STALE = Counter(
    "served_stale_total",
    "The number of requests served from stale cache entries.",
    ["server", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
EVICTIONS = Counter(
    "evictions_total",
    "The count of cache evictions.",
    ["server", "type", "zones", "view"],
    namespace=NS,
    subsystem=SUB,
)
