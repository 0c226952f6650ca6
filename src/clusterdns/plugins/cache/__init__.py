"""cache: answer repeated questions from memory, as CoreDNS's plugin/cache.

Syntax::

    cache [TTL] [ZONES...] {
        success CAPACITY [TTL] [MINTTL]
        denial CAPACITY [TTL] [MINTTL]
        prefetch AMOUNT [DURATION] [PERCENTAGE%]
        serve_stale [DURATION] [REFRESH_MODE]
        servfail DURATION
        disable success|denial [ZONES...]
        keepttl
    }

Only names inside ZONES (default: the server block's) are cached. The key is the lower-cased
name, type, class and the DO and CD bits of the query. Positive answers (NOERROR, delegations)
go to the success cache, NXDOMAIN/NODATA (with an SOA) and SERVFAIL/NOTIMP to the denial cache.
An entry lives for the lowest TTL of its records clamped to [MINTTL, TTL] — defaults [5, 3600]
for success and [5, 1800] for denial — and SERVFAIL for `servfail` (default 5s, 0 disables).
The reply that fills an entry already carries that TTL on every record; replies from the cache
carry the remaining TTL (the original one with `keepttl`), the client's ID and question, and AA.

`prefetch`: an entry asked AMOUNT times with no gap of DURATION (default 1m) is refreshed in
the background once its remaining TTL is at most PERCENTAGE (default 10%) of the original.
`serve_stale`: expired entries stay usable for DURATION (default 1h) with TTL 0; `immediate`
(default) answers from the stale entry and refreshes it in the background, `verify` asks the
next plugin first and only falls back to the stale entry when that fails (anything but a
NOERROR or NXDOMAIN answer).

Capacity is CoreDNS's: 256 shards of CAPACITY/256 entries (at least 4 each: 1024 in all), an
entry added to a full shard evicts another one. Metrics: coredns_cache_entries,
coredns_cache_requests_total, coredns_cache_hits_total, coredns_cache_misses_total,
coredns_cache_prefetch_total, coredns_cache_drops_total, coredns_cache_served_stale_total and
coredns_cache_evictions_total, labelled `server`, `zones` (the cache's zones joined with ","),
`view` and, for entries/hits/evictions, `type` (success or denial).

Fast path (clusterdns.server.fastpath): a fresh hit may be replayed from its rendered bytes with
the TTL counting down as here, its request and hit counted, until the item expires or leaves
the cache (its key's slot is bumped then). A miss whose answer is exactly what a hit on the
new item would give is replayed as that hit. Other misses, stale answers and `prefetch` (which
counts every hit) are never replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import dns.flags
import dns.message
import dns.rcode

from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.plugins.cache import classify as cls_
from clusterdns.plugins.cache import metrics as m
from clusterdns.plugins.cache.item import Item, Key, Shards, with_ttl
from clusterdns.plugins.cache.setup import Settings, parse
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

log = logging.getLogger("clusterdns")

#: The buffer a refresh asks with: it runs as if over TCP so upstream answers are not cut.
REFRESH_BUFSIZE = 65535


class Cache(Plugin):
    name = "cache"
    replay = Replay.ALWAYS  # cooperates: countdown, key slots, counted hits (see serve)

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.zones = s.zones
        self.label = ",".join(s.zones)
        self.pcache: Shards[Item] = Shards(s.pcap, self._dropped)
        self.ncache: Shards[Item] = Shards(s.ncap, self._dropped)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Cache:
        return cls(parse(directives[0], ctx))

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # ---- serving -------------------------------------------------------------------------

    async def serve(self, req: Request) -> dns.message.Message:
        if not longest_match(self.zones, req.qname):
            req.note("name outside the cache's zones")
            return await self.next(req)
        flags = req.msg.flags
        do, cd, ad = req.do, bool(flags & dns.flags.CD), bool(flags & dns.flags.AD)
        key: Key = (req.qname, req.qtype, req.qclass, do, cd)
        now = time.monotonic()
        item = self._lookup(key, req.server, now)
        rec = fastpath.recorder()
        if item is None:
            req.note("cache miss")
            if rec is None:
                resp = await self.next(req)
                return self._write(req, resp, key, ad, prefetch=False)
            with fastpath.shielded():  # what fills the cache now is not what a replay does
                resp = await self.next(req)
            out = self._write(req, resp, key, ad, prefetch=False)
            self._replay_miss(rec, req, key, out, do, ad)
            return out
        ttl = item.ttl(now)
        if ttl < 0:
            if rec is not None:
                rec.veto("stale cache entry")
            if self.s.verify_stale:
                fresh = await self._verify(req, key, ad)
                if fresh is not None:
                    return fresh
            else:
                self._try_prefetch(item, req, key, now + ttl)
            m.SERVED_STALE.labels(req.server, self.label, m.VIEW).inc()
            ttl = 0
        elif self._should_prefetch(item, now):
            self._try_prefetch(item, req, key, now)
        if self.s.keepttl:
            ttl = item.orig_ttl
        if rec is not None:
            self._replayable(rec, req, key, item, ttl)
        req.note("cache hit")
        req.answered_by = self.name
        return item.to_msg(req, ttl, do, ad)

    def _replayable(
        self, rec: fastpath.Recorder, req: Request, key: Key, item: Item, ttl: int
    ) -> None:
        """Tell the fast path how to replay this hit (as _lookup counted it)."""
        if self.s.prefetch > 0:
            rec.veto("cache prefetch counts hits")
            return
        item.fast = True
        rec.depend(fastpath.key_slot(key))
        hit = m.DENIAL if self.ncache.get(key) is item else m.SUCCESS
        rec.count(m.REQUESTS, (req.server, self.label, m.VIEW))
        rec.count(m.HITS, (req.server, hit, self.label, m.VIEW))
        rec.countdown = (item.stored, item.orig_ttl, max(ttl, 0), self.s.keepttl)

    def _replay_miss(
        self, rec: fastpath.Recorder, req: Request, key: Key, out: dns.message.Message,
        do: bool, ad: bool,
    ) -> None:  # fmt: skip
        """A miss whose answer is what a hit on the item just stored would say, in this very
        second, is replayed as that hit (so a refill costs the chain once, not twice)."""
        now = time.monotonic()
        item = self._peek(key, now)
        if item is None:
            rec.veto("cache miss not stored")
            return
        ttl = item.orig_ttl if self.s.keepttl else item.ttl(now)
        if ttl <= 0 or not same_reply(item.to_msg(req, ttl, do, ad), out):
            rec.veto("cache miss unlike a hit")
            return
        rec.answered_by = self.name
        self._replayable(rec, req, key, item, ttl)

    def _peek(self, key: Key, now: float) -> Item | None:
        """What _lookup would find now, without counting anything."""
        neg = self.ncache.get(key)
        pos = self.pcache.get(key)
        if neg is not None and self._usable(neg, now):
            if neg.rcode == dns.rcode.SERVFAIL and pos is not None and self._usable(pos, now):
                return pos
            return neg
        return pos if pos is not None and self._usable(pos, now) else None

    @staticmethod
    def _dropped(key: object, item: Item) -> None:
        if item.fast:
            fastpath.bump(fastpath.key_slot(key))

    def _usable(self, item: Item, now: float) -> bool:
        ttl = item.ttl(now)
        return ttl > 0 or (self.s.stale_up_to > 0 and -ttl < int(self.s.stale_up_to))

    def _lookup(self, key: Key, server: str, now: float) -> Item | None:
        """A fresh (or, with serve_stale, recently expired) entry; counts requests and hits.

        The denial cache is asked first. A cached SERVFAIL does not hide a usable positive
        entry (current CoreDNS): a failing refresh must not undo serve_stale.
        """
        m.REQUESTS.labels(server, self.label, m.VIEW).inc()
        neg = self.ncache.get(key)
        if neg is not None and self._usable(neg, now):
            if neg.rcode == dns.rcode.SERVFAIL:
                pos = self.pcache.get(key)
                if pos is not None and self._usable(pos, now):
                    m.HITS.labels(server, m.SUCCESS, self.label, m.VIEW).inc()
                    return pos
            m.HITS.labels(server, m.DENIAL, self.label, m.VIEW).inc()
            return neg
        pos = self.pcache.get(key)
        if pos is not None and self._usable(pos, now):
            m.HITS.labels(server, m.SUCCESS, self.label, m.VIEW).inc()
            return pos
        m.MISSES.labels(server, self.label, m.VIEW).inc()
        return None

    def _exists(self, key: Key) -> Item | None:
        return self.ncache.get(key) or self.pcache.get(key)

    # ---- storing (CoreDNS's ResponseWriter.WriteMsg) --------------------------------------

    def _write(
        self, req: Request, resp: dns.message.Message, key: Key, ad: bool, prefetch: bool
    ) -> dns.message.Message:
        """Store `resp` if it may be cached; give every record the TTL the entry got."""
        s = self.s
        t = cls_.response_type(resp)
        if t in (cls_.NAMEERROR, cls_.NODATA):
            duration = cls_.compute_ttl(cls_.minimal_ttl(resp, t, s.nttl), s.minnttl, s.nttl)
        elif t == cls_.SERVERERROR:
            duration = s.failttl
        else:
            duration = cls_.compute_ttl(cls_.minimal_ttl(resp, t, s.pttl), s.minpttl, s.pttl)
        # The capped TTL on this reply too, so clients never see 1799 then 8 (as CoreDNS).
        ttl = int(duration)
        resp.answer = with_ttl(resp.answer, ttl)
        resp.authority = with_ttl(resp.authority, ttl)
        resp.additional = with_ttl(resp.additional, ttl)
        if duration > 0 and cls_.cacheable(resp, t):
            if cls_.matches(req.qname, req.qtype, resp):
                self._set(resp, key, t, duration, req.server, prefetch)
                m.ENTRIES.labels(req.server, m.SUCCESS, self.label, m.VIEW).set(len(self.pcache))
                m.ENTRIES.labels(req.server, m.DENIAL, self.label, m.VIEW).set(len(self.ncache))
            else:
                m.DROPS.labels(req.server, self.label, m.VIEW).inc()
        if not req.do and not ad:
            resp.flags &= ~dns.flags.AD  # no DNSSEC asked for: nothing is authenticated
        return resp

    def _set(
        self, resp: dns.message.Message, key: Key, t: str, duration: float, server: str,
        prefetch: bool,
    ) -> None:  # fmt: skip
        qname = key[0]
        if t in (cls_.NOERROR, cls_.DELEGATION):
            if longest_match(self.s.pexcept, qname):
                return
            evicted = self.pcache.add(key, Item.from_msg(resp, time.monotonic(), duration))
            if evicted:
                m.EVICTIONS.labels(server, m.SUCCESS, self.label, m.VIEW).inc()
            if prefetch:
                self.ncache.remove(key)  # the refreshed answer is the newest word
        elif t in (cls_.NAMEERROR, cls_.NODATA, cls_.SERVERERROR):
            if longest_match(self.s.nexcept, qname):
                return
            evicted = self.ncache.add(key, Item.from_msg(resp, time.monotonic(), duration))
            if evicted:
                m.EVICTIONS.labels(server, m.DENIAL, self.label, m.VIEW).inc()

    # ---- serve_stale verify --------------------------------------------------------------

    async def _verify(self, req: Request, key: Key, ad: bool) -> dns.message.Message | None:
        """Ask the next plugin; only a matching NOERROR/NXDOMAIN answer replaces the entry."""
        try:
            resp = await self.next(req)
        except PluginError:
            return None
        if resp.flags & dns.flags.TC or not cls_.matches(req.qname, req.qtype, resp):
            return None
        if cls_.response_type(resp) in (cls_.OTHERERROR, cls_.META, cls_.UPDATE):
            return None
        if resp.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        return self._write(req, resp, key, ad, prefetch=False)

    # ---- prefetch ------------------------------------------------------------------------

    def _should_prefetch(self, item: Item, now: float) -> bool:
        if self.s.prefetch <= 0:
            return False
        hits = item.update_freq(self.s.duration, now)
        # In floating point, as CoreDNS computes it (10% of 30 rounds up to 4 there too).
        threshold = math.ceil(self.s.percentage / 100 * item.orig_ttl)
        return hits >= self.s.prefetch and item.ttl(now) <= threshold

    def _try_prefetch(self, item: Item, req: Request, key: Key, now: float) -> None:
        if item.refreshing:
            return
        item.refreshing = True
        task = asyncio.get_running_loop().create_task(self._prefetch(item, req, key, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prefetch(self, item: Item, req: Request, key: Key, now: float) -> None:
        """Refresh `item` through the rest of the chain; the answer only goes to the cache."""
        try:
            m.PREFETCH.labels(req.server, self.label, m.VIEW).inc()
            sub = refresh_request(req)
            try:
                resp = await self.next(sub)
            except PluginError as e:
                log.debug("plugin/cache: prefetch of %s failed: %s", req.qname, e)
                return
            except Exception:
                log.exception("plugin/cache: prefetch of %s crashed", req.qname)
                return
            self._write(sub, resp, key, True, prefetch=True)
            fresh = self._exists(key)
            if fresh is not None and fresh is not item:
                # The new entry inherits the popularity the old one had gathered.
                fresh.hits, fresh.last = item.hits, now
        finally:
            item.refreshing = False


def same_reply(a: dns.message.Message, b: dns.message.Message) -> bool:
    """Whether two replies would render alike: flags, rcode, EDNS options, records in order."""
    if (a.flags, a.rcode(), a.question) != (b.flags, b.rcode(), b.question):
        return False
    if (list(a.options) if a.edns >= 0 else []) != (list(b.options) if b.edns >= 0 else []):
        return False
    for x, y in ((a.answer, b.answer), (a.authority, b.authority), (a.additional, b.additional)):
        if len(x) != len(y):
            return False
        for r, t in zip(x, y, strict=True):
            if (r.name, r.rdtype, r.rdclass, r.covers, r.ttl, list(r)) != (
                t.name, t.rdtype, t.rdclass, t.covers, t.ttl, list(t)
            ):  # fmt: skip
                return False
            if r.name.labels != t.name.labels:  # Name equality ignores case; the wire does not
                return False
    return True


def refresh_request(req: Request) -> Request:
    """A copy of `req` for a background refresh: no client to write to, TCP-sized, AD set."""
    return req.derive(flags=req.msg.flags | dns.flags.AD, proto="tcp", bufsize=REFRESH_BUFSIZE)


PLUGIN = Cache
