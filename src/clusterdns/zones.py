"""Name matching on normalized (lower-case, fully qualified) text names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")


def is_subdomain(parent: str, child: str) -> bool:
    """True if `child` equals `parent` or lies below it (both normalized)."""
    if parent == ".":
        return True
    if child == parent:
        return True
    return child.endswith("." + parent) if parent else False


def longest_match(zones: Iterable[str], qname: str) -> str:
    """The most specific zone that contains `qname`, or "" (as CoreDNS's plugin.Zones.Matches)."""
    best = ""
    for z in zones:
        if is_subdomain(z, qname) and len(z) > len(best):
            best = z
    return best


def along(table: Mapping[str, T], qname: str) -> Iterator[tuple[str, T]]:
    """The entries of `table` keyed by `qname` or one of its parents, most specific first and
    "." last: CoreDNS's server.ServeDNS walk, label by label (the server's routing and the
    relay's both take it)."""
    name = qname
    while True:
        v = table.get(name)
        if v is not None:
            yield name, v
        if name == ".":
            return
        dot = name.find(".")
        name = name[dot + 1 :] or "."
