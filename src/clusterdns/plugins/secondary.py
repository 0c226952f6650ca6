"""secondary: serve zones transferred (AXFR) from primary servers, refreshed by their SOA.

Syntax::

    secondary [ZONES...] {
        transfer from ADDRESS...
        fallthrough [ZONES...]
    }

As CoreDNS's plugin/secondary. ZONES default to the server block's; `transfer from` (required,
may be repeated) lists the primaries (IP or IP:PORT, port 53 by default), tried in order. At
start each zone is pulled with AXFR (dnspython), retried every 250ms doubling up to 10s until
a primary gives it; until then its queries are answered SERVFAIL. Then, every SOA *refresh*
(plus up to 5s of jitter), the primaries' SOA serial is asked over TCP and the zone transferred
again when it is newer (RFC 1982); a failed check is retried every *retry* (plus up to 2s),
and after *expire* without success the zone answers SERVFAIL. The zone is kept in memory only.
Answers are the file plugin's (clusterdns.pkg.zone); the `transfer` plugin can pass the zone
on and is notified after each transfer. `catalog` (RFC 9432) and incoming NOTIFY are not
supported: NOTIFY is answered NOTIMP by the server, so changes arrive at the next refresh.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import format_go_duration
from clusterdns.fallthrough import Fallthrough
from clusterdns.pkg import upstream, xfr
from clusterdns.pkg.zone import ServedZone, respond
from clusterdns.pkg.zone.data import ZoneFileError, from_records
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

MAX_SERIAL_INCREMENT = 2147483647
TIMEOUT = 10.0  # per transfer attempt


def serial_less(a: int, b: int) -> bool:
    """RFC 1982: is serial `a` older than `b`?"""
    if a < b:
        return (b - a) <= MAX_SERIAL_INCREMENT
    return (a - b) > MAX_SERIAL_INCREMENT


@dataclass(slots=True, eq=False)
class Secondary(ServedZone):
    primaries: list[tuple[str, int]] = field(default_factory=list)


class SecondaryPlugin(Plugin):
    name = "secondary"
    replay = Replay.ALWAYS

    def __init__(self, zones: dict[str, Secondary], fall: Fallthrough) -> None:
        self.zones = zones
        self.names = list(zones)
        self.fall = fall
        self.rt: Runtime | None = None
        self.notifier: xfr.Notifier | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> SecondaryPlugin:
        zones: dict[str, Secondary] = {}
        fall = Fallthrough()
        for d in directives:
            origins = zones_from_args(d.args, default=ctx.zones)
            for origin in origins:
                zones[origin] = Secondary(origin, "stdin")
            has_transfer = False
            for opt in d.children:
                vals = opt.values
                if opt.name == "transfer":
                    if not vals:
                        raise opt.arg_error()
                    if vals[0] != "from":
                        raise opt.error(f"plugin/secondary: unknown property {vals[0]}")
                    if len(vals) == 1:
                        raise opt.arg_error()
                    froms: list[tuple[str, int]] = []
                    for v in vals[1:]:
                        if v == "*":
                            raise opt.error("plugin/secondary: can't use '*' in transfer from")
                        try:
                            froms.append(xfr.parse_host_port(v))
                        except ValueError as e:
                            raise opt.error(f"plugin/secondary: {e}") from None
                    for origin in origins:
                        zones[origin].primaries.extend(froms)
                    has_transfer = True
                elif opt.name == "fallthrough":
                    fall = Fallthrough.from_directive(opt)
                elif opt.name == "catalog":
                    raise opt.error(
                        "plugin/secondary: 'catalog' (RFC 9432 catalog zones) is not supported "
                        "by ClusterDNS; list the member zones as secondary zones instead"
                    )
                else:
                    raise opt.error(f"plugin/secondary: unknown property '{opt.name}'")
            if not has_transfer:
                raise d.error("plugin/secondary: secondary zones require a transfer from property")
        return cls(zones, fall)

    # ---- transfers -------------------------------------------------------------------------

    async def transfer_in(self, z: Secondary) -> None:
        """AXFR the zone from the first primary that gives it; raise if none did."""
        error: Exception | None = None
        for host, port in z.primaries:
            addr = _addr(host, port)
            try:
                rrsets = await asyncio.to_thread(_axfr, z.origin, host, port)
                data = from_records(z.origin, rrsets)
            except OSError as e:  # the messages are CoreDNS's file package's
                log.error("plugin/file: Failed to setup transfer `%s' with `\"%s\"': %s",
                          z.origin, addr, e.strerror or e)  # fmt: skip
                error = e
                continue
            except (dns.exception.DNSException, ZoneFileError, ValueError) as e:
                log.error('plugin/file: Failed to transfer `%s\' from "%s": %s', z.origin, addr,
                          str(e) or type(e).__name__)  # fmt: skip
                error = e
                continue
            z.set(data)
            log.info("plugin/file: Transferred: %s from %s", z.origin, addr)
            xfr.spawn_notify(self.notifier, [z.origin], self._tasks, self.name)
            return
        raise error or ValueError("no primaries")

    async def should_transfer(self, z: Secondary) -> bool:
        """The primaries' SOA serial (over TCP) is newer than ours (or we have none)."""
        error: Exception | None = None
        serial = -1
        for host, port in z.primaries:
            q = dns.message.make_query(z.origin, dns.rdatatype.SOA)
            try:
                r = await dns.asyncquery.tcp(q, host, port=port, timeout=2.0)
            except (dns.exception.DNSException, OSError) as e:
                error = e
                continue
            if r.rcode() != dns.rcode.NOERROR:
                continue
            soa = next((a for a in r.answer if a.rdtype == dns.rdatatype.SOA), None)
            if soa is not None:
                serial = int(soa[0].serial)
                break
        if serial == -1:
            if error is not None:
                raise error
            return False
        ours = z.data.serial if z.data is not None else -1
        return ours < 0 or serial_less(ours, serial)

    async def keep_updated(self, z: Secondary) -> None:
        """CoreDNS's transferAndUpdate and Zone.Update: first transfer, then the SOA timers."""
        delay = 0.25
        while True:
            try:
                await self.transfer_in(z)
                break
            except Exception as e:
                log.warning(
                    "plugin/secondary: All '%s' masters failed to transfer, retrying in %s: %s",
                    z.origin, format_go_duration(delay), e,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        loop = asyncio.get_running_loop()
        while True:
            assert z.data is not None and z.data.soa is not None
            soa = z.data.soa[0]
            refresh, retry = max(int(soa.refresh), 1), max(int(soa.retry), 1)
            expire = max(int(soa.expire), 1)
            since = loop.time()
            await asyncio.sleep(refresh + random.uniform(0, 5))
            # On failure, retry until it works; `expire` after the last success, stop serving.
            while not await self._check(z):
                await asyncio.sleep(retry + random.uniform(0, 2))
                if loop.time() - since >= expire:
                    z.expire()  # until a transfer succeeds, as in CoreDNS

    async def _check(self, z: Secondary) -> bool:
        """One refresh: True if the zone is up to date now."""
        try:
            if await self.should_transfer(z):
                await self.transfer_in(z)
        except Exception as e:
            log.warning("plugin/secondary: Failed refresh check %s", e)
            return False
        return True

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.notifier = xfr.notifier(rt, self)
        for z in self.zones.values():
            if z.primaries and z.task is None:
                z.task = asyncio.get_running_loop().create_task(self.keep_updated(z))

    async def stop(self) -> None:
        for z in self.zones.values():
            await z.stop()
        for t in list(self._tasks):
            t.cancel()

    # ---- serving ---------------------------------------------------------------------------

    def transfer(self, zone: str, serial: int) -> list[dns.rrset.RRset]:
        """pkg.xfr.Transferer: the zone named exactly `zone`, once transferred in."""
        z = self.zones.get(zone)
        if z is None:
            raise xfr.NotAuthoritative(zone)
        return z.transfer(serial)

    async def serve(self, req: Request) -> dns.message.Message:
        origin = longest_match(self.names, req.qname)
        if not origin:
            return await self.next(req)

        async def up(name: dns.name.Name, qtype: int) -> dns.message.Message | None:
            return await upstream.lookup(self.rt, req, name, qtype)

        m = await respond(self.name, req, self.zones[origin], up, self.fall)
        return await self.next(req) if m is None else m


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _axfr(origin: str, host: str, port: int) -> list[dns.rrset.RRset]:
    """The zone's records by AXFR (blocking); dnspython checks the transfer's SOA framing."""
    out: list[dns.rrset.RRset] = []
    xfr = dns.query.xfr(
        host, origin, port=port, timeout=TIMEOUT, lifetime=TIMEOUT * 3, relativize=False
    )
    for m in xfr:
        out.extend(m.answer)
    return out


PLUGIN = SecondaryPlugin
