"""cancel: give up on a query that takes too long.

Syntax::

    cancel [TIMEOUT]

As CoreDNS's plugin/cancel: the rest of the chain gets TIMEOUT (a Go duration, default 5001ms:
just past the 5 s after which clients give up) to answer. CoreDNS cancels the query's context
and the plugins that watch it (forward) stop and fail; here the rest of the chain is cancelled
(asyncio.wait_for) and the query fails with SERVFAIL, as forward's failure makes it in CoreDNS.
"""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode

from clusterdns.corefile.ast import Directive
from clusterdns.durations import parse_go_duration
from clusterdns.errors import PluginError
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, no_block
from clusterdns.request import Request

DEFAULT_TIMEOUT = 5.001


class Cancel(Plugin):
    name = "cancel"
    # Adds nothing to an answer given in time; one given too late is an error (never kept).
    replay = Replay.ALWAYS

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Cancel:
        d = directives[0]
        no_block(d)
        args = expect_args(d, 0, 1)
        if not args:
            return cls(DEFAULT_TIMEOUT)
        try:
            timeout = parse_go_duration(args[0])
        except ValueError:
            raise d.error(f"cancel: invalid duration: {args[0]!r}") from None
        if timeout <= 0:
            raise d.error(f"cancel: invalid negative duration: {args[0]!r}")
        return cls(timeout)

    async def serve(self, req: Request) -> dns.message.Message:
        try:
            return await asyncio.wait_for(self.next(req), self.timeout)
        except TimeoutError:
            raise PluginError(self.name, "context deadline exceeded", dns.rcode.SERVFAIL) from None


PLUGIN = Cancel
