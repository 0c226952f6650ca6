"""forward's metrics, with CoreDNS's current names and labels.

The per-upstream series live in CoreDNS's plugin/pkg/proxy (subsystem `proxy`, labelled with
`proxy_name`), the two whole-plugin counters in plugin/forward (subsystem `forward`, no labels).
They are process-wide, like CoreDNS's package variables, so a reload keeps their values.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from clusterdns.metrics import NS, TIME_BUCKETS

REQUEST_DURATION = Histogram(
    "request_duration_seconds",
    "Histogram of the time each request took.",
    ["proxy_name", "to", "rcode"],
    namespace=NS,
    subsystem="proxy",
    buckets=TIME_BUCKETS,
)
HEALTHCHECK_FAILURES = Counter(
    "healthcheck_failures_total",
    "Counter of the number of failed healthchecks.",
    ["proxy_name", "to"],
    namespace=NS,
    subsystem="proxy",
)
CONN_CACHE_HITS = Counter(
    "conn_cache_hits_total",
    "Counter of connection cache hits per upstream and protocol.",
    ["proxy_name", "to", "proto"],
    namespace=NS,
    subsystem="proxy",
)
CONN_CACHE_MISSES = Counter(
    "conn_cache_misses_total",
    "Counter of connection cache misses per upstream and protocol.",
    ["proxy_name", "to", "proto"],
    namespace=NS,
    subsystem="proxy",
)
HEALTHCHECK_BROKEN = Counter(
    "healthcheck_broken_total",
    "Counter of the number of complete failures of the healthchecks.",
    namespace=NS,
    subsystem="forward",
)
MAX_CONCURRENT_REJECTS = Counter(
    "max_concurrent_rejects_total",
    "Counter of the number of queries rejected because the concurrent queries were at maximum.",
    namespace=NS,
    subsystem="forward",
)
