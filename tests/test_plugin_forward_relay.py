"""forward's reply shapes (clusterdns.pkg.forward.relay): what the chain gets and what the
client gets must be exactly what parsing and rendering with dnspython would give.

In-process property tests compare a memoised parse, and the templated rendering after
whatever the chain may do to the message, with plain dnspython; the hand-written query
rendering with `to_wire`. Then a real server behind a scripted upstream whose TTLs count down:
answers byte for byte as rendering the upstream's reply would make them, over UDP and TCP,
and loadbalance still shuffling each reply's own records.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterdns.pkg.forward.relay import Relayed, Replies, query_wire, shape_of
from clusterdns.plugins.loadbalance import round_robin
from clusterdns.server.wire import finish, render
from tests.harness import Server
from tests.upstreams import Reply, Upstream

Factory = Callable[..., Server]


def plain(data: bytes) -> dns.message.Message:
    return dns.message.from_wire(data, ignore_trailing=True, one_rr_per_rrset=True)


def same(a: dns.message.Message, b: dns.message.Message) -> None:
    """Equal as far as anything in the chain can tell."""
    assert type(a).__mro__[-3:] == type(b).__mro__[-3:]
    assert a == b and a.to_text() == b.to_text()
    assert (a.id, a.flags, a.edns, a.ednsflags, a.payload, a.options, a.wire) == (
        b.id, b.flags, b.edns, b.ednsflags, b.payload, b.options, b.wire,
    )  # fmt: skip
    assert [rr.ttl for s in a.sections for rr in s] == [rr.ttl for s in b.sections for rr in s]
    assert set(a.index) == set(b.index)
    for k in b.index:
        assert a.index[k] in a.sections[k[0]]  # the index points at this message's RRsets


def with_header(data: bytes, qid: int, ttls: Iterator[int] | None = None) -> bytes:
    """`data` with another ID and, if given, other TTLs for its records."""
    out = bytearray(data)
    out[0:2] = qid.to_bytes(2, "big")
    if ttls is not None:
        found = shape_of(data)
        assert found is not None
        for o in found[1]:
            out[o : o + 4] = next(ttls).to_bytes(4, "big")
    return bytes(out)


# ---- building replies -----------------------------------------------------------------------

TTLS = [0, 1, 30, 300, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
NAMES = ["www.example.test.", "WwW.Example.TEST.", "alias.example.test.", "example.test."]


def reply(
    qname: str,
    qtype: str,
    records: list[tuple[int, str, str, str, int]],
    rcode: int = dns.rcode.NOERROR,
    flags: int = dns.flags.RA,
    edns: int | None = None,
    options: list[dns.edns.Option] | None = None,
) -> bytes:
    q = dns.message.make_query(qname, qtype)
    r = dns.message.make_response(q)
    r.flags |= flags
    r.set_rcode(rcode)
    if edns is not None:
        r.use_edns(edns, payload=1232, options=options or [])
    for section, owner, rdtype, text, ttl in records:
        rrset = dns.rrset.from_text(owner, 60, "IN", rdtype, text)
        rrset.ttl = ttl
        r.sections[section].append(rrset)
    return r.to_wire()


RECORDS: list[tuple[str, str]] = [
    ("A", "10.0.0.1"), ("A", "10.0.0.2"), ("A", "10.0.0.3"), ("AAAA", "fd00::1"),
    ("CNAME", "Target.Example.test."), ("MX", "10 mx.example.test."),
    ("SRV", "0 10 80 svc.Example.test."), ("TXT", '"hello" "world"'),
    ("NS", "ns1.example.test."), ("SOA", "ns1.example.test. h.example.test. 1 2 3 4 5"),
]  # fmt: skip


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 6))
    records = []
    for _ in range(n):
        rdtype, text = draw(st.sampled_from(RECORDS))
        section = draw(st.sampled_from([1, 1, 2, 3]))
        owner = draw(st.sampled_from(NAMES))
        records.append((section, owner, rdtype, text, draw(st.sampled_from(TTLS))))
    edns = draw(st.sampled_from([None, 0, 0]))
    options: list[dns.edns.Option] = []
    if edns is not None and draw(st.booleans()):
        options = [dns.edns.EDEOption(dns.edns.EDECode.STALE_ANSWER, "stale")]
    return reply(
        draw(st.sampled_from(NAMES)),
        draw(st.sampled_from(["A", "AAAA", "SRV", "MX"])),
        records,
        rcode=draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL])),
        flags=draw(st.sampled_from([0, dns.flags.RA, dns.flags.AA | dns.flags.RA, dns.flags.TC])),
        edns=edns,
        options=options,
    )


def edit(m: dns.message.Message, how: str, rng: random.Random) -> None:
    """Something a plugin between forward and the client may do to the reply."""
    every = [rr for s in m.sections[1:] for rr in s]
    if how == "loadbalance":
        random.seed(rng.getrandbits(64))  # round_robin shuffles with the global generator
        for i in (1, 2, 3):
            m.sections[i] = round_robin(m.sections[i])
    elif how == "ttl" and every:
        rng.choice(every).ttl = 7
    elif how == "reverse":
        m.answer.reverse()
    elif how == "replace" and every:
        old = every[0]
        new = dns.rrset.RRset(old.name, old.rdclass, old.rdtype, old.covers)
        new.update_ttl(old.ttl)
        for rd in old:
            new.add(rd)
        for s in m.sections:
            for i, rr in enumerate(s):
                if rr is old:
                    s[i] = new
    elif how == "append":
        m.additional.append(dns.rrset.from_text("x.example.test.", 5, "IN", "A", "192.0.2.9"))
    elif how == "rdata" and every and every[0].rdtype == dns.rdatatype.A:
        every[0].add(dns.rdata.from_text("IN", "A", "192.0.2.77"))
    elif how == "swapcase" and every:
        # Another rdata object, equal to the old one for dnspython but not in its bytes
        # when it holds a name.
        rr = rng.choice(every)
        rd = next(iter(rr))
        rr.clear()  # type: ignore[no-untyped-call]
        rr.add(dns.rdata.from_text(rr.rdclass, rr.rdtype, rd.to_text().swapcase()))
    elif how == "rename" and every:
        every[-1].name = dns.name.from_text("renamed.example.test.")
    elif how == "question":
        m.question[0].name = dns.name.from_text("OTHER.example.test.")
    elif how == "rcode":
        m.set_rcode(dns.rcode.REFUSED)
    elif how == "flags":
        m.flags |= dns.flags.AA
    elif how == "options":
        m.use_edns(0, options=[dns.edns.GenericOption(65001, b"x")])
    elif how == "pad":
        m.use_edns(0, pad=128)


EDITS = ["none", "loadbalance", "ttl", "reverse", "replace", "append", "rdata", "swapcase",
         "rename", "question", "rcode", "flags", "options", "pad"]  # fmt: skip


# ---- parsing --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=replies(), seed=st.integers(0, 2**32))
def test_a_reply_parses_as_dnspython_parses_it(data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    table = Replies()
    for _ in range(3):  # a miss, then copies of the kept shape with other IDs and TTLs
        variant = with_header(data, rng.randrange(65536), iter(lambda: rng.choice(TTLS), None))
        got = table.parse(variant)
        assert got is not None
        same(got, plain(variant))
        edit(got, rng.choice(EDITS), rng)  # must not leak into the next copy
    assert table.hits == 2 and table.misses == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x12\x34\x81\x80" + b"\x00" * 8, id="no question"),
        pytest.param(
            reply("a.example.test.", "A", [(1, "a.example.test.", "A", "10.0.0.1", 5)]) + b"junk",
            id="trailing bytes",
        ),
        pytest.param(
            b"\x12\x34\x81\x80\x00\x02\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"
            b"\x01b\x00\x00\x01\x00\x01",
            id="two questions",
        ),
    ],
)
def test_unusual_replies_parse_plainly(data: bytes) -> None:
    table = Replies()
    for _ in range(2):
        got = table.parse(data)
        assert got is not None and type(got) is not Relayed
        same(got, plain(data))


def test_garbage_and_cut_replies_give_none() -> None:
    table = Replies()
    good = reply("a.example.test.", "A", [(1, "a.example.test.", "A", "10.0.0.1", 5)])
    for data in (good[:-3], b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xff"):
        assert table.parse(data) is None
    assert not table.shapes


def test_the_table_is_bounded() -> None:
    table = Replies(limit=4)
    for i in range(10):
        table.parse(
            reply(f"h{i}.example.test.", "A", [(1, f"h{i}.example.test.", "A", "1.2.3.4", 9)])
        )
    assert len(table.shapes) == 4 and table.misses == 10


# ---- rendering ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=replies(), seed=st.integers(0, 2**32))
def test_rendering_is_what_dnspython_renders(data: bytes, seed: int) -> None:
    table = Replies()
    rng = random.Random(seed)
    for _ in range(3):
        variant = with_header(data, rng.randrange(65536), iter(lambda: rng.choice(TTLS), None))
        client = dns.message.make_query("www.example.test.", "A")
        if rng.random() < 0.5:
            client.use_edns(0, rng.choice([0, dns.flags.DO]), rng.choice([512, 1232, 4096]))
        limit = rng.choice([512, 1232, 65535, 200])
        how = rng.choice(EDITS)
        state = rng.getstate()
        # An unchanged copy first (it learns the shape's template, or uses it), then one the
        # chain edited: the template must not be used for what it does not fit.
        for edits in ("none", how):
            fast, slow = table.parse(variant), plain(variant)
            assert fast is not None
            for m in (fast, slow):
                rng.setstate(state)  # the same edit, the same shuffle
                m.id = client.id
                edit(m, edits, rng)
                finish(m, client)
            assert render(fast, limit) == render(slow, limit), edits


def test_an_unchanged_reply_renders_from_its_template(monkeypatch: pytest.MonkeyPatch) -> None:
    data = reply("www.example.test.", "A", [(1, "www.example.test.", "A", "10.0.0.1", 300),
                                             (2, "example.test.", "NS", "ns1.example.test.", 60)])  # fmt: skip
    table = Replies()
    slow_renders = 0
    original = dns.message.Message.to_wire

    def counting(self: dns.message.Message, *args: Any, **kw: Any) -> bytes:
        nonlocal slow_renders
        slow_renders += 1
        return original(self, *args, **kw)

    monkeypatch.setattr(dns.message.Message, "to_wire", counting)
    client = dns.message.make_query("www.example.test.", "A")
    outs = []
    for qid, ttl in ((1, 300), (2, 299), (3, 298)):
        m = table.parse(with_header(data, qid, iter([ttl, 60])))
        assert isinstance(m, Relayed)
        finish(m, client)
        outs.append(render(m, 512))
    assert slow_renders == 1
    for out, (qid, ttl) in zip(outs, ((1, 300), (2, 299), (3, 298)), strict=True):
        want = plain(with_header(data, qid, iter([ttl, 60])))
        finish(want, client)
        assert out == original(want, max_size=512, prefer_truncation=True, want_shuffle=False)
    # Other arguments than the server's render are not templated, nor is a padded message.
    for kw in ({}, {"max_size": 512, "prefer_truncation": True}):
        m, want = table.parse(with_header(data, 4)), plain(with_header(data, 4))
        before = slow_renders
        assert m is not None and m.to_wire(**kw) == original(want, **kw)
        assert slow_renders == before + 1
    m, want = table.parse(with_header(data, 5)), plain(with_header(data, 5))
    assert m is not None
    for x in (m, want):
        finish(x, client)
        x.use_edns(0, pad=64)
    assert render(m, 512) == original(want, max_size=512, prefer_truncation=True,
                                      want_shuffle=False)  # fmt: skip


# ---- the query ------------------------------------------------------------------------------

LABELS = st.binary(min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    labels=st.lists(LABELS, min_size=0, max_size=4),
    rdtype=st.integers(1, 65535),
    rdclass=st.sampled_from([1, 3, 255]),
    flags=st.integers(0, 0xFFFF),
    edns=st.sampled_from([None, 0, 1]),
    payload=st.integers(0, 65535),
    ednsflags=st.integers(0, 0xFFFF),
    option=st.booleans(),
)
def test_query_wire_is_to_wire(
    labels: list[bytes], rdtype: int, rdclass: int, flags: int, edns: int | None,
    payload: int, ednsflags: int, option: bool,
) -> None:  # fmt: skip
    name = dns.name.Name([*labels, b""])
    q = dns.message.QueryMessage(id=random.randrange(65536))
    q.flags = flags
    q.question = [dns.rrset.RRset(name, rdclass, rdtype)]  # type: ignore[arg-type]
    if edns is not None:
        opts = [dns.edns.GenericOption(10, b"12345678")] if option else None
        q.use_edns(edns, ednsflags, payload, options=opts)
    assert query_wire(q) == q.to_wire()


def test_query_wire_of_unusual_queries() -> None:
    q = dns.message.make_query("a.example.test.", "A")
    q.answer.append(dns.rrset.from_text("a.example.test.", 5, "IN", "A", "10.0.0.1"))
    assert query_wire(q) == q.to_wire()
    q = dns.message.make_query("a.example.test.", "A", use_edns=0)
    q.use_edns(0, pad=64)
    assert query_wire(q) == q.to_wire()


# ---- through a server -----------------------------------------------------------------------


class CountingDown:
    """An upstream handler: replies whose TTLs go down by one per query (as a recursive
    resolver's cached answers do) with `ips` A records; keeps the replies it sent."""

    def __init__(self, ips: list[str]) -> None:
        self.ips = ips
        self.ttl = 1000
        self.sent: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, q: dns.message.Message, proto: str) -> list[Reply]:
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA
        with self.lock:
            self.ttl -= 1
            ttl = self.ttl
        for ip in self.ips:
            r.answer.append(dns.rrset.from_text(q.question[0].name, ttl, "IN", "A", ip))
        r.authority.append(
            dns.rrset.from_text("example.test.", ttl, "IN", "NS", "ns.example.test.")
        )
        wire = r.to_wire()
        with self.lock:
            self.sent.append(wire)
        return [wire]


