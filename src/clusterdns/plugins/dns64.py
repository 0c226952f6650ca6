"""dns64: synthesize AAAA records from A records for IPv6-only clients (RFC 6147).

Syntax::

    dns64 [PREFIX]
    dns64 {
        prefix PREFIX
        translate_all
        allow_ipv4
    }

As CoreDNS's plugin/dns64. PREFIX (default `64:ff9b::/96`) is an IPv6 network of length 32,
40, 48, 56, 64 or 96. A AAAA query of class IN from an IPv6 client (from any client with
`allow_ipv4`) goes to the next plugins; unless their reply is NXDOMAIN, and when it holds no
AAAA record (always with `translate_all`), the server is asked again for the name's A records
(from the top, as CoreDNS's upstream.Lookup) and the reply is built from that answer: each A
becomes a AAAA inside PREFIX with TTL min(A TTL, the first reply's SOA TTL, default 600),
other records are kept, and the authority and additional sections and the TC bit are the A
answer's. As in CoreDNS the synthesized reply is NOERROR and has neither AA nor RA.

coredns_dns64_requests_translated_total {server} counts the translated replies.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.AAAA
import dns.rrset
from prometheus_client import Counter

from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.pkg import upstream
from clusterdns.pkg.response import NAMEERROR, typify
from clusterdns.plugin import Plugin, SetupContext, expect_args, unknown_option
from clusterdns.request import Request

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

DEFAULT_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
DEFAULT_SOA_TTL = 600

TRANSLATED = Counter(
    "requests_translated_total",
    "Counter of DNS requests translated by dns64.",
    ["server"],
    namespace="coredns",
    subsystem="dns64",
)


def to6(prefix: ipaddress.IPv6Network, v4: bytes) -> bytes:
    """RFC 6052 §2.2: the IPv4 address after the prefix, skipping bits 64-71 (the u octet)."""
    n = prefix.prefixlen // 8
    out = bytearray(16)
    out[:n] = prefix.network_address.packed[:n]
    i, j = n, 0
    while i < 8 and j < 4:
        out[i] = v4[j]
        i, j = i + 1, j + 1
    if i == 8:
        i += 1
    while j < 4:
        out[i] = v4[j]
        i, j = i + 1, j + 1
    return bytes(out)


def synthesized(prefix: ipaddress.IPv6Network, v4: str) -> str:
    return str(ipaddress.IPv6Address(to6(prefix, ipaddress.IPv4Address(v4).packed)))


def _prefix(d: Directive, text: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise d.error(f"dns64: invalid CIDR address: {text}") from None
    if not isinstance(net, ipaddress.IPv6Network):
        raise d.error(f"dns64: invalid netmask 32 IPv6 address: {str(net)!r}")
    n = net.prefixlen
    if n % 8 != 0 or n < 32 or n > 96:
        raise d.error(f"dns64: invalid prefix length {str(net)!r}")
    return net


class Dns64(Plugin):
    name = "dns64"
    # NEVER (the default): the reply depends on a second lookup through the whole server.

    def __init__(self, prefix: ipaddress.IPv6Network, translate_all: bool, allow_ipv4: bool):
        self.prefix = prefix
        self.translate_all = translate_all
        self.allow_ipv4 = allow_ipv4
        self.rt: Runtime | None = None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Dns64:
        prefix, translate_all, allow_ipv4 = DEFAULT_PREFIX, False, False
        for d in directives:
            args = expect_args(d, 0, 1)
            if args:
                prefix = _prefix(d, args[0])
                if d.children:  # CoreDNS does not read a block after a PREFIX argument
                    ctx.warn(d, "dns64: the block after PREFIX is ignored, as in CoreDNS; "
                                "write the prefix as `prefix PREFIX` inside the block")  # fmt: skip
                continue
            for opt in d.children:
                if opt.name == "prefix":
                    prefix = _prefix(opt, expect_args(opt, 1)[0])
                elif opt.name == "translate_all":
                    translate_all = True
                elif opt.name == "allow_ipv4":
                    allow_ipv4 = True
                else:
                    raise unknown_option("dns64", opt)
        return cls(prefix, translate_all, allow_ipv4)

    async def start(self, rt: Runtime) -> None:
        self.rt = rt

    def intercepts(self, req: Request) -> bool:
        if not self.allow_ipv4 and req.family == 1:
            return False
        return req.qtype == dns.rdatatype.AAAA and req.qclass == dns.rdataclass.IN

    def translates(self, resp: dns.message.Message) -> bool:
        if typify(resp) == NAMEERROR:
            return False
        if self.translate_all:
            return True
        return not any(rrset.rdtype == dns.rdatatype.AAAA for rrset in resp.answer)

    async def serve(self, req: Request) -> dns.message.Message:
        if not self.intercepts(req):
            return await self.next(req)
        resp = await self.next(req)
        if not self.translates(resp):
            return resp
        req.note("dns64: no AAAA in the reply: asking for A")
        a = await upstream.lookup(self.rt, req, req.name, dns.rdatatype.A)
        if a is None:  # CoreDNS synthesizes from a nil message: a recovered panic
            raise PluginError(self.name, "no answer to the A lookup")
        out = self.synthesize(req, resp, a)
        TRANSLATED.labels(req.server).inc()
        return out

    def synthesize(
        self, req: Request, orig: dns.message.Message, a: dns.message.Message
    ) -> dns.message.Message:
        m = req.reply()
        m.flags |= a.flags & dns.flags.TC
        m.authority = list(a.authority)
        m.additional = list(a.additional)
        if a.edns >= 0:  # in miekg/dns the OPT is one of the additional records
            m.use_edns(a.edns, a.ednsflags, a.payload, options=list(a.options))
        soa_ttl = DEFAULT_SOA_TTL
        for rrset in orig.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                soa_ttl = rrset.ttl
        for rrset in a.answer:
            if rrset.rdtype != dns.rdatatype.A:
                m.answer.append(rrset)
                continue
            rds = [
                dns.rdtypes.IN.AAAA.AAAA(  # type: ignore[no-untyped-call]
                    rrset.rdclass,
                    dns.rdatatype.AAAA,
                    str(
                        ipaddress.IPv6Address(
                            to6(self.prefix, ipaddress.IPv4Address(rd.address).packed)
                        )
                    ),
                )
                for rd in rrset
            ]
            m.answer.append(dns.rrset.from_rdata_list(rrset.name, min(rrset.ttl, soa_ttl), rds))
        return m


PLUGIN = Dns64
