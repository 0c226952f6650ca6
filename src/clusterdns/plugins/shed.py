"""shed: drop UDP queries the server cannot keep up with, newest first, and count the drops.

Syntax::

    shed

No arguments, no options (as CoreDNS 1.14's plugin/shed: "shed takes no options"). Only for
plain DNS server blocks (`dns://` keys); any other transport is a setup error (checked as
CoreDNS does, although ClusterDNS serves no other transport yet).

CoreDNS's shed bounds, per UDP listener socket, the responses waiting to be written (a fixed
stack of 1024, newest first, the oldest evicted) and drops arriving queries while it is full,
so an overload becomes counted drops instead of an unbounded pile of goroutines. ClusterDNS
always bounds its UDP backlog (clusterdns.server.backlog: queries waiting for the chain start
newest first, are dropped past a couple of seconds or when pushed out, and the oldest in the
chain is cancelled past a bound, by default CoreDNS's depth of 1024 for both). With `shed` in a
block, the listener of that block takes its Limits from the plugin (CoreDNS's fixed depth: the
plugin has no options to change it) and also counts every drop in CoreDNS's metric:

* `coredns_shed_dropped_total{server, reason}` — `query` for queries dropped before the chain
  ran, `response` for queries cancelled in the chain (their answer is never written).

TCP queries are never dropped. As in CoreDNS, one block with `shed` sets the discipline of its
whole listener (keep it uniform across blocks sharing one). The plugin itself passes every
query on untouched, so answers it sits in front of are replayed (fast path) as before.
"""

from __future__ import annotations

import dns.message
from prometheus_client import Counter

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args
from clusterdns.request import Request
from clusterdns.server.backlog import DEFAULT, Limits

#: CoreDNS's stackDepth: "a burst budget, not a knob".
STACK_DEPTH = 1024

DROPPED = Counter(
    "dropped_total",
    "Counter of queries and responses dropped, per server, by reason.",
    ["server", "reason"],
    namespace="coredns",
    subsystem="shed",
)


class Shed(Plugin):
    name = "shed"
    replay = Replay.ALWAYS  # it never looks at a query: nothing per query to replay
    backlog_limits = Limits(waiting=STACK_DEPTH, inflight=STACK_DEPTH, max_age=DEFAULT.max_age)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Shed:
        d = directives[0]
        expect_args(d, 0, 0)
        if d.children:
            raise d.error("plugin/shed: shed takes no options")
        for k in ctx.keys:
            if k.transport != "dns":
                key = k.key or str(k)
                raise d.error(
                    "plugin/shed: only plain DNS server blocks are supported; "
                    f'"{key}" uses transport "{k.transport}"'
                )
        return cls()

    async def serve(self, req: Request) -> dns.message.Message:
        return await self.next(req)

    def attach(self, server: str) -> None:
        """The listener of `server` uses this plugin: its series exist from now on, at 0."""
        DROPPED.labels(server, "query")
        DROPPED.labels(server, "response")

    def dropped(self, server: str, reason: str) -> None:
        DROPPED.labels(server, "response" if reason == "cancelled" else "query").inc()


PLUGIN = Shed
