"""transfer: answer AXFR and IXFR for the zones of the block's zone plugins; send NOTIFY.

Syntax::

    transfer [ZONES...] {
        to ADDRESS...
        source ADDRESS
    }

As CoreDNS's plugin/transfer. ZONES default to the server block's; `to` (required, may be
repeated) lists the clients allowed to transfer (`*`: anyone) and the secondaries notified of
changes (each IP, IP:PORT or [IPv6]:PORT; port 53 by default); `source` is the local address
NOTIFY is sent from.

A transfer is answered over TCP only (REFUSED over UDP), to allowed clients only (REFUSED
otherwise), from the first plugin of the block that gives the zone (clusterdns.pkg.xfr's
Transferer protocol: kubernetes, file, auto, secondary). AXFR: the SOA, every record, the SOA
again, in messages of up to ~63 kB. IXFR: just the SOA when the client's serial is current,
else a full transfer. Queries of other types, and zones no `transfer` line covers, go to the
next plugin. Answers depend on the client's address and the zone at the time: never kept by the
fast path.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.errors import PluginError
from clusterdns.pkg import xfr
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

#: Bytes of records per message before starting another (CoreDNS: under the 64 kB limit).
BATCH = 63000


@dataclass(slots=True)
class Xfr:
    zones: list[str]
    to: list[tuple[str, int] | None] = field(default_factory=list)  # None: "*"
    source: str | None = None

    def allowed(self, ip: str) -> bool:
        return any(t is None or t[0] == ip for t in self.to)


def longest(xfrs: list[Xfr], name: str) -> Xfr | None:
    """The `transfer` line whose zone matches `name` best (CoreDNS's longestMatch)."""
    best: Xfr | None = None
    zone = ""
    for x in xfrs:
        z = longest_match(x.zones, name)
        if z and (len(z) > len(zone) or (len(z) == len(zone) and z > zone)):
            best, zone = x, z
    return best


def _count(rrsets: list[dns.rrset.RRset]) -> int:
    return sum(len(r) for r in rrsets)


def batches(rrsets: list[dns.rrset.RRset]) -> list[list[dns.rrset.RRset]]:
    """Split the records into messages of at most BATCH bytes of records each."""
    out: list[list[dns.rrset.RRset]] = [[]]
    size = 0
    for rrset in rrsets:
        name_len = len(rrset.name.to_wire() or b"")
        part: dns.rrset.RRset | None = None
        for rd in rrset:
            n = name_len + 10 + len(rd.to_wire() or b"")
            if size > 0 and size + n > BATCH:
                if part is not None:
                    out[-1].append(part)
                out.append([])
                size, part = 0, None
            if part is None:
                part = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
            part.add(rd, rrset.ttl)
            size += n
        if part is not None:
            out[-1].append(part)
    return out


class Transfer(Plugin):
    name = "transfer"
    once = False
    replay = Replay.NEVER

    def __init__(self, xfrs: list[Xfr]) -> None:
        self.xfrs = xfrs
        self.transferers: list[xfr.Transferer] = []

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Transfer:
        xfrs: list[Xfr] = []
        for d in directives:
            x = Xfr(zones_from_args(d.args, default=ctx.zones))
            for opt in d.children:
                vals = opt.values
                if opt.name == "to":
                    if not vals:
                        raise opt.arg_error()
                    for host in vals:
                        if host == "*":
                            x.to.append(None)
                            continue
                        try:
                            x.to.append(xfr.parse_host_port(host))
                        except ValueError as e:
                            raise opt.error(f"plugin/transfer: {e}") from None
                elif opt.name == "source":
                    if len(vals) != 1:
                        raise opt.arg_error()
                    if x.source is not None:
                        raise opt.error("plugin/transfer: source already specified")
                    try:
                        x.source = str(ipaddress.ip_address(vals[0]))
                    except ValueError:
                        raise opt.error(
                            f'plugin/transfer: invalid source address "{vals[0]}"'
                        ) from None
                else:
                    raise opt.error(f'plugin/transfer: unknown property "{opt.name}"')
            if not x.to:
                raise d.error("plugin/transfer: 'to' is required")
            xfrs.append(x)
        return cls(xfrs)

    async def start(self, rt: Runtime) -> None:
        # By protocol, not by class: any plugin of the block that can give a zone.
        self.transferers = [
            p
            for p in xfr.block_plugins(rt, self)
            if p is not self and isinstance(p, xfr.Transferer)
        ]

    async def notify(self, zone: str) -> None:
        """pkg.xfr.Notifier: NOTIFY every `to` address of the zone's line (not `*`)."""
        x = longest(self.xfrs, zone)
        if x is None:
            return
        targets = [t for t in x.to if t is not None]
        results = await asyncio.gather(
            *(xfr.send_notify(zone, h, p, x.source) for h, p in targets), return_exceptions=True
        )
        errors = [str(r) for r in results if isinstance(r, BaseException)]
        if errors:
            raise ValueError("\n".join(errors))

    async def serve(self, req: Request) -> dns.message.Message:
        qtype = req.qtype
        if qtype not in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return await self.next(req)
        if req.proto != "tcp":
            raise PluginError(self.name, "transfer over UDP", dns.rcode.REFUSED, quiet=True)
        x = longest(self.xfrs, req.qname)
        if x is None:
            return await self.next(req)
        if not x.allowed(req.remote_ip):
            return req.reply(dns.rcode.REFUSED)
        serial = 0
        if qtype == dns.rdatatype.IXFR:
            auth = req.msg.authority
            if len(auth) != 1 or auth[0].rdtype != dns.rdatatype.SOA:
                raise PluginError(self.name, "IXFR without SOA", dns.rcode.SERVFAIL, quiet=True)
            serial = int(auth[0][0].serial)
        records: list[dns.rrset.RRset] | None = None
        for p in self.transferers:
            try:
                records = p.transfer(req.qname, serial)
            except xfr.NotAuthoritative:
                continue
            except Exception as e:
                raise PluginError(self.name, str(e)) from None
            break
        if not records:
            return await self.next(req)
        soa = records[0]
        if len(records) == 1 and soa.rdtype == dns.rdatatype.SOA and len(soa) == 1:
            m = req.reply()
            m.answer = [soa]
            log.info(
                'plugin/transfer: Outgoing noop, incremental transfer for up to date zone "%s" '
                "to %s for %d SOA serial", req.name.to_text(), req.remote_ip, soa[0].serial,
            )  # fmt: skip
            return m
        msgs: list[dns.message.Message] = []
        for batch in batches(records):
            m = req.reply(authoritative=True)
            m.answer = batch
            msgs.append(m)
        req.more = msgs[1:]
        log.info(
            'plugin/transfer: Outgoing transfer of %d records of zone "%s" to %s for %d SOA '
            "serial", _count(records), req.name.to_text(), req.remote_ip, soa[0].serial,
        )  # fmt: skip
        return msgs[0]


PLUGIN = Transfer
