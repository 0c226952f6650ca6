"""How the fast path replays loadbalance's shuffle: which records move, and whether they may.

loadbalance (round_robin) leaves each section as CNAMEs, other records, then the A/AAAA
records and the MX records, each group shuffled. In the rendered answer those groups are runs
of consecutive records; an entry keeps each run as separate chunks of bytes and shuffles them
per query. That is only the bytes dnspython would render for that order if no record of a run
is compressed against another of the run (or named by a later record): fastpath checks it once,
on the reversed order, against dnspython.

An answer that had to be cut to fit the client is not replayed: which records are left
depends on the order (wire.render cuts record by record, as CoreDNS does).
"""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset

from clusterdns.server.fastwire import OPT

_SHUFFLED_TYPES = ((dns.rdatatype.A, dns.rdatatype.AAAA), (dns.rdatatype.MX,))

Recs = list[tuple[int, int, int, int, int]]  # fastwire.walk: (section, start, ttl, end, type)
#: A run found in a rendered message: (start, end, chunk bounds, record indexes).
Found = tuple[int, int, tuple[int, ...], list[int]]


def runs(recs: Recs) -> list[Found] | None:
    """The runs loadbalance shuffles, in a rendered message; None if odd."""
    out: list[Found] = []
    for section in (1, 2, 3):
        idx = [i for i, r in enumerate(recs) if r[0] == section and r[4] != OPT]
        for types in _SHUFFLED_TYPES:
            run = [i for i in idx if recs[i][4] in types]
            if len(run) < 2:
                continue
            if run != list(range(run[0], run[0] + len(run))):
                return None  # not contiguous: not what loadbalance leaves
            bounds = (*(recs[i][1] for i in run), recs[run[-1]][3])
            out.append((bounds[0], bounds[-1], bounds, run))
    return out


def _flat(resp: dns.message.Message) -> list[tuple[int, dns.rrset.RRset, Any]]:
    return [
        (n, rrset, rd)
        for n, section in enumerate((resp.answer, resp.authority, resp.additional), 1)
        for rrset in section
        for rd in rrset
    ]


def _regroup(records: list[tuple[dns.rrset.RRset, Any]]) -> list[dns.rrset.RRset]:
    """Consecutive records of one name, type and TTL in one set, as loadbalance leaves them."""
    out: list[dns.rrset.RRset] = []
    for src, rd in records:
        last = out[-1] if out else None
        if (
            last is not None
            and last.name == src.name
            and (last.rdtype, last.rdclass, last.covers, last.ttl)
            == (src.rdtype, src.rdclass, src.covers, src.ttl)
        ):
            last.add(rd)
        else:
            new = dns.rrset.RRset(src.name, src.rdclass, src.rdtype, src.covers)
            new.update_ttl(src.ttl)
            new.add(rd)
            out.append(new)
    return out


def reversed_runs(resp: dns.message.Message, runs: list[Found]) -> dns.message.Message:
    """`resp` with the records of every run in reverse order."""
    flat = _flat(resp)
    order = list(range(len(flat)))
    for *_, run in runs:
        for i, j in zip(run, reversed(run), strict=True):
            order[i] = j
    sections: list[list[tuple[dns.rrset.RRset, Any]]] = [[], [], []]
    for i in order:
        n, rrset, rd = flat[i]
        sections[n - 1].append((rrset, rd))
    m = dns.message.Message(id=resp.id)
    m.flags = resp.flags
    m.question = list(resp.question)
    m.answer, m.authority, m.additional = (_regroup(s) for s in sections)
    if resp.edns >= 0:
        m.use_edns(resp.edns, resp.ednsflags, resp.payload, options=list(resp.options))
    return m
