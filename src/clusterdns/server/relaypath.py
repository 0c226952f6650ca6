"""The relay: UDP queries that can only be forwarded go out and back as bytes, no chain.

Forwarding without a cache ran the whole chain and dnspython for every query. Yet for a name
outside every zone with data (kubeadm's Corefile: a name outside cluster.local and the reverse
zones), every plugin before `forward` passes the query on untouched and every plugin after it
returns the upstream's reply as it is. So, for a query the fast path does not know:

* the header and question are read from the bytes (fastwire.query_key: one question, at most
  an OPT without options, version 0), the block is routed as the Router routes (a block with
  filters is not relayed), and each plugin of the block is asked, in chain order, whether it
  would pass the question on (`Plugin.relay_pass`, which also names the after-write hooks it
  would add: prometheus's) until one offers a target (`Plugin.relay_target`: forward). Any
  plugin that says no, or none offering a target, and the chain serves the query as before;
* the target sends the query and calls `Job.reply` with the upstream's bytes, or
  `Job.handoff` when the chain must go on from where it is (an error, TC, a failover rcode);
* a reply is relayed only when the chain would write exactly those bytes: every plugin that
  passed the query keeps such a reply (`Plugin.relay_keeps`: loadbalance with one address),
  it is no bigger than the client takes, and it is one whose dnspython rendering is known to be
  its own bytes (answers of A/AAAA records named by a pointer to the question, nothing else but
  an OPT without options, last) — then only the OPT is rewritten as the server's finish would
  (the client's UDP size, the DO bit) and the ID put back. Any other reply goes to the chain
  with what the target already did (Request.relayed), which parses and finishes it as always.

Per-query metrics of the hooks (coredns_dns_*) are batched per metrics description as the fast
path's are (fastmetrics.Bucketed) and folded in by the same flush. Only the main process relays
(it holds the upstream sockets): queries that worker processes pass on to it are relayed too,
their answers sent from the main process's own socket beside the worker's.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Protocol

import dns.rdatatype
from prometheus_client import Counter

from clusterdns import metrics
from clusterdns.plugin import RelayQuestion, ReplayableHook, WireRecords
from clusterdns.server.fastmetrics import relayed_for
from clusterdns.server.fastwire import query_key
from clusterdns.zones import along

if TYPE_CHECKING:
    from clusterdns.config import Block
    from clusterdns.plugin import Plugin
    from clusterdns.server.dispatch import Router

_A, _AAAA, _OPT, _DS = 1, 28, 41, 43

HANDOFFS = Counter(
    "handoffs_total",
    "Queries the relay took, then handed to the plugin chain to finish, per server.",
    ["server"],
    namespace="clusterdns",
    subsystem="relay",
)
#: Bytes a relayed name may hold (its text is then its bytes: nothing to escape).
_PLAIN = bytes(range(256)).translate(None, b"abcdefghijklmnopqrstuvwxyz0123456789-_.")


def enabled() -> bool:
    """CLUSTERDNS_RELAY=off (or 0/false/no) leaves forwarded queries to the chain."""
    return os.environ.get("CLUSTERDNS_RELAY", "on").lower() not in ("0", "off", "false", "no")


def _text(lname: bytes) -> str | None:
    """The text of a lower-cased wire name of plain labels (Request.qname), else None. The
    name's labels were checked by query_key: only their bytes are looked at here."""
    if lname == b"\x00":
        return "."
    b = bytearray(lname)
    i = dots = 0
    n = b[0]
    while n:
        b[i] = 0x2E  # the length byte becomes the dot before the label
        dots += 1
        i += n + 1
        n = b[i]
    b[i] = 0x2E  # the root label: the final dot
    if b.translate(None, _PLAIN) != b or b.count(0x2E) != dots + 1:
        return None  # a byte to escape, or a dot inside a label
    return b[1:].decode("ascii")


class Client(Protocol):
    """Where a relayed query came from and its answer goes: a listener's UDP socket, or a
    worker process that passed the query on (clusterdns.server.workers)."""

    def relay_send(self, wire: bytes, addr: tuple[str, int]) -> None:
        """Write the answer to the client."""

    def relay_handoff(self, data: bytes, addr: tuple[str, int], primed: Any, start: float) -> None:
        """Answer the query through the chain (Router.relayed), bounded as its other queries."""


