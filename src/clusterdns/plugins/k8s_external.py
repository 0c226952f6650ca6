"""k8s_external: Services' external IPs (and headless endpoints) under a zone of their own.

Syntax::

    k8s_external [ZONES...] {
        apex APEX
        ttl TTL
        headless
        fallthrough [ZONES...]
    }

As CoreDNS's plugin/k8s_external. ZONES default to the server block's. The data comes from a
plugin of the same server block implementing clusterdns.pkg.external.Externaler — the
*kubernetes* plugin; without one the server does not start ("kubernetes plugin not loaded").

* `service.namespace.ZONE` holds the Service's external IPs (spec.externalIPs, then its
  LoadBalancer ingress IPs; an ingress hostname is a CNAME, resolved through this server);
  `_port._proto.service.namespace.ZONE` its SRV records; with `headless`, a headless Service
  without external IPs holds its ready endpoints' addresses, each also at
  `endpoint.service.namespace.ZONE`. PTR queries (if a reverse zone is in ZONES) name the
  Services with that external IP under the first zone.
* The apex answers SOA (`ns1.APEX.ZONE`, `hostmaster.APEX.ZONE`, the serial moves when the
  external data does) and NS `ns1.APEX.ZONE` with this server's external addresses as glue;
  `ns1.APEX.ZONE` has those addresses, `APEX.ZONE` is NODATA, other names under it NXDOMAIN.
* Only A, AAAA, SRV and PTR are answered; other types are NODATA if the name exists. A name
  that does not exist is NXDOMAIN with the SOA, unless `fallthrough` covers it.
* `ttl` (0-3600, default 5) is the TTL of the records, apart from SRV and CNAME records,
  which carry the kubernetes plugin's TTL, as in CoreDNS. `apex` defaults to `dns`.

Fast path: answers depend on the kubernetes data (its slot); answers that needed a lookup of
a CNAME target are not replayed.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import math
from typing import TYPE_CHECKING

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.errors import ConfigError, PluginError
from clusterdns.fallthrough import Fallthrough
from clusterdns.pkg.external import Externaler, ExternalService
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, parse_int, unknown_option
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import is_subdomain, longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.k8s_external")

_T = dns.rdatatype
_IN = dns.rdataclass.IN
#: Nested lookups of CNAME targets, as the kubernetes plugin caps them (CoreDNS: 10 entries).
MAX_UPSTREAM_DEPTH = 9
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("k8s_external_depth", default=0)
Section = list[tuple[dns.name.Name, int, dns.rdata.Rdata]]


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def _join(*parts: str) -> str:
    """dnsutil.Join: labels and a zone into one absolute name."""
    zone = parts[-1]
    head = ".".join(p.rstrip(".") for p in parts[:-1])
    return f"{head}." if zone == "." else f"{head}.{zone}"


def _ip(host: str) -> tuple[int, str] | None:
    """CoreDNS's HostType for an address: (A or AAAA, text); None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _T.A, str(ip.ipv4_mapped)
        return _T.AAAA, str(ip)
    return _T.A, str(ip)


def _address(rdtype: int, ip: str) -> dns.rdata.Rdata:
    if rdtype == _T.A:
        return dns.rdtypes.IN.A.A(_IN, _T.A, ip)  # type: ignore[no-untyped-call]
    return dns.rdtypes.IN.AAAA.AAAA(_IN, _T.AAAA, ip)  # type: ignore[no-untyped-call]


