"""bind: listen on the given addresses or interfaces instead of every address.

Syntax::

    bind ADDRESS|IFACE ... {
        except ADDRESS|IFACE ...
    }

As CoreDNS's plugin/bind: each argument is an IP address or the name of a network interface,
which stands for every address the interface has when the configuration is loaded (IPv6
link-local addresses get the interface as their zone, e.g. `fe80::1%eth0`). `except` removes
addresses (given the same way) from this `bind` line's list. Several `bind` lines in one
server block add up. The plugin only configures listeners; it does not take part in answering.

Unlike CoreDNS, which then silently serves nothing for the block, a `bind` whose `except`
leaves no address at all is a configuration error.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext


def interface_addresses() -> dict[str, list[str]]:
    """Each interface's IPv4 and IPv6 addresses, as Go's net.Interface.Addrs lists them."""
    out: dict[str, list[str]] = {}
    for iface, addrs in psutil.net_if_addrs().items():
        ips: list[str] = []
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(a.address.split("%", 1)[0])
            text = str(ip)
            if ip.version == 6 and (ip.is_link_local or ip in _LINK_LOCAL_MULTICAST):
                text = f"{text}%{iface}"
            ips.append(text)
        out[iface] = ips
    return out


_LINK_LOCAL_MULTICAST = ipaddress.ip_network("ff02::/16")


def expand(d: Directive, args: list[str], ifaces: dict[str, list[str]]) -> list[str]:
    """Interface names become their addresses; anything else must be an IP address."""
    out: list[str] = []
    for a in args:
        if a in ifaces:
            out.extend(ifaces[a])
            continue
        try:
            if "%" in a:  # Go's net.ParseIP takes no zone
                raise ValueError(a)
            ipaddress.ip_address(a)
        except ValueError:
            raise d.error(f'bind: not a valid IP address or interface name: "{a}"') from None
        out.append(a)
    return out


class Bind(Plugin):
    name = "bind"
    replay = Replay.ALWAYS  # not in the chain
    handler = False
    once = False

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Bind:
        ifaces: dict[str, list[str]] | None = None
        hosts: list[str] = []
        excepted: list[str] = []
        for d in directives:
            if not d.args:
                raise d.error("bind: at least one address or interface name is expected")
            except_opt: Directive | None = None
            for opt in d.children:
                if opt.name != "except":
                    raise opt.error(f'bind: invalid option "{opt.name}"')
                if not opt.args:
                    raise opt.error(
                        "bind: at least one address or interface must be given to except"
                    )
                except_opt = opt  # a later `except` replaces an earlier one, as in CoreDNS
            if ifaces is None:
                try:
                    ifaces = interface_addresses()
                except OSError as e:
                    raise d.error(f"bind: failed to get interfaces list: {e}") from None
            ips = expand(d, d.values, ifaces)
            ex = expand(except_opt, except_opt.values, ifaces) if except_opt else []
            kept = [ip for ip in ips if ip not in ex]
            if not kept:
                raise d.error("bind: 'except' leaves no address to listen on")
            excepted.extend(ex)
            hosts.extend(ip for ip in kept if ip not in hosts)
        ctx.bind_hosts = hosts
        ctx.bind_except = excepted
        return cls(hosts)


PLUGIN = Bind
