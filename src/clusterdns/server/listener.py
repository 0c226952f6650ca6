"""UDP and TCP listeners for one address; both hand bytes to the address's Router.

TCP follows RFC 7766: two-byte length framing, pipelined queries answered as they complete.
Its timeouts are CoreDNS's (a connection's first query, and any message once its first byte
came, must arrive within the read timeout, 3s; an idle connection is closed after the idle
timeout, 10s; answers the client does not take within the write timeout, 5s, close it; a
plugin's `tcp_timeouts` — the timeouts plugin's — changes them), so a client sending a frame
byte by byte (slowloris) cannot hold a connection. Open connections are bounded (file
descriptors are); RFC 7766 §6.2.3's advice is followed under pressure: past half the bound
idle timeouts shrink, and at the bound the connection idle the longest is closed to make room,
so idle clients cannot lock new ones out.

UDP queries waiting for the chain are bounded too (clusterdns.server.backlog).

A query the router's fast path knows is answered right in the protocol callback, with no task;
one that can only be forwarded is relayed as bytes (clusterdns.server.relaypath): only the
others go through the chain (see clusterdns.server.fastpath). With worker processes,
the UDP socket is bound with SO_REUSEPORT so that theirs can join it (clusterdns.server.workers).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, fields, replace
from typing import Any, cast

from clusterdns.config import Block, ListenAddr
from clusterdns.server import backlog
from clusterdns.server.dispatch import Router
from clusterdns.server.wire import Stream

log = logging.getLogger("clusterdns.server")

TCP_MIN_IDLE = 1.0  # the idle timeout as open connections reach TCP_MAX_CONNECTIONS
TCP_MAX_CONNECTIONS = 1024
TCP_MAX_INFLIGHT = 64  # queries one TCP connection may have in flight


@dataclass(frozen=True, slots=True)
class TcpTimeouts:
    """A TCP connection's limits; a plugin's `tcp_timeouts` sets them (None: keep the default).

    As CoreDNS's server (over miekg/dns): the first query, and each message once begun, must
    arrive within `read`; later ones within `idle` of the previous (shortened under pressure);
    an answer not taken by the client within `write` closes the connection, and so does the
    `max_queries`-th query once answered (-1: no limit).
    """

    read: float | None = None
    write: float | None = None
    idle: float | None = None
    max_queries: int | None = None


#: CoreDNS 1.14.7's defaults (core/dnsserver/server.go), not miekg/dns's.
DEFAULT_TIMEOUTS = TcpTimeouts(read=3.0, write=5.0, idle=10.0, max_queries=-1)
TCP_IDLE_TIMEOUT = 10.0


def _socket(
    host: str, port: int, kind: socket.SocketKind, reuseport: bool = False
) -> socket.socket:
    """A bound socket; "" means every address, IPv6 dual-stack when the host has IPv6."""
    if host == "":
        family = socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET
        bind_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        bind_host = host
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host == "":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((bind_host, port))
    except OSError:
        if host == "" and family == socket.AF_INET6:
            sock.close()
            return _socket("0.0.0.0", port, kind, reuseport)
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        fast = self.listener.router.fast
        if fast is not None and self.transport is not None:
            wire = fast.answer(data, addr[0], "udp")
            if wire is not None:
                self.transport.sendto(wire, addr)
                return
            relay = self.listener.router.relay
            if relay is not None and relay.udp(data, addr, self):
                return
        self.listener.chain_udp(self._answer(data, addr))

    async def _answer(
        self, data: bytes, addr: tuple[str, int], relayed: tuple[object, float] | None = None
    ) -> None:
        """Through the chain; `relayed` (primed, start): a query the relay took and hands over
        (clusterdns.server.relaypath)."""
        lst = self.listener
        try:
            if relayed is None:
                wire = await lst.router.handle(data, addr, lst.local, "udp")
            else:
                wire = await lst.router.relayed(data, addr, lst.local, *relayed)
        except backlog.Dropped as e:
            lst.dropped(e.reason)
            return
        if wire is not None:
            lst.send_udp(wire, addr)

    def relay_send(self, wire: bytes, addr: tuple[str, int]) -> None:
        """relaypath.Client: a relayed answer."""
        self.listener.send_udp(wire, addr)

    def relay_handoff(
        self, data: bytes, addr: tuple[str, int], primed: object, start: float
    ) -> None:
        """relaypath.Client: the chain finishes a relayed query, bounded as the others."""
        self.listener.chain_udp(self._answer(data, addr, (primed, start)))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class _Tcp(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.inflight = 0
        self.served = 0  # messages read so far: the first must come within the read timeout
        self.last = 0.0  # loop time of the last message read or answer written
        self.partial = 0.0  # loop time the message now in `buf` began
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.writing: asyncio.TimerHandle | None = None
        self.limits = DEFAULT_TIMEOUTS
        self.read = 3.0  # the read timeout, from `limits`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if peer else ("", 0)
        conns = self.listener.conns
        if len(conns) >= TCP_MAX_CONNECTIONS and not self.listener.make_room():
            log.debug("too many TCP connections, all busy: closing the new one from %s", peer)
            self.transport.abort()
            return
        conns[self] = None
        self.limits = self.listener.tcp_timeouts()
        self.read = self.limits.read or 0.0
        self.last = asyncio.get_running_loop().time()
        self._arm(self.last + self.read)
        self.listener.pressure()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.conns.pop(self, None)
        for timer in (self.timer, self.writing):
            if timer is not None:
                timer.cancel()
        self.transport = None

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = at
        self.timer = asyncio.get_running_loop().call_at(at, self._check)

    def deadline(self) -> float:
        """When this connection is closed if nothing more happens."""
        if self.buf:  # a message has begun: all of it within the read timeout
            return self.partial + self.read
        if self.served == 0:
            return self.last + self.read
        return self.last + self.listener.idle_timeout(self.limits.idle)

    def _check(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        now = asyncio.get_running_loop().time()
        if self.inflight and not self.buf:  # answers pending: not idle
            self._arm(now + self.listener.idle_timeout(self.limits.idle))
            return
        at = self.deadline()
        if now >= at:
            self.close()
        else:
            self._arm(at)

    def _done(self) -> bool:
        """Whether the connection has served its `max_queries` (then it takes no more)."""
        limit = self.limits.max_queries
        return limit is not None and limit >= 0 and self.served >= limit

    def _write(self, wire: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(len(wire).to_bytes(2, "big") + wire)
        for w in wire.rest if isinstance(wire, Stream) else ():  # a zone transfer
            t.write(len(w).to_bytes(2, "big") + w)
        if self.writing is None and t.get_write_buffer_size():
            loop = asyncio.get_running_loop()
            self.writing = loop.call_later(self.limits.write or 0.0, self._write_timeout)

    def _write_timeout(self) -> None:
        self.writing = None
        if self.transport is not None and self.transport.get_write_buffer_size():
            self.transport.abort()  # the client does not read its answers

    def data_received(self, data: bytes) -> None:
        if self._done():
            return  # past max_queries: the connection closes once its answers are out
        now = asyncio.get_running_loop().time()
        had = bool(self.buf)
        self.buf += data
        got = 0
        while len(self.buf) >= 2 and not self._done():
            n = int.from_bytes(self.buf[:2], "big")
            if n < 12:  # cannot hold a DNS header: garbage, drop the connection
                self.close()
                return
            if len(self.buf) < 2 + n:
                break
            msg = bytes(self.buf[2 : 2 + n])
            del self.buf[: 2 + n]
            got += 1
            self.served += 1
            fast = self.listener.router.fast
            if fast is not None and self.transport is not None and not self.transport.is_closing():
                wire = fast.answer(msg, self.peer[0], "tcp")
                if wire is not None:
                    self.transport.write(len(wire).to_bytes(2, "big") + wire)
                    continue
            self.inflight += 1
            self.listener.spawn(self._answer(msg))
        if self.inflight >= TCP_MAX_INFLIGHT and self.transport is not None:
            self.transport.pause_reading()
        if got:
            self._active(now)
        if self._done():
            self.buf.clear()
            if self.inflight == 0:
                self.close()
            return
        if self.buf and (got or not had):  # a new message began
            self.partial = now
            if self.partial + self.read < self.timer_at:
                self._arm(self.partial + self.read)

    def _active(self, now: float) -> None:
        self.last = now
        conns = self.listener.conns
        if self in conns:
            conns.move_to_end(self)  # the front is idle the longest

    async def _answer(self, data: bytes) -> None:
        try:
            wire = await self.listener.router.handle(data, self.peer, self.listener.local, "tcp")
        finally:
            self.inflight -= 1
            if self.transport is not None and self.inflight < TCP_MAX_INFLIGHT:
                self.transport.resume_reading()
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self._write(wire)
            self._active(asyncio.get_running_loop().time())
        if self.inflight == 0 and self._done():
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.listener.conns.pop(self, None)
        if self.transport is not None:
            self.transport.abort()


class Listener:
    """The UDP socket and TCP server of one ListenAddr."""

    def __init__(self, addr: ListenAddr, router: Router, reuseport: bool = False) -> None:
        self.addr = addr
        self.router = router
        self.reuseport = reuseport  # for the UDP socket: worker processes share the address
        self.local: tuple[str, int] = (addr.host, addr.port)
        #: Open TCP connections, the one idle the longest first.
        self.conns: OrderedDict[_Tcp, None] = OrderedDict()
        self.tasks: set[asyncio.Task[None]] = set()
        #: UDP queries in the chain, oldest first (bounded: clusterdns.server.backlog).
        self.udp_tasks: OrderedDict[asyncio.Task[None], None] = OrderedDict()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._zones: dict[str, Block] | None = None  # the zones `_shedders` was found for
        self._shedders: list[backlog.Shedder] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self.limits = backlog.DEFAULT
        if router.pacer is not None:
            router.pacer.sheddable = self.udp_tasks.__contains__

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ---- UDP backlog ---------------------------------------------------------------------

    def _configure(self) -> None:
        """Find the shed plugins of the current zones (they change on reload) and their Limits."""
        zones = self.router.zones
        if zones is self._zones:
            return
        self._zones = zones
        found: list[backlog.Shedder] = []
        for block in zones.values():
            for p in block.plugins:
                if isinstance(p, backlog.Shedder) and p not in found:
                    found.append(p)
        self._shedders = found
        for s in found:
            s.attach(self.addr.label)
        self.limits = found[0].backlog_limits if found else backlog.DEFAULT
        if self.router.pacer is not None:
            self.router.pacer.limits = self.limits

    def send_udp(self, wire: bytes, addr: tuple[str, int]) -> None:
        """Send from this address's own UDP socket (a worker's is bound beside it, so the client
        cannot tell which process answered)."""
        t = self._udp
        if t is not None and not t.is_closing():
            t.sendto(wire, addr)

    def chain_udp(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a UDP query through the chain; beyond the bound the oldest one is cancelled."""
        self._configure()
        tasks = self.udp_tasks
        while len(tasks) >= self.limits.inflight:
            old = tasks.popitem(last=False)[0]
            old.cancel()
            self.dropped("cancelled")
        task = asyncio.get_running_loop().create_task(coro)
        tasks[task] = None
        task.add_done_callback(self._udp_done)

    def _udp_done(self, task: asyncio.Task[None]) -> None:
        self.udp_tasks.pop(task, None)

    def dropped(self, reason: str) -> None:
        backlog.DROPPED.labels(self.addr.label, reason).inc()
        for s in self._shedders:
            s.dropped(self.addr.label, reason)

    # ---- TCP connection pressure ---------------------------------------------------------

    def idle_timeout(self, base: float | None = TCP_IDLE_TIMEOUT) -> float:
        """The idle timeout `base`, shrinking to TCP_MIN_IDLE as connections go from half the
        bound to the bound (RFC 7766 §6.2.3: under pressure, close idle connections sooner)."""
        idle = TCP_IDLE_TIMEOUT if base is None else base
        n, half = len(self.conns), TCP_MAX_CONNECTIONS / 2
        if n <= half:
            return idle
        share = min(1.0, (n - half) / half)
        return min(idle, max(TCP_MIN_IDLE, idle - share * (idle - TCP_MIN_IDLE)))

    def tcp_timeouts(self) -> TcpTimeouts:
        """The defaults, with what the blocks served here set (the last one setting a value
        wins, as CoreDNS merges its server blocks' configs)."""
        out = DEFAULT_TIMEOUTS
        seen: set[int] = set()
        for block in self.router.zones.values():
            if id(block) in seen:
                continue
            seen.add(id(block))
            # A plugin that sets TCP limits (timeouts) says so with a `tcp_timeouts` attribute.
            for t in (getattr(p, "tcp_timeouts", None) for p in block.plugins):
                if isinstance(t, TcpTimeouts):
                    given = {f.name: getattr(t, f.name) for f in fields(t)}
                    out = replace(out, **{k: v for k, v in given.items() if v is not None})
        return out

    def pressure(self) -> None:
        """Past half the bound, sweep every second for connections idle past the (now shorter)
        idle timeout: their own timers were set when it was longer."""
        if self._sweeper is None and len(self.conns) > TCP_MAX_CONNECTIONS / 2:
            self._sweeper = asyncio.get_running_loop().call_later(1.0, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        idle = self.idle_timeout()
        stale: list[_Tcp] = []
        for c in self.conns:  # the one idle the longest first
            if c.last + idle > now:
                break
            if c.inflight == 0 and not c.buf and c.served:
                stale.append(c)
        for c in stale:
            c.abort()
        self.pressure()

    def make_room(self) -> bool:
        """Close the connection idle the longest (no query of it in the chain); False if
        every connection has one."""
        for c in self.conns:
            if c.inflight == 0:
                c.abort()
                return True
        return False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tsock = _socket(self.addr.host, self.addr.port, socket.SOCK_STREAM)
        port = tsock.getsockname()[1]
        try:
            usock = _socket(self.addr.host, port, socket.SOCK_DGRAM, self.reuseport)
        except OSError:
            tsock.close()
            raise
        self.local = (tsock.getsockname()[0], port)
        self._tcp = await loop.create_server(lambda: _Tcp(self), sock=tsock, backlog=512)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=usock)
        self._configure()

    async def stop(self) -> None:
        """Stop accepting, let queries in flight finish briefly, then close connections."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        pending = [*self.tasks, *self.udp_tasks]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for c in list(self.conns):
            c.close()
        if self._tcp is not None:
            await self._tcp.wait_closed()
