"""Records from lookups: CoreDNS's plugin/backend_lookup.go for the kubernetes backend.

Each function returns (records, extra, truncated, nxdomain). Records are (owner, ttl, rdata)
triples so the handler can place them in sections. What they keep from CoreDNS:

* A/AAAA: one record per distinct address; a CNAME (ExternalName) is followed inside the zone
  (at most 8 deep, no repeated target, never to the query name or below it) and added only if
  the target resolved; outside the zone the target is resolved through the whole server again
  (`upstream`), and the CNAME plus whatever that gave are returned.
* SRV: priority 0, weight 100/n (floor, at least 1) over the n matching items, targets
  `[endpoint.]service.namespace.svc.ZONE`, their A/AAAA in the additional section; items
  without a port (-1) give no SRV. ExternalName services give none.
* PTR, NS (+ glue) and SOA (owner the zone as asked, mname ns.dns.ZONE, rname
  hostmaster.ZONE, refresh 7200, retry 1800, expire 86400, minimum = ttl, TTL min(ttl, 300)).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

from clusterdns.plugins.kubernetes.lookup import CNAME, Backend, Query, host_type

RR = tuple[dns.name.Name, int, dns.rdata.Rdata]
Upstream = Callable[[str, int], Awaitable[dns.message.Message | None]]
Result = tuple[list[RR], list[RR], bool, bool]

_IN = dns.rdataclass.IN
_T = dns.rdatatype
MAX_CNAMES = 8


def name(text: str) -> dns.name.Name | None:
    """`text` as a name, or None when it cannot be one: longer than 255 octets (a long zone
    or query name with labels put in front of it), a label over 63 octets or an empty one
    (an unchecked manifest). CoreDNS writes such a name anyway, and no client can read the
    answer; we leave that record out instead (CNAME, SRV, PTR, NS, the SOA)."""
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException:
        return None


def _prefixed(labels: tuple[bytes, ...], zone: dns.name.Name) -> dns.name.Name | None:
    try:
        return dns.name.Name((*labels, *zone.labels))
    except dns.exception.DNSException:
        return None


def address(ip: str, kind: str) -> dns.rdata.Rdata:
    if kind == "A":
        return dns.rdtypes.IN.A.A(_IN, _T.A, ip)  # type: ignore[no-untyped-call]
    return dns.rdtypes.IN.AAAA.AAAA(_IN, _T.AAAA, ip)  # type: ignore[no-untyped-call]


def query_for(text: str, zone: str, nz: int) -> Query:
    """A Query for a (lower-case) name found in data, e.g. an ExternalName target."""
    labels = [label for label in text.rstrip(".").lower().split(".") if label]
    return Query(labels, zone, nz)


def _is_below(parent: str, child: str) -> bool:
    """dns.IsSubDomain on text names (case-insensitive, both fully qualified)."""
    parent, child = parent.lower(), child.lower()
    return parent == "." or child == parent or child.endswith("." + parent)


def _fqdn(text: str) -> str:
    return text if text.endswith(".") else text + "."


class Answers:
    def __init__(self, backend: Backend, upstream: Upstream) -> None:
        self.b = backend
        self.upstream = upstream

    async def address(
        self, q: Query, owner: dns.name.Name, kind: str, previous: list[str] | None = None
    ) -> Result:
        """plugin.A / plugin.AAAA (`kind` "A" or "AAAA")."""
        items, nx = self.b.services(q, kind)
        if nx:
            return [], [], False, True
        previous = previous or []
        out: list[RR] = []
        dup: set[str] = set()
        truncated = False
        qtype = _T.A if kind == "A" else _T.AAAA
        for it in items:
            what, ip = host_type(it.host)
            if what == CNAME:
                target = _fqdn(it.host)
                if _is_below(q.name, target) or len(previous) >= MAX_CNAMES or target in previous:
                    continue
                target_name = name(target)
                if target_name is None:
                    continue
                cname = (owner, it.ttl, self._cname(target_name))
                if _is_below(q.zone, target):
                    inner = query_for(target, q.zone, q.nz)
                    recs, _, tc, inner_nx = await self.address(
                        inner, target_name, kind, [*previous, target]
                    )
                    truncated |= tc
                    if not inner_nx and recs:
                        out.append(cname)
                        out.extend(recs)
                    continue
                resp = await self.upstream(target, qtype)
                if resp is None:
                    continue
                truncated |= bool(resp.flags & dns.flags.TC)
                out.append(cname)
                for rrset in resp.answer:
                    out.extend((rrset.name, rrset.ttl, rd) for rd in rrset)
            elif what == kind and ip not in dup:
                dup.add(ip)
                out.append((owner, it.ttl, address(ip, kind)))
        return out, [], truncated, False

    def exists(self, q: Query) -> bool:
        """The fake A lookup CoreDNS does for other types: does the name exist at all?"""
        return not self.b.services(q, "A")[1]

    def srv(self, q: Query, owner: dns.name.Name) -> Result:
        items, nx = self.b.services(q, "SRV")
        if nx:
            return [], [], False, True
        total = sum(100 for _ in items)  # every k8s item has priority 0, weight 0 (→ 100)
        out: list[RR] = []
        extra: list[RR] = []
        dup: set[tuple[str, int | str]] = set()
        for it in items:
            if it.port == -1:
                continue
            weight = math.floor(100.0 / total * 100) or 1
            what, ip = host_type(it.host)
            target = name(it.target)
            if target is None:
                continue
            key = it.target.lower()
            if (key, it.port) not in dup:
                dup.add((key, it.port))
                rd = dns.rdtypes.IN.SRV.SRV(_IN, _T.SRV, 0, weight, it.port & 0xFFFF, target)  # type: ignore[no-untyped-call]
                out.append((owner, it.ttl, rd))
            if (key, ip) not in dup:
                dup.add((key, ip))
                extra.append((target, it.ttl, address(ip, what)))
        return out, extra, False, False

    def txt(self, q: Query, owner: dns.name.Name) -> Result:
        items, nx = self.b.services(q, "TXT")
        out: list[RR] = []
        for it in items:
            rd = dns.rdtypes.ANY.TXT.TXT(_IN, _T.TXT, [it.text.encode()])
            out.append((owner, it.ttl, rd))
        return out, [], False, nx

    def cname(self, q: Query, owner: dns.name.Name) -> Result:
        items, nx = self.b.services(q, "CNAME")
        out: list[RR] = []
        target = name(_fqdn(items[0].host)) if items else None
        if target is not None and host_type(items[0].host)[0] == CNAME:
            out.append((owner, items[0].ttl, self._cname(target)))
        return out, [], False, nx

    def ptr(self, q: Query, owner: dns.name.Name) -> Result:
        items, nx = self.b.reverse(q)
        out: list[RR] = []
        seen: set[str] = set()
        for it in items:
            target = name(_fqdn(it.host))
            if host_type(it.host)[0] == CNAME and it.host not in seen and target is not None:
                seen.add(it.host)
                rd = dns.rdtypes.ANY.PTR.PTR(_IN, _T.PTR, target)  # type: ignore[no-untyped-call]
                out.append((owner, it.ttl, rd))
        return out, [], False, nx

    def ns(self, q: Query, owner: dns.name.Name) -> Result:
        items, _ = self.b.services(q, "NS")
        out: list[RR] = []
        extra: list[RR] = []
        seen: set[str] = set()
        for it in items:
            what, ip = host_type(it.host)
            target = name(it.target)
            if target is None:
                continue
            extra.append((target, it.ttl, address(ip, what)))
            if it.target.lower() not in seen:
                seen.add(it.target.lower())
                rd = dns.rdtypes.ANY.NS.NS(_IN, _T.NS, target)  # type: ignore[no-untyped-call]
                out.append((owner, it.ttl, rd))
        return out, extra, False, False

    def soa(self, zone: dns.name.Name, serial: int) -> RR | None:
        """CoreDNS's plugin.SOA: None for a zone too long to put `ns.dns.` in front of."""
        ttl = self.b.s.ttl
        mname = _prefixed((b"ns", b"dns"), zone)
        rname = _prefixed((b"hostmaster",), zone)
        if mname is None or rname is None:
            return None
        rd = dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
            _IN,
            _T.SOA,
            mname,
            rname,
            serial & 0xFFFFFFFF,
            7200,
            1800,
            86400,
            ttl,
        )
        return (zone, min(ttl, 300), rd)

    @staticmethod
    def _cname(target: dns.name.Name) -> dns.rdata.Rdata:
        return dns.rdtypes.ANY.CNAME.CNAME(_IN, _T.CNAME, target)  # type: ignore[no-untyped-call]
