"""The fast path's main-process half: which answers may be replayed, and their side effects.

The slow path (the plugin chain, dnspython) stays the reference. While it answers a query, a
`Recorder` (a context variable, so nested lookups and background tasks see it too) collects
what the answer depends on; when the answer is written and nothing vetoed it, `FastPath.fill`
turns it into a fastwire.Entry that later identical queries get without running the chain.

Who vetoes: every plugin's handler is wrapped (`wrap`); plugins not known to be replayable veto
when they are entered (forward, whoami, …), chaos for class CH, loop for HINFO, autopath for
names in its zones, log for names one of its rules logs (so every logged query gets its line:
it is answered by the chain). A PluginError or crash vetoes, and so does an `after_write` hook
that is not prometheus' (whose effect could not be replayed).

What the cooperating plugins say (their own files call these):

* kubernetes and hosts `depend` on their data's slot, bumped on every change of their data;
* cache, on a hit, gives the entry's `countdown` (its TTL goes down with time), `depend`s on
  its key's slot (bumped when the item is evicted or replaced) and `count`s its request and hit
  counters. On a miss it runs the rest of the chain `shielded` (a replay would be a hit) and,
  if its answer is exactly what a hit on the item just stored gives, records that hit; other
  misses, stale answers and `prefetch` veto;
* kubernetes marks answers whose records show the query's case (SRV targets) `case_sensitive`;
* loadbalance's shuffle is noted by the wrapper: the entry keeps the shuffled records apart
  (clusterdns.server.fastshuffle).

Effects replayed per fast answer: the prometheus plugin's per-query metrics (coredns_dns_*),
the counters plugins `count`ed, and clusterdns_fastpath_answers_total. They are batched
(fastwire.Stats) and folded into the real metrics by `flush`, which /metrics calls before every
scrape (and a timer every second), so a scrape sees every answer given before it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from prometheus_client import Counter

from clusterdns import metrics
from clusterdns.server.fastmetrics import COUNTERS, MKey, Report, flush_local, stats_for
from clusterdns.server.fastshuffle import plan, reversed_runs
from clusterdns.server.fastwire import (
    OPT,
    PLUGIN_SLOTS,
    SLOT_COUNT,
    Entry,
    EntryState,
    Fit,
    Run,
    Slots,
    Table,
    query_key,
    walk,
)
from clusterdns.server.wire import complete, render
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.plugin import Handler, Plugin
    from clusterdns.request import Request

log = logging.getLogger("clusterdns.server")

#: Plugins whose handler neither answers from elsewhere nor has per-query side effects of its
#: own, or that cooperate (see the module docstring). Any other plugin vetoes when entered.
REPLAYABLE = frozenset(
    {"reload", "bufsize", "bind", "ready", "health", "prometheus", "errors", "any",
     "loadbalance", "cache", "hosts", "kubernetes", "k8s_external"}
)  # fmt: skip
_CONDITIONAL: dict[str, Callable[[Any, Request], bool]] = {
    "chaos": lambda p, req: req.qclass == dns.rdataclass.CH,  # authors.bind: shuffled
    "loop": lambda p, req: req.qtype == dns.rdatatype.HINFO,  # its probes are counted
    # The search path depends on the client's address (and successes are counted).
    "autopath": lambda p, req: bool(longest_match(p.zones, req.qname)),
    # A query a log rule matches is logged by the chain (a line per query, as CoreDNS).
    "log": lambda p, req: p.rule_for(req.qname) is not None,
}
_TRANSFER = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)


def enabled() -> bool:
    """CLUSTERDNS_FASTPATH=off (or 0/false/no) serves everything through the chain."""
    return os.environ.get("CLUSTERDNS_FASTPATH", "on").lower() not in ("0", "off", "false", "no")


_SLOTS: Slots | None = None
_next_plugin_slot = 1


def slots() -> Slots:
    """The process's shared counters (created on first use, in a memfd workers can map)."""
    global _SLOTS
    if _SLOTS is None:
        fd = os.memfd_create("clusterdns-fastpath")
        os.ftruncate(fd, SLOT_COUNT * 8)
        _SLOTS = Slots(fd)
    return _SLOTS


