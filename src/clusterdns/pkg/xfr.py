"""Zone transfers between plugins: who can give a zone (Transferer), who tells secondaries
about a change (Notifier), and the NOTIFY message itself.

As CoreDNS's transfer.Transferer: the transfer plugin finds the plugins of its server block
that implement `Transferer` (by this protocol, never by class) and asks each in turn for the
zone until one does not raise NotAuthoritative. Zone plugins (file, auto, secondary) find the
block's `Notifier` (the transfer plugin) the same way and call it when a zone changes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset

if TYPE_CHECKING:
    from clusterdns.plugin import Plugin
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")


class NotAuthoritative(Exception):
    """The plugin does not serve that zone: ask the next Transferer."""


@runtime_checkable
class Transferer(Protocol):
    def transfer(self, zone: str, serial: int) -> list[dns.rrset.RRset]:
        """The records of `zone` (lower-case, absolute) to send, in order.

        serial 0 (AXFR): SOA first, every record, and the SOA again last. Otherwise (IXFR):
        only the SOA if `serial` is the zone's current one, else the full zone as for AXFR.
        Raise NotAuthoritative when the zone is not this plugin's.
        """
        ...


@runtime_checkable
class Notifier(Protocol):
    async def notify(self, zone: str) -> None:
        """Send NOTIFY for `zone` to its secondaries (errors are logged, not raised)."""
        ...


def parse_host_port(text: str, default_port: int = 53) -> tuple[str, int]:
    """CoreDNS's parse.HostPort: an IP with an optional port, or ValueError."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        host = text[1:end] if end > 0 else text
        rest = text[end + 1 :] if end > 0 else ""
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise ValueError(f"must specify an IP address: `{text}'")
        port = int(p)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise ValueError(f"must specify an IP address: `{host}'") from None
    return host, port


def full_transfer(records: list[dns.rrset.RRset], serial: int) -> list[dns.rrset.RRset]:
    """A zone's `records` (SOA first) as CoreDNS's Zone.Transfer sends them for `serial`."""
    soa = records[0]
    if serial != 0 and int(soa[0].serial) == serial:
        return [soa]
    return [*records, soa]


def block_plugins(rt: Runtime, plugin: Plugin) -> list[Plugin]:
    """The plugins of the server block `plugin` belongs to (in the config being started)."""
    for cfg in (rt.starting, rt.config):
        for b in cfg.blocks:
            if any(p is plugin for p in b.plugins):
                return list(b.plugins)
    return []


def notifier(rt: Runtime, plugin: Plugin) -> Notifier | None:
    return next((p for p in block_plugins(rt, plugin) if isinstance(p, Notifier)), None)


def notify_message(zone: str) -> dns.message.Message:
    """miekg/dns's SetNotify: opcode NOTIFY, AA set, one SOA question for the zone."""
    m = dns.message.make_query(zone, dns.rdatatype.SOA)
    m.flags = dns.flags.AA
    m.set_opcode(dns.opcode.NOTIFY)
    return m


async def send_notify(zone: str, host: str, port: int, source: str | None = None) -> None:
    """Send NOTIFY up to three times until a NOERROR reply; raise ValueError if none came."""
    error = ""
    code = dns.rcode.SERVFAIL
    for _ in range(3):
        m = notify_message(zone)
        try:
            r = await dns.asyncquery.udp(m, host, port=port, timeout=2.0, source=source)
        except (dns.exception.DNSException, OSError) as e:
            error = str(e) or type(e).__name__
            continue
        code = r.rcode()
        if code == dns.rcode.NOERROR:
            return
        error = ""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if error:
        raise ValueError(f'notify for zone "{zone}" was not accepted by "{target}": "{error}"')
    raise ValueError(
        f'notify for zone "{zone}" was not accepted by "{target}": '
        f'rcode was "{dns.rcode.to_text(code)}"'
    )


def spawn_notify(
    n: Notifier | None, zones: list[str], tasks: set[asyncio.Task[None]], plugin: str = ""
) -> None:
    """Notify in the background (CoreDNS does it in a goroutine); keeps the task referenced.

    With `plugin`, a failure is logged as CoreDNS's reload logs it; else it is only debug.
    """
    if n is None:
        return

    async def one(zone: str) -> None:
        try:
            await n.notify(zone)
        except Exception as e:
            if plugin:
                log.warning("plugin/%s: Failed sending notifies: %s", plugin, e)
            else:
                log.debug("notify for %s: %s", zone, e)

    for zone in zones:
        task = asyncio.get_running_loop().create_task(one(zone))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
