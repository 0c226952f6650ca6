"""Keep the event loop polling the sockets while the chain works through a backlog.

Fast answers are given in the protocol callbacks, as datagrams are read; chain queries run as
tasks, and each holds the loop for a few hundred microseconds of dnspython. When many arrive at
once (a wave of cache entries expiring together, a burst of new names), the loop would run them
all before it reads the sockets again, and every fast answer would wait behind the whole burst.
So chain queries start only while the current turn of the loop has spent less than BUDGET on
them, at most PER_TURN of a backlog per turn; the others wait for the next turn, after the loop
has read the sockets and answered what it can at once. Queries already started (waiting on an
upstream) are not held. The chain's throughput barely changes (a turn of the loop costs a few
microseconds), it is only interleaved with the fast answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

BUDGET = 0.001  # seconds of chain work in one turn of the loop before the sockets are read
PER_TURN = 4  # queries of a backlog started per turn


class Pacer:
    def __init__(self) -> None:
        self.first: float | None = None  # when the first chain query of this turn started
        self.ticking = False
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def turn(self) -> None:
        """Return when this chain query may start."""
        loop = asyncio.get_running_loop()
        if not self.waiting:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
                self._arm(loop)
                return
            if now - self.first < BUDGET:
                return
        fut: asyncio.Future[None] = loop.create_future()
        self.waiting.append(fut)
        self._arm(loop)
        await fut

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.ticking:
            self.ticking = True
            loop.call_soon(self._tick, loop)  # runs on the next turn, after the sockets are read

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ticking = False
        self.first = None
        woken = 0
        while self.waiting and woken < PER_TURN:
            fut = self.waiting.popleft()
            if not fut.done():  # not cancelled meanwhile
                fut.set_result(None)
                woken += 1
        if woken:
            self.first = time.perf_counter()
            self._arm(loop)
