"""`fallthrough [ZONES…]`: which NXDOMAIN names a plugin hands on to the next one.

As CoreDNS's plugin/pkg/fall: no zones means every name; otherwise names under the given zones.
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterdns.corefile.ast import Directive
from clusterdns.zones import is_subdomain


@dataclass(slots=True)
class Fallthrough:
    zones: tuple[str, ...] = ()
    enabled: bool = False

    def through(self, qname: str) -> bool:
        if not self.enabled:
            return False
        if not self.zones:
            return True
        return any(is_subdomain(z, qname) for z in self.zones)

    @classmethod
    def from_directive(cls, d: Directive) -> Fallthrough:
        from clusterdns.corefile.keys import zones_from_args

        if d.children:
            raise d.error("fallthrough takes no block")
        return cls(tuple(zones_from_args(d.args)) if d.args else (), True)
