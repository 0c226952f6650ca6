"""resolv.conf search lists: autopath's RESOLV-CONF and the kubernetes plugin's own search."""

from __future__ import annotations


def resolv_search(path: str) -> list[str]:
    """The search list of a resolv.conf (miekg/dns rules: the last `search`/`domain` wins),
    lower-cased and fully qualified; [] when the file cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    search: list[str] = []
    for line in lines:
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "search":
            search = fields[1:]
        elif fields[0] == "domain":
            search = fields[1:2]
    return [s.lower() if s.endswith(".") else s.lower() + "." for s in search]
