"""The forwarding engine behind the forward and proxy plugins (Corefile syntax and behaviour:
clusterdns.plugins.forward). It is shared code, not a plugin, so both plugins (and loop, which
names the upstream that loops) can use it without importing each other.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, ClassVar

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.pkg.forward import metrics
from clusterdns.pkg.forward.conn import UpstreamError, rcode_of
from clusterdns.pkg.forward.proxy import MIN_DIAL, Upstream
from clusterdns.pkg.forward.relay import query_wire
from clusterdns.pkg.forward.setup import Stanza, parse_stanza
from clusterdns.pkg.forward.udprelay import Primed, StanzaRelay
from clusterdns.plugin import Plugin, RelayQuestion, RelayTarget, SetupContext
from clusterdns.request import Request
from clusterdns.server import relaypath

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

#: CoreDNS's overall deadline for one query across all upstreams.
DEADLINE = 5.0
_TRANSFER = (dns.rdatatype.IXFR, dns.rdatatype.AXFR)


class Forward(Plugin):
    """The `forward` plugin (see clusterdns.plugins.forward); `proxy` is a subclass."""

    name: ClassVar[str] = "forward"
    other_classes = True  # CoreDNS's EnableChaos
    once: ClassVar[bool] = False

    def __init__(self, stanzas: list[Stanza]) -> None:
        self.stanzas = stanzas
        self._relays: list[StanzaRelay | None] = []

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Forward:
        return cls([parse_stanza(d, ctx) for d in directives])

    def upstreams(self) -> list[Upstream]:
        return [u for st in self.stanzas for u in st.upstreams]

    async def start(self, rt: Runtime) -> None:
        relay = rt.fast and relaypath.enabled()
        for up in self.upstreams():
            await up.start(relay)
        last = len(self.stanzas) - 1
        # max_idle_conns caps a pool of sockets: the relay has one, so not with it.
        self._relays = [
            None
            if st.force_tcp or any(up.relay_socket is None or up.max_idle for up in st.upstreams)
            else StanzaRelay(self, st, i < last)
            for i, st in enumerate(self.stanzas)
        ]

    async def stop(self) -> None:
        await asyncio.gather(*(up.stop() for up in self.upstreams()), return_exceptions=True)

    # ---- what loop asks ---------------------------------------------------------------------

    def upstream_for_source(self, ip: str, port: int) -> Upstream | None:
        """The upstream whose open socket has this local address (a query we sent)."""
        for up in self.upstreams():
            for local_ip, local_port in up.local_addresses():
                if local_port == port and local_ip in (ip, "0.0.0.0", "::"):
                    return up
        return None

    def upstreams_for(self, qname: str) -> list[Upstream]:
        """The upstreams of the first stanza that would forward `qname`."""
        for st in self.stanzas:
            if st.match(qname):
                return list(st.upstreams)
        return []

    # ---- the relay (clusterdns.server.relaypath) ---------------------------------------------

    def relay_target(self, q: RelayQuestion) -> RelayTarget | None:
        """The first stanza forwarding the name, over plain UDP (the relay's only transport);
        not with TLS, force_tcp or max_idle_conns, nor for zone transfers."""
        if q.qtype in _TRANSFER:
            return None
        for i, st in enumerate(self.stanzas):
            if st.match(q.name):
                return self._relays[i] if i < len(self._relays) else None
        return None

    # ---- serving ----------------------------------------------------------------------------

    async def serve(self, req: Request) -> dns.message.Message:
        primed = req.relayed if isinstance(req.relayed, Primed) else None
        if primed is not None and primed.owner is not self:
            primed = None
        last = len(self.stanzas) - 1
        for i, st in enumerate(self.stanzas):
            if not st.match(req.qname):
                continue
            mine = primed if primed is not None and primed.stanza is st else None
            resp = await self._serve_stanza(st, req, i < last, mine)
            if resp is not None:
                return resp
        req.note("name outside forward's zones (or excepted)")
        return await self.next(req)

    async def _serve_stanza(
        self, st: Stanza, req: Request, has_next: bool, primed: Primed | None = None
    ) -> dns.message.Message | None:
        if st.max_concurrent:
            if primed is None and st.inflight >= st.max_concurrent:  # the relay admitted it
                metrics.MAX_CONCURRENT_REJECTS.inc()
                raise PluginError(
                    self.name,
                    f"concurrent queries exceeded maximum {st.max_concurrent}",
                    dns.rcode.REFUSED,
                )
            st.inflight += 1
        try:
            return await self._forward(st, req, has_next, primed)
        finally:
            if st.max_concurrent:
                st.inflight -= 1

    async def _forward(
        self, st: Stanza, req: Request, has_next: bool, primed: Primed | None = None
    ) -> dns.message.Message | None:
        """CoreDNS's forward loop; with `primed` (the relay), its order and first exchange."""
        wire = query_wire(req.msg)
        q = req.question
        question = (q.name, int(q.rdtype), int(q.rdclass))
        proto = "tcp" if st.force_tcp else ("udp" if st.prefer_udp else req.proto)
        ups = st.policy.order(st.upstreams) if primed is None else primed.ups
        first = None if primed is None else primed.outcome
        n = len(st.upstreams)
        deadline = (time.monotonic() if primed is None else primed.started) + DEADLINE
        i = fails = attempts = answered = 0
        last_err: Exception | None = None
        while time.monotonic() < deadline and (
            not st.max_connect_attempts or attempts < st.max_connect_attempts
        ):
            if i >= len(ups):
                i = fails = 0  # end of the list: start over
            up = ups[i]
            i += 1
            got: dns.message.Message | UpstreamError | None = None
            if first is not None:  # the relay's exchange with ups[0], healthy then
                up, got = first
                first = None
            elif up.down(st.max_fails):
                fails += 1
                if fails < n:
                    continue
                metrics.HEALTHCHECK_BROKEN.inc()
                if st.failfast:
                    break
                up = random.choice(st.upstreams)  # health checking itself may be broken
            cap = max(deadline - time.monotonic(), MIN_DIAL)
            try:
                if got is None:
                    ret = await up.connect(wire, question, proto, cap)
                elif isinstance(got, UpstreamError):
                    raise got
                else:
                    ret = got
                if int(ret.flags) & dns.flags.TC and proto == "udp" and up.tls is None:
                    ret = await up.connect(wire, question, "tcp", cap)
            except UpstreamError as e:
                last_err = e
                if st.max_fails:
                    up.healthcheck()
                if st.max_connect_attempts:
                    attempts += 1
                    if attempts >= st.max_connect_attempts:
                        break
                if fails < n:
                    continue
                break
            ret.id = req.msg.id
            if len(ret.question) != 1:
                return req.reply(dns.rcode.FORMERR)  # CoreDNS: the reply does not match
            rcode = rcode_of(ret)
            answered += 1
            if rcode in st.failover_rcodes and answered < n:
                continue  # try the next upstream; the last one's answer stands
            if rcode in st.next_rcodes and has_next:
                req.note("next: this rcode goes to the next forward line")
                return None
            if req.tracer is not None:
                req.note(f"answer from upstream {up.addr}")
            return ret
        raise PluginError(self.name, str(last_err) if last_err else "no healthy proxies")
