"""metadata: let plugins publish values about a query for other plugins to read.

Syntax::

    metadata [ZONES...]

As CoreDNS's plugin/metadata: for queries whose name is in ZONES (default: the server block's
zones), every plugin of the block that is a metadata provider (clusterdns.pkg.metadata.Provider:
kubernetes publishes `kubernetes/client-namespace`, `kubernetes/namespace`, …) is asked for its
values before the query goes down the chain. Readers are log's `{/LABEL}` placeholders (and
template's `.Meta`). Queries outside ZONES get empty metadata; without the plugin there is none
(`{/LABEL}` renders `-`). The plugin takes no block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.pkg.metadata import Func, Provider
from clusterdns.plugin import Plugin, SetupContext, no_block
from clusterdns.request import Request
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime


class Metadata(Plugin):
    name = "metadata"
    # NEVER (the default): providers' values can depend on the client (its pod), and readers
    # such as log run per query.

    def __init__(self, zones: list[str]) -> None:
        self.zones = zones
        self.providers: list[Provider] = []

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Metadata:
        d = directives[0]
        no_block(d)
        return cls(zones_from_args(d.args, default=ctx.zones))

    async def start(self, rt: Runtime) -> None:
        """Find the block's providers, as CoreDNS's OnStartup walks the config's handlers."""
        for block in rt.starting.blocks:
            if any(p is self for p in block.plugins):
                self.providers = [p for p in block.plugins if isinstance(p, Provider)]

    async def serve(self, req: Request) -> dns.message.Message:
        md: dict[str, Func] = {}
        if longest_match(self.zones, req.qname):
            for p in self.providers:
                md.update(p.metadata(req))
        req.metadata = md
        return await self.next(req)


PLUGIN = Metadata
