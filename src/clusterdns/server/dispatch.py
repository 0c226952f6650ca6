"""Route a query to the server block with the most specific zone and run its chain.

Routing follows CoreDNS's server.ServeDNS: walk the query name label by label, longest zone
first; DS queries go to the parent-most matching zone; "." is the last resort; else REFUSED.
"""

from __future__ import annotations

import logging
import traceback

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns import metrics
from clusterdns.config import Block, ListenAddr
from clusterdns.errors import PluginError
from clusterdns.request import Request
from clusterdns.server.wire import Rejected, finish, parse_query, render, udp_limit

log = logging.getLogger("clusterdns.server")


def _report_dropped(req: Request, resp: dns.message.Message, size: int) -> None:
    metrics.report(req, "dropped", resp.rcode(), "", size, req.start)


class Router:
    """One per listening address; `zones` is swapped whole on reload."""

    def __init__(self, addr: ListenAddr, zones: dict[str, Block]) -> None:
        self.addr = addr
        self.label = addr.label
        self.zones = zones

    def route(self, qname: str, qtype: int) -> tuple[str, Block] | None:
        zones = self.zones
        ds: tuple[str, Block] | None = None
        name = qname
        while True:
            b = zones.get(name)
            if b is not None:
                if qtype != dns.rdatatype.DS:
                    return name, b
                ds = (name, b)
            if name == ".":
                break
            dot = name.find(".")
            name = name[dot + 1 :] or "."
        if ds is not None:
            return ds
        root = zones.get(".")
        return (".", root) if root is not None else None

    async def handle(
        self, data: bytes, remote: tuple[str, int], local: tuple[str, int], proto: str
    ) -> bytes | None:
        """Answer one query; None means stay silent."""
        try:
            q = parse_query(data)
        except Rejected as r:
            if r.wire is not None:
                log.debug("rejected query from %s: %s", remote[0], r.reason)
            return r.wire
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
        )
        resp = await self._resolve(req)
        finish(resp, q)
        limit = udp_limit(q) if proto == "udp" else 65535
        wire = render(resp, limit)
        for fn in req.after_write:
            try:
                fn(req, resp, len(wire))
            except Exception:  # a recorder must never take the answer down
                log.exception("after-write hook failed")
        return wire

    async def _resolve(self, req: Request) -> dns.message.Message:
        if req.msg.edns > 0:
            return req.reply(dns.rcode.BADVERS)
        found = self.route(req.qname, req.qtype)
        if found is None:
            # CoreDNS's errorAndMetricsFunc: counted under zone "dropped", no plugin.
            req.after_write.append(_report_dropped)
            return req.reply(dns.rcode.REFUSED)
        req.zone, block = found
        try:
            return await block.chain(req)
        except PluginError as e:
            return req.reply(e.rcode)
        except Exception:
            metrics.PANIC.inc()
            log.error("Recovered from panic in server: %r\n%s", self.label, traceback.format_exc())
            return req.reply(dns.rcode.SERVFAIL)
