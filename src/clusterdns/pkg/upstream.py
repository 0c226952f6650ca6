"""Resolve a name through this server again, as CoreDNS's plugin/pkg/upstream.Lookup.

For CNAME targets that leave a plugin's data: the question is routed by zone like a query from
the same client (same EDNS0) and answered by that block's chain. The inner query is logged and
counted as CoreDNS does (its after-write hooks run). Answers built this way are not kept by the
fast path: they depend on other plugins' data.
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rrset

from clusterdns.errors import PluginError
from clusterdns.request import Request
from clusterdns.server import fastpath

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

#: Lookups nested in one query before answering SERVFAIL instead (a CNAME loop across zones).
MAX_DEPTH = 9
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("upstream_depth", default=0)


async def lookup(
    rt: Runtime | None, req: Request, name: dns.name.Name, qtype: int, in_class: bool = False
) -> dns.message.Message | None:
    """The server's answer to (`name`, `qtype`) asked by `req`'s client; None without a
    running server for `req` (the caller then answers without it, as CoreDNS does).

    `in_class` asks in class IN whatever the client's class was (rewrite's cname target).
    The depth is counted across plugins, as CoreDNS's server counts its re-entries."""
    fastpath.veto("upstream lookup")
    if rt is None:
        return None
    router = next((lst.router for a, lst in rt.listeners.items() if a.label == req.server), None)
    if router is None:
        return None
    sub = req.derive(name, qtype)
    if in_class:
        q = sub.msg.question[0]
        sub.msg.question = [dns.rrset.RRset(q.name, dns.rdataclass.IN, q.rdtype)]
    depth = _DEPTH.get()
    token = _DEPTH.set(depth + 1)
    try:
        found = router.route(sub.qname, sub.qtype, sub)
        if depth >= MAX_DEPTH:
            resp = sub.reply(dns.rcode.SERVFAIL)
        elif found is None:
            resp = sub.reply(dns.rcode.REFUSED)
        else:
            sub.zone, block = found
            try:
                resp = await block.chain(sub)
            except PluginError as e:
                resp = sub.reply(e.rcode)
    finally:
        _DEPTH.reset(token)
    if sub.after_write:
        size = len(resp.to_wire())
        for fn in sub.after_write:
            try:
                fn(sub, resp, size)
            except Exception:
                log.exception("after-write hook failed")
    return resp