def new_slot() -> int:
    """A slot for one plugin instance's data; bump it whenever that data changes."""
    global _next_plugin_slot
    index = _next_plugin_slot
    _next_plugin_slot = _next_plugin_slot % (PLUGIN_SLOTS - 1) + 1
    return index


def bump(index: int) -> None:
    slots().bump(index)


def key_slot(key: object) -> int:
    """The slot of a cache key (hashed: two keys may share one, which only costs a refill)."""
    return PLUGIN_SLOTS + hash(key) % (SLOT_COUNT - PLUGIN_SLOTS)


def new_epoch() -> None:
    """Void every entry everywhere: a reload (new plugins, new zones) or a start."""
    bump(0)


# ---- recording ------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Recorder:
    epoch: int
    ok: bool = True
    reason: str = ""
    closed: bool = False
    deps: list[tuple[int, int]] = field(default_factory=list)
    counters: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: (stored, original TTL, TTL written now, keepttl) of the cache item that answered.
    countdown: tuple[float, int, int, bool] | None = None
    case_sensitive: bool = False
    shuffled: bool = False
    #: The plugin a replay is answered by, when not the one that answered now (a cache miss
    #: replayed as the hit it stored).
    answered_by: str = ""

    def veto(self, reason: str) -> None:
        if self.ok and not self.closed:
            self.ok = False
            self.reason = reason

    def depend(self, index: int) -> None:
        if not self.closed:
            self.deps.append((index, slots().values[index]))

    def count(self, counter: Counter, labels: Sequence[str]) -> None:
        """Replay `counter.labels(*labels).inc()` with every fast answer."""
        if not self.closed:
            name: str = counter._name
            COUNTERS.setdefault(name, counter)
            self.counters.append((name, tuple(labels)))


_CURRENT: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "clusterdns_fastpath", default=None
)


def recorder() -> Recorder | None:
    """The recorder of the query being answered, or None: fast path off, no query, or the
    answer is not going to be replayed anyway (so plugins spend nothing on it)."""
    rec = _CURRENT.get()
    return rec if rec is not None and rec.ok else None


def veto(reason: str) -> None:
    rec = _CURRENT.get()
    if rec is not None:
        rec.veto(reason)


