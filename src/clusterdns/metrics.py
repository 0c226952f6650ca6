"""CoreDNS's core metrics (plugin/metrics/vars): same names, labels and buckets.

They are process-wide, like CoreDNS's package variables, so a reload keeps their values.
"""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from clusterdns import __version__

if TYPE_CHECKING:
    from clusterdns.request import Request

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

NS = "coredns"
VIEW = ""  # the view plugin does not exist here; CoreDNS reports "" without it
#: CoreDNS's plugin.TimeBuckets and SizeBuckets.
TIME_BUCKETS = tuple(0.00025 * 2**i for i in range(16))
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)
#: Types CoreDNS reports by name in the `type` label; everything else is "other".
MONITORED_TYPES = frozenset(
    {"A", "AAAA", "AXFR", "CNAME", "DNSKEY", "DS", "HTTPS", "IXFR", "MX", "NAPTR", "NS"}
    | {"NSEC", "NSEC3", "PTR", "SOA", "SRV", "SVCB", "TXT"}
)

REQUEST_COUNT = Counter(
    "requests_total",
    "Counter of DNS requests made per zone, protocol and family.",
    ["server", "zone", "view", "proto", "family", "type"],
    namespace=NS,
    subsystem="dns",
)
REQUEST_DURATION = Histogram(
    "request_duration_seconds",
    "Histogram of the time (in seconds) each request took per zone.",
    ["server", "zone", "view", "type"],
    namespace=NS,
    subsystem="dns",
    buckets=TIME_BUCKETS,
)
REQUEST_SIZE = Histogram(
    "request_size_bytes",
    "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
    ["server", "zone", "view", "proto"],
    namespace=NS,
    subsystem="dns",
    buckets=SIZE_BUCKETS,
)
REQUEST_DO = Counter(
    "do_requests_total",
    "Counter of DNS requests with DO bit set per zone.",
    ["server", "zone", "view"],
    namespace=NS,
    subsystem="dns",
)
RESPONSE_SIZE = Histogram(
    "response_size_bytes",
    "Size of the returned response in bytes.",
    ["server", "zone", "view", "proto"],
    namespace=NS,
    subsystem="dns",
    buckets=SIZE_BUCKETS,
)
RESPONSE_RCODE = Counter(
    "responses_total",
    "Counter of response status codes.",
    ["server", "zone", "view", "rcode", "plugin"],
    namespace=NS,
    subsystem="dns",
)
PANIC = Counter("panics_total", "A metrics that counts the number of panics.", namespace=NS)
PLUGIN_ENABLED = Gauge(
    "plugin_enabled",
    "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    ["server", "zone", "view", "name"],
    namespace=NS,
)
BUILD_INFO = Gauge(
    "build_info",
    "A metric with a constant '1' value labeled by version, revision, and goversion from which "
    "CoreDNS was built.",
    ["version", "revision", "goversion"],
    namespace=NS,
)
BUILD_INFO.labels(__version__, "", f"python{platform.python_version()}").set(1)


#: miekg/dns's rcode names, as CoreDNS prints them in logs and labels.
RCODE_NAMES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADSIG",
    17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC",
    23: "BADCOOKIE",
}  # fmt: skip


def rcode_label(rcode: int) -> str:
    """CoreDNS's rcode.ToString: the miekg/dns name, or RCODE<n>."""
    return RCODE_NAMES.get(rcode, f"RCODE{rcode}")


#: Label values -> the series `report` updates. `.labels()` validates and locks on every call
#: (~2 µs each, five a query); the series objects stay valid since none is ever removed.
_SERIES: dict[tuple[str, ...], tuple[Any, Any, Any, Any, Any]] = {}
_SERIES_MAX = 10_000


def report(req: Request, zone: str, rcode: int, plugin: str, size: int, start: float) -> None:
    """CoreDNS's vars.Report: one query's worth of every per-query metric."""
    server, proto = req.server, req.proto
    family = "2" if req.family == 2 else "1"
    qtype = type_label(req.type_text)
    if req.do:
        REQUEST_DO.labels(server, zone, VIEW).inc()
    key = (server, zone, proto, family, qtype, rcode_label(rcode), plugin)
    series = _SERIES.get(key)
    if series is None:
        if len(_SERIES) >= _SERIES_MAX:
            _SERIES.clear()
        series = _SERIES[key] = (
            REQUEST_COUNT.labels(server, zone, VIEW, proto, family, qtype),
            REQUEST_DURATION.labels(server, zone, VIEW, qtype),
            RESPONSE_SIZE.labels(server, zone, VIEW, proto),
            REQUEST_SIZE.labels(server, zone, VIEW, proto),
            RESPONSE_RCODE.labels(server, zone, VIEW, key[5], plugin),
        )
    count, duration, response_size, request_size, rcodes = series
    count.inc()
    duration.observe(time.perf_counter() - start)
    response_size.observe(size)
    request_size.observe(req.size)
    rcodes.inc()


class Reported:
    """An after-write hook that reports the query's metrics under `zone` once it is written.

    It is a plugin.ReplayableHook (the attributes say what a replay would report), so answers
    carrying it may still be kept by the fast path: the prometheus plugin's hook, and the
    server's for queries it refuses itself (zone "dropped", no plugin).
    """

    __slots__ = ("replay_plugin", "replay_zone", "start")

    def __init__(self, zone: str, by_plugin: bool, start: float | None = None) -> None:
        self.replay_zone = zone
        self.replay_plugin = by_plugin  # the answering plugin in the `plugin` label, else ""
        self.start = start  # None: when the server received the query

    def __call__(self, req: Request, resp: Any, size: int) -> None:
        plugin = req.answered_by if self.replay_plugin else ""
        start = req.start if self.start is None else self.start
        report(req, self.replay_zone, resp.rcode(), plugin, size, start)


def type_label(qtype: str) -> str:
    return qtype if qtype in MONITORED_TYPES else "other"


RELOAD_FAILED = Counter(
    "failed_total",
    "Counter of the number of failed reload attempts.",
    namespace=NS,
    subsystem="reload",
)
RELOAD_INFO = Gauge(
    "version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    ["hash", "value"],
    namespace=NS,
    subsystem="reload",
)

# The health plugin's metrics: CoreDNS exports them whether or not health is used.
#: CoreDNS's plugin.SlimTimeBuckets: 0.25ms to 2.5s, a factor of 10 apart.
SLIM_TIME_BUCKETS = (0.00025, 0.0025, 0.025, 0.25, 2.5)
HEALTH_DURATION = Histogram(
    "request_duration_seconds",
    "Histogram of the time (in seconds) each request took.",
    namespace=NS,
    subsystem="health",
    buckets=SLIM_TIME_BUCKETS,
)
HEALTH_FAILURES = Counter(
    "request_failures_total",
    "The number of times the health check failed.",
    namespace=NS,
    subsystem="health",
)
