"""The kubernetes plugin's `snapshot` option (ClusterDNS's own)::

    snapshot FILE [INTERVAL] {
        max_age DURATION
    }

FILE (relative to the Corefile's directory) receives the plugin's records at most every
INTERVAL (default 10s) after they change; when the API is not reachable within
`startup_timeout` at start, a snapshot not older than `max_age` (default 24h) is served until
the API answers (snapshot_runtime.py). Durations are Go's (`500ms`, `1m30s`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from clusterdns.corefile.ast import Directive
from clusterdns.durations import parse_go_duration

DEFAULT_INTERVAL = 10.0
DEFAULT_MAX_AGE = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class SnapshotSettings:
    path: str
    interval: float = DEFAULT_INTERVAL
    max_age: float = DEFAULT_MAX_AGE


def _duration(opt: Directive, text: str, what: str) -> float:
    try:
        value = parse_go_duration(text)
    except ValueError:
        raise opt.error(f"kubernetes: invalid snapshot {what} '{text}': not a duration") from None
    if value <= 0:
        raise opt.error(f"kubernetes: snapshot {what} must be greater than 0, got '{text}'")
    return value


def parse_snapshot(opt: Directive, base: str) -> SnapshotSettings:
    """`snapshot FILE [INTERVAL] { max_age DURATION }` → SnapshotSettings (errors name the line)."""
    args = opt.values
    if not 1 <= len(args) <= 2:
        raise opt.error(
            "kubernetes: 'snapshot' takes FILE [INTERVAL], e.g. "
            "'snapshot /var/lib/clusterdns/snapshot 10s'"
        )
    path = args[0] if os.path.isabs(args[0]) else os.path.join(base, args[0])
    interval = _duration(opt, args[1], "interval") if len(args) == 2 else DEFAULT_INTERVAL
    max_age = DEFAULT_MAX_AGE
    for child in opt.children:
        if child.name != "max_age":
            raise child.error(
                f"kubernetes: unknown snapshot option '{child.name}' (the only one is max_age)"
            )
        if len(child.args) != 1 or child.children:
            raise child.error("kubernetes: 'max_age' takes one DURATION, e.g. 'max_age 24h'")
        max_age = _duration(child, child.values[0], "max_age")
    if os.path.isdir(path):
        raise opt.error(f"kubernetes: snapshot '{path}' is a directory; name a file in it")
    return SnapshotSettings(path, interval, max_age)
