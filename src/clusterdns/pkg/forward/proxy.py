"""One upstream: its connection pool, its in-band health check and one query exchange.

As CoreDNS's plugin/pkg/proxy:

* Connections are pooled per protocol (udp, tcp, tcp-tls): a query takes the most recently
  used one, and gives it back when the exchange succeeded. When the top of a stack is older
  than `expire` the whole stack is closed (they are ordered by use); a sweep every `expire`
  (at most 10s) closes idle ones too. `max_idle_conns` (0: unlimited) caps each stack.
* Every query gets a random ID; a pooled connection that the upstream closed in between is
  retried on a new one.
* The dial timeout adapts to observed dial times (between 1s and 30s, and never past the
  query's overall deadline); the read timeout is 2s.
* Health checking is in-band: after a failed exchange a probe sends `<domain> IN NS` (RD set
  unless `no_rec`) every `health_check` interval on a fresh connection until one gets any
  reply; each failed probe counts one fail, a reply resets them. The upstream is down when
  it has *more* than `max_fails` fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from prometheus_client import Counter, Histogram

from clusterdns.pkg.forward import metrics
from clusterdns.pkg.forward.conn import (
    READ_TIMEOUT,
    CachedClosed,
    Conn,
    StreamConn,
    UDPConn,
    UpstreamEOF,
    UpstreamError,
    dial_error,
    exchange,
    hostport,
    random_id,
    rcode_of,
)
from clusterdns.pkg.forward.udprelay import RelaySocket

log = logging.getLogger("clusterdns.plugins.forward")

HC_TIMEOUT = 1.0
MIN_DIAL = 1.0
MAX_DIAL = 30.0
SWEEP_MAX = 10.0
#: How many stale pooled connections one query may skip before dialing a new one.
MAX_CACHED_RETRIES = 8


@dataclass(slots=True)
class HealthOptions:
    interval: float = 0.5
    recursion_desired: bool = True
    domain: str = "."
    tcp: bool = False  # force_tcp on a plain DNS upstream: probe over TCP


def rcode_text(rcode: int) -> str:
    try:
        return dns.rcode.to_text(dns.rcode.Rcode(rcode))
    except ValueError:
        return str(rcode)


class Upstream:
    """One TO of a forward stanza (CoreDNS's proxy.Proxy)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
        proxy_name: str = "forward",
    ) -> None:
        self.host = host
        self.port = port
        self.addr = hostport(host, port)  # the `to` label
        self.tls = tls
        self.server_name = server_name
        self.proxy_name = proxy_name
        self.expire = 10.0
        self.max_idle = 0
        self.health = HealthOptions()
        self.fails = 0
        self._pool: dict[str, list[Conn]] = {}
        self._live: set[Conn] = set()
        self._avg_dial = MAX_DIAL / 2
        self._probe: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False
        self._cache_counters: dict[tuple[bool, str], Counter] = {}
        self._durations: dict[int, Histogram] = {}
        #: The socket relayed queries go out on (clusterdns.pkg.forward.udprelay).
        self.relay_socket: RelaySocket | None = None

    @property
    def transport(self) -> str:
        return "tls" if self.tls is not None else "dns"

    # ---- life cycle -------------------------------------------------------------------------

    async def start(self, relay: bool = False) -> None:
        self._stopped = False
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        if relay and self.tls is None:
            sock = RelaySocket(self)
            try:
                await sock.open()
            except OSError as e:  # the chain serves (and reports) what cannot be relayed
                log.debug("plugin/forward: no relay socket to %s: %s", self.addr, e)
            else:
                self.relay_socket = sock

    async def stop(self) -> None:
        self._stopped = True
        for t in (self._probe, self._sweeper):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        # Idle connections go now; those in use by a query still running (a reload swapped
        # configurations under it) are closed when that query gives them back.
        for stack in self._pool.values():
            for c in stack:
                self._close(c)
        self._pool.clear()
        if self.relay_socket is not None:
            self.relay_socket.close()
            self.relay_socket = None

    def local_addresses(self) -> set[tuple[str, int]]:
        """Source addresses of this upstream's open sockets (loop names the upstream by them)."""
        out = {c.local for c in self._live}
        if self.relay_socket is not None:
            out.add(self.relay_socket.local)
        return out

    # ---- pool -------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(max(self.expire, 0.1), SWEEP_MAX))
            stale = time.monotonic() - self.expire
            for net, stack in self._pool.items():
                keep = [c for c in stack if c.used > stale]
                for c in stack:
                    if c.used <= stale:
                        self._close(c)
                self._pool[net] = keep

    def _close(self, c: Conn) -> None:
        c.close()
        self._live.discard(c)

    def _take(self, net: str) -> Conn | None:
        stack = self._pool.get(net)
        if not stack:
            return None
        c = stack.pop()
        if time.monotonic() - c.used < self.expire and not c.closed:
            return c
        # The most recently used one is stale, so all below it are: drop the whole stack.
        self._close(c)
        for old in stack:
            self._close(old)
        stack.clear()
        return None

    def _yield(self, c: Conn) -> None:
        if c.closed or self._stopped:
            self._close(c)
            return
        stack = self._pool.setdefault(c.net, [])
        if self.max_idle and len(stack) >= self.max_idle:
            self._close(c)
            return
        c.used = time.monotonic()
        stack.append(c)

    def _dial_timeout(self) -> float:
        avg = self._avg_dial
        if avg < MIN_DIAL:
            return MIN_DIAL
        if avg < MAX_DIAL / 2:
            return 2 * avg
        return MAX_DIAL

    async def _open(self, net: str, cap: float | None = None) -> Conn:
        start = time.monotonic()
        timeout = self._dial_timeout() if cap is None else min(self._dial_timeout(), cap)
        try:
            async with asyncio.timeout(timeout):
                c: Conn
                if net == "udp":
                    c = await UDPConn.open(self.host, self.port)
                elif net == "tcp":
                    c = await StreamConn.open(self.host, self.port)
                else:
                    c = await StreamConn.open(self.host, self.port, self.tls, self.server_name)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise dial_error("tcp" if net == "tcp-tls" else net, self.addr, e) from None
        finally:
            self._avg_dial += (time.monotonic() - start - self._avg_dial) / 4
        self._live.add(c)
        return c

    def count_conn(self, hit: bool, net: str) -> None:
        """coredns_proxy_conn_cache_{hits,misses}_total, with the labelled child kept."""
        child = self._cache_counters.get((hit, net))
        if child is None:
            family = metrics.CONN_CACHE_HITS if hit else metrics.CONN_CACHE_MISSES
            child = self._cache_counters[hit, net] = family.labels(self.proxy_name, self.addr, net)
        child.inc()

    def observe(self, rcode: int, seconds: float) -> None:
        """coredns_proxy_request_duration_seconds, with the labelled child kept per rcode."""
        child = self._durations.get(rcode)
        if child is None:
            child = self._durations[rcode] = metrics.REQUEST_DURATION.labels(
                self.proxy_name, self.addr, rcode_text(rcode)
            )
        child.observe(seconds)

    # ---- queries ----------------------------------------------------------------------------

    async def connect(
        self,
        wire: bytes,
        question: tuple[dns.name.Name, int, int],
        proto: str,
        dial_cap: float | None = None,
    ) -> dns.message.Message:
        """One exchange of the query `wire` (its ID is replaced) over `proto` ("udp"/"tcp").

        The reply comes back with the ID the upstream used; the caller restores the client's.
        `dial_cap` bounds the dial timeout, so a black-holed TCP/TLS upstream cannot hold the
        query past forward's overall deadline (CoreDNS's 30s dial timeout could).
        """
        net = "tcp-tls" if self.tls is not None else proto
        start = time.perf_counter()
        for _ in range(MAX_CACHED_RETRIES):
            conn = self._take(net)
            cached = conn is not None
            self.count_conn(cached, net)
            if conn is None:
                conn = await self._open(net, dial_cap)
            try:
                ret = await exchange(conn, random_id() + wire[2:], question, READ_TIMEOUT)
            except UpstreamEOF as e:
                self._close(conn)
                if cached:
                    continue  # the upstream closed an idle pooled connection: dial anew
                raise UpstreamError(str(e)) from None
            except BaseException:
                self._close(conn)
                raise
            self._yield(conn)
            self.observe(rcode_of(ret), time.perf_counter() - start)
            return ret
        raise CachedClosed()

    # ---- health -----------------------------------------------------------------------------

    def down(self, max_fails: int) -> bool:
        return max_fails != 0 and self.fails > max_fails

    def healthcheck(self) -> None:
        """Start probing unless a probe is already running (one in flight at most)."""
        if self._stopped or (self._probe is not None and not self._probe.done()):
            return
        self._probe = asyncio.get_running_loop().create_task(self._probe_loop())

    async def _probe_loop(self) -> None:
        while not self._stopped:
            if await self.check():
                return
            await asyncio.sleep(max(self.health.interval, 0.01))

    async def check(self) -> bool:
        """One health probe on a fresh connection: any reply at all means healthy."""
        hc = self.health
        q = dns.message.make_query(hc.domain, dns.rdatatype.NS, use_edns=False)
        if not hc.recursion_desired:
            q.flags &= ~dns.flags.RD
        q.id = int.from_bytes(random_id(), "big")
        net = "tcp-tls" if self.tls is not None else ("tcp" if hc.tcp else "udp")
        question = (q.question[0].name, dns.rdatatype.NS, dns.rdataclass.IN)
        conn: Conn | None = None
        try:
            async with asyncio.timeout(HC_TIMEOUT):
                conn = await self._open(net)
                await exchange(conn, q.to_wire(), question, HC_TIMEOUT)
        except Exception as e:  # any failure to get a reply is a failed check
            metrics.HEALTHCHECK_FAILURES.labels(self.proxy_name, self.addr).inc()
            self.fails += 1
            log.debug("plugin/forward: health check of %s failed: %s", self.addr, e)
            return False
        finally:
            if conn is not None:
                self._close(conn)
        self.fails = 0
        return True
