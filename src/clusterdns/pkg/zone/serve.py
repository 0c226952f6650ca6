"""What file, auto and secondary share: a served zone and the answer to one query from it.

`ServedZone` holds the current ZoneData of one origin (swapped whole on a reload or transfer,
so a query sees one version), its fast-path slot (bumped on every swap: answers kept by the
fast path depend only on the zone data), and an `expired` flag for secondaries. `respond` is
CoreDNS's File.ServeDNS after the zone is chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from clusterdns.errors import PluginError
from clusterdns.fallthrough import Fallthrough
from clusterdns.pkg import xfr
from clusterdns.pkg.zone.data import NoChange, ZoneData, ZoneFileError, parse_file
from clusterdns.pkg.zone.lookup import Lookup, Result, Upstream
from clusterdns.request import Request
from clusterdns.server import fastpath

log = logging.getLogger("clusterdns")


@dataclass(slots=True, eq=False)
class ServedZone:
    origin: str
    file: str = ""
    data: ZoneData | None = None
    expired: bool = False
    reload: float = 0.0
    by_mtime: bool = False
    mtime: float = 0.0  # of the file when last read (reload_by_mtime)
    slot: int = field(default_factory=fastpath.new_slot)
    task: asyncio.Task[None] | None = None

    def set(self, data: ZoneData | None) -> None:
        self.data = data
        self.expired = False
        fastpath.bump(self.slot)

    def expire(self) -> None:
        """A secondary past its SOA expire: SERVFAIL until the next transfer."""
        if not self.expired:
            self.expired = True
            fastpath.bump(self.slot)

    def transfer(self, serial: int) -> list[dns.rrset.RRset]:
        data = self.data
        if data is None or data.soa is None:
            raise ValueError("no SOA")  # CoreDNS: an error, the transfer fails (SERVFAIL)
        return xfr.full_transfer(data.records(), serial)

    # ---- reloading from the zone file (file and auto) ------------------------------------

    def reload_once(self, plugin: str) -> bool:
        """Re-read the file if its SOA serial changed; True if a new zone is served now.

        Blocking (run it in a thread). A file that cannot be read or parsed keeps the zone
        served before, with an error logged, as CoreDNS's Zone.Reload.
        """
        serial = self.data.serial if self.data is not None else -1
        try:
            if self.by_mtime:
                mtime = os.stat(self.file).st_mtime
                if mtime <= self.mtime:
                    return False
                self.mtime, serial = mtime, -1
            data = parse_file(self.file, self.origin, serial)
        except NoChange:
            return False
        except OSError as e:
            log.error(
                'plugin/%s: Failed to open zone "%s" in "%s": open %s: %s', plugin, self.origin,
                self.file, self.file, (e.strerror or str(e)).lower(),
            )  # fmt: skip
            return False
        except ZoneFileError as e:
            log.error('plugin/%s: Parsing zone "%s": %s', plugin, self.origin, e)
            return False
        self.set(data)
        log.info(
            'plugin/%s: Successfully reloaded zone "%s" in "%s" with %d SOA serial', plugin,
            self.origin, self.file, data.serial,
        )  # fmt: skip
        return True

    def start_reload(self, plugin: str, notify: Callable[[str], None]) -> None:
        """Check the file every `reload` seconds (0: never), notifying after a change."""
        if self.reload <= 0 or self.task is not None:
            return

        async def watch() -> None:
            while True:
                await asyncio.sleep(self.reload)
                try:
                    if await asyncio.to_thread(self.reload_once, plugin):
                        notify(self.origin)
                except Exception:
                    log.exception("plugin/%s: reloading zone %s failed", plugin, self.origin)

        self.task = asyncio.get_running_loop().create_task(watch())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


async def respond(
    plugin: str,
    req: Request,
    zone: ServedZone,
    upstream: Upstream,
    fall: Fallthrough | None = None,
) -> dns.message.Message | None:
    """The answer from `zone` (CoreDNS's File.ServeDNS); None: hand the query to the next plugin.

    Bare rcodes (SERVFAIL, REFUSED) are raised as quiet PluginErrors: the server writes them.
    """
    fastpath.depend(zone.slot)
    if req.qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        # Only the transfer plugin (before us in the chain) answers transfers.
        raise PluginError(plugin, "zone transfer not allowed", dns.rcode.REFUSED, quiet=True)
    if zone.expired:
        log.error("plugin/%s: Zone %s is expired", plugin, zone.origin)
        raise PluginError(plugin, "zone expired", dns.rcode.SERVFAIL, quiet=True)
    data = zone.data
    if data is None:
        raise PluginError(plugin, "zone not loaded", dns.rcode.SERVFAIL, quiet=True)
    qname = req.name.canonicalize()  # CoreDNS's state.Name(): owners of synthesized records
    ans = await Lookup(data, upstream).lookup(qname, req.qtype)
    result = ans.result
    if (
        not ans.answer
        and result in (Result.NAME_ERROR, Result.SUCCESS)
        and fall is not None
        and fall.through(req.qname)
    ):
        req.note("fallthrough: no such name in the zone")
        return None
    m = req.reply(authoritative=True)
    m.answer, m.authority, m.additional = _copies(ans.answer), _copies(ans.ns), _copies(ans.extra)
    if result is Result.NAME_ERROR:
        m.set_rcode(dns.rcode.NXDOMAIN)
    elif result is Result.DELEGATION:
        if not ans.answer:  # a referral is not authoritative; a CNAME before it is
            m.flags &= ~dns.flags.AA
    elif result is Result.SERVER_FAILURE:
        if not ans.answer:
            raise PluginError(plugin, "server failure", dns.rcode.SERVFAIL, quiet=True)
        m.set_rcode(dns.rcode.SERVFAIL)  # RFC 6604 3: the rcode of the target's lookup
    return m


def _copies(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """The zone's sets must not change with the response (loadbalance shuffles in place)."""
    return [dns.rrset.from_rdata_list(r.name, r.ttl, list(r)) for r in rrsets]
