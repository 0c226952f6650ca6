"""Worker processes: more cores for the fast path, one copy of everything else.

`clusterdns -workers N` starts N processes beside the main one (`auto`: one per CPU beyond the
first). Each gets, for every listening address, a UDP socket bound with SO_REUSEPORT next to
the main process's, so the kernel spreads clients over all of them by their address and port.
A worker answers what it can from its pre-rendered entries and forwards every other query to
the main process, which answers it through the plugin chain — the only one there is — and
sends back the wire and, when it may be replayed, the entry (clusterdns.server.worker).

Why the workers share rather than each run the whole server (each watching the API): one
watch and one copy of the cluster (the store of 100k endpoints is most of the memory), one
cache, one set of health/ready/metrics endpoints and logs, exactly CoreDNS's semantics; a
worker costs ~15 MB. The price: a query a worker cannot answer takes a trip through the main
process (one more hop of a few tens of microseconds), and whatever needs the chain (cache
misses, forwarding without cache) runs on one core. TCP stays in the main process.

If a worker dies it is started again after a second; when the main process goes, the workers
see their channel close and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusterdns.server import fastmetrics, fastpath
from clusterdns.server.backlog import Dropped
from clusterdns.server.fastwire import query_key
from clusterdns.server.listener import Listener, _socket

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.server")

MAX_MESSAGE = 1 << 20
BUFFER = 4 << 20
FLUSH_WAIT = 0.5  # how long a scrape waits for the workers' batches
RESTART_AFTER = 1.0


def worker_count(text: str) -> int:
    """`auto` (one per CPU beyond the first) or a number >= 0."""
    if text == "auto":
        return max(0, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else (os.cpu_count() or 1)) - 1)  # fmt: skip
    n = int(text)
    if n < 0:
        raise ValueError("must be 0 or more")
    return n


@dataclass(eq=False)
class _Proc:
    index: int
    ctl: socket.socket
    proc: subprocess.Popen[bytes]
    labels: set[str] = field(default_factory=set)
    alive: bool = True


class WorkerPool:
    def __init__(self, rt: Runtime, count: int) -> None:
        self.rt = rt
        self.count = count
        self.procs: list[_Proc] = []
        self.stopping = False
        self._tokens = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future[None], set[int]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.by_label: dict[str, Listener] = {}

    def _listeners(self) -> dict[str, Listener]:
        self.by_label = {lst.addr.label: lst for lst in self.rt.listeners.values()}
        return self.by_label

    async def start(self) -> None:
        self._listeners()
        fastpath.remote_flush = self.flush
        for i in range(self.count):
            self._spawn(i)
        log.info("fast path: %d worker processes", self.count)

    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (ours, theirs):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        shm = fastpath.slots().fd
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterdns.server.worker", str(theirs.fileno()), str(shm)],
            pass_fds=(theirs.fileno(), shm),
        )
        theirs.close()
        ours.setblocking(False)
        p = _Proc(index, ours, proc)
        self.procs.append(p)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable, p)
        self._give_sockets(p)

    def _give_sockets(self, p: _Proc) -> None:
        for label, lst in self._listeners().items():
            if label in p.labels or lst.addr.transport != "dns":
                continue
            sock = _socket(lst.addr.host, lst.local[1], socket.SOCK_DGRAM, reuseport=True)
            try:
                socket.send_fds(p.ctl, [pickle.dumps(("l", label))], [sock.fileno()])
            finally:
                sock.close()  # the worker has its own copy; if it dies, the kernel drops it
            p.labels.add(label)

    async def sync(self) -> None:
        """After a reload: sockets for new addresses, none for the ones gone."""
        current = self._listeners()
        for p in self.procs:
            if not p.alive:
                continue
            for label in list(p.labels):
                if label not in current:
                    self._send(p, ("c", label))
                    p.labels.discard(label)
            self._give_sockets(p)

    def _send(self, p: _Proc, msg: tuple[Any, ...]) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
            p.ctl.send(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))

    def _readable(self, p: _Proc) -> None:
        while True:
            try:
                data = p.ctl.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost(p)
                return
            msg = pickle.loads(data)
            if msg[0] == "q":
                self._query(p, msg[1], msg[2], msg[3])
            elif msg[0] == "m":
                self._batches(p, msg[1], msg[2])

    def _query(self, p: _Proc, label: str, data: bytes, addr: tuple[str, int]) -> None:
        lst = self.by_label.get(label)
        if lst is None:
            return
        fast = lst.router.fast
        hit = fast.lookup(data, addr[0], "udp") if fast is not None else None
        if hit is not None:  # made from another process's query: the worker keeps it too
            k = query_key(data)
            entry, wire = hit
            self._send(p, ("a", label, addr, wire, k[0] if k else None, entry.state()))
            return
        relay = lst.router.relay
        if relay is not None and relay.udp(data, addr, _Passed(self, p, lst, label)):
            return
        lst.chain_udp(self._answer(p, lst, label, data, addr))  # bounded as the listener's own

    async def _answer(
        self,
        p: _Proc,
        lst: Listener,
        label: str,
        data: bytes,
        addr: tuple[str, int],
        relayed: tuple[object, float] | None = None,
    ) -> None:
        try:
            if relayed is None:
                wire, kept = await lst.router.serve(data, addr, lst.local, "udp")
            else:
                wire, kept = await lst.router.relayed(data, addr, lst.local, *relayed), None
        except Dropped as e:
            lst.dropped(e.reason)
            return
        if wire is None and kept is None:
            return
        key, state = kept if kept is not None else (None, None)
        self._send(p, ("a", label, addr, wire, key, state))

    def _batches(self, p: _Proc, token: int, batches: list[tuple[Any, ...]]) -> None:
        for mkey, v4, v6, dsum, slow in batches:
            fastmetrics.apply(mkey, v4, v6, dsum, slow)
        waiting = self._waiting.get(token)
        if waiting is not None:
            fut, pending = waiting
            pending.discard(p.index)
            if not pending and not fut.done():
                fut.set_result(None)

    async def flush(self) -> None:
        """Fold every worker's batches into the metrics (a scrape waits for this)."""
        live = [p for p in self.procs if p.alive]
        if not live:
            return
        token = next(self._tokens)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (fut, {p.index for p in live})
        for p in live:
            self._send(p, ("f", token))
        try:
            await asyncio.wait_for(fut, FLUSH_WAIT)
        except TimeoutError:
            log.debug("fast path: a worker did not send its metrics in time")
        finally:
            del self._waiting[token]

    def _lost(self, p: _Proc) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(p.ctl.fileno())
        p.ctl.close()
        p.alive = False
        with contextlib.suppress(ValueError):
            self.procs.remove(p)
        for fut, pending in self._waiting.values():
            pending.discard(p.index)
            if not pending and not fut.done():
                fut.set_result(None)
        if self.stopping:
            return
        code = p.proc.poll()
        log.error("fast path: worker %d exited (%s); starting it again", p.index, code)
        task = loop.create_task(self._restart(p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, p: _Proc) -> None:
        await asyncio.sleep(RESTART_AFTER)
        if not self.stopping:
            await asyncio.to_thread(p.proc.wait)
            self._spawn(p.index)

    async def stop(self) -> None:
        await self.flush()  # what the workers answered still counts
        self.stopping = True
        fastpath.remote_flush = None
        for t in list(self._tasks):
            t.cancel()
        procs = list(self.procs)
        for p in procs:
            self._send(p, ("x",))
        for p in procs:
            try:
                await asyncio.wait_for(asyncio.to_thread(p.proc.wait), 2.0)
            except TimeoutError:
                p.proc.kill()
                await asyncio.to_thread(p.proc.wait)
            if p.alive:
                asyncio.get_running_loop().remove_reader(p.ctl.fileno())
                p.ctl.close()
                p.alive = False
        self.procs.clear()
        fastmetrics.flush_local()


class _Passed:
    """relaypath.Client for a query a worker passed on. A relayed answer is sent from the main
    process's own socket, bound to the same address as the worker's: nothing to keep, so the
    trip back through the worker (a pickle and a system call each way) would only cost."""

    __slots__ = ("label", "lst", "p", "pool")

    def __init__(self, pool: WorkerPool, p: _Proc, lst: Listener, label: str) -> None:
        self.pool = pool
        self.p = p
        self.lst = lst
        self.label = label

    def relay_send(self, wire: bytes, addr: tuple[str, int]) -> None:
        self.lst.send_udp(wire, addr)

    def relay_handoff(
        self, data: bytes, addr: tuple[str, int], primed: object, start: float
    ) -> None:
        task = self.pool._answer(self.p, self.lst, self.label, data, addr, (primed, start))
        self.lst.chain_udp(task)
