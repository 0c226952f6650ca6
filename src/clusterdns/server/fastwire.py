"""The fast path's hot half: pre-rendered answers served from bytes, no dnspython.

Shared by the main process and the worker processes (which import nothing else of the
server, to stay small). The main process decides what may be cached and builds entries
(clusterdns.server.fastpath); this module only finds and replays them:

* `query_key` reads the header and the question of a query — nothing else is parsed. The key
  is the query after its ID with the name lower-cased: flags, counts, name, type, class and the
  OPT record's fixed fields (UDP size, extended rcode, version, DO). Anything unusual (a
  compression pointer in the question, EDNS options, other records, trailing bytes) is no key:
  the slow path answers it.
* An `Entry` is a rendered answer plus when it stops being true: shared-memory `Slots` whose
  values must not have moved (a data change, a reload), an expiry, and for cache answers the
  TTL that counts down — the TTL fields are re-written when the second changes. Records that
  `loadbalance` shuffles are kept as separate chunks and shuffled per query, as the plugin
  would. Only the ID and, when the answer allows it, the question's case are patched.
* `Stats` batches what the prometheus and cache plugins would have counted for the query; the
  main process folds the batches into the real metrics (see fastpath.flush).
"""

from __future__ import annotations

import mmap
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Slot 0 is the configuration epoch; 1..PLUGIN_SLOTS-1 belong to plugin instances (their data
#: generation); the rest are hashed per cache entry.
SLOT_COUNT = 1 << 16
PLUGIN_SLOTS = 1024
SLOTS_BYTES = SLOT_COUNT * 8
#: The first request_duration_seconds bucket (CoreDNS's TimeBuckets start at 0.25 ms).
FIRST_BUCKET = 0.00025
MAX_SLOW = 4096  # durations kept one by one between flushes; beyond that the rest is dropped

_QD1 = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_QD1_AR1 = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPT_TYPE = b"\x00\x29"
_NO_RDATA = b"\x00\x00"
OPT = 41


class Slots:
    """Counters in shared memory: the main process bumps, every process reads."""

    def __init__(self, fd: int = -1) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, SLOTS_BYTES)
        self.values = memoryview(self._map).cast("Q")

    def bump(self, index: int) -> None:
        self.values[index] = (self.values[index] + 1) & 0xFFFFFFFFFFFFFFFF


def query_key(data: bytes) -> tuple[bytes, int] | None:
    """(key, end of the question name) for a plain query, else None (the slow path decides)."""
    n = len(data)
    if n < 17 or data[2] & 0xF8:  # QR set, or an opcode other than QUERY
        return None
    counts = data[4:12]
    if counts == _QD1:
        opt = False
    elif counts == _QD1_AR1:
        opt = True
    else:
        return None
    i = 12
    while True:
        if i >= n:
            return None
        length = data[i]
        if length == 0:
            break
        if length > 63:  # a compression pointer (or a reserved label type) in the question
            return None
        i += length + 1
    nend = i + 1
    if nend - 12 > 255:
        return None
    if opt:
        if (
            n != nend + 15
            or data[nend + 4] != 0
            or not data.startswith(_OPT_TYPE, nend + 5)
            or not data.startswith(_NO_RDATA, nend + 13)
        ):
            return None
    elif n != nend + 4:
        return None
    return data[2:12] + data[12:nend].lower() + data[nend:], nend


def walk(wire: bytes) -> list[tuple[int, int, int, int, int]] | None:
    """Every record of a message: (section 1-3, start, TTL offset, end, type); None if odd."""
    try:
        counts = (
            int.from_bytes(wire[6:8], "big"),
            int.from_bytes(wire[8:10], "big"),
            int.from_bytes(wire[10:12], "big"),
        )
        i = _skip_name(wire, 12) + 4
        out: list[tuple[int, int, int, int, int]] = []
        for section, count in enumerate(counts, 1):
            for _ in range(count):
                start = i
                i = _skip_name(wire, i)
                rtype = int.from_bytes(wire[i : i + 2], "big")
                rdlen = int.from_bytes(wire[i + 8 : i + 10], "big")
                end = i + 10 + rdlen
                if end > len(wire):
                    return None
                out.append((section, start, i + 4, end, rtype))
                i = end
        return out if i == len(wire) else None
    except IndexError:
        return None


