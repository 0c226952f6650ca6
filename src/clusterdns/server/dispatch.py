"""Route a query to the server block with the most specific zone and run its chain.

Routing follows CoreDNS's server.ServeDNS: walk the query name label by label, longest zone
first; DS queries go to the parent-most matching zone; "." is the last resort; else REFUSED.

With `fast` (the running server's routers), every answer the chain gives is also offered to
the address's FastPath, which keeps the ones it may replay (see clusterdns.server.fastpath);
the listeners ask `fast.answer` before they come here.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from clusterdns import metrics
from clusterdns.config import Block, ListenAddr
from clusterdns.errors import PluginError
from clusterdns.request import Request
from clusterdns.server import fastpath, relaypath
from clusterdns.server.fastwire import EntryState, query_key
from clusterdns.server.pacer import Pacer
from clusterdns.server.wire import Rejected, finish, parse_query, render, stream, udp_limit
from clusterdns.zones import along

log = logging.getLogger("clusterdns.server")


#: CoreDNS's errorAndMetricsFunc: what the server refuses itself is counted in zone "dropped".
report_dropped = metrics.Reported("dropped", False)


def _after_write(req: Request, resp: dns.message.Message, size: int) -> None:
    for fn in req.after_write:
        try:
            fn(req, resp, size)
        except Exception:  # a recorder must never take the answer down
            log.exception("after-write hook failed")


class Router:
    """One per listening address; `zones` is swapped whole on reload."""

    def __init__(self, addr: ListenAddr, zones: dict[str, Block], fast: bool = False) -> None:
        self.addr = addr
        self.label = addr.label
        self.other_classes = False
        self.zones = zones
        #: Only for chains built with fastpath.wrap (the Runtime does that when it is on).
        self.fast = fastpath.FastPath(self.label) if fast else None
        self.pacer = Pacer() if fast else None
        #: Forward-only UDP queries relayed as bytes (clusterdns.server.relaypath).
        self.relay = relaypath.RelayPath(self) if fast and relaypath.enabled() else None
        #: Queries the chain is answering now, by transport and bytes after the ID.
        self.pending: dict[tuple[str, bytes], asyncio.Future[None]] = {}

    @property
    def zones(self) -> dict[str, Block]:
        return self._zones

    @zones.setter
    def zones(self, zones: dict[str, Block]) -> None:
        """Swapped whole on reload; also decides which query classes this address serves."""
        self._zones = zones
        # CoreDNS's classChaos: only IN unless a plugin on the listener serves other classes.
        self.other_classes = any(p.other_classes for b in zones.values() for p in b.plugins)

    def route(self, qname: str, qtype: int, req: Request | None = None) -> tuple[str, Block] | None:
        """The zone and block for a query. Blocks with filters (the *view* plugin) take it only
        when their filters pass on `req` (clusterdns.config.Block.select)."""
        ds: tuple[str, Block] | None = None
        for name, b in along(self.zones, qname):
            if b.filters or b.members is not None:
                fastpath.veto("routed by a block filter")  # the answer depends on the client
                chosen = b.select(req)
                if chosen is None:
                    continue
                b = chosen
            if qtype != dns.rdatatype.DS:
                return name, b
            ds = (name, b)
        return ds

    async def handle(
        self, data: bytes, remote: tuple[str, int], local: tuple[str, int], proto: str
    ) -> bytes | None:
        """Answer one query; None means stay silent."""
        return (await self.serve(data, remote, local, proto))[0]

    async def serve(
        self, data: bytes, remote: tuple[str, int], local: tuple[str, int], proto: str
    ) -> tuple[bytes | None, tuple[bytes, EntryState] | None]:
        """Answer one query through the chain; also the fast-path entry made of the answer.

        With the fast path, a query whose answer was kept since it came in gets that; one
        identical (but for its ID) to a query the chain is answering waits for that one and
        gets the entry it leaves: a burst of the same question (a popular name expiring from
        the cache) costs the chain once. Only for questions whose
        answer was kept before: others (forwarded without a cache, a loop's probe coming back)
        must each go through the chain, as CoreDNS sends each upstream.
        """
        fast = self.fast
        if fast is None:
            return await self._serve(data, remote, local, proto)
        assert self.pacer is not None
        k = query_key(data)
        if k is None or k[0] not in (fast.udp if proto == "udp" else fast.tcp).entries:
            await self.pacer.turn()
            return await self._serve(data, remote, local, proto)
        hit = fast.lookup(data, remote[0], proto)  # kept since this query came in
        if hit is not None:
            return hit[1], (k[0], hit[0].state())
        same = (proto, data[2:])
        first = self.pending.get(same)
        if first is not None:
            await asyncio.wait([first])
            hit = fast.lookup(data, remote[0], proto)
            if hit is not None:
                return hit[1], (k[0], hit[0].state())
            await self.pacer.turn()
            return await self._serve(data, remote, local, proto)  # nothing was kept
        fut = asyncio.get_running_loop().create_future()
        self.pending[same] = fut
        try:
            await self.pacer.turn()
            return await self._serve(data, remote, local, proto)
        finally:
            del self.pending[same]
            fut.set_result(None)

    async def relayed(
        self,
        data: bytes,
        remote: tuple[str, int],
        local: tuple[str, int],
        primed: object,
        start: float,
    ) -> bytes | None:
        """Answer through the chain a UDP query the relay took but cannot finish itself;
        `primed` (Request.relayed) tells the terminal plugin what was already done. It waits
        its turn as every query for the chain does (a flood of them is bounded alike)."""
        if self.pacer is not None:
            await self.pacer.turn()
        return (await self._serve(data, remote, local, "udp", primed, start))[0]

    async def _serve(
        self,
        data: bytes,
        remote: tuple[str, int],
        local: tuple[str, int],
        proto: str,
        primed: object = None,
        start: float | None = None,
    ) -> tuple[bytes | None, tuple[bytes, EntryState] | None]:
        try:
            q = parse_query(data)
        except Rejected as r:
            if r.wire is not None:
                log.debug("rejected query from %s: %s", remote[0], r.reason)
            return r.wire, None
        ip = remote[0]
        if ip.startswith("::ffff:") and "." in ip:
            ip = ip[7:]
        req = Request(
            msg=q,
            remote_ip=ip,
            remote_port=remote[1],
            proto=proto,
            size=len(data),
            local_ip=local[0],
            local_port=local[1],
            server=self.label,
            bufsize=udp_limit(q),
            wire=data,
            relayed=primed,
        )
        if start is not None:
            req.start = start
        fast = self.fast
        if fast is None:
            resp = await self._resolve(req)
        else:
            rec, token = fastpath.begin()
            try:
                resp = await self._resolve(req)
            finally:
                fastpath.end(token)
        if req.silent:  # a plugin chose not to answer (acl's drop): nothing was written
            req.answered_by = ""
            _after_write(req, resp, 0)
            return None, None
        finish(resp, q)
        limit = udp_limit(q) if proto == "udp" else 65535
        wire = render(resp, limit)
        size = len(wire)
        if req.more is not None and proto == "tcp":
            wires = [wire]
            for m in req.more:
                finish(m, q)
                wires.append(render(m, limit))
            wire = stream(wires)
            size = sum(len(w) for w in wires)
        _after_write(req, resp, size)
        if fast is None:
            return wire, None
        try:
            return wire, fast.fill(rec, req, resp, data, wire, limit)
        except Exception:  # the answer stands; it only is not kept
            log.exception("fast path: keeping an answer failed")
            return wire, None

    async def _resolve(self, req: Request) -> dns.message.Message:
        if req.qclass != dns.rdataclass.IN and not self.other_classes:
            req.after_write.append(report_dropped)
            return req.reply(dns.rcode.REFUSED)
        if req.msg.edns > 0:
            return req.reply(dns.rcode.BADVERS)
        found = self.route(req.qname, req.qtype, req)
        if found is None:
            # CoreDNS's errorAndMetricsFunc: counted under zone "dropped", no plugin.
            req.after_write.append(report_dropped)
            return req.reply(dns.rcode.REFUSED)
        req.zone, block = found
        try:
            return await block.chain(req)
        except PluginError as e:
            fastpath.veto("plugin error")
            return req.reply(e.rcode)
        except Exception:
            fastpath.veto("crash")
            metrics.PANIC.inc()
            log.error("Recovered from panic in server: %r\n%s", self.label, traceback.format_exc())
            return req.reply(dns.rcode.SERVFAIL)
