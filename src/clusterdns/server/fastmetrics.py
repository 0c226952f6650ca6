"""The fast path's side effects on metrics: batched, then folded into the real ones.

Every fast answer is counted in a fastwire.Stats batch keyed by what its metrics look like
(`MKey`: server, transport, the prometheus plugin's reports, the counters plugins asked to
replay). `apply` adds a batch to the same series the slow path updates — coredns_dns_* as
clusterdns.metrics.report would, the plugins' counters, and clusterdns_fastpath_answers_total —
so a scrape after a flush sees exactly what the slow path would have shown.
"""

from __future__ import annotations

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
    server, proto, reports, counters = mkey
    ANSWERS.labels(server, proto).inc(n)
    view = metrics.VIEW
    for srv, zone, qtype, prot, rcode, plugin, rsize, qsize, do in reports:
        for fam, count in (("1", v4), ("2", v6)):
            if count:
                metrics.REQUEST_COUNT.labels(srv, zone, view, prot, fam, qtype).inc(count)
        if do:
            metrics.REQUEST_DO.labels(srv, zone, view).inc(n)
        tb = [0] * (len(metrics.TIME_BUCKETS) + 1)
        tb[0] = n - len(slow)
        for d in slow:
            tb[_bucket(metrics.TIME_BUCKETS, d)] += 1
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


def flush_local() -> None:
    for mkey, st in list(_STATS.items()):
        if st.v4 or st.v6:
            apply(mkey, *st.take())
