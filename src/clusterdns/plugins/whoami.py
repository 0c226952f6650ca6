"""whoami: answer with the client's address, port and transport.

Syntax::

    whoami

The answer section is empty; the additional section holds an A or AAAA record with the
client's IP and an SRV record `_udp.<qname>` / `_tcp.<qname>` whose port is the client's.
When that SRV owner would be longer than 255 octets (a query name of 251 octets or more), the
SRV record is left out: CoreDNS sends it anyway, in a message no DNS library can parse.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
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
        req.note("whoami answers every query with the client's address")
        m = req.reply(authoritative=True)
        qname = req.name  # the query's case, as CoreDNS's state.QName()
        rdclass = dns.rdataclass.RdataClass(req.qclass)
        # Built directly, not from text: dnspython's text parser would read a CH-class A as a
        # Chaosnet address, while CoreDNS puts the client's IP there whatever the class.
        addr_rd: dns.rdata.Rdata
        if req.family == 2:
            addr_rd = dns.rdtypes.IN.AAAA.AAAA(rdclass, dns.rdatatype.AAAA, req.remote_ip)  # type: ignore[no-untyped-call]
        else:
            addr_rd = dns.rdtypes.IN.A.A(rdclass, dns.rdatatype.A, req.remote_ip)  # type: ignore[no-untyped-call]
        srv_rd = dns.rdtypes.IN.SRV.SRV(  # type: ignore[no-untyped-call]
            rdclass, dns.rdatatype.SRV, 0, 0, req.remote_port, dns.name.root
        )
        m.additional = [dns.rrset.from_rdata_list(qname, 0, [addr_rd])]
        try:
            srv_name = dns.name.Name((f"_{req.proto}".encode(), *qname.labels))
        except dns.name.NameTooLong:
            # CoreDNS writes the over-long owner all the same (a message no client can
            # parse); a well-formed answer without the SRV is the closest we can give.
            req.note("whoami: _udp/_tcp + the query name is over 255 octets: no SRV record")
            return m
        m.additional.append(dns.rrset.from_rdata_list(srv_name, 0, [srv_rd]))
        return m


PLUGIN = Whoami
