"""bufsize: lower the EDNS0 UDP size of queries, to keep answers from being fragmented.

Syntax::

    bufsize [SIZE]

SIZE is 512-4096 (default 1232, the DNS flag day 2020 value). As CoreDNS's plugin/bufsize: a
query with an OPT record whose UDP size is larger than SIZE has it lowered to SIZE before the
rest of the chain runs, so every later plugin (and forwarded query) sees the smaller size, UDP
answers are truncated to it, and the reply's OPT carries it. Queries without EDNS0 are left
alone.
"""

from __future__ import annotations

import re

import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, no_block
from clusterdns.request import Request

DEFAULT_SIZE = 1232
MIN_SIZE = 512
MAX_SIZE = 4096
_INT = re.compile(r"[+-]?[0-9]+")  # Go's strconv.Atoi


class Bufsize(Plugin):
    name = "bufsize"
    replay = Replay.ALWAYS  # a pure function of the query

    def __init__(self, size: int) -> None:
        self.size = size

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Bufsize:
        d = directives[0]
        args = expect_args(d, 0, 1)
        no_block(d)
        if not args:
            return cls(DEFAULT_SIZE)
        if not _INT.fullmatch(args[0]):
            raise d.error(f"bufsize: '{args[0]}' is not a number")
        size = int(args[0])
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise d.error(
                f"bufsize: {size} is out of range, must be between {MIN_SIZE} and {MAX_SIZE}"
            )
        return cls(size)

    async def serve(self, req: Request) -> dns.message.Message:
        q = req.msg
        if q.edns >= 0 and q.payload > self.size:
            q.use_edns(q.edns, q.ednsflags, self.size, options=list(q.options))
            req.bufsize = self.size
        return await self.next(req)


PLUGIN = Bufsize
