"""debug: log at debug level.

Syntax::

    debug

As CoreDNS's plugin/debug, which turns on `[DEBUG]` log lines (local's intercepted localhost
queries, hosts' file parsing …) while a server block that has it is running. CoreDNS also stops
recovering from panics with it; here a crashing plugin is still answered with SERVFAIL and logged,
as without it. Configuration only: the plugin is not part of the query chain.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, SetupContext, expect_args, no_block

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

#: Running debug plugins: on reload the new configuration starts before the old one stops.
_active = 0


class Debug(Plugin):
    name = "debug"
    handler = False

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Debug:
        d = directives[0]
        expect_args(d, 0, 0)
        no_block(d)
        return cls()

    async def start(self, rt: Runtime) -> None:
        global _active
        _active += 1
        logging.getLogger().setLevel(logging.DEBUG)

    async def stop(self) -> None:
        global _active
        _active -= 1
        if _active <= 0:
            _active = 0
            logging.getLogger().setLevel(logging.INFO)


PLUGIN = Debug
