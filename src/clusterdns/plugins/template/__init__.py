"""template: answer queries with records rendered from Go templates, as CoreDNS's plugin/template.

Syntax::

    template CLASS TYPE [ZONE...] {
        match REGEX...
        answer RR
        additional RR
        authority RR
        rcode CODE
        ederror EXTENDED_ERROR_CODE [EXTRA_REASON]
        fallthrough [ZONE...]
        upstream
    }

CLASS and TYPE (either may be ANY) and ZONEs (default: the server block's) select the queries a
template looks at; `match` regexes (Go RE2 syntax, see re2.py; default `.*`) are tried in order
against the lower-cased query name. Several `template` lines are tried in Corefile order:

* a query outside every template's zones goes to the next plugin;
* a template whose zone, class or type does not fit is skipped; one that fits but whose regexes
  all fail answers SERVFAIL, unless `fallthrough` covers the name (then the next template, or
  the next plugin after the last one);
* the first template that matches answers: authoritative, with its rcode (default NOERROR;
  `rcode SERVFAIL` gives the server's plain SERVFAIL), each `answer`, `authority`,
  `additional` rendered (gotemplate.py) and read as one zone-file record (records.py). An
  answer CNAME is looked up through the whole server for A and AAAA queries and the records
  found are appended, TC copied (the `upstream` option is accepted and ignored, as by CoreDNS);
* `ederror` adds an RFC 8914 Extended DNS Error in an OPT record with DO set, as CoreDNS does
  (even for clients that sent no OPT).

A template that fails to render (Go execution error, or not a valid record) answers SERVFAIL,
the error is logged by *errors* and counted in coredns_template_template_failures_total or
coredns_template_rr_failures_total; coredns_template_matches_total counts the matches — all
labelled as CoreDNS labels them (the `template` label is Go's normalized template text).

Fast path: answers depend only on the question and the config, unless the template reads
.Remote, .Meta or .Message, or an answer may be a CNAME (chased), or it reads .Question (whose
name keeps the query's case: replayed only to the same spelling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.pkg import upstream
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.plugins.template import metrics as m
from clusterdns.plugins.template.gotemplate import Template
from clusterdns.plugins.template.govalues import ExecError, GoInt, Header, Question
from clusterdns.plugins.template.records import RRError, parse_rr
from clusterdns.plugins.template.setup import ANY, CLASSES, Rule, parse_rules
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

_CLASS_TEXT = {v: k for k, v in CLASSES.items()}
_ADDRESS = (dns.rdatatype.A, dns.rdatatype.AAAA)


def _type_text(rdtype: int) -> str:
    """miekg/dns TypeToString: "" for a type it has no name for."""
    text = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
    return "" if text.startswith("TYPE") else text


@dataclass(slots=True)
class Data:
    """CoreDNS's templateData for one query and the template that matched it."""

    req: Request
    Zone: str
    Name: str
    Regex: str
    Match: list[str]
    Group: dict[str, str]
    Class: str
    Type: str

    def field(self, name: str) -> object:
        if name == "Remote":
            return self.req.remote_ip
        if name == "Question":
            q = self.req.question
            return Question(
                q.name.to_text(), int(q.rdtype), int(q.rdclass),
                _CLASS_TEXT.get(int(q.rdclass)) or dns.rdataclass.to_text(q.rdclass),
                dns.rdatatype.to_text(q.rdtype),
            )  # fmt: skip
        if name == "Message":
            msg, f = self.req.msg, self.req.msg.flags
            return Header(
                GoInt(msg.id, "uint16"), GoInt(msg.opcode()), GoInt(msg.rcode()),
                bool(f & dns.flags.QR), bool(f & dns.flags.AA), bool(f & dns.flags.TC),
                bool(f & dns.flags.RD), bool(f & dns.flags.RA), bool(f & 0x40),
                bool(f & dns.flags.AD), bool(f & dns.flags.CD),
            )  # fmt: skip
        value: object = getattr(self, name)
        return value

    def meta(self, key: str) -> str:
        """CoreDNS's Meta: the metadata value, "" when absent or without the metadata plugin."""
        md = self.req.metadata
        fn = None if md is None else md.get(key)
        return "" if fn is None else fn()


