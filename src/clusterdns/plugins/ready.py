"""ready: an HTTP readiness endpoint that waits for every plugin that reports readiness.

Syntax::

    ready [ADDRESS] {
        monitor until-ready|continuously
    }

ADDRESS (default `:8181`) is HOST:PORT; the path is `/ready`. It answers 200 `OK` when every
plugin that reports readiness (its `ready()` is not None), in the server blocks that enable
*ready*, is ready; else 503 with the names of those that are not, sorted and comma-separated
(and `[INFO] plugin/ready: Plugins not ready: "a,b"` is logged). With `until-ready` (the default)
a plugin that was ready once is not asked again, as in CoreDNS; `continuously` asks every time.
While the server is stopping (lameduck included) it answers 503 `Shutting down`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from clusterdns.corefile.ast import Directive
from clusterdns.pkg.httpshare import SharedRoute, http_address
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, unknown_option

if TYPE_CHECKING:
    from aiohttp import web

    from clusterdns.config import Config
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

MONITOR_TYPES = ("until-ready", "continuously")


class Readiness(Protocol):
    """What the aggregation needs of a plugin: its name and its readiness report."""

    @property
    def name(self) -> str: ...

    def ready(self) -> bool | None: ...


def not_ready(plugins: Iterable[Readiness], confirmed: dict[int, Readiness], keep: bool) -> str:
    """The sorted, comma-separated names of plugins not ready ("" when all are).

    `confirmed` holds, by identity, plugins that were ready once: unless `keep` (monitor
    continuously) they are not asked again, as in CoreDNS. Newly ready ones are added; plugins
    no longer in `plugins` (an old configuration) are dropped. A name appears once however many
    blocks hold a plugin of that name.
    """
    names: set[str] = set()
    current: set[int] = set()
    for p in plugins:
        current.add(id(p))
        if id(p) in confirmed:
            continue
        state = p.ready()
        if state is None:
            continue
        if state:
            if not keep:
                confirmed[id(p)] = p
            continue
        names.add(p.name)
    for gone in confirmed.keys() - current:
        del confirmed[gone]
    return ",".join(sorted(names))


#: Plugins seen ready under `until-ready`, by identity (plugins need not be hashable).
_CONFIRMED: dict[int, Readiness] = {}


def _watched(cfg: Config) -> tuple[list[Plugin], bool]:
    """The plugins of the blocks that enable ready, and whether any asks to keep monitoring."""
    plugins: list[Plugin] = []
    keep = False
    for b in cfg.blocks:
        rd = b.find("ready")
        if isinstance(rd, Ready):
            plugins.extend(b.plugins)
            keep = keep or rd.monitor == "continuously"
    return plugins, keep


class Ready(Plugin):
    name = "ready"
    replay = Replay.ALWAYS  # not in the chain's answers
    side_service = True  # `clusterdns query` does not start it
    handler = False  # a web server beside the chain, as in CoreDNS

    def __init__(self, host: str, port: int, monitor: str) -> None:
        self.host = host
        self.port = port
        self.monitor = monitor
        self._rt: Runtime | None = None
        self._held = False

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Ready:
        d = directives[0]
        args = expect_args(d, 0, 1)
        host, port = "", 8181
        if args:
            host, port = http_address(d, "ready", args[0])
        monitor = "until-ready"
        for opt in d.children:
            if opt.name != "monitor":
                raise unknown_option("ready", opt)
            (monitor,) = expect_args(opt, 1, 1)
            if monitor not in MONITOR_TYPES:
                raise opt.error(f"ready: monitor type '{monitor}' not supported")
        return cls(host, port, monitor)

    async def start(self, rt: Runtime) -> None:
        await SharedRoute.hold(rt, self.host, self.port, "/ready", self._ready)
        self._rt = rt
        self._held = True

    async def stop(self) -> None:
        if self._rt is not None and self._held:
            self._held = False  # the handler keeps working: a failed reload may still route here
            await SharedRoute.release(self._rt, self.host, self.port, "/ready")

    async def _ready(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web  # here: the HTTP server has imported it already

        rt = self._rt
        if rt is None or rt.shutting_down:
            return web.Response(status=503, text="Shutting down")
        plugins, keep = _watched(rt.config)
        names = not_ready(plugins, _CONFIRMED, keep)
        if not names:
            return web.Response(status=200, text="OK")
        log.info("plugin/ready: Plugins not ready: %s", json.dumps(names))
        return web.Response(status=503, text=names)


PLUGIN = Ready
