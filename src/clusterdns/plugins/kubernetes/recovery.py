"""Recovery after an API outage: every stalled list/watch retries as soon as the API is back.

Each stream (a kind, cluster-wide or in one namespace) backs off on its own after a failure,
up to 30 s, so that a dead API server is not hammered. Left at that, a change made during an
outage is only served when each stream's own backoff happens to end after the API came back —
up to 16 s after a 60 s outage (issue 11). So:

* while the API is unreachable (connection errors, 429 and 5xx answers), one cheap *probe*
  request (the core API's resource list, `GET /api/v1`) is sent every 0.25 to 2 s: one request
  per server, whatever the number of streams;
* the first request that succeeds again — the probe, or any stream's — wakes every stream
  paused in its backoff; each retries after a random delay of at most WAKE_JITTER (so the
  replicas of a Deployment and the streams of one server do not all arrive in the same
  millisecond), and its backoff starts over once its request succeeds;
* a woken stream whose retry fails again sleeps its next backoff in full (it is not woken
  early twice in a row), so a kind that keeps failing while others work — a 403 on pods,
  say — still backs off instead of retrying at every success of the others.

A change made during the outage is then served within the probe interval plus the jitter and
one relist of the API's return (tests/test_k8s_recovery.py checks the issue's 5 s bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from clusterdns.plugins.kubernetes.api_client import ApiError, Backoff, Unreachable

#: The probe's delays: drawn in [d/2, d] for d = 0.5 s doubling up to PROBE_CAP.
PROBE_BASE = 0.5
PROBE_CAP = 2.0
#: A woken stream retries after a random delay in [0, WAKE_JITTER] s.
WAKE_JITTER = 0.5


def is_outage(err: BaseException) -> bool:
    """A failure that says the API (not this request) is in trouble: probe until it is back."""
    if isinstance(err, Unreachable):
        return True
    return isinstance(err, ApiError) and (err.code == 429 or err.code >= 500)


class Recovery:
    """The probe and the wake-up call shared by every stream of one ApiSource."""

    def __init__(self, probe: Callable[[], Awaitable[bool]], reachable: Callable[[], None]):
        #: One request to the API; True if it succeeded.
        self._probe = probe
        #: Called when the probe succeeded (the source logs the return and wakes everyone).
        self._reachable = reachable
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.wakes = 0

    async def pause(self, delay: float, wakeable: bool = True) -> bool:
        """Sleep `delay`, or less if the API comes back meanwhile: True if woken early."""
        if not wakeable:
            await asyncio.sleep(delay)
            return False
        wake = self._wake
        try:
            await asyncio.wait_for(wake.wait(), delay)
        except TimeoutError:
            return False
        await asyncio.sleep(random.uniform(0.0, WAKE_JITTER))
        return True

    def failed(self, err: BaseException) -> None:
        """A request failed: if the API looks down, probe it until it answers."""
        if is_outage(err) and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._probe_loop())

    def back(self) -> None:
        """A request succeeded after failures: wake every paused stream, stop probing."""
        self.wakes += 1
        self._wake.set()
        self._wake = asyncio.Event()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_loop(self) -> None:
        backoff = Backoff(PROBE_BASE, PROBE_CAP)
        while True:
            await asyncio.sleep(backoff.next())
            if await self._probe():
                self._task = None  # this task ends here; `back` must not cancel it
                self._reachable()
                return
