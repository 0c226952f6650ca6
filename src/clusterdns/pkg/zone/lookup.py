"""Answer a question from one zone, as CoreDNS's plugin/file Zone.Lookup (lookup.go).

Walk the query name from the zone's apex down, a label at a time: a DNAME on the way
synthesizes a CNAME; an NS on the way is a zone cut (a referral with glue); a name not found
remembers the wildcard at its level. Then: the name itself (its CNAME chased, its records, or
NODATA), else the closest wildcard (unless an empty non-terminal sits closer, RFC 4592), else
NXDOMAIN (NOERROR for an empty non-terminal). CNAME targets are chased inside the zone and
resolved through the whole server (`Upstream`) once they leave it, as CoreDNS's upstream does.
DNSSEC records (the DO bit) are not added: the zone is served as if unsigned.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset

from clusterdns.pkg.zone.data import ZoneData

_T = dns.rdatatype
_CNAME = dns.rdatatype.CNAME
#: Lookups that nest through CNAMEs leaving the zone (CoreDNS's LoopKey): past this, SERVFAIL.
MAX_LOOP = 8
_LOOP: contextvars.ContextVar[int] = contextvars.ContextVar("zone_lookup_loop", default=0)

#: Resolve (name, type) through the whole server; None when nothing answered.
Upstream = Callable[[dns.name.Name, int], Awaitable[dns.message.Message | None]]

Node = dict[int, dns.rrset.RRset]


class Result(enum.Enum):
    SUCCESS = 0
    NAME_ERROR = 1
    DELEGATION = 2
    NO_DATA = 3
    SERVER_FAILURE = 4


@dataclass(slots=True)
class Answer:
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    ns: list[dns.rrset.RRset] = field(default_factory=list)
    extra: list[dns.rrset.RRset] = field(default_factory=list)
    result: Result = Result.SUCCESS


def _sets(*rrsets: dns.rrset.RRset | None) -> list[dns.rrset.RRset]:
    return [r for r in rrsets if r is not None]


def _for_wildcard(rrset: dns.rrset.RRset | None, qname: dns.name.Name) -> dns.rrset.RRset | None:
    """The wildcard's records with the query name as owner (CoreDNS's TypeForWildcard)."""
    if rrset is None:
        return None
    return dns.rrset.from_rdata_list(qname, rrset.ttl, list(rrset))


class Lookup:
    """One question asked of one zone snapshot (`z`); `upstream` leaves the zone."""

    def __init__(self, z: ZoneData, upstream: Upstream) -> None:
        self.z = z
        self.upstream = upstream
        self.olen = len(z.origin.labels)

    def name_from_right(self, qname: dns.name.Name, i: int) -> tuple[dns.name.Name, bool]:
        """The apex plus `i` labels of `qname`; (qname, True) once that overshoots it."""
        n = self.olen + i
        if n > len(qname.labels):
            return qname, True
        return dns.name.Name(qname.labels[-n:]), False

    async def lookup(self, qname: dns.name.Name, qtype: int) -> Answer:
        z = self.z
        if z.soa is None:
            return Answer(result=Result.SERVER_FAILURE)
        if qname == z.origin:
            if qtype == _T.SOA:
                return Answer([z.soa], _sets(z.ns))
            if qtype == _T.NS:
                return Answer(_sets(z.ns), [], self.glue(z.ns))
        loop = _LOOP.get()
        if loop > MAX_LOOP:
            return Answer(result=Result.SERVER_FAILURE)

        found = shot = False
        elem: Node | None = None
        wild_elem: Node | None = None
        wild_name: dns.name.Name | None = None
        i = 0
        while True:
            parts, shot = self.name_from_right(qname, i)
            if shot:
                break
            elem = z.search(parts)
            found = elem is not None
            if elem is None:
                if len(parts.labels) > 1:
                    wildcard = dns.name.Name((b"*", *parts.labels[1:]))
                    wild = z.search(wildcard)
                    if wild is not None:
                        wild_elem, wild_name = wild, wildcard
                    elif z.has_descendant(wildcard):
                        wild_elem, wild_name = None, wildcard  # an empty non-terminal
                i += 1
                continue
            dname = elem.get(_T.DNAME)
            if dname is not None:
                synth = self.synthesize(qname, dname)
                if synth is not None:
                    if synth.name == synth[0].target:
                        return Answer(result=Result.SERVER_FAILURE)
                    if qtype == _CNAME:
                        ans = Answer([synth], _sets(z.ns))
                    else:
                        ans = await self.nested(elem, [synth], qtype)
                    ans.answer.insert(0, dname)
                    return ans
            deleg = self.delegation(elem, parts, qname, qtype)
            if deleg is not None:
                return Answer([], deleg[0], deleg[1], Result.DELEGATION)
            i += 1

        if found and shot and elem is not None:
            cname = elem.get(_CNAME)
            if cname is not None and qtype != _CNAME:
                return await self.nested(elem, [cname], qtype)
            rrset = elem.get(qtype)
            if rrset is None:
                return Answer([], [z.soa], [], Result.NO_DATA)
            return Answer([rrset], _sets(z.ns), self.additional([rrset]))

        if wild_name is not None and not self.closer_ent_exists(qname, wild_name):
            if wild_elem is None:
                return Answer([], [z.soa], [], Result.NO_DATA)
            cname = _for_wildcard(wild_elem.get(_CNAME), qname)
            if cname is not None and qtype != _CNAME:
                return await self.nested(wild_elem, [cname], qtype)
            rrset = _for_wildcard(wild_elem.get(qtype), qname)
            if rrset is None:
                return Answer([], [z.soa], [], Result.NO_DATA)
            return Answer([rrset], _sets(z.ns), self.additional([rrset]))

        # An empty non-terminal exists (NOERROR), anything else does not (NXDOMAIN).
        result = Result.SUCCESS if z.has_descendant(qname) else Result.NAME_ERROR
        return Answer([], [z.soa], [], result)

    def synthesize(self, qname: dns.name.Name, dname: dns.rrset.RRset) -> dns.rrset.RRset | None:
        """RFC 6672's CNAME for `qname` below the DNAME's owner (None at the owner itself)."""
        owner = dname.name
        if not qname.is_subdomain(owner) or qname == owner:
            return None
        try:
            target = qname.relativize(owner).derelativize(dname[0].target)
        except dns.name.NameTooLong:
            return None
        rd = dns.rdtypes.ANY.CNAME.CNAME(dname.rdclass, _CNAME, target)  # type: ignore[no-untyped-call]
        return dns.rrset.from_rdata(qname, dname.ttl, rd)

    async def nested(self, elem: Node, rrs: list[dns.rrset.RRset], qtype: int) -> Answer:
        token = _LOOP.set(_LOOP.get() + 1)
        try:
            return await self.external(rrs, qtype)
        finally:
            _LOOP.reset(token)

    async def external(self, rrs: list[dns.rrset.RRset], qtype: int) -> Answer:
        """Chase the CNAME in `rrs` inside the zone, then out of it (CoreDNS's externalLookup)."""
        z = self.z
        target: dns.name.Name = rrs[0][0].target
        elem = z.search(target)
        i = 0
        while True:
            deleg = self.find_delegation(target, qtype, elem)
            if deleg is not None:
                return Answer(rrs, deleg[0], deleg[1], Result.DELEGATION)
            if elem is None or qtype == _T.NS or (qtype == _T.SOA and target == z.origin):
                more, result = await self.do_lookup(target, qtype)
                rrs = rrs + more
                return Answer(rrs, self.authority(result), self.additional(rrs), result)
            if i > 0 and i > MAX_LOOP:  # CoreDNS stops after 8 CNAMEs inside the zone
                return Answer(rrs, _sets(z.ns), self.additional(rrs))
            cname = elem.get(_CNAME)
            if cname is None:
                break
            rrs = [*rrs, cname]
            target = cname[0].target
            elem = z.search(target)
            i += 1
        rrset = elem.get(qtype)
        if rrset is not None:
            rrs = [*rrs, rrset]
        return Answer(rrs, _sets(z.ns), self.additional(rrs))

    def authority(self, result: Result) -> list[dns.rrset.RRset]:
        if result in (Result.NAME_ERROR, Result.NO_DATA):
            return _sets(self.z.soa)
        return _sets(self.z.ns)

    async def do_lookup(
        self, target: dns.name.Name, qtype: int
    ) -> tuple[list[dns.rrset.RRset], Result]:
        m = await self.upstream(target, qtype)
        if m is None:
            return [], Result.SUCCESS
        rcode = m.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return list(m.answer), Result.NAME_ERROR
        if rcode == dns.rcode.SERVFAIL:
            return list(m.answer), Result.SERVER_FAILURE
        if rcode == dns.rcode.NOERROR and not m.answer:
            return [], Result.NO_DATA
        return list(m.answer), Result.SUCCESS

    def find_delegation(
        self, qname: dns.name.Name, qtype: int, exact: Node | None
    ) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]] | None:
        """The first zone cut between the apex and `qname` (its NS and glue), if any."""
        i = 1
        while True:
            name, shot = self.name_from_right(qname, i)
            if shot:
                return None
            if name == qname:
                if exact is None:
                    return None
                return self.delegation(exact, name, qname, qtype)
            elem = self.z.search(name)
            if elem is not None:
                deleg = self.delegation(elem, name, qname, qtype)
                if deleg is not None:
                    return deleg
            i += 1

    def delegation(
        self, elem: Node, name: dns.name.Name, qname: dns.name.Name, qtype: int
    ) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]] | None:
        """A referral from a cut's NS; a DS query at the cut itself is the parent's."""
        ns = elem.get(_T.NS)
        if ns is None or (qtype == _T.DS and name == qname):
            return None
        return [ns], self.glue(ns)

    def glue(self, ns: dns.rrset.RRset | None) -> list[dns.rrset.RRset]:
        """A and AAAA of the name servers under the NS records' owner (CoreDNS's Tree.Glue)."""
        if ns is None:
            return []
        a: list[dns.rrset.RRset] = []
        for rd in ns:
            if not rd.target.is_subdomain(ns.name):
                continue
            elem = self.z.search(rd.target)
            if elem is not None:
                a.extend(_sets(elem.get(_T.A), elem.get(_T.AAAA)))
        return a

    def additional(self, answer: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
        """Addresses of in-zone SRV, MX, SVCB and HTTPS targets, once per target."""
        extra: list[dns.rrset.RRset] = []
        seen: set[dns.name.Name] = set()
        for rrset in answer:
            if rrset.rdtype == _T.SRV or rrset.rdtype in (_T.SVCB, _T.HTTPS):
                names = [rd.target for rd in rrset]
            elif rrset.rdtype == _T.MX:
                names = [rd.exchange for rd in rrset]
            else:
                continue
            for name in names:
                if not name.is_subdomain(self.z.origin) or name in seen:
                    continue
                seen.add(name)
                elem = self.z.search(name)
                if elem is not None:
                    extra.extend(_sets(elem.get(_T.A), elem.get(_T.AAAA)))
        return extra

    def closer_ent_exists(self, qname: dns.name.Name, wildcard: dns.name.Name) -> bool:
        """An empty non-terminal between the wildcard's parent and `qname` (RFC 4592)."""
        parent = wildcard.parent()
        name = qname
        while len(name.labels) > 1:
            name = name.parent()
            if name == parent or not name.is_subdomain(parent):
                return False
            if self.z.has_descendant(name):
                return True
        return False
