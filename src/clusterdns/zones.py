"""Name matching on normalized (lower-case, fully qualified) text names."""

from __future__ import annotations

from collections.abc import Iterable


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