class K8sExternal(Plugin):
    name = "k8s_external"
    replay = Replay.ALWAYS
    #: CoreDNS takes it twice: options add up, the last line's zones win.
    once = False

    def __init__(
        self, zones: list[str], apex: str, ttl: int, headless: bool, fall: Fallthrough, d: Directive
    ) -> None:
        self.zones = zones
        self.apex = apex
        self.ttl = ttl
        self.headless = headless
        self.fall = fall
        self.directive = d
        self.ext: Externaler | None = None
        self.runtime: Runtime | None = None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> K8sExternal:
        d = directives[-1]
        zones = zones_from_args(d.args, default=ctx.zones)
        apex, ttl, headless, fall = "dns", 5, False, Fallthrough()
        for opt in (o for x in directives for o in x.children):
            if opt.name == "ttl":
                t = parse_int(opt, expect_args(opt, 1)[0])
                if t < 0 or t > 3600:
                    raise opt.error(f"plugin/k8s_external: ttl must be in range [0, 3600]: {t}")
                ttl = t
            elif opt.name == "apex":
                apex = expect_args(opt, 1)[0].lower().strip(".")
            elif opt.name == "headless":
                headless = True
            elif opt.name == "fallthrough":
                fall = Fallthrough.from_directive(opt)
            else:
                raise unknown_option("plugin/k8s_external", opt)
        return cls(zones, apex, ttl, headless, fall, d)

    async def start(self, rt: Runtime) -> None:
        """Find the Externaler of our server block (CoreDNS does it in OnStartup)."""
        block = next((b for b in rt.starting.blocks if self in b.plugins), None)
        plugins = block.plugins if block is not None else []
        found = next((p for p in plugins if isinstance(p, Externaler)), None)
        if found is None:
            what = (
                "kubernetes plugin does not implement the Externaler interface"
                if any(p.name == "kubernetes" for p in plugins)
                else "kubernetes plugin not loaded"
            )
            raise ConfigError(
                f"plugin/k8s_external: {what}", self.directive.file, self.directive.line
            )
        self.ext = found
        self.runtime = rt

    async def stop(self) -> None:
        self.ext = None
        self.runtime = None

    async def serve(self, req: Request) -> dns.message.Message:
        qname = req.qname
        zone = longest_match(self.zones, qname)
        ext = self.ext
        if not zone or ext is None:
            return await self.next(req)
        rec = fastpath.recorder()
        if rec is not None:
            slot = ext.external_slot()
            if slot:
                rec.depend(slot)  # before reading: a change from here on voids the answer
            else:
                rec.veto("k8s_external: no data yet")
        for z in self.zones:
            if qname == z:
                return self._apex(req, ext, zone)
            if is_subdomain(_join(self.apex, z), qname):
                return self._sub_apex(req, ext, zone)
        svcs, rcode = ext.external(qname, zone, req.qtype, self.headless)
        if not svcs:
            if self.fall.through(qname) and rcode == dns.rcode.NXDOMAIN:
                req.note("fallthrough: no such external name")
                return await self.next(req)
            return self._with_soa(req, ext, zone, rcode)
        m = req.reply(authoritative=True)
        answer: Section = []
        extra: Section = []
        truncated = False
        qt = req.qtype
        if qt in (_T.A, _T.AAAA):
            answer, truncated = await self._address(req, svcs, qt)
        elif qt == _T.SRV:
            answer, extra = await self._srv(req, svcs)
        elif qt == _T.PTR:
            answer = self._ptr(req, svcs)
        if not answer:
            m.authority = [self._soa(ext, zone)]
        if truncated:
            m.flags |= dns.flags.TC
        _fill(m, m.answer, answer)
        _fill(m, m.additional, extra)
        return m

    # ---- the apex and its `dns` subdomain ---------------------------------------------------

    def _soa(self, ext: Externaler, zone: str) -> dns.rrset.RRset:
        rd = dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
            _IN, _T.SOA, _name(_join("ns1", self.apex, zone)),
            _name(_join("hostmaster", self.apex, zone)),
            ext.external_serial(zone) & 0xFFFFFFFF, 7200, 1800, 86400, self.ttl,
        )  # fmt: skip
        return dns.rrset.from_rdata(_name(zone), self.ttl, rd)

    def _with_soa(
        self, req: Request, ext: Externaler, zone: str, rcode: int
    ) -> dns.message.Message:
        m = req.reply(rcode, authoritative=True)
        m.authority = [self._soa(ext, zone)]
        return m

    def _glue(self, ext: Externaler, zone: str, owner: dns.name.Name, qtype: int = 0) -> Section:
        out: Section = []
        for host in ext.external_address(zone, self.headless):
            kind = _ip(host)
            if kind is not None and (not qtype or kind[0] == qtype):
                out.append((owner, self.ttl, _address(*kind)))
        return out

    def _apex(self, req: Request, ext: Externaler, zone: str) -> dns.message.Message:
        m = req.reply(authoritative=True)
        if req.qtype == _T.SOA:
            m.answer = [self._soa(ext, zone)]
        elif req.qtype == _T.NS:
            ns = _join("ns1", self.apex, zone)
            rd = dns.rdtypes.ANY.NS.NS(_IN, _T.NS, _name(ns))  # type: ignore[no-untyped-call]
            m.answer = [dns.rrset.from_rdata(_name(zone), self.ttl, rd)]
            glue = _name(_join("ns1", self.apex, req.name.to_text()))
            _fill(m, m.additional, self._glue(ext, zone, glue))
        else:
            m.authority = [self._soa(ext, zone)]
        return m

    def _sub_apex(self, req: Request, ext: Externaler, zone: str) -> dns.message.Message:
        nz = 0 if zone == "." else zone.count(".")
        base = req.qname.count(".") - nz
        m = req.reply(authoritative=True)
        if base == 2 and req.qname.split(".", 1)[0] == "ns1":
            if req.qtype in (_T.A, _T.AAAA):
                _fill(m, m.answer, self._glue(ext, zone, req.name, req.qtype))
            if not m.answer:
                m.authority = [self._soa(ext, zone)]
        elif base == 1:  # the APEX label itself: an empty non-terminal
            m.authority = [self._soa(ext, zone)]
        else:
            m.set_rcode(dns.rcode.NXDOMAIN)
            m.authority = [self._soa(ext, zone)]
        return m

    # ---- answers from the services ----------------------------------------------------------

    async def _address(
        self, req: Request, svcs: list[ExternalService], qtype: int
    ) -> tuple[Section, bool]:
        out: Section = []
        seen: set[str] = set()
        truncated = False
        for s in svcs:
            kind = _ip(s.host)
            if kind is None:
                target = _name(s.host if s.host.endswith(".") else s.host + ".")
                out.append((req.name, s.ttl, dns.rdtypes.ANY.CNAME.CNAME(_IN, _T.CNAME, target)))  # type: ignore[no-untyped-call]
                resp = await self.upstream(req, target, qtype)
                if resp is not None:
                    out.extend((rr.name, rr.ttl, rd) for rr in resp.answer for rd in rr)
                    truncated = truncated or bool(resp.flags & dns.flags.TC)
            elif kind[0] == qtype and s.host not in seen:
                seen.add(s.host)
                out.append((req.name, self.ttl, _address(*kind)))
        return out, truncated

    async def _srv(self, req: Request, svcs: list[ExternalService]) -> tuple[Section, Section]:
        # Every result has priority 0: one weight group, each 100 (CoreDNS's msg.Service).
        weight = max(1, math.floor(100.0 / (100 * len(svcs)) * 100))
        records: Section = []
        extra: Section = []
        seen: set[tuple[str, int, str]] = set()
        for s in svcs:
            if s.port == -1:
                continue
            kind = _ip(s.host)
            target = (s.host if kind is None else s.target).rstrip(".") + "."
            rd = dns.rdtypes.IN.SRV.SRV(_IN, _T.SRV, 0, weight, s.port & 0xFFFF, _name(target))  # type: ignore[no-untyped-call]
            if (target, s.port, "") not in seen:
                seen.add((target, s.port, ""))
                records.append((req.name, s.ttl, rd))
            addr = target if kind is None else s.host
            if (target, 0, addr) in seen:
                continue
            seen.add((target, 0, addr))
            if kind is None:
                for t in (_T.A, _T.AAAA):
                    resp = await self.upstream(req, _name(target), t)
                    if resp is not None:
                        extra.extend((rr.name, rr.ttl, x) for rr in resp.answer for x in rr)
            else:
                extra.append((_name(target), self.ttl, _address(*kind)))
        return records, extra

    def _ptr(self, req: Request, svcs: list[ExternalService]) -> Section:
        out: Section = []
        seen: set[str] = set()
        for s in svcs:
            if s.host not in seen:
                seen.add(s.host)
                target = _name(_join(s.host, self.zones[0]))
                out.append((req.name, self.ttl, dns.rdtypes.ANY.PTR.PTR(_IN, _T.PTR, target)))  # type: ignore[no-untyped-call]
        return out

    async def upstream(
        self, req: Request, target: dns.name.Name, qtype: int
    ) -> dns.message.Message | None:
        """Resolve a CNAME target through this server from the top (CoreDNS's upstream)."""
        fastpath.veto("k8s_external: upstream lookup")
        rt = self.runtime
        router = None
        if rt is not None:
            router = next(
                (lst.router for a, lst in rt.listeners.items() if a.label == req.server), None
            )
        if router is None:
            return None
        depth = _DEPTH.get()
        sub = req.derive(target, qtype)
        found = router.route(sub.qname, sub.qtype, sub)
        token = _DEPTH.set(depth + 1)
        try:
            if depth >= MAX_UPSTREAM_DEPTH:
                return None
            if found is None:
                return None
            sub.zone, block = found
            try:
                return await block.chain(sub)
            except PluginError:
                return None  # CoreDNS leaves the records out on a lookup error
        finally:
            _DEPTH.reset(token)


def _fill(m: dns.message.Message, section: list[dns.rrset.RRset], rrs: Section) -> None:
    for owner, ttl, rd in rrs:
        rrset = m.find_rrset(section, owner, rd.rdclass, rd.rdtype, create=True)
        rrset.add(rd, ttl)


PLUGIN = K8sExternal
