"""whoami: answer with the client's address, port and transport.

Syntax::

    whoami

The answer section is empty; the additional section holds an A or AAAA record with the
client's IP and an SRV record `_udp.<qname>` / `_tcp.<qname>` whose port is the client's.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, SetupContext, expect_args, no_block
from clusterdns.request import Request


class Whoami(Plugin):
    name = "whoami"

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Whoami:
        d = directives[0]
        expect_args(d, 0, 0)
        no_block(d)
        return cls()

    async def serve(self, req: Request) -> dns.message.Message:
        m = req.reply(authoritative=True)
        qname = dns.name.from_text(req.qname)
        rdclass = dns.rdataclass.RdataClass(req.qclass)
        atype = dns.rdatatype.AAAA if req.family == 2 else dns.rdatatype.A
        addr = dns.rrset.from_rdata_list(
            qname, 0, [dns.rdata.from_text(rdclass, atype, req.remote_ip)]
        )
        srv_name = dns.name.from_text(f"_{req.proto}", qname)
        srv = dns.rrset.from_rdata_list(
            srv_name,
            0,
            [dns.rdata.from_text(rdclass, dns.rdatatype.SRV, f"0 0 {req.remote_port} .")],
        )
        m.additional = [addr, srv]
        return m


PLUGIN = Whoami
