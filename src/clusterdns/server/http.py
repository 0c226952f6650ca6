"""HTTP listeners shared by health, ready and prometheus.

Several plugins (and several server blocks) may ask for the same address; one listener serves
them all, and routes are swapped in place on reload so a kept address never closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiohttp costs ~0.3 s to import: only a server with HTTP endpoints pays it
    from aiohttp import web

log = logging.getLogger("clusterdns.http")

HttpHandler = Callable[["web.BaseRequest"], Awaitable["web.StreamResponse"]]


def split_address(addr: str, default_port: int) -> tuple[str, int]:
    """`:8080`, `localhost:9153`, `[::1]:8181`, `127.0.0.1` → (host, port); host "" is all."""
    host, port = addr, default_port
    if addr.startswith("["):
        end = addr.index("]")
        host, rest = addr[1:end], addr[end + 1 :]
        if rest.startswith(":"):
            port = int(rest[1:])
    elif addr.count(":") == 1:
        host, p = addr.split(":")
        port = int(p)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return host, port


@dataclass(slots=True)
class _Site:
    host: str
    port: int
    #: path -> handlers by owner, newest last; the newest serves. A reload adds the new
    #: config's owners before removing the old ones, so a failed reload that removes only
    #: its own owners leaves the old handlers serving.
    routes: dict[str, list[tuple[object, HttpHandler]]] = field(default_factory=dict)
    server: asyncio.base_events.Server | None = None
    low: Any = None  # aiohttp.web.Server


class HttpRegistry:
    def __init__(self) -> None:
        self._sites: dict[tuple[str, int], _Site] = {}

    async def add(self, owner: object, host: str, port: int, path: str, fn: HttpHandler) -> None:
        """Serve `path` on host:port with `fn`; binds the address on first use."""
        key = (host, port)
        site = self._sites.get(key)
        if site is None:
            from aiohttp import web

            site = _Site(host, port)
            site.low = web.Server(self._dispatcher(site), access_log=None)
            loop = asyncio.get_running_loop()
            site.server = await loop.create_server(site.low, host or None, port)
            self._sites[key] = site
            log.debug("http listening on %s:%d", host, port)
        site.routes.setdefault(path, []).append((owner, fn))

    async def remove(self, owner: object) -> None:
        """Drop the routes of `owner`; close the addresses nobody uses any more."""
        for key, site in list(self._sites.items()):
            for path, handlers in list(site.routes.items()):
                handlers[:] = [h for h in handlers if h[0] is not owner]
                if not handlers:
                    del site.routes[path]
            if not site.routes:
                await self._close(site)
                del self._sites[key]

    async def close(self) -> None:
        for site in self._sites.values():
            await self._close(site)
        self._sites.clear()

    @staticmethod
    async def _close(site: _Site) -> None:
        if site.server is not None:
            site.server.close()
            await site.server.wait_closed()
        if site.low is not None:
            await site.low.shutdown(0.5)

    @staticmethod
    def _dispatcher(site: _Site) -> HttpHandler:
        from aiohttp import web

        async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
            handlers = site.routes.get(request.path)
            if not handlers:
                return web.Response(status=404, text="404 page not found\n")
            return await handlers[-1][1](request)

        return dispatch