def _skip_name(wire: bytes, i: int) -> int:
    while True:
        length = wire[i]
        if length == 0:
            return i + 1
        if length >= 0xC0:
            return i + 2
        if length > 63:
            raise IndexError("bad label type")
        i += length + 1


@dataclass(slots=True, eq=False)
class Stats:
    """Queries answered from entries sharing one metrics description, since the last flush."""

    v4: int = 0
    v6: int = 0
    dsum: float = 0.0
    #: Durations above the first bucket, kept one by one so they land in the right bucket.
    slow: list[float] = field(default_factory=list)

    def add(self, v6: bool, duration: float) -> None:
        if v6:
            self.v6 += 1
        else:
            self.v4 += 1
        self.dsum += duration
        if duration > FIRST_BUCKET and len(self.slow) < MAX_SLOW:
            self.slow.append(duration)

    def take(self) -> tuple[int, int, float, list[float]]:
        out = (self.v4, self.v6, self.dsum, self.slow)
        self.v4 = self.v6 = 0
        self.dsum = 0.0
        self.slow = []
        return out


#: Chunks of one run of shuffled records: (start, end, chunk bounds).
Run = tuple[int, int, tuple[int, ...]]
#: When the last run may not fit: (size limit, header count offset, records of that section
#: outside the run). Nothing but the OPT record follows the run; cutting it sets TC.
Fit = tuple[int, int, int]
#: What an entry is made of, as sent between processes (see Entry.state).
EntryState = tuple[
    bytes, bytes, int, bool, tuple[tuple[int, int], ...], float, int, bool, int,
    tuple[int, ...], tuple[Run, ...], Fit | None, Any,
]  # fmt: skip
StatsFactory = Callable[[Any], Stats]


def sized(mkey: Any, size: int) -> Any:
    """The metrics description `mkey` with the response size of its reports set to `size`."""
    server, proto, reports, counters = mkey
    return (server, proto, tuple((*r[:6], size, *r[7:]) for r in reports), counters)


