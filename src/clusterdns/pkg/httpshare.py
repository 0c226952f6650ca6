"""HTTP endpoints several plugins serve (health, ready, prometheus): addresses and shared routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from clusterdns.corefile.ast import Directive
from clusterdns.server.http import HttpHandler

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime


def http_address(d: Directive, plugin: str, text: str) -> tuple[str, int]:
    """HOST:PORT by Go's net.SplitHostPort rules (the port is required; "" host is all)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise d.error(f"{plugin}: address {text}: missing ']' in address")
        host, rest = text[1:end], text[end + 1 :]
        if not rest.startswith(":"):
            raise d.error(f"{plugin}: address {text}: missing port in address")
        port = rest[1:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise d.error(f"{plugin}: address {text}: missing port in address")
        if ":" in host:
            raise d.error(f"{plugin}: address {text}: too many colons in address")
    if not port.isdigit() or int(port) > 65535:
        raise d.error(f"{plugin}: address {text}: invalid port '{port}'")
    return host, int(port)


class SharedRoute:
    """One HTTP path on one address, held by every plugin instance that serves it.

    The route is registered once under this object and removed only when its last holder lets
    go, so a reload that fails after starting the new plugins (whose stop then releases them)
    leaves the old configuration's endpoints up, and blocks sharing an address share one route.
    """

    _all: ClassVar[dict[tuple[int, str, int, str], SharedRoute]] = {}

    def __init__(self) -> None:
        self.holders = 0

    @classmethod
    async def hold(cls, rt: Runtime, host: str, port: int, path: str, fn: HttpHandler) -> None:
        key = (id(rt.http), host, port, path)
        route = cls._all.setdefault(key, cls())
        try:
            await rt.http.add(route, host, port, path, fn)  # binds the address on first use
        except BaseException:
            if not route.holders:
                del cls._all[key]
            raise
        route.holders += 1

    @classmethod
    async def release(cls, rt: Runtime, host: str, port: int, path: str) -> None:
        key = (id(rt.http), host, port, path)
        route = cls._all.get(key)
        if route is None:
            return
        route.holders -= 1
        if route.holders <= 0:
            del cls._all[key]
            await rt.http.remove(route)
