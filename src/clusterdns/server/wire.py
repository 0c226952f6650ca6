"""From bytes to a query and from a response to bytes; dnspython does the wire format.

Acceptance follows miekg/dns's default MsgAcceptFunc, which CoreDNS uses: responses and
runts are ignored, opcodes other than QUERY get NOTIMP, odd section counts get FORMERR.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset

HEADER = struct.Struct("!HHHHHH")
#: request.supportedOptions: NSID, EXPIRE, COOKIE, TCP-KEEPALIVE, PADDING.
ECHOED = frozenset({3, 9, 10, 11, 12})
MIN_UDP = 512


class Rejected(Exception):
    """The query cannot be served; `wire` is the reply to send (or None to stay silent)."""

    def __init__(self, wire: bytes | None, reason: str) -> None:
        self.wire = wire
        self.reason = reason
        super().__init__(reason)


class Stream(bytes):
    """The wire of a response followed by more messages for the same TCP connection (a zone
    transfer): the bytes are the first message's, `rest` the following ones'."""

    rest: tuple[bytes, ...] = ()


def stream(wires: list[bytes]) -> Stream:
    s = Stream(wires[0])
    s.rest = tuple(wires[1:])
    return s


def _header_reply(qid: int, flags: int, rcode: int) -> bytes:
    """A header-only reply: ID, opcode and RD copied, QR set, the given rcode."""
    opcode_bits = flags & 0x7800
    out = dns.flags.QR | opcode_bits | (flags & dns.flags.RD) | (rcode & 0xF)
    return HEADER.pack(qid, out, 0, 0, 0, 0)


def parse_query(data: bytes) -> dns.message.Message:
    """Decode a query or raise Rejected with the reply the client should get."""
    if len(data) < HEADER.size:
        raise Rejected(None, "short packet")
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & dns.flags.QR:
        raise Rejected(None, "packet is a response")
    if dns.opcode.from_flags(flags) != dns.opcode.QUERY:
        raise Rejected(_header_reply(qid, flags, dns.rcode.NOTIMP), "opcode not implemented")
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        raise Rejected(_header_reply(qid, flags, dns.rcode.FORMERR), "bad section counts")
    try:
        # keyring=False: a TSIG is parsed, not checked (the tsig plugin checks it; without
        # one the query is answered unsigned, as CoreDNS without TSIG secrets does).
        msg = dns.message.from_wire(
            data, keyring=False, ignore_trailing=True, one_rr_per_rrset=True
        )
    except dns.message.BadEDNS:
        raise Rejected(_header_reply(qid, flags, dns.rcode.FORMERR), "bad EDNS") from None
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        raise Rejected(_header_reply(qid, flags, dns.rcode.FORMERR), "malformed") from None
    if not msg.question:
        raise Rejected(_header_reply(qid, flags, dns.rcode.FORMERR), "no question")
    return msg


def udp_limit(query: dns.message.Message) -> int:
    """The largest UDP answer this client accepts (RFC 6891: never below 512)."""
    if query.edns < 0:
        return MIN_UDP
    return max(MIN_UDP, query.payload)


def finish(resp: dns.message.Message, query: dns.message.Message) -> None:
    """Give the response the EDNS0 the client can take, as CoreDNS's SizeAndDo does.

    With an OPT in the query, the reply carries one that reflects the client's UDP size (as
    the bufsize plugin may have lowered it) and DO bit; without one, the reply keeps whatever
    OPT a plugin gave it (usually none).
    """
    rcode = resp.rcode()
    if query.edns >= 0:
        do = query.ednsflags & dns.flags.DO
        # CoreDNS's SizeAndDo gives a reply without an OPT the query's own, keeping the options
        # it calls supported (so an NSID or cookie the client sent comes back as it was).
        options = [o for o in query.options if o.otype in ECHOED]
        if resp.edns >= 0:
            # Options a plugin or upstream put in the reply's OPT (EDE, NSID…) are kept, and so
            # is its DO bit: SizeAndDo's `Ttl &= 0xff00` meant to clear the flags but keeps DO.
            options = list(resp.options)
            do |= resp.ednsflags & dns.flags.DO
        resp.use_edns(0, do, max(MIN_UDP, query.payload), options=options)
        resp.set_rcode(rcode)  # re-apply: extended rcode bits live in the OPT
    # Without an OPT in the query, an OPT a plugin put in the reply (acl's EDE) stays as it is:
    # CoreDNS's SizeAndDo returns without touching the reply.


def render(resp: dns.message.Message, limit: int) -> bytes:
    """Wire bytes of at most `limit`; what does not fit is dropped and TC set (client retries).

    Cut as CoreDNS cuts (miekg/dns `Msg.Truncate`): as many *records* as fit, in order, and TC
    set whenever one was left out. dnspython alone cuts whole record sets and sets TC only
    before the additional section, so a headless service too big for 512 bytes would come
    back with no address at all — which a client that does not retry over TCP (older musl)
    takes as the answer.
    """
    # want_shuffle=False: keep the order plugins wrote (loadbalance shuffles when asked).
    wire = resp.to_wire(max_size=limit, prefer_truncation=True, want_shuffle=False)
    if complete(resp, wire):
        return wire
    cut = _one_record_sets(resp).to_wire(max_size=limit, prefer_truncation=True, want_shuffle=False)
    return cut[:2] + bytes((cut[2] | 0x02,)) + cut[3:]


def complete(resp: dns.message.Message, wire: bytes) -> bool:
    """Every record of `resp` is in `wire`, rendered from it (its header's counts say so)."""
    an, ns, ar = HEADER.unpack_from(wire)[3:]
    extra = (resp.opt is not None) + (resp.tsig is not None)
    return bool(
        an == sum(len(x) for x in resp.answer)
        and ns == sum(len(x) for x in resp.authority)
        and ar == sum(len(x) for x in resp.additional) + extra
    )


def _one_record_sets(resp: dns.message.Message) -> dns.message.Message:
    """A shallow copy of `resp` whose record sets hold one record each (same order, bytes)."""
    out = copy.copy(resp)
    out.sections = [resp.question] + [
        [one for rrset in section for one in _singles(rrset)] for section in resp.sections[1:]
    ]
    return out


def _singles(rrset: dns.rrset.RRset) -> Iterator[dns.rrset.RRset]:
    if len(rrset) <= 1:
        yield rrset
        return
    for rd in rrset:
        one = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
        one.add(rd, rrset.ttl)
        yield one
