"""What the kubernetes plugin needs for `autopath @kubernetes`: this server's own search domains.

CoreDNS's kubernetes plugin reads /etc/resolv.conf at setup and appends its `search` domains
to every pod's search path (after `NS.svc.ZONE`, `svc.ZONE`, `ZONE`). The parser lives with
the autopath plugin, which reads RESOLV-CONF files the same way; it is re-exported here so the
kubernetes plugin does not import a plugin module of its own accord.
"""

from __future__ import annotations

from clusterdns.plugins.autopath import resolv_search as resolv_search

__all__ = ["RESOLV_CONF", "resolv_search"]

RESOLV_CONF = "/etc/resolv.conf"
