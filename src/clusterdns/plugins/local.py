"""local: answer the local names (localhost, 127.in-addr.arpa …) so they never leave the server.

Syntax::

    local {
        localhost_prefix on|off
    }

As CoreDNS's plugin/local:

* `localhost.` answers A 127.0.0.1, AAAA ::1, its NS (`localhost.`) and SOA; other types NODATA
  with the SOA. `0.in-addr.arpa.`, `127.in-addr.arpa.` and `255.in-addr.arpa.` answer NS and
  SOA (A, AAAA and other types: NODATA with the SOA);
* `1.0.0.127.in-addr.arpa.` answers PTR `localhost.` (other types NODATA, the zone's SOA);
  any other name in those zones is NXDOMAIN with the zone's SOA;
* names under `localhost.` (RFC 6761) and, unless `localhost_prefix off`, names starting with
  `localhost.` (the legacy `localhost.<domain>`) answer A 127.0.0.1 and AAAA ::1, other types
  NODATA with an SOA at the name; they are counted in coredns_local_localhost_requests_total.

Records have TTL 604800 (the SOA is `localhost. root.localhost. 1 0 0 0 604800`), the owner
as the client wrote it, and the answers are not authoritative. Everything else (and `ip6.arpa`)
goes to the next plugin.
"""

from __future__ import annotations

import logging

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset
from prometheus_client import Counter

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, unknown_option
from clusterdns.request import Request

log = logging.getLogger("clusterdns.plugins.local")

TTL = 604800
ZONES = ("localhost.", "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa.")
LOOPBACK_PTR = "1.0.0.127.in-addr.arpa."
_LOCALHOST = dns.name.from_text("localhost.")
_ROOT_LOCALHOST = dns.name.from_text("root.localhost.")
_IN = dns.rdataclass.IN
_T = dns.rdatatype

LOCALHOST_COUNT = Counter(
    "localhost_requests_total",
    "Counter of special localhost subdomain requests.",
    namespace="coredns",
    subsystem="local",
)


def _rrset(owner: dns.name.Name, rd: dns.rdata.Rdata) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, TTL, [rd])


def soa(owner: dns.name.Name) -> dns.rrset.RRset:
    rd = dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
        _IN, _T.SOA, _LOCALHOST, _ROOT_LOCALHOST, 1, 0, 0, 0, TTL
    )
    return _rrset(owner, rd)


def loopback(owner: dns.name.Name, qtype: int) -> dns.rrset.RRset | None:
    """A 127.0.0.1 or AAAA ::1 at `owner`, None for other types."""
    if qtype == _T.A:
        return _rrset(owner, dns.rdtypes.IN.A.A(_IN, _T.A, "127.0.0.1"))  # type: ignore[no-untyped-call]
    if qtype == _T.AAAA:
        return _rrset(owner, dns.rdtypes.IN.AAAA.AAAA(_IN, _T.AAAA, "::1"))  # type: ignore[no-untyped-call]
    return None


def _zone(qname: str) -> str:
    """The longest of ZONES containing `qname` (lower case), or ""."""
    best = ""
    for z in ZONES:
        if (qname == z or qname.endswith("." + z)) and len(z) > len(best):
            best = z
    return best


class Local(Plugin):
    name = "local"
    # Answers depend only on the query; the localhost-form counter has no labels to replay.
    replay = Replay.WHEN

    def __init__(self, localhost_prefix: bool) -> None:
        self.localhost_prefix = localhost_prefix

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Local:
        prefix = True
        for d in directives:
            expect_args(d, 0, 0)
            for opt in d.children:
                if opt.name != "localhost_prefix":
                    raise unknown_option("local", opt)
                (value,) = expect_args(opt, 1, 1)
                if value not in ("on", "off"):
                    raise opt.error(f"local: localhost_prefix expects 'on' or 'off', got {value!r}")
                prefix = value == "on"
        return cls(prefix)

    def special(self, qname: str) -> bool:
        """A non-apex localhost form: `x.localhost.`, or `localhost.x.` unless turned off."""
        n = len("localhost.")
        if len(qname) <= n:
            return False
        return qname.endswith(".localhost.") or (
            self.localhost_prefix and qname.startswith("localhost.")
        )

    def replayable(self, req: Request) -> bool:
        return not self.special(req.qname)

    async def serve(self, req: Request) -> dns.message.Message:
        qname, qtype, owner = req.qname, req.qtype, req.name
        if self.special(qname):
            req.note("local: a name under localhost. (or a legacy localhost. prefix)")
            log.debug("plugin/local: Intercepting localhost query for \"%s\" %s, from %s",
                      qname, req.type_text, req.remote_ip)  # fmt: skip
            LOCALHOST_COUNT.inc()
            m = req.reply()
            rr = loopback(owner, qtype)
            if rr is not None:
                m.answer = [rr]
            else:
                m.authority = [soa(owner)]
            return m
        zone = _zone(qname)
        if not zone:
            return await self.next(req)
        req.note("local: a local zone")
        m = req.reply()
        # The zone as the client spelled it (CoreDNS slices the query name).
        apex = dns.name.Name(owner.labels[len(owner.labels) - zone.count(".") - 1 :])
        if qname == zone:
            if qtype in (_T.A, _T.AAAA):
                rr = loopback(owner, qtype) if qname == "localhost." else None
                if rr is not None:
                    m.answer = [rr]
                else:
                    m.authority = [soa(owner)]
            elif qtype == _T.SOA:
                m.answer = [soa(owner)]
            elif qtype == _T.NS:
                m.answer = [_rrset(owner, dns.rdtypes.ANY.NS.NS(_IN, _T.NS, _LOCALHOST))]  # type: ignore[no-untyped-call]
            else:
                m.authority = [soa(owner)]
        elif qname == LOOPBACK_PTR:
            if qtype == _T.PTR:
                m.answer = [_rrset(owner, dns.rdtypes.ANY.PTR.PTR(_IN, _T.PTR, _LOCALHOST))]  # type: ignore[no-untyped-call]
            else:
                m.authority = [soa(apex)]
        else:
            m.authority = [soa(apex)]
            m.set_rcode(dns.rcode.NXDOMAIN)
        return m


PLUGIN = Local
