"""A worker process: answers UDP queries from pre-rendered entries, hands the rest over.

Started by clusterdns.server.workers as `python -m clusterdns.server.worker CTL SHM`: CTL is
its end of a SOCK_SEQPACKET pair with the main process, SHM the shared fastwire.Slots. It
imports nothing but fastwire and runs a plain epoll loop (no asyncio), so it stays small: no
plugins, no Kubernetes data, no dnspython — about 10 MB.

The main process sends it UDP sockets bound with SO_REUSEPORT to each listening address (the
kernel spreads clients over those sockets and the main process's own), and answers the queries
it forwards — every query that misses here — with the wire to send back and, when the answer
may be replayed, the entry to keep. Entries are voided through the shared slots exactly as in
the main process. Fast answers are counted in batches the main process asks for (`f`).

Messages (pickled tuples), main → worker: ("l", label) with a socket, ("c", label) close it,
("a", label, addr, wire, key, state) an answer, ("f", token) send your batches, ("x",) exit.
Worker → main: ("q", label, data, addr) a query to answer, ("m", token, batches).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import sys
import time
from typing import Any, cast

from clusterdns.server.fastwire import Entry, EntryState, Slots, Stats, Table

MAX_MESSAGE = 1 << 20
DRAIN = 64  # datagrams read from one socket before looking at the others


class Worker:
    def __init__(self, ctl: socket.socket, slots: Slots) -> None:
        self.ctl = ctl
        self.slots = slots
        self.ep = select.epoll()
        self.ep.register(ctl.fileno(), select.EPOLLIN)
        self.socks: dict[int, tuple[str, socket.socket, Table]] = {}
        self.by_label: dict[str, int] = {}
        self.tables: dict[str, Table] = {}
        self.stats: dict[Any, Stats] = {}
        self.buf = bytearray(65536)
        self.running = True

    def stats_for(self, mkey: Any) -> Stats:
        st = self.stats.get(mkey)
        if st is None:
            st = self.stats[mkey] = Stats()
        return st

    def send(self, msg: tuple[Any, ...]) -> None:
        """Best effort, as UDP: if the main process cannot take it now, the query is lost."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            self.ctl.send(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))

    def run(self) -> None:
        ctl_fd = self.ctl.fileno()
        while self.running:
            try:
                events = self.ep.poll()
            except InterruptedError:  # pragma: no cover - PEP 475 retries poll
                continue
            for fd, _ in events:
                if fd == ctl_fd:
                    self.readable()
                elif fd in self.socks:
                    self.serve(*self.socks[fd])

    # ---- queries ------------------------------------------------------------------------------

    def serve(self, label: str, sock: socket.socket, table: Table) -> None:
        buf = self.buf
        for _ in range(DRAIN):
            try:
                n, addr = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error for an earlier answer: nothing to do
                continue
            t0 = time.perf_counter()
            data = bytes(buf[:n])
            hit = table.get(data, time.monotonic())
            if hit is None:
                self.send(("q", label, data, addr))
                continue
            entry, wire = hit
            try:
                sock.sendto(wire, addr)
            except OSError:  # a full buffer: lost, as UDP may be
                continue
            ip = addr[0]
            v6 = ":" in ip and not (ip.startswith("::ffff:") and "." in ip)
            entry.stats_for(len(wire)).add(v6, time.perf_counter() - t0)

    # ---- control channel ----------------------------------------------------------------------

    def readable(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.ctl, MAX_MESSAGE, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:  # the main process is gone
                self.running = False
                return
            self.handle(pickle.loads(data), fds)

    def handle(self, msg: tuple[Any, ...], fds: list[int]) -> None:
        kind = msg[0]
        if kind == "a":
            _, label, addr, wire, key, state = msg
            table = self.tables.get(label)
            if state is not None and key is not None and table is not None:
                table.put(key, Entry(cast(EntryState, state), self.stats_for))
            fd = self.by_label.get(label)
            if wire is not None and fd is not None:
                with contextlib.suppress(OSError):
                    self.socks[fd][1].sendto(wire, addr)
        elif kind == "f":
            batches = [(mkey, *st.take()) for mkey, st in self.stats.items() if st.v4 or st.v6]
            self.send(("m", msg[1], batches))
        elif kind == "l":
            for fd in fds:
                self.listen(msg[1], fd)
        elif kind == "c":
            self.close(msg[1])
        elif kind == "x":
            self.running = False

    def listen(self, label: str, fd: int) -> None:
        self.close(label)
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        table = self.tables.setdefault(label, Table(self.slots))
        self.socks[fd] = (label, sock, table)
        self.by_label[label] = fd
        self.ep.register(fd, select.EPOLLIN)

    def close(self, label: str) -> None:
        fd = self.by_label.pop(label, None)
        if fd is None:
            return
        self.ep.unregister(fd)
        self.socks.pop(fd)[1].close()
        self.tables.pop(label, None)


def main(argv: list[str]) -> int:
    ctl = socket.socket(fileno=int(argv[0]))
    ctl.setblocking(False)
    slots = Slots(int(argv[1]))
    # The main process decides when we stop (it closes the channel); a terminal's Ctrl-C
    # reaches the whole process group, so it is left to the main process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Worker(ctl, slots).run()
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by the worker pool
    sys.exit(main(sys.argv[1:]))
