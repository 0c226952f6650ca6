"""loadbalance: shuffle address and MX records in answers (round-robin DNS).

Syntax::

    loadbalance [round_robin]

As CoreDNS's plugin/loadbalance `round_robin` policy: in a NOERROR response (zone transfers
excepted) each section is reordered record by record: CNAMEs first (stub resolvers such as
glibc want the chain before the addresses), then other records in their order, then the A and
AAAA records shuffled, then the MX records shuffled. Error responses pass untouched.
CoreDNS's `weighted` policy is not supported yet and is rejected at setup.
"""

from __future__ import annotations

import random

import dns.message
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, unknown_option
from clusterdns.request import Request
from clusterdns.server import fastpath

POLICIES = ("round_robin", "weighted")
_ADDRESS = (dns.rdatatype.A, dns.rdatatype.AAAA)
_TRANSFER = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)

#: One resource record: owner, class, type, TTL and data, so a section can be reordered freely.
Record = tuple[dns.rrset.RRset, dns.rdata.Rdata]


def _shuffle(records: list[Record]) -> None:
    if len(records) > 1:
        random.shuffle(records)


def round_robin(section: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """CNAMEs, the rest, shuffled A/AAAA, shuffled MX; regrouped into consecutive RRsets."""
    records: list[Record] = [(rrset, rd) for rrset in section for rd in rrset]
    if len(records) <= 1:
        return section
    cname: list[Record] = []
    address: list[Record] = []
    mx: list[Record] = []
    rest: list[Record] = []
    for rec in records:
        t = rec[0].rdtype
        if t == dns.rdatatype.CNAME:
            cname.append(rec)
        elif t in _ADDRESS:
            address.append(rec)
        elif t == dns.rdatatype.MX:
            mx.append(rec)
        else:
            rest.append(rec)
    _shuffle(address)
    _shuffle(mx)
    out: list[dns.rrset.RRset] = []
    for src, rd in cname + rest + address + mx:
        last = out[-1] if out else None
        if (
            last is not None
            and last.name == src.name
            and last.rdtype == src.rdtype
            and last.rdclass == src.rdclass
            and last.covers == src.covers
            and last.ttl == src.ttl
        ):
            last.add(rd)
        else:
            new = dns.rrset.RRset(src.name, src.rdclass, src.rdtype, src.covers)
            new.update_ttl(src.ttl)
            new.add(rd)
            out.append(new)
    return out


class LoadBalance(Plugin):
    name = "loadbalance"
    replay = Replay.ALWAYS  # shuffles are replayed (fastpath.shuffled)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> LoadBalance:
        d = directives[0]
        args = d.values
        if args:
            policy = args[0]
            if policy == "weighted":
                raise d.error("loadbalance: the 'weighted' policy is not supported yet")
            if policy != "round_robin":
                raise d.error(f"loadbalance: unknown policy: {policy}")
            if len(args) > 1:
                raise d.error(f"loadbalance: unknown property for {policy}")
        if d.children:
            raise unknown_option("loadbalance", d.children[0])
        return cls()

    async def serve(self, req: Request) -> dns.message.Message:
        resp = await self.next(req)
        if resp.rcode() != dns.rcode.NOERROR or req.qtype in _TRANSFER:
            return resp
        fastpath.shuffled(req, resp)
        # New lists and RRsets: the RRsets handed to us may be shared (a cache's copy).
        resp.answer = round_robin(resp.answer)
        resp.authority = round_robin(resp.authority)
        resp.additional = round_robin(resp.additional)
        return resp


PLUGIN = LoadBalance
