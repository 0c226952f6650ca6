"""This server's own addresses, found as CoreDNS's boundIPs (plugin/kubernetes/local.go) does.

The apex NS records name the Service whose endpoints hold one of these addresses (lookup.py's
`ns_addrs`), so they must be the ones CoreDNS would find:

* without `bind`, every address of every interface (Go's net.InterfaceAddrs), loopback ones
  (127.0.0.0/8, ::1) left out;
* with `bind`, none at all. CoreDNS parses the bound hosts with net.ParseCIDR, which refuses the
  plain addresses `bind` records, so a bound CoreDNS knows no address of its own: its apex NS
  and `ns.dns.ZONE` get NODATA. We do the same, so answers stay CoreDNS's record for record.

`CLUSTERDNS_TEST_INTERFACE_ADDRS` (comma-separated addresses) replaces the interface list.
It is for tests only: they cannot give a test machine the interfaces a pod has.
"""

from __future__ import annotations

import ipaddress
import os
import socket

#: Test-only: the interface addresses to use instead of the machine's (comma-separated).
TEST_ADDRS_ENV = "CLUSTERDNS_TEST_INTERFACE_ADDRS"


def interface_addresses() -> list[str]:
    """Every IPv4/IPv6 address of this machine's interfaces (or the test override)."""
    override = os.environ.get(TEST_ADDRS_ENV)
    if override is not None:
        return [a.strip() for a in override.split(",") if a.strip()]
    try:
        import psutil

        return [
            str(a.address)
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)
        ]
    except Exception:  # no interfaces to read (a sandbox): CoreDNS then has none either
        return []


def local_ips(bind_hosts: list[str]) -> list[str]:
    """Our own non-loopback addresses as CoreDNS's boundIPs: none when bound (see above)."""
    if bind_hosts and bind_hosts[0] != "":
        return []
    out: list[str] = []
    for text in interface_addresses():
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0].split("/", 1)[0])
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_loopback and str(ip) not in out:
            out.append(str(ip))
    return out