def match(rule: Rule, req: Request) -> tuple[Data | None, bool]:
    """CoreDNS's template.match: (data if it matches, whether to go on if it does not)."""
    qname = req.qname
    zone = longest_match(rule.zones, qname)
    if not zone:
        return None, True
    qclass, qtype = req.qclass, req.qtype
    if rule.qclass != ANY and qclass != ANY and qclass != rule.qclass:
        return None, True
    if rule.qtype != ANY and qtype != ANY and qtype != rule.qtype:
        return None, True
    for pattern, regex in rule.regex:
        found = regex.search(qname)
        if found is None:
            continue
        groups = [found.group(0)] + [g or "" for g in found.groups()]
        group = {str(i): g for i, g in enumerate(groups)}
        for name, i in regex.groupindex.items():
            group[name] = groups[i]
        return Data(
            req, zone, qname, pattern, groups, group,
            _CLASS_TEXT.get(qclass if qclass != ANY else rule.qclass, ""),
            _type_text(qtype if qtype != ANY else rule.qtype),
        ), False  # fmt: skip
    return None, rule.fall.through(qname)


class TemplatePlugin(Plugin):
    name = "template"
    once = False
    replay = Replay.WHEN

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.zones = [z for r in rules for z in r.zones]
        self.runtime: Runtime | None = None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> TemplatePlugin:
        return cls(parse_rules(directives, ctx))

    async def start(self, rt: Runtime) -> None:
        self.runtime = rt

    async def stop(self) -> None:
        self.runtime = None

    def _select(self, req: Request) -> tuple[Rule, Data] | None:
        """The rule that answers and its data; None: next plugin; PluginError: SERVFAIL."""
        if not longest_match(self.zones, req.qname):
            return None
        for rule in self.rules:
            data, fall = match(rule, req)
            if data is not None:
                return rule, data
            if not fall:
                raise PluginError(self.name, "no regex matched", quiet=True)
        return None

    def replayable(self, req: Request) -> bool:
        try:
            found = self._select(req)
        except PluginError:
            return False
        if found is None:
            return True
        rule = found[0]
        return not rule.dynamic and not (rule.may_cname and req.qtype in _ADDRESS)

    async def serve(self, req: Request) -> dns.message.Message:
        found = self._select(req)
        if found is None:
            req.note("no template for this name")
            return await self.next(req)
        rule, data = found
        rec = fastpath.recorder()
        if rec is not None:
            if rule.dynamic:
                rec.veto("template: reads .Remote, .Meta or .Message")
            elif rule.case_sensitive:
                rec.case_sensitive = True
        labels = (req.server, data.Zone, m.VIEW, data.Class, data.Type)
        m.MATCHES.labels(*labels).inc()
        if rec is not None:
            rec.count(m.MATCHES, labels)
        if rule.rcode == dns.rcode.SERVFAIL:
            raise PluginError(self.name, "rcode SERVFAIL", quiet=True)
        msg = req.reply(rule.rcode, authoritative=True)
        for tmpl in rule.sections["answer"]:
            rrset = self._render(req, data, "answer", tmpl)
            msg.answer.append(rrset)
            if req.qtype in _ADDRESS and rrset.rdtype == dns.rdatatype.CNAME:
                target: dns.name.Name = rrset[0].target
                up = await upstream.lookup(self.runtime, req, target, req.qtype)
                if up is not None:
                    msg.flags = (msg.flags & ~dns.flags.TC) | (up.flags & dns.flags.TC)
                    msg.answer.extend(_singles(up.answer))
        for tmpl in rule.sections["additional"]:
            msg.additional.append(self._render(req, data, "additional", tmpl))
        for tmpl in rule.sections["authority"]:
            msg.authority.append(self._render(req, data, "authority", tmpl))
        if rule.ede is not None:
            # miekg's SetEdns0(4096, true): the DO bit is set, whatever the client sent.
            msg.use_edns(0, dns.flags.DO, 4096, options=[rule.ede])
        req.note("answered from a template")
        return msg

    def _render(self, req: Request, data: Data, section: str, tmpl: Template) -> dns.rrset.RRset:
        labels = (req.server, data.Zone, m.VIEW, data.Class, data.Type, section, str(tmpl))
        try:
            text = tmpl.execute(data)
        except ExecError as e:
            m.TEMPLATE_FAILURES.labels(*labels).inc()
            raise PluginError(self.name, str(e)) from None
        try:
            return parse_rr(text)
        except RRError as e:
            m.RR_FAILURES.labels(*labels).inc()
            raise PluginError(self.name, f"dns: {e}: {text!r}") from None


def _singles(section: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """Each record as its own RRset, in order: miekg appends records, it does not merge them."""
    out: list[dns.rrset.RRset] = []
    for rrset in section:
        for rd in rrset:
            one = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
            one.add(rd, rrset.ttl)
            out.append(one)
    return out


PLUGIN = TemplatePlugin
