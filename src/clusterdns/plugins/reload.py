"""reload: re-read the Corefile when its contents change and switch to it without a restart.

Syntax::

    reload [INTERVAL] [JITTER]

INTERVAL (default 30s, at least 2s) is how often the Corefile's SHA512 is checked. As in
CoreDNS, JITTER (default 15s; 0, or at least 1s) is silently lowered to INTERVAL/2, and the
check period is INTERVAL plus a random offset within ±JITTER/2 drawn once at setup, so
replicas do not all reload at once. A valid new Corefile replaces the running one
(listeners that stay are kept open); an invalid one is logged, counted in
coredns_reload_failed_total, and the old configuration keeps serving. The plugin is
server-wide: one watcher runs however many server blocks name it. SIGUSR1 reloads at once,
with or without this plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from typing import TYPE_CHECKING

from clusterdns import metrics
from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, no_block, parse_duration

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

DEFAULT_INTERVAL = 30.0
DEFAULT_JITTER = 15.0
MIN_INTERVAL = 2.0
MIN_JITTER = 1.0


class Reload(Plugin):
    name = "reload"
    replay = Replay.ALWAYS  # only watches the Corefile
    side_service = True  # `clusterdns query` does not start it
    handler = False

    def __init__(self, interval: float, jitter: float) -> None:
        self.interval = interval
        self.jitter = jitter
        #: CoreDNS draws the offset once, in [-jitter/2, jitter/2).
        self.period = interval + (random.uniform(-jitter / 2, jitter / 2) if jitter else 0.0)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Reload:
        d = directives[0]
        args = expect_args(d, 0, 2)
        no_block(d)
        interval, jitter = DEFAULT_INTERVAL, DEFAULT_JITTER
        if args:
            interval = parse_duration(d, args[0])
            if interval < MIN_INTERVAL:
                raise d.error(
                    f"reload: interval value must be greater or equal to {MIN_INTERVAL:g}s"
                )
        if len(args) == 2:
            jitter = parse_duration(d, args[1])
            if jitter != 0 and jitter < MIN_JITTER:
                raise d.error(
                    f"reload: jitter value must be 0 or greater or equal to {MIN_JITTER:g}s"
                )
        # CoreDNS lowers a jitter over half the interval without a word (the default 15s
        # is over half of any interval under 30s: a warning would be about a value the
        # user never wrote).
        jitter = min(jitter, interval / 2)
        return cls(interval, jitter)

    async def start(self, rt: Runtime) -> None:
        cfg = rt.starting
        metrics.RELOAD_INFO.clear()
        metrics.RELOAD_INFO.labels("sha512", cfg.digest).set(1)
        first = next(p for p in cfg.plugins() if isinstance(p, Reload))
        if first is self:  # one watcher per configuration, however many blocks name reload
            self._task = asyncio.get_running_loop().create_task(self._watch(rt, cfg.path))

    def running(self, rt: Runtime) -> None:
        cfg = rt.config
        if next(p for p in cfg.plugins() if isinstance(p, Reload)) is self:
            log.info("plugin/reload: Running configuration SHA512 = %s", cfg.digest)

    async def _watch(self, rt: Runtime, path: str) -> None:
        tried = ""
        while True:
            await asyncio.sleep(self.period)
            now = _digest(path)
            if now and now != rt.config.digest and now != tried:
                tried = now  # an invalid file is reported once, not every interval
                rt.request_reload("plugin/reload: Corefile changed but reload failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.sha512(f.read()).hexdigest()
    except OSError:
        return ""


PLUGIN = Reload
