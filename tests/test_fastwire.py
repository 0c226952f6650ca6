"""The fast path's wire reading (header and question only), checked against dnspython.

`query_key` must accept exactly what it can key on: any query it accepts parses in dnspython
to the same question and EDNS settings, and two queries get the same key only when they differ
by the ID and the case of the name. Entries: IDs and case patched, TTLs counting down, voided
by their slots and expiry.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdns.server.fastwire import Entry, Slots, Stats, Table, query_key, walk

LABEL = st.binary(min_size=1, max_size=20)
NAME = st.lists(LABEL, min_size=0, max_size=6).filter(lambda ls: sum(len(x) + 1 for x in ls) < 250)
HYPO = settings(max_examples=300, deadline=None, database=None)


@st.composite
def query_messages(draw: st.DrawFn) -> dns.message.Message:
    name = dns.name.Name([*draw(NAME), b""])
    rdtype = draw(st.integers(1, 65535))
    rdclass = draw(st.sampled_from([1, 3, 254, 255]))
    q = dns.message.Message(id=draw(st.integers(0, 65535)))
    q.flags = draw(st.integers(0, 0xFFFF)) & ~0xF800 & ~dns.flags.QR  # opcode QUERY, no QR
    q.question = [dns.rrset.RRset(name, rdclass, rdtype)]
    if draw(st.booleans()):
        q.use_edns(draw(st.integers(0, 3)), draw(st.integers(0, 0xFFFF)) & 0xFFFF,
                   draw(st.integers(0, 65535)))  # fmt: skip
    return q


@HYPO
@given(q=query_messages())
def test_key_matches_dnspython(q: dns.message.Message) -> None:
    data = q.to_wire()
    k = query_key(data)
    assert k is not None
    key, nend = k
    assert data[12:nend] == q.question[0].name.to_wire()
    back = dns.message.from_wire(data)
    assert back.question[0].name == q.question[0].name
    assert (back.edns, back.payload if back.edns >= 0 else 0) == (
        q.edns, q.payload if q.edns >= 0 else 0,
    )  # fmt: skip
    # Same key for another ID and another case; another key for another type.
    other = dns.message.from_wire(data)
    other.id = (q.id + 1) % 65536
    other.question = [dns.rrset.RRset(
        dns.name.Name([lab.upper() for lab in q.question[0].name.labels]),
        q.question[0].rdclass, q.question[0].rdtype,
    )]  # fmt: skip
    assert query_key(other.to_wire()) == (key, nend)
    other.question = [dns.rrset.RRset(
        q.question[0].name, q.question[0].rdclass, q.question[0].rdtype % 65535 + 1
    )]  # fmt: skip
    k2 = query_key(other.to_wire())
    assert k2 is not None and k2[0] != key


@HYPO
@given(data=st.binary(min_size=12, max_size=80))
def test_accepts_nothing_dnspython_would_read_otherwise(data: bytes) -> None:
    _only_well_formed(data)


@HYPO
@given(q=query_messages(), pos=st.integers(0, 300), byte=st.integers(0, 255))
def test_corrupted_queries(q: dns.message.Message, pos: int, byte: int) -> None:
    data = bytearray(q.to_wire())
    data[pos % len(data)] = byte
    _only_well_formed(bytes(data))
    _only_well_formed(bytes(data) + b"\x00")  # trailing garbage is never keyed


def _only_well_formed(data: bytes) -> None:
    k = query_key(data)
    if k is None:
        return
    m = dns.message.from_wire(data)  # raises if dnspython cannot read it entirely
    assert not m.flags & dns.flags.QR and m.opcode() == 0
    assert len(m.question) == 1 and not m.answer and not m.authority and not m.additional
    assert data[12 : k[1]] == m.question[0].name.to_wire()
    assert not m.options


def test_odd_queries_have_no_key() -> None:
    q = dns.message.make_query("a.example.", "A")
    base = q.to_wire()
    assert query_key(base) is not None
    assert query_key(base[:-1]) is None  # short
    assert query_key(base + b"x") is None  # trailing bytes
    resp = dns.message.make_response(q).to_wire()
    assert query_key(resp) is None  # QR
    q.set_opcode(dns.opcode.NOTIFY)
    assert query_key(q.to_wire()) is None
    q = dns.message.make_query("a.example.", "A", use_edns=0, options=[
        dns.edns.GenericOption(10, b"12345678")])  # fmt: skip
    assert query_key(q.to_wire()) is None  # EDNS options (a cookie)
    # A compression pointer in the question.
    assert query_key(base[:12] + b"\xc0\x0c" + base[-4:]) is None


def test_walk_finds_every_record() -> None:
    q = dns.message.make_query("a.example.", "A", use_edns=0)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("a.example.", 30, "IN", "A", "1.2.3.4", "5.6.7.8"))
    r.authority.append(dns.rrset.from_text("example.", 30, "IN", "NS", "ns.example."))
    r.additional.append(dns.rrset.from_text("ns.example.", 30, "IN", "AAAA", "::1"))
    wire = r.to_wire()
    recs = walk(wire)
    assert recs is not None
    assert [(s, t) for s, _, _, _, t in recs] == [(1, 1), (1, 1), (2, 2), (3, 28), (3, 41)]
    for _, _, ttl_off, _, _ in recs[:-1]:
        assert int.from_bytes(wire[ttl_off : ttl_off + 4], "big") == 30
    assert walk(wire[:-1]) is None


def _entry(wire: bytes, q: bytes, **kw: object) -> Entry:
    nend = query_key(q)[1]  # type: ignore[index]
    state = dict(
        wire=wire, q0=q[12:nend], nend=nend, case_free=True, deps=((5, 0),), stored=0.0,
        life=-1, countdown=False, cur_ttl=-1, ttl_offs=(), runs=(), fit=None, mkey=("s",),
    )  # fmt: skip
    state.update(kw)
    return Entry(tuple(state.values()), lambda _: Stats())  # type: ignore[arg-type]


def test_entry_patches_id_case_and_ttl() -> None:
    slots = Slots()
    q = dns.message.make_query("Web.example.", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("web.example.", 30, "IN", "A", "1.2.3.4"))
    wire = r.to_wire()
    recs = walk(wire)
    assert recs is not None
    e = _entry(wire, q.to_wire(), stored=100.0, life=30, countdown=True, cur_ttl=30,
               ttl_offs=(recs[0][2],))  # fmt: skip
    table = Table(slots)
    table.put(query_key(q.to_wire())[0], e)  # type: ignore[index]
    q2 = dns.message.make_query("wEB.EXAMPLE.", "A")
    q2.id = 4242
    hit = table.get(q2.to_wire(), 107.5)
    assert hit is not None
    got = dns.message.from_wire(hit[1])
    assert got.id == 4242 and got.question[0].name.labels[0] == b"wEB"
    assert got.answer[0].ttl == 23  # 30 - int(7.5), as the cache counts
    assert table.get(q2.to_wire(), 130.0) is None  # expired with its cache item
    slots.bump(5)
    assert table.get(q2.to_wire(), 107.5) is None  # its data changed
    table.put(query_key(q.to_wire())[0], _entry(wire, q.to_wire(), case_free=False,  # type: ignore[index]
                                                 deps=((5, slots.values[5]),)))  # fmt: skip
    assert table.get(q.to_wire(), 0.0) is not None
    assert table.get(q2.to_wire(), 0.0) is None  # its records show the client's case


def test_table_is_bounded() -> None:
    table = Table(Slots(), limit=3)
    for i in range(5):
        q = dns.message.make_query(f"n{i}.example.", "A").to_wire()
        table.put(query_key(q)[0], _entry(q, q))  # type: ignore[index]
    assert len(table.entries) == 3


def test_pacer_interleaves_chain_queries_with_the_loop() -> None:
    """Chain queries start in order, a few per turn of the loop, so the loop gets back to
    its sockets between them instead of running a whole burst first."""
    import asyncio
    import time

    from clusterdns.server.pacer import Pacer

    async def main() -> tuple[list[int], list[int]]:
        pacer = Pacer()
        order: list[int] = []
        seen: list[int] = []

        async def work(i: int) -> None:
            await pacer.turn()
            order.append(i)
            time.sleep(0.0005)  # the chain's synchronous work

        async def loop_turns() -> None:  # stands for the loop reading its sockets
            while len(order) < 20:
                seen.append(len(order))
                await asyncio.sleep(0)

        await asyncio.gather(*(work(i) for i in range(20)), loop_turns())
        return order, seen

    order, seen = asyncio.run(main())
    assert order == list(range(20))
    assert len(set(seen)) >= 5  # the loop came round between starts, not after all twenty
