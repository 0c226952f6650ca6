"""loop: detect a forwarding loop at start and stop the server.

Syntax::

    loop

As CoreDNS's plugin/loop: once the server listens, it sends `<random>.<random>.<zone>` HINFO
(zone: the block's first key) to its own address, once a second for up to 30 seconds until
the query gets any answer; 2 seconds after that answer the plugin disables itself. Its
handler counts that name: seeing it more than twice means the query came back to us through
an upstream, so the server logs a FATAL message and exits with code 1. ClusterDNS adds to
CoreDNS's message the upstream that loops (the `forward`/`proxy` upstream the query was sent
to) and the usual fix in Kubernetes: the DNS pods must not forward to their own Service
(`dnsPolicy: Default`) nor to a local stub such as 127.0.0.53.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, ClassVar

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from clusterdns.config import ListenAddr
from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.pkg.forward import Forward
from clusterdns.pkg.forward.conn import hostport
from clusterdns.plugin import (
    Plugin,
    RelayQuestion,
    Replay,
    ReplayableHook,
    SetupContext,
    expect_args,
    no_block,
)
from clusterdns.request import Request
from clusterdns.zones import is_subdomain

if TYPE_CHECKING:
    from clusterdns.config import Block
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.loop")

PROBE_FOR = 30.0  # keep trying this long after start
RETRY_EVERY = 1.0
DISABLE_AFTER = 2.0
EXCHANGE_TIMEOUT = 2.0  # miekg/dns's default

FIX = (
    "In Kubernetes this usually means the DNS pods forward to their own Service: give the DNS "
    "Deployment `dnsPolicy: Default` so its pods use the node's resolv.conf instead of the "
    "cluster DNS, and make sure the node's resolv.conf does not point at a local stub resolver "
    "such as 127.0.0.53 (systemd-resolved: set the kubelet's resolvConf to "
    "/run/systemd/resolve/resolv.conf), or forward to the real upstream's IP address."
)


def make_qname(zone: str) -> str:
    left = f"{random.getrandbits(63)}.{random.getrandbits(63)}"
    return f"{left}." if zone == "." else f"{left}.{zone}"


class Loop(Plugin):
    name: ClassVar[str] = "loop"
    replay = Replay.WHEN  # not when its HINFO probes are counted
    side_service = True  # `clusterdns query` does not start it

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.qname = make_qname(zone)
        self.seen = 0
        self.off = False
        self.address = ""
        self._detected = False
        self._rt: Runtime | None = None
        self._block: Block | None = None
        self._task: asyncio.Task[None] | None = None

    def replayable(self, req: Request) -> bool:
        return req.qtype != dns.rdatatype.HINFO

    def relay_pass(self, q: RelayQuestion) -> tuple[ReplayableHook, ...] | None:
        return () if q.qtype != dns.rdatatype.HINFO else None  # its probes: the chain

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Loop:
        d = directives[0]
        expect_args(d, 0, 0)
        no_block(d)
        return cls(ctx.keys[0].zone if ctx.keys else ".")

    async def serve(self, req: Request) -> dns.message.Message:
        if req.qtype != dns.rdatatype.HINFO or self.off or not is_subdomain(self.zone, req.qname):
            return await self.next(req)
        if req.qname == self.qname:
            self.seen += 1
        if self.seen > 2:
            self._fatal(req)
            # Do not send it round once more: the server is stopping.
            raise PluginError(self.name, "forwarding loop detected", dns.rcode.SERVFAIL)
        return await self.next(req)

    # ---- the probe --------------------------------------------------------------------------

    async def start(self, rt: Runtime) -> None:
        self._rt = rt
        self._block = next((b for b in rt.starting.blocks if self in b.plugins), None)
        if self._block is None or not self._block.keys:
            self.off = True
            return
        key = self._block.keys[0]
        host = self._block.hosts[0] if self._block.hosts else ""
        self.address = hostport(host, key.port) if host else f":{key.port}"
        addr = ListenAddr(key.transport, host, key.port)
        self._task = asyncio.get_running_loop().create_task(self._probe(rt, addr))

    async def stop(self) -> None:
        self.off = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _probe(self, rt: Runtime, addr: ListenAddr) -> None:
        deadline = time.monotonic() + PROBE_FOR
        try:
            while addr not in rt.listeners:  # start() runs before the listeners are bound
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.02)
            lst = rt.listeners[addr]
            target = addr.host or ("127.0.0.1" if ":" not in (lst.local[0] or "") else "::1")
            port = lst.local[1]
            self.address = hostport(addr.host, port) if addr.host else f":{port}"
            try:
                q = dns.message.make_query(self.qname, dns.rdatatype.HINFO, use_edns=False)
            except dns.name.NameTooLong:  # a zone of more than ~215 octets: no probe name
                log.warning("plugin/loop: zone %s too long for a probe name, unchecked", self.zone)
                return
            while time.monotonic() < deadline:
                try:
                    await dns.asyncquery.udp(q, target, port=port, timeout=EXCHANGE_TIMEOUT)
                except (dns.exception.DNSException, OSError):
                    self.seen = 0
                    await asyncio.sleep(RETRY_EVERY)
                    continue
                await asyncio.sleep(DISABLE_AFTER)
                break
        finally:
            self.off = True

    # ---- the verdict ------------------------------------------------------------------------

    def _culprit(self, req: Request) -> str:
        """Name the upstream the probe went out to, from the block's forward/proxy plugins."""
        plugins = [
            p for p in (self._block.plugins if self._block else []) if isinstance(p, Forward)
        ]
        for p in plugins:
            up = p.upstream_for_source(req.remote_ip, req.remote_port)
            if up is not None:
                return (f"The upstream that loops is {up.addr} ({p.name} in this server block): "
                        "it sends the query back to this server.")  # fmt: skip
        for p in plugins:
            ups = p.upstreams_for(self.qname)
            if ups:
                names = ", ".join(u.addr for u in ups)
                return (f"{p.name} in this server block sends zone \"{self.zone}\" to {names}; "
                        "one of them sends the query back to this server.")  # fmt: skip
        return "A plugin of this server block sends the query back to this server."

    def _fatal(self, req: Request) -> None:
        if self._detected:
            return
        self._detected = True
        remote = hostport(req.remote_ip, req.remote_port)
        log.critical(
            'plugin/loop: Loop (%s -> %s) detected for zone "%s", see '
            'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO %s" - %s %s',
            remote, self.address, self.zone, self.qname, self._culprit(req), FIX,
        )  # fmt: skip
        if self._rt is not None:
            self._rt.exit_code = 1
            self._rt.stopping.set()


PLUGIN = Loop
