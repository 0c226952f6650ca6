"""The kubernetes plugin's ServeDNS: pick the zone, answer by type, NXDOMAIN versus NODATA.

As CoreDNS's plugin/kubernetes/handler.go:

* names outside the plugin's zones go to the next plugin; the zone keeps the query's case;
* A, AAAA, TXT, CNAME, PTR, MX, SRV are looked up; SOA is answered at the apex only (NODATA
  below it); NS at the apex asked in lower case (with glue; in another case NODATA, as CoreDNS's
  comparison of the lower-cased name with the zone as asked); AXFR/IXFR are REFUSED; any other
  type is NODATA if the name exists (a fake A lookup decides), else NXDOMAIN;
* a name that does not exist is passed on when `fallthrough` covers it; otherwise it is
  SERVFAIL while the first sync has not finished, else NXDOMAIN — both with the SOA, as is
  NODATA; answers are authoritative and carry TC if an upstream answer was truncated.

`upstream` resolves an out-of-zone CNAME target through the whole server again (routing by
zone, then that block's chain), which is what CoreDNS's upstream.Lookup does; nesting is capped
so two ExternalNames pointing at each other across zones cannot loop forever.

Fast path (clusterdns.server.fastpath): an answer depends on the store (its slot is bumped on
every change); SRV answers show the query's case in their targets, and NS and `ns.dns.ZONE`
answers depend on it, so those are only replayed to the same spelling; answers that needed
`upstream` or came before the first sync are not replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.pkg import upstream
from clusterdns.plugins.kubernetes.answers import RR, Answers, Result
from clusterdns.plugins.kubernetes.lookup import NS_NAME, Backend, Query
from clusterdns.plugins.kubernetes.setup import Settings
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.kubernetes")

_T = dns.rdatatype
_IN = dns.rdataclass.IN
#: Lookups nested in one query (ExternalName → other zone → ExternalName …): CoreDNS's server
#: refuses to be entered more than 10 times for one query and answers SERVFAIL instead.


def _labels(name: dns.name.Name) -> list[str]:
    """Lower-cased labels without the root (latin-1 keeps any byte as one character)."""
    return [label.lower().decode("latin-1") for label in name.labels if label]


class Handler:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        next_handler: Callable[[Request], Awaitable[dns.message.Message]],
        synced: Callable[[], bool],
        serial: Callable[[str], int],
    ) -> None:
        self.s = settings
        self.b = backend
        self.next = next_handler
        self.synced = synced
        self.serial = serial
        self.runtime: Runtime | None = None
        self.slot = 0  # the fast path's slot for the store's data (set by the plugin's start)

    async def serve(self, req: Request) -> dns.message.Message:
        qname = req.qname
        zone = longest_match(self.s.zones, qname)
        if not zone:
            req.note("name outside the kubernetes plugin's zones")
            return await self.next(req)
        rec = fastpath.recorder()
        if rec is not None:
            if self.slot and self.synced():
                rec.depend(self.slot)  # before reading: a change from here on voids it
            else:
                rec.veto("kubernetes: not synced")
            if req.qtype in (_T.SRV, _T.NS) or qname.startswith(NS_NAME):
                # SRV targets show the query's case; the apex NS and `ns.dns.ZONE` are only
                # answered when the zone is asked in lower case (see above).
                rec.case_sensitive = True
        owner = req.name
        nz = 0 if zone == "." else zone.count(".")
        zone_name = dns.name.Name(owner.labels[len(owner.labels) - nz - 1 :])  # query case
        q = Query(_labels(owner), zone_name.to_text(), nz)
        qtype = req.qtype
        answers = Answers(self.b, lambda target, t: self.upstream(req, target, t))
        result: Result
        if qtype in (_T.A, _T.AAAA):
            result = await answers.address(q, owner, "A" if qtype == _T.A else "AAAA")
        elif qtype == _T.TXT:
            result = answers.txt(q, owner)
        elif qtype == _T.CNAME:
            result = answers.cname(q, owner)
        elif qtype == _T.PTR:
            result = answers.ptr(q, owner)
        elif qtype == _T.SRV:
            result = answers.srv(q, owner)
        elif qtype == _T.SOA:
            soa = answers.soa(zone_name, self.serial(zone)) if qname == zone else None
            result = ([soa] if soa is not None else [], [], False, False)
        elif qtype in (_T.AXFR, _T.IXFR):
            return req.reply(dns.rcode.REFUSED)
        elif qtype == _T.NS and qname == zone and zone_name.to_text() == zone:
            # CoreDNS compares the lower-cased name with the zone as asked: an apex asked
            # in another case falls to the existence check below (NODATA).
            result = answers.ns(q, owner)
        else:  # MX included: Kubernetes has no mail records, only the name's existence matters
            result = ([], [], False, not answers.exists(q))
        records, extra, truncated, nxdomain = result
        if nxdomain:
            if self.s.fall.through(qname):
                req.note("fallthrough: no such name in the cluster")
                return await self.next(req)
            req.note("no such name in the cluster" if self.synced() else "not synced yet")
            rcode = dns.rcode.NXDOMAIN if self.synced() else dns.rcode.SERVFAIL
            return self._with_soa(req, rcode, answers, zone_name)
        if not records:
            return self._with_soa(req, dns.rcode.NOERROR, answers, zone_name)
        m = req.reply(authoritative=True)
        if truncated:
            m.flags |= dns.flags.TC
        _fill(m, m.answer, records)
        _fill(m, m.additional, extra)
        return m

    def _with_soa(
        self, req: Request, rcode: int, answers: Answers, zone: dns.name.Name
    ) -> dns.message.Message:
        m = req.reply(rcode, authoritative=True)
        soa = answers.soa(zone, self.serial(zone.to_text().lower()))
        _fill(m, m.authority, [soa] if soa is not None else [])
        return m

    async def upstream(self, req: Request, target: str, qtype: int) -> dns.message.Message | None:
        """Resolve `target` through this server from the top, as CoreDNS's upstream.Lookup.

        None (the CNAME is then left out, as CoreDNS does on a lookup error) when no server
        is running this plugin; SERVFAIL when lookups nest too deep.
        """
        fastpath.veto("kubernetes: upstream lookup")
        return await upstream.lookup(self.runtime, req, dns.name.from_text(target), qtype)


def _fill(m: dns.message.Message, section: list[dns.rrset.RRset], rrs: list[RR]) -> None:
    """Add the records in order; a record given twice is written twice, as CoreDNS does (the NS
    glue of a dual-stack Service found through both of its EndpointSlices)."""
    for owner, ttl, rd in rrs:
        rrset = m.find_rrset(section, owner, rd.rdclass, rd.rdtype, create=True)
        if rd in rrset:
            again = dns.rrset.RRset(owner, rd.rdclass, rd.rdtype)
            again.add(rd, ttl)
            section.append(again)
        else:
            rrset.add(rd, ttl)
