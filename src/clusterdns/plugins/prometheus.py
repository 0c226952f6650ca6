"""prometheus: export metrics on /metrics and record CoreDNS's per-query metrics.

Syntax::

    prometheus [ADDRESS]

ADDRESS (default `localhost:9153`) is HOST:PORT; the path is `/metrics` (Prometheus text format
0.0.4). Any number of server blocks may name the same address: one listener serves them all.

For each query through the block this records, with CoreDNS's names and labels (see
clusterdns.metrics): coredns_dns_requests_total, coredns_dns_request_duration_seconds,
coredns_dns_request_size_bytes, coredns_dns_do_requests_total, coredns_dns_response_size_bytes
and coredns_dns_responses_total. `zone` is the most specific of the block's zones containing the
query name (else `.`), `plugin` the plugin that wrote the answer. Sizes are the ones on the wire,
taken after the response is written. When the chain ends in a PluginError, CoreDNS's recorder
never sees the server's error reply: the rcode is the error's, the response size 0 and the
plugin "", as in CoreDNS.

Answers given by the fast path (clusterdns.server.fastpath) are counted in batches; a scrape
folds every batch in first, so it sees every query answered before it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dns.message
from prometheus_client import REGISTRY, generate_latest

from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.metrics import Reported, report
from clusterdns.pkg.httpshare import SharedRoute, http_address
from clusterdns.pkg.written import through_chain
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
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from aiohttp import web

    from clusterdns.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_HOST, DEFAULT_PORT = "localhost", 9153


async def serve_metrics(request: web.BaseRequest) -> web.StreamResponse:
    from aiohttp import web  # here: the HTTP server has imported it already

    await fastpath.flush()
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE})


class Prometheus(Plugin):
    name = "prometheus"
    replay = Replay.ALWAYS  # its per-query metrics are a ReplayableHook
    side_service = True  # `clusterdns query` does not start it

    def __init__(self, host: str, port: int, zones: list[str]) -> None:
        self.host = host
        self.port = port
        self.zones = zones
        self._rt: Runtime | None = None
        self._held = False
        self._hooks: dict[str, tuple[ReplayableHook, ...]] = {}

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Prometheus:
        d = directives[0]
        args = expect_args(d, 0, 1)
        no_block(d)
        host, port = DEFAULT_HOST, DEFAULT_PORT
        if args:
            host, port = http_address(d, "prometheus", args[0])
        return cls(host, port, ctx.zones)

    async def start(self, rt: Runtime) -> None:
        await SharedRoute.hold(rt, self.host, self.port, "/metrics", serve_metrics)
        self._rt = rt
        self._held = True

    async def stop(self) -> None:
        if self._rt is not None and self._held:
            self._held = False  # the handler keeps working: a failed reload may still route here
            await SharedRoute.release(self._rt, self.host, self.port, "/metrics")

    def relay_pass(self, q: RelayQuestion) -> tuple[ReplayableHook, ...]:
        """Its per-query metrics, as the hook `serve` adds (one object per zone, so the relay
        batches them by identity)."""
        zone = longest_match(self.zones, q.name) or "."
        hook = self._hooks.get(zone)
        if hook is None:
            hook = self._hooks[zone] = (Reported(zone, True),)
        return hook

    async def serve(self, req: Request) -> dns.message.Message:
        zone = longest_match(self.zones, req.qname) or "."
        start = time.perf_counter()

        def failed(e: PluginError) -> None:
            report(req, zone, e.rcode, "", 0, start)

        return await through_chain(req, self.next, Reported(zone, True, start), failed)


PLUGIN = Prometheus
