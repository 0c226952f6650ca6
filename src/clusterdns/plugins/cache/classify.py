"""Which responses the cache keeps, and for how long (CoreDNS's cache.key and dnsutil.MinimalTTL).

The response type is CoreDNS's plugin/pkg/response classification (shared with the log plugin),
refined as current CoreDNS does: a NOERROR whose answer does not answer the question (a CNAME
chain that never reaches the asked type) is NODATA when an SOA bounds it, and is not cached at
all without one (RFC 2308 §5). Never cached: truncated replies, OTHERERROR (REFUSED, FORMERR,
an NXDOMAIN without SOA, expired signatures…), zone transfers, NOTIFY and UPDATE.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from clusterdns.pkg.response import (
    DELEGATION,
    META,
    NAMEERROR,
    NODATA,
    NOERROR,
    OTHERERROR,
    SERVERERROR,
    UPDATE,
    typify,
)

__all__ = [
    "DELEGATION",
    "META",
    "MINIMAL_TTL",
    "NAMEERROR",
    "NODATA",
    "NOERROR",
    "OTHERERROR",
    "SERVERERROR",
    "UPDATE",
    "cacheable",
    "compute_ttl",
    "matches",
    "minimal_ttl",
    "response_type",
]

#: dnsutil.MinimalDefaultTTL and MaximumDefaultTTL.
MINIMAL_TTL = 5
MAXIMUM_TTL = 3600


def has_soa(m: dns.message.Message) -> bool:
    return any(r.rdtype == dns.rdatatype.SOA for r in m.authority)


def _cname_target(m: dns.message.Message, owner: dns.name.Name) -> dns.name.Name | bool | None:
    """The CNAME target at `owner`: None if there is none, False if there are several."""
    target: dns.name.Name | None = None
    for rrset in m.answer:
        if rrset.rdtype != dns.rdatatype.CNAME or rrset.name != owner:
            continue
        for rd in rrset:
            if target is not None and rd.target != target:
                return False
            target = rd.target
    return target


def answers_question(m: dns.message.Message) -> bool:
    """Whether the answer holds the asked type at the end of the CNAME chain from QNAME."""
    if not m.answer or not m.question:
        return False
    q = m.question[0]
    qtype, qclass = q.rdtype, q.rdclass

    def class_ok(rdclass: int) -> bool:
        return qclass == dns.rdataclass.ANY or rdclass == qclass

    if qtype == dns.rdatatype.ANY:
        return any(r.name == q.name and class_ok(r.rdclass) for r in m.answer)
    if qtype == dns.rdatatype.CNAME:
        t = _cname_target(m, q.name)
        return isinstance(t, dns.name.Name)
    name, seen = q.name, set()
    while True:  # follow the chain; a loop or a fork is not an answer
        if name in seen:
            return False
        seen.add(name)
        t = _cname_target(m, name)
        if t is False:
            return False
        if t is None:
            break
        assert isinstance(t, dns.name.Name)
        name = t
    return any(r.rdtype == qtype and r.name == name and class_ok(r.rdclass) for r in m.answer)


def response_type(m: dns.message.Message) -> str:
    t = typify(m)
    if t == NOERROR and m.answer and has_soa(m) and not answers_question(m):
        return NODATA
    return t


def cacheable(m: dns.message.Message, t: str) -> bool:
    if m.flags & dns.flags.TC:
        return False
    if t in (OTHERERROR, META, UPDATE):
        return False
    if t in (NAMEERROR, NODATA) and not has_soa(m):
        return False  # no SOA to bound a negative TTL
    return not (t == NOERROR and m.answer and not has_soa(m) and not answers_question(m))


def minimal_ttl(m: dns.message.Message, t: str, maximum: int) -> int:
    """The lowest TTL of the records (OPT aside), starting from `maximum`; 5 when none."""
    if t not in (NOERROR, NAMEERROR, NODATA):
        return MINIMAL_TTL
    sections = (m.answer, m.authority, m.additional)
    if not any(sections):
        return MINIMAL_TTL
    low = maximum
    for section in sections:
        for rrset in section:
            low = min(low, rrset.ttl)
    return low


def compute_ttl(msg_ttl: float, low: float, high: float) -> float:
    return min(max(msg_ttl, low), high)


def matches(qname: str, qtype: int, m: dns.message.Message) -> bool:
    """CoreDNS's request.Match: a response to this very question (name case aside)."""
    if len(m.question) != 1 or not m.flags & dns.flags.QR:
        return False
    q = m.question[0]
    return q.rdtype == qtype and q.name.to_text().lower() == qname
