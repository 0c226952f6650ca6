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

The backlog is bounded (clusterdns.server.backlog): queries the listener marks `sheddable`
(UDP) wait in a queue of at most `limits.waiting`, start newest first (under overload the
freshest query is the one a client still waits for), and are dropped (`Dropped` raised in
their task) when pushed out or older than `limits.max_age`. Other queries (TCP) wait in order
and go first; they are never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from clusterdns.server.backlog import DEFAULT, Dropped, Limits

BUDGET = 0.001  # seconds of chain work in one turn of the loop before the sockets are read
PER_TURN = 4  # queries of a backlog started per turn

_Waiter = tuple[float, asyncio.Future[None]]


def _never(task: asyncio.Task[object] | None) -> bool:
    return False


class Pacer:
    def __init__(self) -> None:
        self.first: float | None = None  # when the first chain query of this turn started
        self.ticking = False
        self.waiting: deque[asyncio.Future[None]] = deque()  # not sheddable: in order
        self.udp: deque[_Waiter] = deque()  # sheddable: (enqueued at, future), newest last
        self.limits: Limits = DEFAULT
        #: Whether the task asking for a turn may be dropped (the listener sets this).
        self.sheddable: Callable[[asyncio.Task[object] | None], bool] = _never

    async def turn(self) -> None:
        """Return when this chain query may start; raise Dropped if it never will."""
        loop = asyncio.get_running_loop()
        if not self.waiting and not self.udp:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
                self._arm(loop)
                return
            if now - self.first < BUDGET:
                return
        fut: asyncio.Future[None] = loop.create_future()
        if self.sheddable(asyncio.current_task()):
            udp = self.udp
            while len(udp) >= self.limits.waiting:
                _drop(udp.popleft()[1], "overflow")
            udp.append((loop.time(), fut))
        else:
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
        udp = self.udp
        if udp:
            oldest = loop.time() - self.limits.max_age
            while udp and (udp[0][0] <= oldest or udp[0][1].done()):
                _drop(udp.popleft()[1], "stale")
            while udp and woken < PER_TURN:
                fut = udp.pop()[1]
                if not fut.done():
                    fut.set_result(None)
                    woken += 1
        if woken:
            self.first = time.perf_counter()
            self._arm(loop)


def _drop(fut: asyncio.Future[None], reason: str) -> None:
    if not fut.done():
        fut.set_exception(Dropped(reason))