class Entry:
    """One pre-rendered answer and the conditions under which it is still the answer."""

    __slots__ = (
        "base", "case_free", "countdown", "cur_ttl", "deps", "factory", "fit", "life", "mkey",
        "nend", "q0", "runs", "sizes", "stats", "stored", "ttl_offs", "wire",
    )  # fmt: skip

    def __init__(self, state: EntryState, factory: StatsFactory) -> None:
        (
            wire, self.q0, self.nend, self.case_free, self.deps, self.stored, self.life,
            self.countdown, self.cur_ttl, self.ttl_offs, self.runs, self.fit, self.mkey,
        ) = state  # fmt: skip
        # q0: the question name exactly as the query that filled the entry had it; case_free:
        # nothing but the question shows the client's case. With life >= 0 the entry lasts as
        # long as a cache item stored at `stored` (time.monotonic()) for `life` seconds; with
        # `countdown` its TTLs are that item's remaining seconds, counted as the cache counts.
        self.base = self.wire = wire
        self.factory = factory
        self.stats = factory(self.mkey)
        self.sizes: dict[int, Stats] = {}

    def state(self) -> EntryState:
        """What another process needs to serve this entry (TTLs as they are now)."""
        return (
            self.wire, self.q0, self.nend, self.case_free, self.deps, self.stored, self.life,
            self.countdown, self.cur_ttl, self.ttl_offs, self.runs, self.fit, self.mkey,
        )  # fmt: skip

    def stats_for(self, size: int) -> Stats:
        """The batch an answer of `size` bytes is counted in (sizes only vary with `fit`)."""
        if self.fit is None:
            return self.stats
        st = self.sizes.get(size)
        if st is None:
            st = self.sizes[size] = self.factory(sized(self.mkey, size))
        return st

    def render(self, data: bytes, slots: memoryview, now: float) -> bytes | None:
        """The answer to `data` (whose key matched), or None when the entry is void."""
        for index, value in self.deps:
            if slots[index] != value:
                return None
        wire = self.wire
        if self.life >= 0:
            left = self.life - int(now - self.stored)
            if left <= 0:
                return None
            if self.countdown and left != self.cur_ttl:
                wire = self._retime(left)
        if self.runs:
            wire = self.shuffled(wire, random.shuffle)
        if data.startswith(self.q0, 12):
            return data[:2] + wire[2:]
        if self.case_free:
            nend = self.nend
            return data[:2] + wire[2:12] + data[12:nend] + wire[nend:]
        return None

    def _retime(self, ttl: int) -> bytes:
        b = bytearray(self.base)
        t = ttl.to_bytes(4, "big")
        for off in self.ttl_offs:
            b[off : off + 4] = t
        self.wire = bytes(b)
        self.cur_ttl = ttl
        return self.wire

    def shuffled(self, wire: bytes, permute: Callable[[list[bytes]], None]) -> bytes:
        """`wire` with each run's records in the order `permute` gives them (in place).

        With `fit`, the last run's records go in while they fit, as wire.render stops at the
        first record that does not, and the header's count and TC follow.
        """
        parts: list[bytes] = []
        pos = 0
        runs = self.runs
        last = len(runs) - 1
        for n, (start, end, bounds) in enumerate(runs):
            parts.append(wire[pos:start])
            chunks = [wire[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
            permute(chunks)
            pos = end
            fit = self.fit
            if fit is None or n != last:
                parts.extend(chunks)
                continue
            limit, count_at, others = fit
            room = limit - start - (len(wire) - end)
            taken = 0
            for c in chunks:
                room -= len(c)
                if room < 0:
                    break
                parts.append(c)
                taken += 1
            if taken < len(chunks):
                head = bytearray(parts[0][:12])
                head[count_at : count_at + 2] = (others + taken).to_bytes(2, "big")
                head[2] |= 0x02
                parts[0] = bytes(head) + parts[0][12:]
        parts.append(wire[pos:])
        return b"".join(parts)


class Table:
    """The entries of one listener and transport, bounded; the oldest go first when full.

    Most clients ask the same question in the same bytes: `exact` maps the query after its ID
    to the entry it got, so a repeat costs a slice and a dict lookup, not a parse.
    """

    def __init__(self, slots: Slots, limit: int = 20_000) -> None:
        self.entries: dict[bytes, Entry] = {}
        self.exact: dict[bytes, Entry] = {}
        self.slots = slots.values
        self.limit = limit

    def get(self, data: bytes, now: float) -> tuple[Entry, bytes] | None:
        rest = data[2:]
        e = self.exact.get(rest)
        if e is not None:
            wire = e.render(data, self.slots, now)
            if wire is not None:
                return e, wire
            del self.exact[rest]  # void: the keyed entry may be a newer one
        k = query_key(data)
        if k is None:
            return None
        e = self.entries.get(k[0])
        if e is None:
            return None
        wire = e.render(data, self.slots, now)
        if wire is None:
            return None
        if data.startswith(e.q0, 12):
            if len(self.exact) >= self.limit:
                self.exact.clear()
            self.exact[rest] = e
        return e, wire

    def put(self, key: bytes, entry: Entry) -> None:
        entries = self.entries
        if key not in entries and len(entries) >= self.limit:
            del entries[next(iter(entries))]
        entries[key] = entry

    def clear(self) -> None:
        self.entries.clear()
        self.exact.clear()
