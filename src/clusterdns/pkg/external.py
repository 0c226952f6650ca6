"""What *k8s_external* asks of the plugin holding the cluster's data: CoreDNS's Externaler.

*k8s_external* finds, at start, a plugin of its own server block that implements `Externaler`
(in practice *kubernetes*) and serves its zones from it; it never imports that plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ExternalService:
    """One result of a lookup: CoreDNS's msg.Service as the kubernetes plugin fills it."""

    #: An IP address, or a name: a LoadBalancer ingress hostname (answered as a CNAME), or
    #: `name.namespace` for reverse lookups (the PTR target, before the zone is added).
    host: str
    #: The port; -1 when the object declares none (no SRV record then).
    port: int = -1
    #: The SRV target (and additional-section owner) without the trailing dot:
    #: `service.namespace.ZONE` or `endpoint.service.namespace.ZONE`.
    target: str = ""
    #: The data source's TTL: CoreDNS puts it on SRV and CNAME records (k8s_external's own
    #: `ttl` goes on the others).
    ttl: int = 5


@runtime_checkable
class Externaler(Protocol):
    """CoreDNS's Externaler (External, ExternalAddress, ExternalSerial), plus the fast path."""

    def external(
        self, qname: str, zone: str, qtype: int, headless: bool
    ) -> tuple[list[ExternalService], int]:
        """The services for lower-case `qname` in `zone`, and the rcode if there are none.

        PTR queries for a reverse name give the Services whose external IP that is; for other
        PTR queries the list is empty and only the rcode (NXDOMAIN or NOERROR) counts.
        """
        ...

    def external_address(self, zone: str, headless: bool) -> list[str]:
        """The addresses this DNS server is reached at from outside (the apex's NS glue)."""
        ...

    def external_serial(self, zone: str) -> int:
        """The SOA serial: when the externally visible data last changed (Unix time)."""
        ...

    def external_slot(self) -> int:
        """The fast-path slot bumped on every change of the data (0: do not replay)."""
        ...
