"""The bound on UDP queries waiting for the plugin chain, and where its drops are counted.

A query the fast path cannot answer becomes a task that waits its turn (clusterdns.server.pacer)
and then runs the chain, which may wait on an upstream for seconds. A flood of such queries
(never-seen names forwarded to a slow or dead upstream) would otherwise pile up tasks without
limit: memory grows, and the server is still answering queries whose clients gave up long ago
while fresh ones wait behind them. So, per UDP listener:

* at most `waiting` queries wait for their turn; they start newest first, and one that waited
  longer than `max_age` is dropped (its client has retried or given up: a stub resolver's
  first retry comes after a second or two);
* at most `inflight` queries are in the chain (waiting + started); beyond that the oldest is
  cancelled, so the newest query always gets in.

Dropped queries get no answer (the client retries, maybe elsewhere), exactly as CoreDNS's shed
plugin drops them; each is counted in clusterdns_udp_dropped_total{server, reason} with
reason `overflow` (pushed out by newer queries) or `stale` (waited past max_age). TCP queries
are never dropped (their connections are bounded instead, see clusterdns.server.listener).

A plugin may set a listener's Limits and be told of its drops: the `shed` plugin
(clusterdns.plugins.shed) does, to count them in CoreDNS's coredns_shed_dropped_total as well
(its Limits are CoreDNS's fixed depth, which is also the default). The listener finds such
plugins among its server blocks' plugins through the `Shedder` protocol (so no core code
imports a plugin), again after a reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prometheus_client import Counter


@dataclass(frozen=True, slots=True)
class Limits:
    #: Queries waiting for their turn: CoreDNS shed's fixed stack depth.
    waiting: int = 1024
    #: Queries in the chain, waiting ones included. A query forwarded to a dead upstream costs
    #: ~15 KiB for up to 5s: 1,024 keep a flood's cost under ~20 MiB, and 1,024 queries
    #: outstanding is more than the chain answers in a second with any sane upstream.
    inflight: int = 1024
    max_age: float = 2.0  # seconds a query may wait for its turn


DEFAULT = Limits()

DROPPED = Counter(
    "clusterdns_udp_dropped_total",
    "UDP queries dropped unanswered under overload, per server, by reason (overflow, stale).",
    ["server", "reason"],
)


class Dropped(Exception):
    """Raised in a query's task when the pacer drops it; the listener counts it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Shedder(Protocol):
    """A plugin that sets a listener's Limits and is told of every drop (the shed plugin)."""

    backlog_limits: Limits

    def attach(self, server: str) -> None:
        """Called when the listener of `server` starts using this plugin's limits."""

    def dropped(self, server: str, reason: str) -> None:
        """`reason` is `overflow` or `stale` for queries dropped before the chain ran,
        `cancelled` for queries cancelled in the chain (their answer is never written)."""
