"""auto: serve every zone file found in a directory, picking up new, changed and removed ones.

Syntax::

    auto [ZONES...] {
        directory DIR [REGEXP ORIGIN_TEMPLATE]
        reload DURATION
    }

As CoreDNS's plugin/auto. DIR (relative: from the *root* plugin's directory) is walked
recursively; a file whose name matches REGEXP (unanchored; default `db\\.(.*)`) is loaded as the
zone ORIGIN_TEMPLATE names, `{N}` standing for the Nth group (default `{1}`): `db.example.org`
serves `example.org.`. Every `reload` (default 1m, 0: only at start) the directory is walked
again (zones added and removed) and each zone's file is re-read when its SOA serial changed; a
file that does not parse is skipped (or keeps its zone served) with a log line. Queries for
names under ZONES (default: the server block's) are answered from the best matching zone as the
file plugin answers them (clusterdns.pkg.zone); names under ZONES but in no loaded zone go to
the next plugin (REFUSED if none). Zones are transferable by the `transfer` plugin, which is
notified after every walk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rcode
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import parse_go_duration
from clusterdns.errors import PluginError
from clusterdns.pkg import upstream, xfr
from clusterdns.pkg.zone import ServedZone, ZoneFileError, parse_file, respond
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

DEFAULT_RELOAD = 60.0
DEFAULT_RE = r"db\.(.*)"
MAX_REGEXP = 10000


def expand(template: str, m: re.Match[str]) -> str:
    """Go's Regexp.ExpandString for CoreDNS's `{N}` templates (a missing group is empty)."""

    def group(g: re.Match[str]) -> str:
        n = int(g.group(1))
        return (m.group(n) or "") if n <= (m.re.groups or 0) else ""

    return re.sub(r"\{(\d+)\}", group, template)


def origin_for(pattern: re.Pattern[str], filename: str, template: str) -> str:
    """The zone a file name stands for ("" if it does not match), fully qualified."""
    m = pattern.search(os.path.basename(filename))
    if m is None:
        return ""
    origin = expand(template, m)
    return origin if origin.endswith(".") else origin + "."


class Auto(Plugin):
    name = "auto"
    once = False
    replay = Replay.ALWAYS

    def __init__(
        self, origins: list[str], directory: str, pattern: re.Pattern[str], template: str,
        reload: float,
    ) -> None:  # fmt: skip
        self.origins = origins
        self.directory = directory
        self.pattern = pattern
        self.template = template
        self.reload = reload
        self.zones: dict[str, ServedZone] = {}
        self.names: list[str] = []
        self.slot = fastpath.new_slot()  # bumped when zones come and go
        self.rt: Runtime | None = None
        self.notifier: xfr.Notifier | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Auto:
        origins: list[str] = []
        directory, template, reload = "", "{1}", DEFAULT_RELOAD
        pattern = re.compile(DEFAULT_RE)
        for d in directives:  # CoreDNS takes several lines; the last one's settings win
            origins = zones_from_args(d.args, default=ctx.zones)
            for opt in d.children:
                vals = opt.values
                if opt.name == "directory":
                    if not vals or len(vals) == 2 or len(vals) > 3:
                        raise opt.arg_error()
                    directory = vals[0]
                    root = ctx.extra.get("root")
                    if not os.path.isabs(directory) and isinstance(root, str) and root:
                        directory = os.path.join(root, directory)
                    try:
                        os.stat(directory)
                    except FileNotFoundError:
                        ctx.warn(opt, f"plugin/auto: Directory does not exist: {directory}")
                    except OSError as e:
                        raise opt.error(
                            f"plugin/auto: Unable to access root path '{directory}': {e.strerror}"
                        ) from None
                    if len(vals) == 3:
                        if len(vals[1]) > MAX_REGEXP:
                            raise opt.error("plugin/auto: regexp too large")
                        try:
                            pattern = re.compile(vals[1])
                        except re.error as e:
                            raise opt.error(f"plugin/auto: error parsing regexp: {e}") from None
                        if pattern.groups == 0:
                            raise opt.error("plugin/auto: Need at least one sub expression")
                        template = vals[2]
                elif opt.name == "reload":
                    if not vals:
                        raise opt.error("plugin/auto: reload duration value is expected")
                    try:
                        reload = parse_go_duration(vals[0])
                    except ValueError as e:
                        raise opt.error(f"plugin/file: {e}") from None
                    if reload < 0:
                        raise opt.error("plugin/file: invalid duration")
                elif opt.name == "upstream":
                    pass  # removed from CoreDNS long ago; accepted and ignored as it does
                else:
                    raise opt.error(f"plugin/auto: unknown property '{opt.name}'")
        return cls(origins, directory, pattern, template, reload)

    # ---- the directory walk ----------------------------------------------------------------

    def _scan(self) -> list[tuple[str, str]]:
        """(origin, path) of every matching file under the directory (blocking)."""
        found: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        dup: set[str] = set()
        directory = os.path.realpath(self.directory) if self.directory else ""
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for f in sorted(files):
                origin = origin_for(self.pattern, f, self.template)
                if not origin:
                    continue
                path = os.path.normpath(os.path.join(root, f))
                prev = seen.get(origin)
                if prev is not None and prev != path:
                    log.warning(
                        'plugin/auto: Multiple zone files match origin "%s": using "%s" instead '
                        'of "%s"', origin, prev, path,
                    )  # fmt: skip
                    dup.add(origin)
                    continue
                seen[origin] = path
                found.append((origin, path))
        return found

    async def walk(self) -> None:
        """CoreDNS's Auto.Walk: add new zones, point known ones at their file, drop the gone."""
        found = await asyncio.to_thread(self._scan)
        keep: set[str] = set()
        changed = False
        for origin, path in found:
            keep.add(origin)
            z = self.zones.get(origin)
            if z is not None:
                z.file = path
                continue
            try:
                data = await asyncio.to_thread(parse_file, path, origin)
            except (OSError, ZoneFileError) as e:
                keep.discard(origin)
                log.warning("plugin/auto: Parse zone `%s': %s", origin, e)
                continue
            z = ServedZone(origin, path, reload=self.reload)
            z.set(data)
            self.zones[origin] = z
            z.start_reload(self.name, self._notify)
            changed = True
            log.info("plugin/auto: Inserting zone `%s' from: %s", origin, path)
        for origin in [o for o in self.zones if o not in keep]:
            await self.zones.pop(origin).stop()
            changed = True
            log.info("plugin/auto: Deleting zone `%s'", origin)
        if changed:
            self.names = list(self.zones)
            fastpath.bump(self.slot)
        xfr.spawn_notify(self.notifier, list(self.names), self._tasks, self.name)

    def _notify(self, zone: str) -> None:
        xfr.spawn_notify(self.notifier, [zone], self._tasks, self.name)

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.notifier = xfr.notifier(rt, self)
        await self.walk()
        if self.reload > 0:
            self._task = asyncio.get_running_loop().create_task(self._walker())

    async def _walker(self) -> None:
        while True:
            await asyncio.sleep(self.reload)
            try:
                await self.walk()
            except Exception:
                log.exception("plugin/auto: walking %s failed", self.directory)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for z in self.zones.values():
            await z.stop()
        for t in list(self._tasks):
            t.cancel()

    # ---- serving ---------------------------------------------------------------------------

    def transfer(self, zone: str, serial: int) -> list[dns.rrset.RRset]:
        """pkg.xfr.Transferer: a loaded zone named exactly `zone`."""
        z = self.zones.get(zone)
        if z is None:
            raise xfr.NotAuthoritative(zone)
        return z.transfer(serial)

    async def serve(self, req: Request) -> dns.message.Message:
        qname = req.qname
        if not longest_match(self.origins, qname):
            return await self.next(req)
        fastpath.depend(self.slot)
        origin = longest_match(self.names, qname)
        if not origin:
            if getattr(self.next, "__name__", "") == "no_next":  # CoreDNS: nil Next
                raise PluginError(self.name, "no zone", dns.rcode.REFUSED, quiet=True)
            return await self.next(req)

        async def up(name: dns.name.Name, qtype: int) -> dns.message.Message | None:
            return await upstream.lookup(self.rt, req, name, qtype)

        m = await respond(self.name, req, self.zones[origin], up)
        assert m is not None  # no fallthrough here
        return m


PLUGIN = Auto
