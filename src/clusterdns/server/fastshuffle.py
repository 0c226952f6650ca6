"""How the fast path replays loadbalance's shuffle: which records move, and whether they may.

loadbalance (round_robin) leaves each section as CNAMEs, other records, then the A/AAAA
records and the MX records, each group shuffled. In the rendered answer those groups are runs
of consecutive records; an entry keeps each run as separate chunks of bytes and shuffles them
per query. That is only the bytes dnspython would render for that order if no record of a run
is compressed against another of the run (or named by a later record): fastpath checks it once,
on the reversed order, against dnspython.

When the answer had to be cut to fit the client (wire.render keeps records while they fit,
as CoreDNS does, and sets TC), which records are left may depend on the order: see `plan`.
"""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rdatatype
import dns.rrset

from clusterdns.server.fastwire import OPT, Fit, walk
from clusterdns.server.wire import render

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


Plan = tuple[bytes, Recs, list[Found], Fit | None]


def plan(
    resp: dns.message.Message, wire: bytes, recs: Recs, truncated: bool, limit: int
) -> Plan | None:
    """How to replay loadbalance's shuffle of `resp`, rendered as `wire`; None if we cannot.

    Untruncated: the runs of `wire`. Truncated (wire.render cuts record by record, as CoreDNS
    does): runs wholly before the cut, or wholly after it, are the same whatever their order,
    so still the runs of `wire`; a run the cut falls in (or right at) decides by its order which
    records fit. That is replayed only when nothing but the OPT record follows it (the SRV
    targets' addresses in the additional section): the entry keeps the whole message and fits
    as many of the run's records as the renderer would (`fit`).
    """
    found = runs(recs)
    if found is None:
        return None
    if not truncated:
        return wire, recs, found, None
    full = render(resp, 65535)
    recs_full = walk(full)
    found_full = runs(recs_full) if recs_full is not None else None
    if recs_full is None or found_full is None:
        return None
    written = sum(1 for r in recs if r[4] != OPT)
    cut = [f for f in found_full if f[3][0] <= written <= f[3][-1]]
    if not cut:
        return wire, recs, found, None
    start, end, _, run = last = found_full[-1]
    if (
        cut != [last]
        or any(r[4] != OPT for r in recs_full[run[-1] + 1 :])
        or start + len(full) - end > limit
    ):
        return None
    section = recs_full[run[0]][0]
    others = sum(1 for r in recs_full if r[0] == section) - len(run)
    fit: Fit = (limit, 4 + 2 * section, others)
    return full, recs_full, found_full, fit
