"""The response side of rewrite: CoreDNS's ResponseReverter, record by record.

A response is taken apart into records (`Rec`: owner text, TTL, rdata) because CoreDNS's rules
work on single records (an owner or TTL rule may split what dnspython holds as one set). For
each record of the authority, answer and additional sections, in that order, every response
rule runs, the last one first (a rule's reverse mapping must undo the latest request rewrite
first). A response without records still gets its message-level rules (rcode). The result is a
new message: the next plugin's (possibly cached) one is never modified.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

_T = dns.rdatatype
#: The name a record's value holds, for `answer value` and auto rewrites (CoreDNS's
#: getRecordValueForRewrite): CNAME, DNAME, NS, PTR, SRV targets, MX, NAPTR, SOA primary.
VALUE_FIELD = {
    _T.CNAME: "target", _T.DNAME: "target", _T.NS: "target", _T.PTR: "target",
    _T.SRV: "target", _T.MX: "exchange", _T.NAPTR: "replacement", _T.SOA: "mname",
}  # fmt: skip


@dataclass(slots=True, eq=False)
class Rec:
    """One record of a response being rewritten."""

    name: str
    ttl: int
    rd: dns.rdata.Rdata
    #: The record set it came in (records of one set stay together, never merged with
    #: another: a set cannot hold a record twice, and the response may).
    group: int = 0

    def value(self) -> str:
        f = VALUE_FIELD.get(self.rd.rdtype)
        return "" if f is None else str(getattr(self.rd, f).to_text())

    def set_value(self, text: str) -> None:
        f = VALUE_FIELD.get(self.rd.rdtype)
        name = _name(text)
        if f is not None and name is not None:
            self.rd = self.rd.replace(**{f: name})


@dataclass(slots=True, eq=False)
class View:
    """The parts of a response the rules change."""

    rcode: int
    tc: bool
    ns: list[Rec]
    answer: list[Rec]
    extra: list[Rec]
    #: The response's own EDNS0 options; None if it has no OPT.
    options: list[dns.edns.Option] | None


class ResponseRule:
    """A rule run on each record (`rec`), or once on a record-less response (rec None)."""

    #: Runs on a response without records (CoreDNS's msgResponseRule: rcode).
    message_level = False
    #: Reverts the request's EDNS0 before the reply's OPT is made (edns0 `revert`).
    request_revert = False

    def apply(self, view: View, rec: Rec | None) -> None:
        raise NotImplementedError


def _name(text: str) -> dns.name.Name | None:
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError):
        return None


# ---- string rewriters (name.go) ------------------------------------------------------------

Rewriter = Callable[[str], str]


def substitute(m: re.Match[str], template: str) -> str:
    """`{0}`, `{1}`… in `template` replaced by the groups of `m`, one index after the other
    (as CoreDNS: a group's text holding `{2}` is itself replaced when 2's turn comes)."""
    s = template
    for i, g in enumerate((m.group(0), *m.groups())):
        s = s.replace("{" + str(i) + "}", g or "")
    return s


def regex_rewriter(pattern: re.Pattern[str], replacement: str) -> Rewriter:
    def rewrite(src: str) -> str:
        m = pattern.search(src)
        return src if m is None else substitute(m, replacement)

    return rewrite


def remap_rewriter(orig: str, replacement: str) -> Rewriter:
    """`orig` and names below it map onto `replacement` (the auto answer rewrite)."""

    def rewrite(src: str) -> str:
        if src == orig:
            return replacement
        if src.endswith("." + orig):
            return src[: len(src) - len(orig)] + replacement
        return src

    return rewrite


def suffix_rewriter(suffix: str, replacement: str) -> Rewriter:
    def rewrite(src: str) -> str:
        if src.endswith(suffix):
            return src[: len(src) - len(suffix)] + replacement
        return src

    return rewrite


@dataclass(slots=True, eq=False)
class NameResponse(ResponseRule):
    """`answer name`: rewrite record owners."""

    rewrite: Rewriter

    def apply(self, view: View, rec: Rec | None) -> None:
        if rec is not None:
            new = self.rewrite(rec.name)
            if new != rec.name and _name(new) is not None:
                rec.name = new


@dataclass(slots=True, eq=False)
class ValueResponse(ResponseRule):
    """`answer value`: rewrite the names records point at."""

    rewrite: Rewriter

    def apply(self, view: View, rec: Rec | None) -> None:
        if rec is None:
            return
        value = rec.value()
        if value:
            new = self.rewrite(value)
            if new != value:
                rec.set_value(new)


@dataclass(slots=True, eq=False)
class TTLResponse(ResponseRule):
    low: int
    high: int

    def apply(self, view: View, rec: Rec | None) -> None:
        if rec is None:
            return
        if rec.ttl < self.low:
            rec.ttl = self.low
        elif rec.ttl > self.high:
            rec.ttl = self.high


@dataclass(slots=True, eq=False)
class RcodeResponse(ResponseRule):
    old: int
    new: int
    message_level = True

    def apply(self, view: View, rec: Rec | None) -> None:
        if view.rcode == self.old:
            view.rcode = self.new


@dataclass(slots=True, eq=False)
class OptionRevert(ResponseRule):
    """edns0 `revert`: drop an option the rule added, or put back the one it replaced."""

    code: int
    old: dns.edns.Option | None = None
    request_revert = True

    def apply(self, view: View, rec: Rec | None) -> None:
        self.revert(view.options)

    def revert(self, options: list[dns.edns.Option] | None) -> None:
        if options is None:
            return
        for i, o in enumerate(options):
            if o.otype == self.code:
                if self.old is None:
                    del options[i]
                else:
                    options[i] = self.old
                return


# ---- taking a response apart and back together ---------------------------------------------


def view_of(resp: dns.message.Message) -> View:
    def recs(section: list[dns.rrset.RRset]) -> list[Rec]:
        return [Rec(s.name.to_text(), s.ttl, rd, id(s)) for s in section for rd in s]

    return View(
        rcode=int(resp.rcode()),
        tc=bool(resp.flags & dns.flags.TC),
        ns=recs(resp.authority),
        answer=recs(resp.answer),
        extra=recs(resp.additional),
        options=list(resp.options) if resp.opt is not None else None,
    )


@dataclass(slots=True)
class _Group:
    key: tuple[str, int, int, int, int, int]
    rds: list[dns.rdata.Rdata] = field(default_factory=list)


def _rrsets(recs: list[Rec]) -> list[dns.rrset.RRset]:
    """Consecutive records of one set that still share owner and TTL make one set (order
    kept)."""
    groups: list[_Group] = []
    for r in recs:
        key = (r.name, r.rd.rdclass, r.rd.rdtype, r.rd.covers(), r.ttl, r.group)
        if groups and groups[-1].key == key:
            groups[-1].rds.append(r.rd)
        else:
            groups.append(_Group(key, [r.rd]))
    out: list[dns.rrset.RRset] = []
    for g in groups:
        name, rdclass, rdtype, covers, ttl, _ = g.key
        rrset = dns.rrset.RRset(
            dns.name.from_text(name),
            dns.rdataclass.RdataClass.make(rdclass),
            dns.rdatatype.RdataType.make(rdtype),
            dns.rdatatype.RdataType.make(covers),
        )
        for rd in g.rds:
            rrset.add(rd, ttl)
        out.append(rrset)
    return out


def rebuild(
    resp: dns.message.Message, view: View, question: list[dns.rrset.RRset]
) -> dns.message.Message:
    """A new message: `resp` with the client's question and the view's records and header."""
    out = copy.copy(resp)
    out.sections = [question, _rrsets(view.answer), _rrsets(view.ns), _rrsets(view.extra)]
    out.index = {}  # the copied index would name the old message's record sets
    out.flags = (resp.flags & ~dns.flags.TC) | (dns.flags.TC if view.tc else 0)
    if resp.opt is not None and view.options is not None:
        out.use_edns(resp.edns, resp.ednsflags, resp.payload, options=view.options)
    out.set_rcode(dns.rcode.Rcode.make(view.rcode))
    return out