class Job:
    """One relayed query: who asked, what, and what its answer must be reported as."""

    __slots__ = (
        "addr", "client", "data", "hooks", "limit", "nend", "passers", "path", "q", "start",
        "target",
    )  # fmt: skip

    def __init__(
        self,
        path: RelayPath,
        client: Client,
        data: bytes,
        addr: tuple[str, int],
        nend: int,
        q: RelayQuestion,
        hooks: tuple[ReplayableHook, ...],
        passers: tuple[Plugin, ...],
        target: str,
        start: float,
    ) -> None:
        self.path = path
        self.client = client
        self.data = data
        self.addr = addr
        self.nend = nend
        self.q = q
        self.hooks = hooks
        self.passers = passers
        self.target = target  # the name of the plugin answering (the `plugin` label)
        self.start = start
        self.limit = q.payload if q.payload > 512 else 512

    def handoff(self, primed: Any) -> None:
        self.path.handoffs.inc()
        self.client.relay_handoff(self.data, self.addr, primed, self.start)

    def reply(self, wire: bytes, recs: WireRecords, rcode: int) -> bool:
        out = self.finished(wire, recs, rcode)
        if out is None:
            return False
        self.client.relay_send(out, self.addr)
        self.path.count(self, rcode, len(out), time.perf_counter() - self.start)
        return True

    def finished(self, wire: bytes, recs: WireRecords, rcode: int) -> bytes | None:
        """The bytes the chain would write for this reply, if they are the reply's own."""
        q = self.q
        opt = -1
        answer: list[int] = []
        last = len(recs) - 1
        for i, (section, start, ttl, end, rtype) in enumerate(recs):
            if rtype == _OPT:
                if i != last or section != 3 or wire[start] != 0 or end != ttl + 6:
                    return None
                opt = ttl
                continue
            if (
                section != 1
                or wire[start : start + 2] != b"\xc0\x0c"
                or wire[ttl - 2 : ttl] != b"\x00\x01"  # class IN
                or wire[ttl] & 0x80  # dnspython reads such a TTL as 0
                or end - ttl - 6 != (4 if rtype == _A else 16 if rtype == _AAAA else -1)
            ):
                return None
            answer.append(rtype)
        if rcode > 15 or (opt >= 0 and wire[opt]):
            return None  # extended rcodes: the chain spells them
        types = (tuple(answer), (), ())
        for p in self.passers:
            if not p.relay_keeps(q, rcode, types):
                return None
        data = self.data
        if not q.edns:
            if opt >= 0:
                return None
            out = bytearray(wire)
        else:
            do = 0x80 if q.do or (opt >= 0 and wire[opt + 2] & 0x80) else 0
            if opt >= 0:
                out = bytearray(wire)
                out[opt - 2 : opt + 4] = self.limit.to_bytes(2, "big") + bytes((0, 0, do, 0))
            else:
                out = bytearray(wire)
                arcount = int.from_bytes(wire[10:12], "big") + 1
                out[10:12] = arcount.to_bytes(2, "big")
                out += b"\x00\x00\x29" + self.limit.to_bytes(2, "big") + bytes((0, 0, do, 0, 0, 0))
        if len(out) > self.limit:
            return None  # the chain truncates it
        out[0:2] = data[0:2]
        return bytes(out)


class RelayPath:
    """One listening address's relay (its Router's zones, its metrics label)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.server = router.label
        self._mkeys: dict[tuple[Any, ...], Any] = {}
        self.handoffs = HANDOFFS.labels(self.server)

    def udp(self, data: bytes, addr: tuple[str, int], client: Client) -> bool:
        """Relay the UDP query `data` if it can only be forwarded; False: the chain serves it."""
        k = query_key(data)
        if k is None:
            return False
        key, nend = k
        qtype = (data[nend] << 8) | data[nend + 1]
        if data[nend + 2 : nend + 4] != b"\x00\x01":
            return False  # class IN only (the others may be refused by the server itself)
        edns = len(data) > nend + 4
        if edns:
            if data[nend + 10]:
                return False  # EDNS version past 0: BADVERS from the server
            payload = (data[nend + 7] << 8) | data[nend + 8]
            do = bool(data[nend + 11] & 0x80)
        else:
            payload, do = 512, False
        name = _text(key[10 : 10 + nend - 12])
        if name is None:
            return False
        block = self._route(name, qtype)
        if block is None:
            return False
        q = RelayQuestion(name, qtype, 1, edns, do, payload)
        hooks: list[ReplayableHook] = []
        passers: list[Plugin] = []
        for p in block.plugins:
            if not p.handler:
                continue
            target = p.relay_target(q)
            if target is not None:
                job = Job(
                    self, client, data, addr, nend, q, tuple(hooks), tuple(passers), p.name,
                    time.perf_counter(),
                )  # fmt: skip
                return target.relay(job)
            h = p.relay_pass(q)
            if h is None:
                return False
            hooks.extend(h)
            passers.append(p)
        return False

    def _route(self, qname: str, qtype: int) -> Block | None:
        """Router.route's block for the name, or None (also for a block with filters)."""
        ds: Block | None = None
        for _, b in along(self.router.zones, qname):
            if b.filters or b.members is not None:
                return None
            if qtype != _DS:
                return b
            ds = b
        return ds

    def count(self, job: Job, rcode: int, size: int, duration: float) -> None:
        """The per-query metrics the job's hooks would have reported, batched."""
        q = job.q
        k = (job.hooks, q.qtype, rcode, size, len(job.data), q.do)
        mkey = self._mkeys.get(k)
        if mkey is None:
            if len(self._mkeys) >= 10_000:
                self._mkeys.clear()
            qtype = metrics.type_label(_type_text(q.qtype))
            rc = metrics.rcode_label(rcode)
            reports = tuple(
                (self.server, h.replay_zone, qtype, "udp", rc,
                 job.target if h.replay_plugin else "", size, len(job.data), q.do)
                for h in job.hooks
            )  # fmt: skip
            mkey = self._mkeys[k] = (self.server, "udp", reports, ())
        ip = job.addr[0]
        v6 = ":" in ip and not (ip.startswith("::ffff:") and "." in ip)
        relayed_for(mkey).add(v6, duration)


def _type_text(qtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
