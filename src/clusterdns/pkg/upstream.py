"""CoreDNS's plugin/pkg/upstream: resolve a name through this server again, from the top.

A plugin that hands out a CNAME (template, kubernetes' ExternalName) looks its target up by
routing the new question to the listener's server block and running that block's chain, as
CoreDNS's upstream.Lookup calls server.ServeDNS with a non-writing writer. The inner query is
logged and counted like any other (its after-write hooks run). Nesting is capped: CoreDNS's
server answers SERVFAIL instead of being entered more than 10 times for one query.

(The kubernetes plugin still has its own copy of this, from before this module existed.)
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rcode

from clusterdns.errors import PluginError
from clusterdns.request import Request
from clusterdns.server import fastpath

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.upstream")

MAX_DEPTH = 9
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("upstream_depth", default=0)


async def lookup(
    rt: Runtime | None, req: Request, target: dns.name.Name, qtype: int
) -> dns.message.Message | None:
    """The server's answer to `target`/`qtype` asked by `req`'s client (same flags, EDNS0).

    None when no server is running (CoreDNS: "no full server is running"); the caller then
    leaves the target out. Answers that needed a lookup are not replayed by the fast path.
    """
    fastpath.veto("upstream lookup")
    if rt is None:
        return None
    router = next((lst.router for a, lst in rt.listeners.items() if a.label == req.server), None)
    if router is None:
        return None
    sub = req.derive(target, qtype)
    found = router.route(sub.qname, sub.qtype)
    depth = _DEPTH.get()
    token = _DEPTH.set(depth + 1)
    try:
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