def depend(index: int) -> None:
    rec = _CURRENT.get()
    if rec is not None:
        rec.depend(index)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Run a part of the chain unrecorded: it happens now, but is not part of the replays
    (the cache's next plugins on a miss: a replay is a hit)."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def begin() -> tuple[Recorder, contextvars.Token[Recorder | None]]:
    rec = Recorder(slots().values[0])
    return rec, _CURRENT.set(rec)


def end(token: contextvars.Token[Recorder | None]) -> None:
    _CURRENT.reset(token)


def wrap(plugin: Plugin) -> Handler:
    """config._wrap plus the plugin's fast-path policy (used to build served chains)."""
    from clusterdns.config import _wrap

    inner = _wrap(plugin)
    name = plugin.name
    if name == "loadbalance":

        async def shuffles(req: Request) -> dns.message.Message:
            resp = await inner(req)
            rec = _CURRENT.get()
            if rec is not None and resp.rcode() == dns.rcode.NOERROR and req.qtype not in _TRANSFER:
                rec.shuffled = True
            return resp

        return shuffles
    if name in REPLAYABLE:
        return inner
    cond = _CONDITIONAL.get(name)

    async def vetoes(req: Request) -> dns.message.Message:
        rec = _CURRENT.get()
        if rec is not None and (cond is None or cond(plugin, req)):
            rec.veto(f"plugin/{name}")
        return await inner(req)

    return vetoes


# ---- filling --------------------------------------------------------------------------------


def _reports(
    rec: Recorder, req: Request, resp: dns.message.Message, size: int
) -> tuple[Report, ...] | None:
    """What the after-write hooks would report again; None if one of them is unknown."""
    from clusterdns.plugins.prometheus import Prometheus
    from clusterdns.server.dispatch import report_dropped

    out: list[Report] = []
    rcode = metrics.rcode_label(resp.rcode())
    qtype = metrics.type_label(req.type_text)
    for hook in req.after_write:
        if isinstance(hook, partial) and hook.func is Prometheus._written:
            zone, plugin = hook.args[0], rec.answered_by or req.answered_by
        elif hook is report_dropped:
            zone, plugin = "dropped", ""
        else:
            return None
        out.append((req.server, zone, qtype, req.proto, rcode, plugin, size, req.size, req.do))
    return tuple(out)


class FastPath:
    """One listener's tables (UDP and TCP) and the code that fills and serves them."""

    def __init__(self, server: str) -> None:
        self.server = server
        s = slots()
        self.udp = Table(s)
        self.tcp = Table(s)

    def answer(self, data: bytes, ip: str, proto: str) -> bytes | None:
        hit = self.lookup(data, ip, proto)
        return None if hit is None else hit[1]

    def lookup(self, data: bytes, ip: str, proto: str) -> tuple[Entry, bytes] | None:
        """The entry answering `data` and the answer, counted; None if there is none."""
        t0 = time.perf_counter()
        hit = (self.udp if proto == "udp" else self.tcp).get(data, time.monotonic())
        if hit is None:
            return None
        entry, wire = hit
        v6 = ":" in ip and not (ip.startswith("::ffff:") and "." in ip)
        entry.stats_for(len(wire)).add(v6, time.perf_counter() - t0)
        return hit

    def fill(
        self,
        rec: Recorder,
        req: Request,
        resp: dns.message.Message,
        data: bytes,
        wire: bytes,
        limit: int,
    ) -> tuple[bytes, EntryState] | None:
        """Keep the answer just written if it may be replayed; its key and state (workers)."""
        rec.closed = True
        if not rec.ok:
            return None
        k = query_key(data)
        if k is None:
            return None
        key, nend = k
        if wire[4:6] != b"\x00\x01" or not wire.startswith(data[12 : nend + 4], 12):
            return None
        recs = walk(wire)
        if recs is None:
            return None
        reports = _reports(rec, req, resp, len(wire))
        if reports is None:
            return None
        runs: tuple[Run, ...] = ()
        fit: Fit | None = None
        if rec.shuffled:
            planned = plan(resp, wire, recs, not complete(resp, wire), limit)
            if planned is None:
                return None
            wire, recs, found, fit = planned
            runs = tuple((a, b, bounds) for a, b, bounds, _ in found)
        stored, life, countdown, cur_ttl = 0.0, -1, False, -1
        ttl_offs: tuple[int, ...] = ()
        if rec.countdown is not None:
            stored, life, cur_ttl, keep = rec.countdown
            countdown = not keep
            if countdown:
                ttl_offs = tuple(r[2] for r in recs if r[4] != OPT)
                if any(int.from_bytes(wire[o : o + 4], "big") != cur_ttl for o in ttl_offs):
                    return None  # TTLs changed after the cache: not what we can replay
        mkey: MKey = (self.server, req.proto, reports, tuple(rec.counters))
        deps = ((0, rec.epoch), *rec.deps)
        state: EntryState = (
            wire, data[12:nend], nend, not rec.case_sensitive, deps, stored, life, countdown,
            cur_ttl, ttl_offs, runs, fit, mkey,
        )  # fmt: skip
        entry = Entry(state, stats_for)
        if runs and entry.shuffled(wire, list.reverse) != render(reversed_runs(resp, found), limit):
            return None  # a record names another one of its run: moving it changes bytes
        (self.udp if req.proto == "udp" else self.tcp).put(key, entry)
        return key, state

    def clear(self) -> None:
        self.udp.clear()
        self.tcp.clear()


# ---- metrics --------------------------------------------------------------------------------

#: Set by the worker pool: asks every worker for its batches and folds them in.
remote_flush: Callable[[], Awaitable[None]] | None = None


async def flush() -> None:
    """Bring the metrics up to date with every fast answer given so far (before a scrape)."""
    flush_local()
    if remote_flush is not None:
        await remote_flush()
