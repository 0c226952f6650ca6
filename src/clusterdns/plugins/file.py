"""file: serve zones read from RFC 1035 master files, authoritatively.

Syntax::

    file DBFILE [ZONES...] {
        reload DURATION
        reload_by_mtime
        fallthrough [ZONES...]
    }

As CoreDNS's plugin/file. DBFILE is parsed by dnspython's zone reader once per zone (ZONES
default to the server block's); a relative DBFILE is taken from the *root* plugin's directory
when set, else from the working directory. A file that does not parse is a setup error naming
the zone file's line. A missing file is an error with `reload 0`, else a warning: the zone
answers SERVFAIL until the file appears. Every `reload` (default 1m, 0: never) the file is
read again and served if its SOA serial changed (with `reload_by_mtime`: if its modification
time did); a file that no longer parses keeps the zone served before and logs an error.

Answers (clusterdns.pkg.zone): authoritative records, NXDOMAIN/NODATA with the SOA, CNAMEs
chased in the zone and through the server once they leave it, wildcards, DNAME, referrals with
glue for delegations. AXFR/IXFR are REFUSED here: the `transfer` plugin answers them, using
this plugin's `transfer` (pkg.xfr.Transferer), and is told (pkg.xfr.Notifier) when a zone
is (re)loaded. Names outside ZONES go to the next plugin (REFUSED if there is none).
`fallthrough` hands NXDOMAIN names on. Kept fast-path answers depend on the zone's data only.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rcode
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import format_go_duration, parse_go_duration
from clusterdns.errors import PluginError
from clusterdns.fallthrough import Fallthrough
from clusterdns.pkg import upstream, xfr
from clusterdns.pkg.zone import ServedZone, ZoneFileError, parse_file, respond
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

DEFAULT_RELOAD = 60.0


def is_last(plugin: Plugin) -> bool:
    """No plugin follows (CoreDNS's nil Next): the chain's terminal handler is next."""
    return getattr(plugin.next, "__name__", "") == "no_next"


def resolve_path(d: Directive, path: str, ctx: SetupContext) -> str:
    """CoreDNS: a relative path hangs off the *root* plugin's directory when one is set."""
    root = ctx.extra.get("root")
    if not os.path.isabs(path) and isinstance(root, str) and root:
        return os.path.join(root, path)
    return path


def zone_error(d: Directive, plugin: str, e: ZoneFileError, origin: str) -> Exception:
    return d.error(f"plugin/{plugin}: {e} (zone {origin})")


class File(Plugin):
    name = "file"
    once = False
    replay = Replay.ALWAYS

    def __init__(self, zones: dict[str, ServedZone], fall: Fallthrough) -> None:
        self.zones = zones
        self.names = list(zones)
        self.fall = fall
        self.rt: Runtime | None = None
        self.notifier: xfr.Notifier | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> File:
        zones: dict[str, ServedZone] = {}
        fall = Fallthrough()
        reload, by_mtime = DEFAULT_RELOAD, False
        open_error: tuple[Directive, str] | None = None
        for d in directives:
            if not d.args:
                raise d.arg_error()
            path = resolve_path(d, d.values[0], ctx)
            origins = zones_from_args(d.args[1:], default=ctx.zones)
            for origin in origins:
                z = ServedZone(origin, path)
                try:
                    z.data = parse_file(path, origin)
                except OSError as e:
                    open_error = (d, f"open {path}: {(e.strerror or str(e)).lower()}")
                except ZoneFileError as e:
                    raise zone_error(d, "file", e, origin) from None
                zones[origin] = z
            for opt in d.children:
                vals = opt.values
                if opt.name == "fallthrough":
                    fall = Fallthrough.from_directive(opt)
                elif opt.name == "reload":
                    if not vals:
                        raise opt.error("plugin/file: reload duration value is expected")
                    try:
                        reload = parse_go_duration(vals[0])
                    except ValueError as e:
                        raise opt.error(f"plugin/file: {e}") from None
                elif opt.name == "reload_by_mtime":
                    by_mtime = True
                elif opt.name == "upstream":
                    pass  # removed from CoreDNS long ago; accepted and ignored as it does
                else:
                    raise opt.error(f"plugin/file: unknown property '{opt.name}'")
            for origin in origins:
                zones[origin].reload = reload
                zones[origin].by_mtime = by_mtime
        if open_error is not None:
            d, text = open_error
            if reload == 0:
                raise d.error(f"plugin/file: {text}")
            again = format_go_duration(reload)
            ctx.warn(d, f'plugin/file: Failed to open "{text}": trying again in {again}')
        return cls(zones, fall)

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.notifier = xfr.notifier(rt, self)
        for z in self.zones.values():
            z.start_reload(self.name, self._notify)
        xfr.spawn_notify(self.notifier, self.names, self._tasks)

    def _notify(self, zone: str) -> None:
        xfr.spawn_notify(self.notifier, [zone], self._tasks, self.name)

    async def stop(self) -> None:
        for z in self.zones.values():
            await z.stop()
        for t in list(self._tasks):
            t.cancel()

    def transfer(self, zone: str, serial: int) -> list[dns.rrset.RRset]:
        """pkg.xfr.Transferer: the zone named exactly `zone`, if it is one of ours."""
        z = self.zones.get(zone)
        if z is None or longest_match(self.names, zone) != zone:
            raise xfr.NotAuthoritative(zone)
        return z.transfer(serial)

    async def serve(self, req: Request) -> dns.message.Message:
        origin = longest_match(self.names, req.qname)
        if not origin:
            if is_last(self):
                raise PluginError(self.name, "no zone", dns.rcode.REFUSED, quiet=True)
            return await self.next(req)

        async def up(name: dns.name.Name, qtype: int) -> dns.message.Message | None:
            return await upstream.lookup(self.rt, req, name, qtype)

        m = await respond(self.name, req, self.zones[origin], up, self.fall)
        return await self.next(req) if m is None else m


PLUGIN = File