def exchange_raw(port: int, query: bytes, proto: str) -> bytes:
    if proto == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(query, ("127.0.0.1", port))
            return s.recv(65535)
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(struct.pack("!H", len(query)) + query)
        head = s.recv(2, socket.MSG_WAITALL)
        return s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)


@pytest.fixture
def counting_up() -> Iterator[tuple[CountingDown, Upstream]]:
    handler = CountingDown(["10.0.0.1"])
    up = Upstream(handler).start()
    yield handler, up
    up.stop()


def test_answers_are_the_bytes_rendering_the_reply_gives(
    server_factory: Factory, counting_up: tuple[CountingDown, Upstream]
) -> None:
    handler, up = counting_up
    fw = server_factory(f"example.test:@PORT@ {{\n bind 127.0.0.1\n forward . {up.addr}\n}}\n")
    for i in range(12):
        proto = "udp" if i % 3 else "tcp"
        client = dns.message.make_query("WwW.example.TEST." if i % 2 else "www.example.test.", "A")
        if i % 4 < 2:
            client.use_edns(0, dns.flags.DO if i % 5 == 0 else 0, 1232 + i)
        client.id = 1000 + i
        got = exchange_raw(fw.port, client.to_wire(), proto)
        want = plain(handler.sent[-1])
        want.id = client.id
        finish(want, client)
        limit = (max(512, client.payload) if client.edns >= 0 else 512) if proto == "udp" else 65535
        assert got == render(want, limit), (i, proto)
        assert plain(got).answer[0].ttl == 1000 - 1 - i


def test_loadbalance_shuffles_each_replys_own_records(
    server_factory: Factory, ups: Callable[..., Upstream]
) -> None:
    handler = CountingDown(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    up = ups(handler)
    fw = server_factory(
        f"example.test:@PORT@ {{\n bind 127.0.0.1\n loadbalance\n forward . {up.addr}\n}}\n"
    )
    orders = set()
    for i in range(20):
        r = fw.query("www.example.test.", "A", proto="tcp" if i % 4 == 0 else "udp")
        ips = [rd.to_text() for rrset in r.answer for rd in rrset]
        assert sorted(ips) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        assert {rrset.ttl for rrset in r.answer + r.authority} == {1000 - 1 - i}
        orders.add(tuple(ips))
    assert len(orders) > 1  # 20 times the same order of 3: one chance in 6**19


@pytest.fixture
def ups() -> Iterator[Callable[..., Upstream]]:
    started: list[Upstream] = []

    def make(*args: Any, **kw: Any) -> Upstream:
        u = Upstream(*args, **kw).start()
        started.append(u)
        return u

    yield make
    for u in started:
        u.stop()
