"""Ask the whole server a question again, as CoreDNS's plugin/pkg/upstream.Lookup does.

For plugins that need another answer on the way to theirs (dns64's A records for a AAAA
query): the derived request is routed by zone on the listener the client used and goes through
that block's chain from the top, so the inner query is logged and counted as in CoreDNS. Nested
lookups are capped (CoreDNS's server refuses to be entered more than 10 times for one query).

The kubernetes plugin has its own copy of this for ExternalName targets (it predates this module).
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
    rt: Runtime | None, req: Request, name: dns.name.Name, qtype: int
) -> dns.message.Message | None:
    """The server's answer to `name`/`qtype` asked by `req`'s client; None if no listener
    serves `req`'s server (CoreDNS: no server in the context, a lookup error).

    The answer is not a fast-path one: the caller's answer depends on it.
    """
    fastpath.veto("upstream lookup")
    if rt is None:
        return None
    router = next((lst.router for a, lst in rt.listeners.items() if a.label == req.server), None)
    if router is None:
        return None
    sub = req.derive(name, qtype)
    depth = _DEPTH.get()
    token = _DEPTH.set(depth + 1)
    try:
        found = router.route(sub.qname, sub.qtype)
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
    size = 0 if sub.silent else len(resp.to_wire())
    for fn in sub.after_write:
        try:
            fn(sub, resp, size)
        except Exception:
            log.exception("after-write hook failed")
    return None if sub.silent else resp  # silent: nothing was written (acl's drop)
