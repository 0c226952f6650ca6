"""CoreDNS's plugin/pkg/response: the type of a response (NOERROR, NODATA, DELEGATION…) and its
class (success, denial, error).

Shared by the plugins that decide by it: log (its `class` filter), cache (what to keep), minimal
(what to strip) and dns64 (what to translate). A plugin never imports another, so it lives here.
"""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

NOERROR, NAMEERROR, SERVERERROR, NODATA, DELEGATION, META, UPDATE, OTHERERROR = (
    "NOERROR", "NXDOMAIN", "SERVERERROR", "NODATA", "DELEGATION", "META", "UPDATE", "OTHERERROR",
)  # fmt: skip
CLASSES = ("all", "success", "denial", "error")
_YEAR68 = 1 << 31


def _sig_valid(inception: int, expiration: int, now: int) -> bool:
    """RRSIG validity in serial-number arithmetic, as miekg/dns's ValidityPeriod."""
    ti = inception + int((inception - now) / _YEAR68) * _YEAR68
    te = expiration + int((expiration - now) / _YEAR68) * _YEAR68
    return ti <= now <= te


def _expired(m: dns.message.Message, now: int) -> bool:
    for section in (m.answer, m.authority, m.additional):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                for sig in rrset:
                    if not _sig_valid(sig.inception, sig.expiration, now):
                        return True
    return False


def typify(m: dns.message.Message | None, now: float | None = None) -> str:
    """The response type CoreDNS's response.Typify gives `m` (OTHERERROR when nothing written)."""
    if m is None:
        return OTHERERROR
    opcode = m.opcode()
    if opcode == dns.opcode.UPDATE:
        return UPDATE
    if opcode == dns.opcode.NOTIFY:
        return META
    qtype = m.question[0].rdtype if m.question else None
    if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return META
    do = m.edns >= 0 and bool(m.ednsflags & dns.flags.DO)
    if do and _expired(m, int(time.time() if now is None else now)):
        return OTHERERROR
    rcode = m.rcode()
    if m.answer and rcode == dns.rcode.NOERROR:
        if qtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            matched = any(rrset.rdtype == qtype for rrset in m.answer)
            return NOERROR if matched else NODATA
        return NOERROR
    soa = any(rrset.rdtype == dns.rdatatype.SOA for rrset in m.authority)
    ns = any(rrset.rdtype == dns.rdatatype.NS for rrset in m.authority)
    if soa and rcode == dns.rcode.NOERROR:
        return NODATA
    if soa and rcode == dns.rcode.NXDOMAIN:
        return NAMEERROR
    if rcode in (dns.rcode.SERVFAIL, dns.rcode.NOTIMP):
        return SERVERERROR
    if ns and rcode == dns.rcode.NOERROR:
        return DELEGATION
    if rcode == dns.rcode.NOERROR:
        return NOERROR
    return OTHERERROR


def classify(rtype: str) -> str:
    """success, denial or error, as CoreDNS's response.Classify."""
    if rtype in (NOERROR, DELEGATION):
        return "success"
    if rtype in (NAMEERROR, NODATA):
        return "denial"
    return "error"
