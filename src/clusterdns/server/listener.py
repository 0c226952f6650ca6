"""UDP and TCP listeners for one address; both hand bytes to the address's Router.

TCP follows RFC 7766: two-byte length framing, pipelined queries answered as they complete,
CoreDNS's read, idle and write timeouts and query limit (set by a plugin's `tcp_timeouts`), and a
bound on open connections.

A query the router's fast path knows is answered right in the protocol callback, with no task:
only the others go through the chain (see clusterdns.server.fastpath). With worker processes,
the UDP socket is bound with SO_REUSEPORT so that theirs can join it (clusterdns.server.workers).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, fields, replace
from typing import Any, cast

from clusterdns.config import ListenAddr
from clusterdns.server.dispatch import Router
from clusterdns.server.wire import Stream

log = logging.getLogger("clusterdns.server")

TCP_MAX_CONNECTIONS = 1024
TCP_MAX_INFLIGHT = 64  # queries one TCP connection may have in flight


@dataclass(frozen=True, slots=True)
class TcpTimeouts:
    """A TCP connection's limits; a plugin's `tcp_timeouts` sets them (None: keep the default).

    As CoreDNS's server (over miekg/dns): the first query must arrive within `read`, later ones
    within `idle` of the previous; an answer not taken by the client within `write` closes the
    connection, and so does the `max_queries`-th query once answered (-1: no limit).
    """

    read: float | None = None
    write: float | None = None
    idle: float | None = None
    max_queries: int | None = None


#: CoreDNS's defaults (core/dnsserver/server.go), not miekg/dns's.
DEFAULT_TIMEOUTS = TcpTimeouts(read=3.0, write=5.0, idle=10.0, max_queries=-1)


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
        self.listener.spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        wire = await self.listener.router.handle(data, addr, self.listener.local, "udp")
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class _Tcp(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.inflight = 0
        self.idle: asyncio.TimerHandle | None = None
        self.writing: asyncio.TimerHandle | None = None
        self.limits = DEFAULT_TIMEOUTS
        self.queries = 0  # read on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if peer else ("", 0)
        if len(self.listener.conns) >= TCP_MAX_CONNECTIONS:
            log.warning("too many TCP connections, closing one from %s", self.peer[0])
            self.transport.abort()
            return
        self.listener.conns.add(self)
        self.limits = self.listener.tcp_timeouts()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.conns.discard(self)
        for timer in (self.idle, self.writing):
            if timer is not None:
                timer.cancel()
        self.transport = None

    def _arm(self) -> None:
        """The first query gets the read timeout, the ones after it the idle timeout."""
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        wait = self.limits.idle if self.queries else self.limits.read
        self.idle = loop.call_later(wait or 0.0, self._timeout)

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

    def _done(self) -> bool:
        """Whether the connection has served its `max_queries` (then it takes no more)."""
        limit = self.limits.max_queries
        return limit is not None and limit >= 0 and self.queries >= limit

    def _timeout(self) -> None:
        if self.transport is not None and self.inflight == 0:
            self.transport.close()
        elif self.transport is not None:
            self._arm()

    def data_received(self, data: bytes) -> None:
        if self._done():
            return  # past maxtcpqueries: the connection closes once its answers are out
        self.buf += data
        while len(self.buf) >= 2 and not self._done():
            n = int.from_bytes(self.buf[:2], "big")
            if n < 12:  # cannot hold a DNS header: garbage, drop the connection
                self.close()
                return
            if len(self.buf) < 2 + n:
                break
            msg = bytes(self.buf[2 : 2 + n])
            del self.buf[: 2 + n]
            self.queries += 1
            fast = self.listener.router.fast
            if fast is not None and self.transport is not None and not self.transport.is_closing():
                wire = fast.answer(msg, self.peer[0], "tcp")
                if wire is not None:
                    self._write(wire)
                    continue
            self.inflight += 1
            self.listener.spawn(self._answer(msg))
        if self.inflight >= TCP_MAX_INFLIGHT and self.transport is not None:
            self.transport.pause_reading()
        if self._done():
            self.buf.clear()
            if self.inflight == 0:
                self.close()
            return
        self._arm()

    async def _answer(self, data: bytes) -> None:
        try:
            wire = await self.listener.router.handle(data, self.peer, self.listener.local, "tcp")
        finally:
            self.inflight -= 1
            if self.transport is not None and self.inflight < TCP_MAX_INFLIGHT:
                self.transport.resume_reading()
        if wire is not None:
            self._write(wire)
        if self.inflight == 0 and self._done():
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Listener:
    """The UDP socket and TCP server of one ListenAddr."""

    def __init__(self, addr: ListenAddr, router: Router, reuseport: bool = False) -> None:
        self.addr = addr
        self.router = router
        self.reuseport = reuseport  # for the UDP socket: worker processes share the address
        self.local: tuple[str, int] = (addr.host, addr.port)
        self.conns: set[_Tcp] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None

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
                if not isinstance(t, TcpTimeouts):
                    continue
                given = {f.name: getattr(t, f.name) for f in fields(t)}
                out = replace(out, **{k: v for k, v in given.items() if v is not None})
        return out

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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

    async def stop(self) -> None:
        """Stop accepting, let queries in flight finish briefly, then close connections."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2.0)
        for c in list(self.conns):
            c.close()
        if self._tcp is not None:
            await self._tcp.wait_closed()
