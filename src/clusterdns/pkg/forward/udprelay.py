"""forward's side of the relay (clusterdns.server.relaypath): queries as bytes over one
connected UDP socket per upstream, many in flight, told apart by a fresh random ID each.

`StanzaRelay.relay` does what forward's `_serve_stanza` and `_forward` do before their first
exchange (max_concurrent, the policy's order, the first upstream's health) and sends the
client's bytes with a new ID; the reply is matched by that ID. What `exchange` would accept and
the forward loop would return at once (no TC, not a failover or `next` rcode) goes back to the
server as bytes (`Job.reply`), which writes it if it can do so exactly as the chain would.
Everything else is parsed as exchange parses it and handed to the chain with a `Primed`: the order
taken, and what the first exchange gave (a parsed reply, as exchange returns it, or its error),
so forward goes on from there (TCP after TC, the next upstream, health checks, SERVFAIL when
all fail) exactly as if it had sent the query itself. Replies that exchange would ignore (not
parsing, another question) are ignored here too, until the read timeout.

Bounded: at most MAX_INFLIGHT queries per upstream socket; past that (or with the socket not
open) the query is handed to the chain before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.flags
import dns.message
import dns.name

from clusterdns.pkg.forward.conn import (
    READ_TIMEOUT,
    UpstreamError,
    _strerror,
    _truncated_stub,
    answers,
    hostport,
    random_id,
    rcode_of,
)
from clusterdns.pkg.forward.relay import REPLIES
from clusterdns.server.fastwire import walk

if TYPE_CHECKING:
    from clusterdns.pkg.forward.proxy import Upstream
    from clusterdns.pkg.forward.setup import Stanza
    from clusterdns.plugin import RelayJob

#: Relayed queries in flight per upstream socket (as the UDP backlog's bound).
MAX_INFLIGHT = 1024
SWEEP_EVERY = 0.1  # seconds between checks for replies past the read timeout


@dataclass(slots=True, eq=False)
class Primed:
    """What the relay did for a query it hands to the chain (Request.relayed)."""

    owner: object  # the Forward plugin that offered the relay
    stanza: Stanza
    ups: list[Upstream]  # the policy's order, taken once
    #: The first upstream and what exchanging with it gave; None if nothing was sent.
    outcome: tuple[Upstream, dns.message.Message | UpstreamError] | None
    started: float  # time.monotonic() when the query came in (forward's deadline)


class _Sent:
    __slots__ = ("deadline", "job", "mono", "qid", "relay", "t0", "ups")

    def __init__(
        self, relay: StanzaRelay, job: RelayJob, ups: list[Upstream], qid: bytes, mono: float
    ) -> None:
        self.relay = relay
        self.job = job
        self.ups = ups
        self.qid = qid
        self.mono = mono
        self.t0 = time.perf_counter()
        self.deadline = 0.0


class RelaySocket(asyncio.DatagramProtocol):
    """One upstream's connected UDP socket for relayed queries."""

    def __init__(self, up: Upstream) -> None:
        self.up = up
        self.pending: dict[bytes, _Sent] = {}
        self.order: deque[_Sent] = deque()
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.label = ""
        self.used = False
        self.last = 0.0  # time.monotonic() of the last query sent or reply taken
        self._timer: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.up.host, self.up.port))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("sockname")
        if sock:
            self.local = (sock[0], sock[1])
        self.label = f"udp {hostport(*self.local)}->{self.up.addr}"

    def usable(self) -> bool:
        t = self.transport
        return t is not None and not t.is_closing() and len(self.pending) < MAX_INFLIGHT

    def send(self, sent: _Sent, data: bytes) -> None:
        pending = self.pending
        qid = random_id()
        while qid in pending:
            qid = random_id()
        sent.qid = qid
        pending[qid] = sent
        loop = asyncio.get_running_loop()
        sent.deadline = loop.time() + READ_TIMEOUT
        self.order.append(sent)
        if self._timer is None:
            self._timer = loop.call_later(SWEEP_EVERY, self._sweep)
        assert self.transport is not None
        self.transport.sendto(qid + data[2:])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sent = self.pending.pop(data[:2], None)
        if sent is None or len(data) < 12:
            if sent is not None:
                self.pending[sent.qid] = sent  # a runt: exchange keeps reading
            return
        self.last = time.monotonic()
        sent.relay.received(self, sent, data)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error on the socket: every query in flight on it fails with it, as each
        one's own socket would have told it (exchange's `read udp …: read: …`)."""
        text = f"read {self.label}: read: {_strerror(exc) if isinstance(exc, OSError) else exc}"
        self._fail_all(text)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(f"read {self.label}: use of closed network connection")
        self.transport = None

    def _fail_all(self, text: str) -> None:
        pending = list(self.pending.values())
        self.pending.clear()
        for sent in pending:
            sent.relay.failed(self, sent, UpstreamError(text))

    def _sweep(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        order, pending = self.order, self.pending
        while order and order[0].deadline <= now:
            sent = order.popleft()
            if pending.get(sent.qid) is sent:
                del pending[sent.qid]
                sent.relay.failed(self, sent, UpstreamError(f"read {self.label}: i/o timeout"))
        while order and pending.get(order[0].qid) is not order[0]:
            order.popleft()  # answered already
        if order:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_EVERY, self._sweep)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.abort()


class StanzaRelay:
    """A forward stanza as a relay target (clusterdns.plugin.RelayTarget)."""

    def __init__(self, owner: object, st: Stanza, has_next: bool) -> None:
        self.owner = owner
        self.st = st
        self.has_next = has_next
        self.many = len(st.upstreams) > 1

    def relay(self, job: RelayJob) -> bool:
        st = self.st
        if st.max_concurrent and st.inflight >= st.max_concurrent:
            return False  # the chain refuses it, counted and logged as always
        mono = time.monotonic()
        ups = st.policy.order(st.upstreams)
        up = ups[0]
        sock = up.relay_socket
        if up.down(st.max_fails) or sock is None or not sock.usable():
            job.handoff(Primed(self.owner, st, ups, None, mono))
            return True
        if st.max_concurrent:
            st.inflight += 1
        # As the pool counts: the first query dials, and so does one after `expire` idle.
        up.count_conn(sock.used and mono - sock.last < up.expire, "udp")
        sock.used = True
        sock.last = mono
        sock.send(_Sent(self, job, ups, b"", mono), job.data)
        return True

    def _done(self) -> None:
        if self.st.max_concurrent:
            self.st.inflight -= 1

    def failed(self, sock: RelaySocket, sent: _Sent, err: UpstreamError) -> None:
        self._done()
        sent.job.handoff(Primed(self.owner, self.st, sent.ups, (sock.up, err), sent.mono))

    def received(self, sock: RelaySocket, sent: _Sent, data: bytes) -> None:
        """A reply with the ID sent: relayed, handed to the chain, or ignored (as exchange)."""
        job = sent.job
        q = job.data
        nend = job.nend
        st = self.st
        up = sock.up
        # A response to a QUERY, not truncated, with our question as we sent it.
        head_ok = data[2] & 0xFA == 0x80 and data[4:6] == b"\x00\x01"
        if head_ok and data.startswith(q[12 : nend + 4], 12):
            recs = walk(data)
            if recs is not None:
                rcode = data[3] & 0xF
                for r in recs:
                    if r[4] == 41:
                        rcode |= data[r[2]] << 4
                if not (
                    (self.many and rcode in st.failover_rcodes)
                    or (self.has_next and rcode in st.next_rcodes)
                ) and job.reply(data, recs, rcode):
                    up.observe(rcode, time.perf_counter() - sent.t0)
                    self._done()
                    return
        # As exchange: parse; ignore what does not answer the question; a cut TC reply is
        # an empty TC one.
        question = (dns.name.from_wire(q, 12)[0], (q[nend] << 8) | q[nend + 1], 1)
        msg = REPLIES.parse(data)
        if msg is None:
            if not struct.unpack("!H", data[2:4])[0] & dns.flags.TC:
                sock.pending[sent.qid] = sent  # keep waiting
                return
            msg = _truncated_stub(data, question)
        elif not answers(msg, question):
            sock.pending[sent.qid] = sent
            return
        up.observe(rcode_of(msg), time.perf_counter() - sent.t0)
        self._done()
        job.handoff(Primed(self.owner, st, sent.ups, (up, msg), sent.mono))
