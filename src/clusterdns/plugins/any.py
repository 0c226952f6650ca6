"""any: answer ANY queries with a short HINFO record, as RFC 8482 allows.

Syntax::

    any

As CoreDNS's plugin/any: a query of type ANY gets one record, `<qname> 8482 IN HINFO
"ANY obsoleted" "See RFC 8482"`, owner in the query's case, not authoritative; every other
query goes to the next plugin.
"""

from __future__ import annotations

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.HINFO
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, unknown_option
from clusterdns.request import Request

TTL = 8482
CPU = b"ANY obsoleted"
OS = b"See RFC 8482"


class Any(Plugin):
    name = "any"
    replay = Replay.ALWAYS  # a pure function of the query

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Any:
        d = directives[0]
        expect_args(d, 0, 0)
        if d.children:
            raise unknown_option("any", d.children[0])
        return cls()

    async def serve(self, req: Request) -> dns.message.Message:
        if req.qtype != dns.rdatatype.ANY:
            return await self.next(req)
        m = req.reply()
        hinfo = dns.rdtypes.ANY.HINFO.HINFO(  # type: ignore[no-untyped-call]
            dns.rdataclass.IN, dns.rdatatype.HINFO, CPU, OS
        )
        m.answer = [dns.rrset.from_rdata_list(req.name, TTL, [hinfo])]
        return m


PLUGIN = Any
