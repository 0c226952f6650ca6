"""The fast path's side effects on metrics: batched, then folded into the real ones.

Every fast answer is counted in a fastwire.Stats batch keyed by what its metrics look like
(`MKey`: server, transport, the prometheus plugin's reports, the counters plugins asked to
replay). `apply` adds a batch to the same series the slow path updates — coredns_dns_* as
clusterdns.metrics.report would, the plugins' counters, and clusterdns_fastpath_answers_total —
so a scrape after a flush sees exactly what the slow path would have shown.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter

from clusterdns import metrics
from clusterdns.server.fastwire import Stats

ANSWERS = Counter(
    "answers_total",
    "Answers given from pre-rendered responses (the fast path), per server and protocol.",
    ["server", "proto"],
    namespace="clusterdns",
    subsystem="fastpath",
)

RELAYED = Counter(
    "answers_total",
    "Forwarded answers relayed as bytes without the plugin chain, per server.",
    ["server"],
    namespace="clusterdns",
    subsystem="relay",
)

#: Counters plugins asked to replay (fastpath.Recorder.count), by name.
COUNTERS: dict[str, Counter] = {}

#: The metrics of one kind of fast answer: (server, proto, prometheus reports, counters).
Report = tuple[str, str, str, str, str, str, int, int, bool]
MKey = tuple[str, str, tuple[Report, ...], tuple[tuple[str, tuple[str, ...]], ...]]
_STATS: dict[Any, Stats] = {}


def stats_for(mkey: Any) -> Stats:
    st = _STATS.get(mkey)
    if st is None:
        st = _STATS[mkey] = Stats()
    return st


def _observe_many(child: Any, buckets: Sequence[int], total: float) -> None:
    """Add pre-bucketed observations to a histogram child (prometheus_client internals, with
    a slow but public fallback)."""
    try:
        values, ssum = child._buckets, child._sum
    except AttributeError:  # pragma: no cover - a prometheus_client without these internals
        bounds = list(child._upper_bounds)
        for i, n in enumerate(buckets):
            for _ in range(n):
                child.observe(bounds[i] if bounds[i] != float("inf") else total)
        return
    for i, n in enumerate(buckets):
        if n:
            values[i].inc(n)
    ssum.inc(total)


def _bucket(bounds: Sequence[float], value: float) -> int:
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)


def apply(mkey: Any, v4: int, v6: int, dsum: float, slow: Sequence[float]) -> None:
    """Fold one batch of fast answers into the metrics the slow path would have updated."""
    n = v4 + v6
    if n <= 0:
        return
    tb = [0] * (len(metrics.TIME_BUCKETS) + 1)
    tb[0] = n - len(slow)
    for d in slow:
        tb[_bucket(metrics.TIME_BUCKETS, d)] += 1
    server, proto = mkey[0], mkey[1]
    ANSWERS.labels(server, proto).inc(n)
    _apply(mkey, v4, v6, dsum, tb)


def _apply(mkey: Any, v4: int, v6: int, dsum: float, tb: list[int]) -> None:
    n = v4 + v6
    _, _, reports, counters = mkey
    view = metrics.VIEW
    for srv, zone, qtype, prot, rcode, plugin, rsize, qsize, do in reports:
        for fam, count in (("1", v4), ("2", v6)):
            if count:
                metrics.REQUEST_COUNT.labels(srv, zone, view, prot, fam, qtype).inc(count)
        if do:
            metrics.REQUEST_DO.labels(srv, zone, view).inc(n)
        _observe_many(metrics.REQUEST_DURATION.labels(srv, zone, view, qtype), tb, dsum)
        for hist, size in ((metrics.RESPONSE_SIZE, rsize), (metrics.REQUEST_SIZE, qsize)):
            sb = [0] * (len(metrics.SIZE_BUCKETS) + 1)
            sb[_bucket(metrics.SIZE_BUCKETS, size)] = n
            _observe_many(hist.labels(srv, zone, view, prot), sb, float(size * n))
        metrics.RESPONSE_RCODE.labels(srv, zone, view, rcode, plugin).inc(n)
    for name, labels in counters:
        c = COUNTERS.get(name)
        if c is not None:
            c.labels(*labels).inc(n)


class Bucketed:
    """Relayed answers (clusterdns.server.relaypath) sharing one metrics description: their
    durations (an upstream's round trip: most are past the first bucket) bucketed as they come."""

    __slots__ = ("buckets", "dsum", "v4", "v6")

    def __init__(self) -> None:
        self.v4 = 0
        self.v6 = 0
        self.dsum = 0.0
        self.buckets = [0] * (len(metrics.TIME_BUCKETS) + 1)

    def add(self, v6: bool, duration: float) -> None:
        if v6:
            self.v6 += 1
        else:
            self.v4 += 1
        self.dsum += duration
        self.buckets[bisect_left(metrics.TIME_BUCKETS, duration)] += 1

    def take(self) -> tuple[int, int, float, list[int]]:
        """What was added since the last take (as fastwire.Stats.take), and start over."""
        out = (self.v4, self.v6, self.dsum, self.buckets)
        self.v4 = self.v6 = 0
        self.dsum = 0.0
        self.buckets = [0] * len(out[3])
        return out


_RELAYED: dict[Any, Bucketed] = {}


def relayed_for(mkey: Any) -> Bucketed:
    st = _RELAYED.get(mkey)
    if st is None:
        st = _RELAYED[mkey] = Bucketed()
    return st


def flush_local() -> None:
    for mkey, st in list(_STATS.items()):
        if st.v4 or st.v6:
            apply(mkey, *st.take())
    for mkey, b in list(_RELAYED.items()):
        if b.v4 or b.v6:
            v4, v6, dsum, tb = b.take()
            RELAYED.labels(mkey[0]).inc(v4 + v6)
            _apply(mkey, v4, v6, dsum, tb)
