"""One cached response (CoreDNS's cache item) and the bounded store holding them.

An item keeps what is needed to rebuild the reply for any client asking the same question:
rcode, the AD and RA bits and the three sections. The TTL counts down from `orig_ttl` since
`stored`; every reply gets that remaining TTL on every record. Time is `time.monotonic()`,
so a wall-clock step never ages or revives entries.

The store is CoreDNS's plugin/pkg/cache: 256 shards, each holding capacity/256 items (at least
4, so the smallest cache holds 1024); adding to a full shard evicts one of its items. CoreDNS
evicts a random one (Go map order); here the shard's oldest insertion goes, which is as cheap
and never evicts the item just refreshed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import dns.flags
import dns.message
import dns.rrset

from clusterdns.request import Request

SHARDS = 256
MIN_SHARD_SIZE = 4

Key = tuple[str, int, int, bool, bool]  # qname (lower-case), qtype, qclass, DO, CD
V = TypeVar("V")


def with_ttl(section: Sequence[dns.rrset.RRset], ttl: int) -> list[dns.rrset.RRset]:
    """Copies of `section`'s RRsets with every TTL set to `ttl` (the originals are shared)."""
    out: list[dns.rrset.RRset] = []
    for rrset in section:
        c = rrset.copy()  # type: ignore[no-untyped-call]
        c.ttl = ttl
        out.append(c)
    return out


@dataclass(slots=True, eq=False)
class Item:
    rcode: int
    ad: bool
    ra: bool
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]
    additional: list[dns.rrset.RRset]
    orig_ttl: int
    stored: float
    # Popularity for prefetch (CoreDNS's freq.Freq): hits seen with no gap of `duration`.
    hits: int = 0
    last: float = field(default=float("-inf"))
    #: A prefetch for this item is in flight; at most one runs per item.
    refreshing: bool = False
    #: The fast path replays answers made from this item: dropping it must void them.
    fast: bool = False

    @classmethod
    def from_msg(cls, m: dns.message.Message, now: float, duration: float) -> Item:
        # dnspython keeps the OPT record out of `additional`: nothing hop-by-hop is stored.
        return cls(
            rcode=m.rcode(),
            ad=bool(m.flags & dns.flags.AD),
            ra=bool(m.flags & dns.flags.RA),
            answer=list(m.answer),
            authority=list(m.authority),
            additional=list(m.additional),
            orig_ttl=int(duration),
            stored=now,
        )

    def ttl(self, now: float) -> int:
        """Seconds left (negative once expired), whole seconds as CoreDNS counts them."""
        return self.orig_ttl - int(now - self.stored)

    def update_freq(self, window: float, now: float) -> int:
        """Count one more hit; a gap longer than `window` starts counting again from 1."""
        if self.last < now - window:
            self.hits = 1
        else:
            self.hits += 1
        self.last = now
        return self.hits

    def to_msg(self, req: Request, ttl: int, do: bool, ad: bool) -> dns.message.Message:
        """The reply for `req`: its ID and question (as the client wrote it), our records.

        AA is always set, as CoreDNS does (some stub resolvers drop non-authoritative
        answers); AD only survives when the client asked for DNSSEC or set AD itself.
        """
        m = req.reply(self.rcode, authoritative=True)
        if self.ra:
            m.flags |= dns.flags.RA
        if self.ad and (do or ad):
            m.flags |= dns.flags.AD
        ttl = max(ttl, 0)
        m.answer = with_ttl(self.answer, ttl)
        m.authority = with_ttl(self.authority, ttl)
        m.additional = with_ttl(self.additional, ttl)
        return m


class Shards(Generic[V]):
    """A bounded map split in 256 shards; `add` reports whether it evicted something.

    `on_drop(key, value)` is called for every value that leaves: evicted, replaced, removed.
    """

    def __init__(self, capacity: int, on_drop: Callable[[object, V], None] | None = None) -> None:
        self.shard_size = max(capacity // SHARDS, MIN_SHARD_SIZE)
        self._shards: list[dict[object, V]] = [{} for _ in range(SHARDS)]
        self._len = 0
        self._on_drop = on_drop

    def _shard(self, key: object) -> dict[object, V]:
        return self._shards[hash(key) & (SHARDS - 1)]

    def get(self, key: object) -> V | None:
        return self._shard(key).get(key)

    def add(self, key: object, value: V) -> bool:
        shard = self._shard(key)
        evicted = False
        drop = self._on_drop
        if key in shard:
            old = shard.pop(key)  # re-insert: a refreshed entry becomes the newest
            if drop is not None:
                drop(key, old)
        elif len(shard) >= self.shard_size:
            gone = next(iter(shard))
            old = shard.pop(gone)
            if drop is not None:
                drop(gone, old)
            evicted = True
        else:
            self._len += 1
        shard[key] = value
        return evicted

    def remove(self, key: object) -> None:
        old = self._shard(key).pop(key, None)
        if old is not None:
            self._len -= 1
            if self._on_drop is not None:
                self._on_drop(key, old)

    def __len__(self) -> int:
        return self._len

    @property
    def capacity(self) -> int:
        return self.shard_size * SHARDS
