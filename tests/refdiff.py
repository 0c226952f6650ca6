"""Differential checks: the same queries to ClusterDNS and to the reference CoreDNS 1.14.7.

`pair(corefile, tmp)` runs both on one Corefile (each on its own ports); `same(pair, ...)` sends
one query to each and compares what a client sees: rcode, header flags, every section, and the
OPT record (version, UDP size, DO, options) — everything but the ID.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rdatatype

from tests.coredns_ref import serve_coredns
from tests.harness import Server, rrs, serve


@contextlib.contextmanager
def pair(corefile: str, tmp: Path) -> Iterator[tuple[Server, Server]]:
    """ClusterDNS and CoreDNS on the same Corefile (CoreDNS skips the test when absent)."""
    with serve_coredns(corefile, tmp / "coredns") as ref:
        (tmp / "clusterdns").mkdir()
        with serve(corefile, tmp / "clusterdns") as ours:
            yield ours, ref


def summary(m: dns.message.Message) -> dict[str, object]:
    """What a client sees of a reply, ID aside."""
    opt: object = None
    if m.edns >= 0:
        opt = (
            m.edns,
            m.payload,
            bool(m.ednsflags & dns.flags.DO),
            [(int(o.otype), o.to_wire()) for o in m.options],
        )
    return {
        "rcode": m.rcode(),
        "flags": dns.flags.to_text(m.flags),
        "answer": rrs(m.answer),
        "authority": rrs(m.authority),
        "additional": rrs(m.additional),
        "opt": opt,
    }


def query(
    name: str,
    rdtype: str = "A",
    *,
    edns: bool = True,
    nsid: bool = False,
    do: bool = False,
    rd: bool = True,
) -> dns.message.Message:
    options = [dns.edns.GenericOption(dns.edns.NSID, b"")] if nsid else []
    if edns:
        q = dns.message.make_query(
            name, rdtype, use_edns=0, payload=1232, options=options, want_dnssec=do
        )
    else:
        q = dns.message.make_query(name, rdtype, use_edns=False)
    if not rd:
        q.flags &= ~dns.flags.RD
    return q


def same(
    servers: tuple[Server, Server], q: dns.message.Message, proto: str = "udp"
) -> dict[str, object]:
    """Send `q` to both servers; assert the replies agree; return ours (summarized)."""
    ours, ref = servers
    a = summary(ours.send(q, proto))
    b = summary(ref.send(q, proto))
    where = f"{q.question[0].name} {dns.rdatatype.to_text(q.question[0].rdtype)} ({proto})"
    assert a == b, f"{where}: ClusterDNS {a}\n CoreDNS {b}"
    return a
