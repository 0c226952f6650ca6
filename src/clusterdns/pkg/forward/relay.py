"""The costly ends of a forwarded query, done once per reply shape instead of once per query.

Profiled (forward without `cache`), a query spent most of its time in dnspython: rendering the
query for the upstream (~20 µs), parsing the reply (~60 µs) and, back in the server, rendering
the answer again (~30 µs). Upstreams send the same replies over and over (the same names asked
again; a recursive resolver's TTLs count down, the rest stays), so:

* `query_wire` writes a plain query (one question, no records, an OPT without options) by hand,
  byte for byte what dnspython writes; any other query is rendered by dnspython.
* `Replies.parse` keeps, per reply *shape* (the bytes after the ID with every record's TTL
  zeroed), the Message dnspython parsed from one such reply. A reply of a known shape becomes a
  `Relayed` copy of it (new RRsets holding the same immutable names and rdatas, new sections,
  index and OPT) with this reply's ID, TTLs and bytes: the Message parsing it would give. The
  chain sees an ordinary dnspython message and may change it as it likes.
* `Relayed.to_wire`, as the server's render calls it: when nothing in the chain changed the
  question or the records (the same RRset objects, names and rdatas, in the same places - TTLs
  may differ), the bytes are a template dnspython rendered once for that shape, header flags,
  OPT and size limit, with this message's ID and TTLs written in. TTLs are fixed-size fields,
  so that is exactly what rendering would give. Anything else (loadbalance reordering several
  records, an OPT carrying options, a truncated answer, padding, TSIG) renders the slow way.

Both tables are bounded; a shape evicted or never seen costs one ordinary parse.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rrset

from clusterdns.server.fastwire import walk

OPT = 41
TSIG = 250
HEADER = struct.Struct("!HHHHHH")
#: Reply shapes kept (a few KB each): plenty for the names a cluster keeps asking for.
SHAPES = 1024
#: Renderings kept per shape (header flags x client EDNS x size limit seen together).
RENDERS = 8


def _parse(data: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(data, ignore_trailing=True, one_rr_per_rrset=True)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error):
        return None


# ---- the query ------------------------------------------------------------------------------


def query_wire(msg: dns.message.Message) -> bytes:
    """`msg.to_wire()`, written directly for the usual query; dnspython for anything else."""
    secs = msg.sections
    opt = msg.opt
    if (
        len(secs[0]) != 1
        or secs[1]
        or secs[2]
        or secs[3]
        or msg.tsig is not None
        or msg.pad
        or msg.origin is not None
        or (opt is not None and (len(opt) != 1 or opt[0].options))
    ):
        return msg.to_wire()
    q = secs[0][0]
    if not q.name.is_absolute():
        return msg.to_wire()
    head = HEADER.pack(msg.id, msg.flags, 1, 0, 0, 0 if opt is None else 1)
    tail = struct.pack("!HH", q.rdtype, q.rdclass)
    if opt is None:
        return head + q.name.to_wire() + tail  # type: ignore[operator]
    # The OPT record: root owner, type, class = UDP payload, TTL = extended flags, no rdata.
    rr = struct.pack("!BHHIH", 0, OPT, opt.rdclass, opt.ttl, 0)
    return head + q.name.to_wire() + tail + rr  # type: ignore[operator]


# ---- the reply ------------------------------------------------------------------------------


def shape_of(data: bytes) -> tuple[bytes, list[int]] | None:
    """The reply's shape key and its records' TTL offsets (OPT excluded); None if unusual."""
    if len(data) < 12 or data[4:6] != b"\x00\x01":
        return None
    recs = walk(data)
    if recs is None:
        return None
    offs: list[int] = []
    for r in recs:
        if r[4] == OPT:
            continue
        if r[4] == TSIG:
            return None
        offs.append(r[2])
    key = bytearray(data)
    key[0:2] = b"\x00\x00"
    for o in offs:
        key[o : o + 4] = b"\x00\x00\x00\x00"
    return bytes(key), offs


Kind = tuple[int, int, int]  # rdclass, rdtype, covers
RenderKey = tuple[int, int, int, int, int, int, int]


@dataclass(slots=True, eq=False)
class Shape:
    """One reply shape: a private parsed message (never handed out) and what copies need."""

    proto: dns.message.QueryMessage
    question: dns.rrset.RRset
    records: tuple[dns.rrset.RRset, ...]  # answer, authority, additional (no OPT) in order
    counts: tuple[int, int, int]
    names: tuple[dns.name.Name, ...]
    kinds: tuple[Kind, ...]
    rdatas: tuple[dns.rdata.Rdata, ...]
    qkey: tuple[dns.name.Name, int, int]
    #: Message.index as positions: -1 the question, else an index into `records`.
    index: tuple[tuple[Any, int], ...]
    #: Rendered templates: render key -> (bytes, TTL offsets in record order).
    renders: dict[RenderKey, tuple[bytes, tuple[int, ...]]] = field(default_factory=dict)

    @classmethod
    def of(cls, msg: dns.message.Message, n: int) -> Shape | None:
        """The shape of a freshly parsed reply with `n` TTL'd records, if it is a plain one:
        a query response, one question, one record per RRset, no TSIG."""
        if type(msg) is not dns.message.QueryMessage or msg.tsig is not None:
            return None
        secs = msg.sections
        if len(secs[0]) != 1:
            return None
        records = (*secs[1], *secs[2], *secs[3])
        if len(records) != n or any(len(rr) != 1 or rr.deleting is not None for rr in records):
            return None
        pos = {id(rr): i for i, rr in enumerate(records)}
        pos[id(secs[0][0])] = -1
        index: list[tuple[Any, int]] = []
        for k, v in msg.index.items():
            if id(v) not in pos:
                return None
            index.append((k, pos[id(v)]))
        proto = _copy(msg)
        precs = (*proto.sections[1], *proto.sections[2], *proto.sections[3])
        q = proto.sections[0][0]
        return cls(
            proto=proto,
            question=q,
            records=precs,
            counts=(len(secs[1]), len(secs[2]), len(secs[3])),
            names=tuple(rr.name for rr in precs),
            kinds=tuple((rr.rdclass, rr.rdtype, rr.covers) for rr in precs),
            rdatas=tuple(next(iter(rr.items)) for rr in precs),
            qkey=(q.name, q.rdtype, q.rdclass),
            index=tuple(index),
        )

    def instance(self, data: bytes, offs: list[int]) -> Relayed:
        """A message equal to what parsing `data` (of this shape) gives."""
        proto = self.proto
        m: Relayed = Relayed.__new__(Relayed)
        m.__dict__.update(proto.__dict__)
        m.id = (data[0] << 8) | data[1]
        q = self.question.copy()  # type: ignore[no-untyped-call]
        records = [rr.copy() for rr in self.records]  # type: ignore[no-untyped-call]
        for rr, o in zip(records, offs, strict=True):
            ttl = int.from_bytes(data[o : o + 4], "big")
            rr.ttl = ttl if ttl <= 0x7FFFFFFF else 0  # as dnspython reads it (RFC 2181 8)
        a, b, _ = self.counts
        m.sections = [[q], records[:a], records[a : a + b], records[a + b :]]
        m.index = {k: (q if i < 0 else records[i]) for k, i in self.index}
        if proto.opt is not None:
            m.opt = proto.opt.copy()  # type: ignore[no-untyped-call]
        m.errors = []
        m.wire = data
        m._shape = self
        m._question = q
        m._records = tuple(records)
        return m


def _copy(msg: dns.message.Message) -> dns.message.QueryMessage:
    """A private copy of a parsed message: new sections, RRsets, index and OPT."""
    m: dns.message.QueryMessage = dns.message.QueryMessage.__new__(dns.message.QueryMessage)
    m.__dict__.update(msg.__dict__)
    new = {id(rr): rr.copy() for s in msg.sections for rr in s}  # type: ignore[no-untyped-call]
    m.sections = [[new[id(rr)] for rr in s] for s in msg.sections]
    m.index = {k: new[id(v)] for k, v in msg.index.items()}
    if msg.opt is not None:
        m.opt = msg.opt.copy()  # type: ignore[no-untyped-call]
    m.errors = []
    m.wire = None  # each copy gets its own reply's bytes
    return m


class Relayed(dns.message.QueryMessage):
    """A parsed reply that knows its shape, so that rendering it unchanged is cheap."""

    _shape: Shape
    _question: dns.rrset.RRset
    _records: tuple[dns.rrset.RRset, ...]

    def _intact(self) -> list[int] | None:
        """The records' TTLs if the question and records are as parsed; else None."""
        sh = self._shape
        secs = self.sections
        q = self._question
        if len(secs) != 4 or len(secs[0]) != 1 or secs[0][0] is not q:
            return None
        if (q.name, q.rdtype, q.rdclass) != sh.qkey or q.name is not sh.qkey[0] or len(q):
            return None
        a, b, c = sh.counts
        if len(secs[1]) != a or len(secs[2]) != b or len(secs[3]) != c:
            return None
        records = self._records
        i = 0
        for sec in (secs[1], secs[2], secs[3]):
            for rr in sec:
                if rr is not records[i]:
                    return None
                i += 1
        ttls: list[int] = []
        for rr, name, kind, rd in zip(records, sh.names, sh.kinds, sh.rdatas, strict=True):
            if (
                rr.name is not name
                or (rr.rdclass, rr.rdtype, rr.covers) != kind
                or rr.deleting is not None
                or len(rr.items) != 1
                or next(iter(rr.items)) is not rd
            ):
                return None
            ttl = rr.ttl
            if type(ttl) is not int or not 0 <= ttl <= 0xFFFFFFFF:
                return None
            ttls.append(ttl)
        return ttls

    def _render_key(self, max_size: int) -> RenderKey | None:
        if (
            self.tsig is not None
            or self.pad
            or self.origin is not None
            or type(self.id) is not int
            or not 0 <= self.id <= 0xFFFF
        ):
            return None
        opt = self.opt
        if opt is None:
            return (int(self.flags), max_size, self.request_payload, 0, -1, -1, 0)
        if len(opt) != 1 or opt[0].options or opt.name != dns.name.root:
            return None
        return (int(self.flags), max_size, self.request_payload, 1, opt.rdclass, opt.ttl, 0)

    def to_wire(
        self,
        origin: dns.name.Name | None = None,
        max_size: int = 0,
        multi: bool = False,
        tsig_ctx: Any | None = None,
        prepend_length: bool = False,
        prefer_truncation: bool = False,
        **kw: Any,
    ) -> bytes:
        plain = (
            origin is None
            and not multi
            and tsig_ctx is None
            and not prepend_length
            and prefer_truncation
            and kw == {"want_shuffle": False}
        )
        key = self._render_key(max_size) if plain else None
        ttls = self._intact() if key is not None else None
        if key is None or ttls is None:
            return super().to_wire(
                origin, max_size, multi, tsig_ctx, prepend_length, prefer_truncation, **kw
            )
        renders = self._shape.renders
        known = renders.get(key)
        if known is not None:
            template, offs = known
            out = bytearray(template)
            out[0:2] = self.id.to_bytes(2, "big")
            for o, ttl in zip(offs, ttls, strict=True):
                out[o : o + 4] = ttl.to_bytes(4, "big")
            return bytes(out)
        wire = super().to_wire(max_size=max_size, prefer_truncation=True, **kw)
        if len(renders) < RENDERS:
            recs = walk(wire)
            if recs is not None:
                offs_t = tuple(r[2] for r in recs if r[4] != OPT)
                if len(offs_t) == len(ttls) and wire[4:6] == b"\x00\x01":
                    renders[key] = (wire, offs_t)
        return wire


class Replies:
    """Parsed reply shapes, shared by every upstream (a shape is the same whoever sent it)."""

    def __init__(self, limit: int = SHAPES) -> None:
        self.limit = limit
        self.shapes: dict[bytes, Shape | None] = {}
        self.hits = 0
        self.misses = 0

    def parse(self, data: bytes) -> dns.message.Message | None:
        """`data` as dnspython parses it (ignoring trailing bytes, one record per RRset)."""
        found = shape_of(data)
        if found is None:
            return _parse(data)
        key, offs = found
        shapes = self.shapes
        sh = shapes.get(key)
        if sh is not None:
            self.hits += 1
            return sh.instance(data, offs)
        if key in shapes:  # known to be unusual: no copy to make
            return _parse(data)
        self.misses += 1
        msg = _parse(data)
        if msg is None:
            return None
        sh = Shape.of(msg, len(offs))
        if len(shapes) >= self.limit:
            del shapes[next(iter(shapes))]  # the oldest
        shapes[key] = sh
        return msg if sh is None else sh.instance(data, offs)

    def clear(self) -> None:
        self.shapes.clear()


#: The process's table (one event loop: no locking).
REPLIES = Replies()
