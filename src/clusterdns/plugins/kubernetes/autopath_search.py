"""What the kubernetes plugin needs for `autopath @kubernetes`: this server's own search domains.

CoreDNS's kubernetes plugin reads /etc/resolv.conf at setup and appends its `search` domains
to every pod's search path (after `NS.svc.ZONE`, `svc.ZONE`, `ZONE`). The parser is shared
with the autopath plugin (clusterdns.pkg.resolvconf), which reads RESOLV-CONF files the same way.
"""

from __future__ import annotations

from clusterdns.pkg.resolvconf import resolv_search as resolv_search

__all__ = ["RESOLV_CONF", "resolv_search"]

RESOLV_CONF = "/etc/resolv.conf"
