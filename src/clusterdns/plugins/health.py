"""health: an HTTP liveness endpoint, and a lame-duck period before exit.

Syntax::

    health [ADDRESS] {
        lameduck DURATION
    }

ADDRESS (default `:8080`) is HOST:PORT as Go writes it (`:8080`, `localhost:8091`, `[::1]:8080`);
the path is `/health`, answering 200 `OK`. Several server blocks may name the same address: one
listener serves them. With `lameduck`, a stop (SIGTERM/SIGINT) first waits DURATION while DNS is
still served, so clients and load balancers can move away; unlike CoreDNS (which keeps answering
200), `/health` answers 503 from the moment the stop begins, as our issue asks.

Once a second the plugin fetches its own `/health` (as CoreDNS's overloaded check does) and
records the time it took in `coredns_health_request_duration_seconds`; a failed fetch counts in
`coredns_health_request_failures_total`. Neither has a `server` label: they describe the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from clusterdns import metrics
from clusterdns.corefile.ast import Directive
from clusterdns.durations import format_go_duration, parse_go_duration
from clusterdns.pkg.httpshare import SharedRoute, http_address
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, unknown_option

if TYPE_CHECKING:
    from aiohttp import web

    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

HEALTH_DURATION, HEALTH_FAILURES = metrics.HEALTH_DURATION, metrics.HEALTH_FAILURES
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 3.0


def _url(host: str, port: int, path: str) -> str:
    h = host or "localhost"
    return f"http://{f'[{h}]' if ':' in h else h}:{port}{path}"


class Health(Plugin):
    name = "health"
    replay = Replay.ALWAYS  # not in the chain's answers
    side_service = True  # `clusterdns query` does not start it
    handler = False  # a web server beside the chain, as in CoreDNS
    once = False  # CoreDNS reads every `health` line of a block; the last one counts

    def __init__(self, host: str, port: int, lameduck: float) -> None:
        self.host = host
        self.port = port
        self.lameduck = lameduck
        self._rt: Runtime | None = None
        self._held = False
        self._probe: asyncio.Task[None] | None = None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Health:
        host, port, lameduck = "", 8080, 0.0
        for d in directives:
            args = expect_args(d, 0, 1)
            if args:
                host, port = http_address(d, "health", args[0])
            for opt in d.children:
                if opt.name != "lameduck":
                    raise unknown_option("health", opt)
                (text,) = expect_args(opt, 1, 1)
                try:
                    lameduck = parse_go_duration(text)
                except ValueError as e:
                    raise opt.error(
                        f"health: unable to parse lameduck duration value: '{text}' : {e}"
                    ) from None
        return cls(host, port, lameduck)

    async def start(self, rt: Runtime) -> None:
        await SharedRoute.hold(rt, self.host, self.port, "/health", self._health)
        self._rt = rt
        self._held = True
        self._probe = asyncio.get_running_loop().create_task(self._overloaded())

    async def _health(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web  # here: the HTTP server has imported it already

        if self._rt is not None and self._rt.shutting_down:
            return web.Response(status=503, text="Shutting down")
        return web.Response(status=200, text="OK")

    async def _overloaded(self) -> None:
        """Time a fetch of our own /health every second: slowness shows an overloaded process."""
        import aiohttp

        url = _url(self.host, self.port, "/health")
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await asyncio.sleep(PROBE_INTERVAL)
                start = time.perf_counter()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                except (aiohttp.ClientError, TimeoutError, OSError) as e:
                    HEALTH_DURATION.observe(time.perf_counter() - start)
                    HEALTH_FAILURES.inc()
                    log.warning('plugin/health: Local health request to "%s" failed: %s', url, e)
                    continue
                elapsed = time.perf_counter() - start
                HEALTH_DURATION.observe(elapsed)
                if elapsed > 1.0:
                    log.warning(
                        'plugin/health: Local health request to "%s" took more than 1s: %s',
                        url,
                        format_go_duration(elapsed),
                    )

    async def shutdown(self) -> None:
        if self.lameduck > 0:
            log.info(
                "plugin/health: Going into lameduck mode for %s", format_go_duration(self.lameduck)
            )
            await asyncio.sleep(self.lameduck)

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._rt is not None and self._held:
            self._held = False  # the handler keeps working: a failed reload may still route here
            await SharedRoute.release(self._rt, self.host, self.port, "/health")


PLUGIN = Health
