"""The metadata contract (CoreDNS's plugin/metadata Provider), shared by providers and readers.

A plugin that publishes metadata implements `metadata(req)`: it returns label -> function giving
the value, e.g. {"kubernetes/client-namespace": lambda: "default"}. The *metadata* plugin asks
every such plugin of its server block, for queries in its zones, and puts the functions in
`Request.metadata`; readers (log's `{/label}`, template's `.Meta`) call them only when they need
the value, as CoreDNS's metadata.Func is lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from clusterdns.request import Request

Func = Callable[[], str]


@runtime_checkable
class Provider(Protocol):
    def metadata(self, req: Request) -> dict[str, Func]: ...


def is_label(label: str) -> bool:
    """CoreDNS's metadata.IsLabel: `plugin/name`, with something on both sides of the `/`."""
    p = label.find("/")
    return 0 < p < len(label) - 1


def value(req: Request, label: str) -> str | None:
    """The value of `label` for `req`, None when nothing published it."""
    if req.metadata is None:
        return None
    f = req.metadata.get(label)
    return None if f is None else f()
