"""How forward orders its upstreams for one query (CoreDNS's plugin/forward/policy.go).

* random: a fresh random order per query (the default);
* round_robin: a shared counter picks the first upstream, the others follow in config order;
* sequential: always config order, so the first healthy upstream takes all the traffic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Policy:
    name = ""

    def order(self, items: Sequence[T]) -> list[T]:
        raise NotImplementedError


class Random(Policy):
    name = "random"

    def order(self, items: Sequence[T]) -> list[T]:
        out = list(items)
        if len(out) == 2:
            if random.getrandbits(1):
                out.reverse()
        elif len(out) > 2:
            random.shuffle(out)
        return out


class RoundRobin(Policy):
    name = "round_robin"

    def __init__(self) -> None:
        self._robin = 0

    def order(self, items: Sequence[T]) -> list[T]:
        # As CoreDNS: the counter is bumped before use, so the first query goes to the second.
        self._robin = (self._robin + 1) & 0xFFFFFFFF
        i = self._robin % len(items)
        return [items[i], *items[:i], *items[i + 1 :]]


class Sequential(Policy):
    name = "sequential"

    def order(self, items: Sequence[T]) -> list[T]:
        return list(items)


POLICIES: dict[str, type[Policy]] = {
    "random": Random,
    "round_robin": RoundRobin,
    "sequential": Sequential,
}
