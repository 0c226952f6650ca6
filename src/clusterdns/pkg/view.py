"""The routing hook the *view* plugin uses (CoreDNS's dnsserver.Viewer).

A plugin with a `filter(req) -> bool` method makes its server block a filtered one: the
router only sends a query to that block when every such filter of the block passes. Server
blocks sharing a zone and listen address are tried in Corefile order (clusterdns.config
groups them); when none passes, the router goes on to the next shorter zone, as CoreDNS.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from clusterdns.request import Request


@runtime_checkable
class RequestFilter(Protocol):
    def filter(self, req: Request) -> bool:
        """Whether this server block takes `req` (no side effects; may be called per query)."""
        ...
