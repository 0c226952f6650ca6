"""minimal: answer with only what was asked for, without the authority and additional sections.

Syntax::

    minimal

As CoreDNS's plugin/minimal (BIND's minimal-responses): a reply the next plugins give is
classified as CoreDNS's response.Typify does; a NOERROR answer loses its authority and
additional records (and so the OPT the answering plugin or upstream put there: the server gives
the reply the query's OPT again, as CoreDNS's SizeAndDo does). Denials (NXDOMAIN, NODATA),
errors and delegations pass unchanged, and so does anything else (zone transfers, NOTIFY,
UPDATE: CoreDNS writes those unchanged and logs an error).
"""

from __future__ import annotations

import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.pkg.response import NOERROR, typify
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, no_block
from clusterdns.request import Request


class Minimal(Plugin):
    name = "minimal"
    # The reply depends only on what the next plugins answered.
    replay = Replay.ALWAYS

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Minimal:
        d = directives[0]
        expect_args(d, 0, 0)
        no_block(d)
        return cls()

    async def serve(self, req: Request) -> dns.message.Message:
        resp = await self.next(req)
        if typify(resp) != NOERROR:
            return resp
        resp.authority = []
        resp.additional = []
        resp.use_edns(None)  # the OPT lives in Extra in miekg/dns: it goes too
        return resp


PLUGIN = Minimal
