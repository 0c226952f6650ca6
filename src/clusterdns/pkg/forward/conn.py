"""One connection to an upstream (a connected UDP socket, a TCP or a TLS stream) and a
matched exchange over it.

A reply is accepted only when its ID is the one we sent and its question is ours (name
compared case-insensitively, type and class exactly): anything else that arrives on the
socket - a late answer to an earlier query, a forged datagram - is dropped and we keep
reading until the right reply comes or the read deadline passes. Error texts follow Go's
net package, so logs read like CoreDNS's (`read udp 127.0.0.1:40000->127.0.0.1:53: i/o
timeout`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import ssl
import struct
import time
from collections import deque

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.pkg.forward.relay import REPLIES

#: Replies without a question are accepted for these rcodes (as dnspython's is_response does);
#: forward then answers FORMERR because the reply does not match the request (CoreDNS).
_BARE_RCODES = frozenset(
    {dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED}
)
_QUEUE_MAX = 64
#: How long an exchange waits for the reply (CoreDNS's readTimeout).
READ_TIMEOUT = 2.0


class _Ids:
    """Unpredictable query IDs (as miekg/dns's crypto-random dns.Id), read from the kernel
    in batches: `secrets.randbits` makes a system call per query."""

    def __init__(self) -> None:
        self._buf = b""
        self._at = 0

    def __call__(self) -> bytes:
        at = self._at
        if at >= len(self._buf):
            self._buf = secrets.token_bytes(ID_BATCH)
            at = 0
        self._at = at + 2
        return self._buf[at : at + 2]


ID_BATCH = 2048
random_id = _Ids()


class UpstreamError(Exception):
    """The exchange with an upstream failed (dial, write, read, timeout)."""


class UpstreamEOF(UpstreamError):
    """The upstream closed the stream before answering."""


class CachedClosed(UpstreamError):
    """A pooled stream was closed by the upstream; retry on a fresh connection."""

    def __init__(self) -> None:
        super().__init__("cached connection was closed by peer")


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _strerror(e: OSError) -> str:
    if e.errno is not None:
        return os.strerror(e.errno).lower()
    return str(e) or type(e).__name__


def dial_error(net: str, addr: str, e: BaseException) -> UpstreamError:
    if isinstance(e, TimeoutError):
        return UpstreamError(f"dial {net} {addr}: i/o timeout")
    if isinstance(e, ssl.SSLError):
        return UpstreamError(f"dial {net} {addr}: tls: {e.reason or e}")
    if isinstance(e, OSError):
        return UpstreamError(f"dial {net} {addr}: connect: {_strerror(e)}")
    return UpstreamError(f"dial {net} {addr}: {e}")


class Conn:
    """Base of the two connection kinds: what the pool and the exchange need."""

    net = ""  # "udp", "tcp" or "tcp-tls"

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self.local = ("", 0)
        self.used = time.monotonic()
        self.closed = False

    @property
    def label(self) -> str:
        return (
            f"{'tcp' if self.net == 'tcp-tls' else self.net} {hostport(*self.local)}->{self.remote}"
        )

    async def send(self, wire: bytes) -> None:
        raise NotImplementedError

    async def recv(self, deadline: float) -> bytes:
        """The next message; TimeoutError at `deadline` (the event loop's clock)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Datagrams(asyncio.DatagramProtocol):
    """Feeds received datagrams and socket errors (ICMP unreachable) to one waiting reader.

    A deque and one waiter future rather than an asyncio.Queue: a pooled socket has at most
    one exchange reading it, and this is on every forwarded query's path.
    """

    def __init__(self) -> None:
        self.items: deque[bytes | Exception] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def _put(self, item: bytes | Exception) -> None:
        if len(self.items) >= _QUEUE_MAX:
            return  # a flood: drop, the reader times out
        self.items.append(item)
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._put(data)

    def error_received(self, exc: Exception) -> None:
        self._put(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._put(exc or ConnectionError(errno.EPIPE, "use of closed network connection"))


class UDPConn(Conn):
    """A connected UDP socket: the kernel picks a random source port and drops datagrams that
    do not come from the upstream's address."""

    net = "udp"

    def __init__(self, remote: str, transport: asyncio.DatagramTransport, proto: _Datagrams):
        super().__init__(remote)
        self._transport = transport
        self._proto = proto
        sock = transport.get_extra_info("sockname")
        if sock:
            self.local = (sock[0], sock[1])

    @classmethod
    async def open(cls, host: str, port: int) -> UDPConn:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(host, port))
        return cls(hostport(host, port), transport, proto)

    async def send(self, wire: bytes) -> None:
        # Drop whatever arrived since the last exchange: it cannot be an answer to this query.
        self._proto.items.clear()
        self._transport.sendto(wire)

    async def recv(self, deadline: float) -> bytes:
        proto = self._proto
        items = proto.items
        if not items:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            proto.waiter = fut
            timer = loop.call_at(deadline, _expire, fut)
            try:
                await fut
            finally:
                timer.cancel()
                proto.waiter = None
            if not items:
                raise TimeoutError
        item = items.popleft()
        if isinstance(item, Exception):
            self.closed = True
            if isinstance(item, OSError):
                raise UpstreamError(f"read {self.label}: read: {_strerror(item)}")
            raise UpstreamError(f"read {self.label}: {item}")
        return item

    def close(self) -> None:
        self.closed = True
        self._transport.abort()


class StreamConn(Conn):
    """A TCP or TLS connection carrying length-prefixed messages (RFC 1035 4.2.2, RFC 7858)."""

    def __init__(
        self, remote: str, net: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(remote)
        self.net = net
        self._reader = reader
        self._writer = writer
        sock = writer.get_extra_info("sockname")
        if sock:
            self.local = (sock[0], sock[1])

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> StreamConn:
        if tls is None:
            reader, writer = await asyncio.open_connection(host, port)
            return cls(hostport(host, port), "tcp", reader, writer)
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=server_hostname or host
        )
        return cls(hostport(host, port), "tcp-tls", reader, writer)

    async def send(self, wire: bytes) -> None:
        try:
            self._writer.write(struct.pack("!H", len(wire)) + wire)
            await self._writer.drain()
        except OSError as e:
            self.closed = True
            if isinstance(e, (BrokenPipeError, ConnectionResetError)):
                raise UpstreamEOF(f"write {self.label}: {_strerror(e)}") from None
            raise UpstreamError(f"write {self.label}: {_strerror(e)}") from None

    async def recv(self, deadline: float) -> bytes:
        try:
            async with asyncio.timeout_at(deadline):
                head = await self._reader.readexactly(2)
                return await self._reader.readexactly(struct.unpack("!H", head)[0])
        except asyncio.IncompleteReadError:
            self.closed = True
            raise UpstreamEOF(f"read {self.label}: EOF") from None
        except OSError as e:
            self.closed = True
            raise UpstreamError(f"read {self.label}: read: {_strerror(e)}") from None

    def close(self) -> None:
        self.closed = True
        self._writer.close()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)  # the reader finds nothing and raises TimeoutError


def rcode_of(msg: dns.message.Message) -> int:
    """`int(msg.rcode())` without dnspython's enum conversions (on every query's path)."""
    opt = msg.opt
    return (int(msg.flags) & 0xF) | (((opt.ttl if opt else 0) >> 20) & 0xFF0)


def answers(msg: dns.message.Message, question: tuple[dns.name.Name, int, int]) -> bool:
    """Whether `msg` is a response to a query with this question (ID checked by the caller)."""
    flags = int(msg.flags)
    if not flags & dns.flags.QR or (flags >> 11) & 0xF != dns.opcode.QUERY:
        return False
    if not msg.question:
        return rcode_of(msg) in _BARE_RCODES
    if len(msg.question) != 1:
        return False
    q = msg.question[0]
    return q.name == question[0] and q.rdtype == question[1] and q.rdclass == question[2]


def _truncated_stub(data: bytes, question: tuple[dns.name.Name, int, int]) -> dns.message.Message:
    """An empty TC reply for an upstream message that was cut mid-record (as CoreDNS does when
    the upstream sets TC but sends more than fits): the caller retries over TCP."""
    flags = struct.unpack("!H", data[2:4])[0]
    m = dns.message.Message(id=struct.unpack("!H", data[:2])[0])
    m.flags = flags & ~0xF
    m.set_rcode(flags & 0xF)
    m.question = [
        dns.rrset.RRset(
            question[0],
            dns.rdataclass.RdataClass(question[2]),
            dns.rdatatype.RdataType(question[1]),
        )
    ]
    return m


async def exchange(
    conn: Conn,
    wire: bytes,
    question: tuple[dns.name.Name, int, int],
    timeout: float,
) -> dns.message.Message:
    """Send `wire` (ID already set) and return the first reply that matches it.

    Raises UpstreamError on any failure; a stream that hit EOF before any reply is marked
    closed so the caller can tell a stale pooled connection (CachedClosed) from a real error.
    """
    qid = wire[:2]
    await conn.send(wire)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            data = await conn.recv(deadline)
            if len(data) < 12 or data[:2] != qid:
                continue  # not ours: someone else's, late, or forged
            msg = REPLIES.parse(data)
            if msg is None:
                if struct.unpack("!H", data[2:4])[0] & dns.flags.TC:
                    return _truncated_stub(data, question)
                continue
            if answers(msg, question):
                return msg
    except TimeoutError:
        conn.closed = True
        raise UpstreamError(f"read {conn.label}: i/o timeout") from None
