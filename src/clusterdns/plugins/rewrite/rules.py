"""`type`, `class`, `ttl`, `rcode` and `cname` rules (CoreDNS's type.go, class.go, ttl.go,
rcode.go, cname_target.go), with CoreDNS's argument checks and messages.

Syntax::

    type FROM TO
    class FROM TO
    ttl [exact|prefix|suffix|substring|regex] NAME SECONDS|MIN-MAX|-MAX|MIN-
    rcode [exact|prefix|suffix|substring|regex] NAME FROM TO
    cname [exact|prefix|suffix|substring|regex] FROM TO

A `cname` rule applies to every query (as in CoreDNS, a `stop` one ends the rule list): in the
answer, the CNAME whose target matches FROM gets TO as target, the records after it are
dropped and replaced by what the server answers for TO (see `Lookup`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import dns.flags
import dns.message
import dns.rdatatype

from clusterdns.plugins.rewrite.base import (
    EXACT,
    MATCH_TYPES,
    PREFIX,
    REGEX,
    SUBSTRING,
    SUFFIX,
    Rule,
    RuleError,
    State,
    compile_re2_or,
    matches,
    normalize,
)
from clusterdns.plugins.rewrite.regex import MAX_LEN
from clusterdns.plugins.rewrite.response import (
    RcodeResponse,
    Rec,
    ResponseRule,
    TTLResponse,
    View,
    substitute,
)

#: miekg/dns StringToClass.
CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}
#: miekg/dns StringToRcode (RcodeToString reversed: 16 is BADSIG).
RCODES = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "DSOTYPENI": 11,
    "BADSIG": 16, "BADKEY": 17, "BADTIME": 18, "BADMODE": 19, "BADNAME": 20, "BADALG": 21,
    "BADTRUNC": 22, "BADCOOKIE": 23,
}  # fmt: skip
_DIGITS = re.compile(r"[0-9]+\Z")


def rdtype_of(text: str) -> int | None:
    """miekg/dns StringToType: mnemonics only (no TYPEnnn)."""
    if text.upper().startswith("TYPE"):
        return None
    try:
        return int(dns.rdatatype.from_text(text))
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        return None


class TypeRule(Rule):
    def __init__(self, mode: str, args: list[str]) -> None:
        self.mode = mode
        frm, to = (rdtype_of(a) for a in args)
        for a, v in zip(args, (frm, to), strict=True):
            if v is None:
                raise RuleError(f'invalid type "{a.upper()}"')
        assert frm is not None and to is not None
        self.frm, self.to = frm, to

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        if st.req.qtype != self.frm:
            return None
        st.set_type(self.to)
        return []


class ClassRule(Rule):
    def __init__(self, mode: str, args: list[str]) -> None:
        self.mode = mode
        for a in args:
            if a.upper() not in CLASSES:
                raise RuleError(f'invalid class "{a.upper()}"')
        self.frm, self.to = CLASSES[args[0].upper()], CLASSES[args[1].upper()]

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        if st.req.qclass != self.frm:
            return None
        st.set_class(self.to)
        return []


class MatchRule(Rule):
    """ttl and rcode rules: match the question name, then act on the response only."""

    def __init__(self, mode: str, kind: str, what: str | re.Pattern[str], resp: ResponseRule):
        self.mode = mode
        self.kind = kind
        self.what = what
        self.response = resp

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        return [self.response] if matches(self.kind, self.what, st.name()) else None


def _matcher(kind: str, text: str, rule: str) -> tuple[str, str | re.Pattern[str]]:
    kind = kind.lower()
    if kind == REGEX:
        if len(text) > MAX_LEN:
            raise RuleError(f"regex pattern too long in a {rule} rule: {len(text)} > {MAX_LEN}")
        return kind, compile_re2_or(text, f"invalid regex pattern in a {rule} rule: {text}")
    if kind not in MATCH_TYPES:
        raise RuleError(
            f"{rule} rule supports only exact, prefix, suffix, substring, and regex name matching"
        )
    return kind, normalize(text)


def parse_ttl(v: str) -> tuple[int, int] | None:
    """isValidTTL: N, MIN-MAX, -MAX or MIN- (not `-`), each fitting 32 bits."""

    def num(s: str) -> int | None:
        return int(s) if _DIGITS.match(s) and int(s) < 1 << 32 else None

    parts = v.split("-")
    if len(parts) == 1:
        n = num(parts[0])
        return None if n is None else (n, n)
    if len(parts) != 2 or parts == ["", ""]:
        return None
    low = 0 if parts[0] == "" else num(parts[0])
    high = 2147483647 if parts[1] == "" else num(parts[1])
    if low is None or high is None or low > high:
        return None
    return low, high


def new_ttl_rule(mode: str, args: list[str]) -> MatchRule:
    if len(args) < 2:
        raise RuleError(f"too few ({len(args)}) arguments for a ttl rule")
    s = args[1] if len(args) == 2 else args[2] if len(args) == 3 else ""
    bounds = parse_ttl(s)
    if bounds is None:
        raise RuleError(f"invalid TTL '{s}' for a ttl rule")
    if len(args) > 3:
        raise RuleError("many few arguments for a ttl rule")  # sic
    kind, what = (
        _matcher(args[0], args[1], "ttl") if len(args) == 3 else (EXACT, normalize(args[0]))
    )
    return MatchRule(mode, kind, what, TTLResponse(*bounds))


def rcode_of(v: str) -> int | None:
    """isValidRCode: 0-23, or a name."""
    if _DIGITS.match(v) and int(v) <= 23:
        return int(v)
    return RCODES.get(v.upper())


def new_rcode_rule(mode: str, args: list[str]) -> MatchRule:
    if len(args) < 3:
        raise RuleError(f"too few ({len(args)}) arguments for a rcode rule")
    old_s, new_s = (args[1], args[2]) if len(args) == 3 else (args[2], args[3])
    if len(args) > 4:
        old_s = new_s = ""
    old = rcode_of(old_s)
    if old is None:
        raise RuleError(f"invalid matching RCODE '{old_s}' for a rcode rule")
    new = rcode_of(new_s)
    if new is None:
        raise RuleError(f"invalid replacement RCODE '{new_s}' for a rcode rule")
    if len(args) > 4:
        raise RuleError("many few arguments for a rcode rule")  # sic
    kind, what = (
        _matcher(args[0], args[1], "rcode") if len(args) == 4 else (EXACT, normalize(args[0]))
    )
    return MatchRule(mode, kind, what, RcodeResponse(old, new))


#: Resolves a name through the whole server, as CoreDNS's upstream.Lookup (None: no server).
Lookup = Callable[[State, str, int], Awaitable[dns.message.Message | None]]


class CnameRule(Rule):
    def __init__(self, mode: str, args: list[str]) -> None:
        self.mode = mode
        if len(args) == 3:
            kind = args[0].lower()
            if kind not in MATCH_TYPES:
                raise RuleError(f"unknown cname rewrite type: {kind}")
            frm, to = args[1].lower(), args[2].lower()
        elif len(args) == 2:
            kind, frm, to = EXACT, args[0].lower(), args[1].lower()
        else:
            raise RuleError(f"too few ({len(args)}) arguments for a cname rule")
        if kind == EXACT:
            frm, to = normalize(frm), normalize(to)
        self.kind, self.frm, self.to = kind, frm, to
        self.pattern: re.Pattern[str] | None = None
        if kind == REGEX:
            if len(frm) > MAX_LEN:
                raise RuleError(f"regex pattern too long in a cname rule: {len(frm)} > {MAX_LEN}")
            self.pattern = compile_re2_or(frm, "invalid cname rewrite regex pattern")
        self.lookup: Lookup | None = None  # set by the plugin

    def targets(self, cname: str) -> tuple[str, str]:
        """getFromAndToTarget: ("", "") when `cname` does not match."""
        kind, frm, to = self.kind, self.frm, self.to
        if kind == EXACT:
            return frm, to
        if kind == PREFIX and cname.startswith(frm):
            return cname, to + cname[len(frm) :]
        if kind == SUFFIX and cname.endswith(frm):
            return cname, cname[: len(cname) - len(frm)] + to
        if kind == SUBSTRING and frm in cname:
            return cname, cname.replace(frm, to)
        if kind == REGEX:
            assert self.pattern is not None
            m = self.pattern.search(cname)
            if m is not None:
                return cname, substitute(m, to)
        return "", ""

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        if not (self.frm and self.to):
            return None
        return [CnameResponse(self, st)]


class CnameResponse(ResponseRule):
    """Runs asynchronously (it asks the server): the plugin awaits `run` for each record."""

    def __init__(self, rule: CnameRule, st: State) -> None:
        self.rule = rule
        self.st = st

    def apply(self, view: View, rec: Rec | None) -> None:
        raise TypeError("CnameResponse is applied with run()")

    async def run(self, view: View, rec: Rec | None) -> None:
        if rec is None or rec.rd.rdtype != dns.rdatatype.CNAME:
            return
        target = rec.value()
        frm, to = self.rule.targets(target)
        if target != frm or self.rule.lookup is None:
            return
        st = self.st
        st.set_name(to)  # as CoreDNS, the request itself now asks for the new target
        if st.invalid is not None:
            st.invalid = None
            return
        up = await self.rule.lookup(st, to, st.req.qtype)
        if up is None:
            return
        answer: list[Rec] = []
        for r in view.answer:
            if r.rd.rdtype == dns.rdatatype.CNAME:
                answer.append(r)
                if r.value() == frm:
                    r.set_value(to)
                    break
        answer += [Rec(s.name.to_text(), s.ttl, rd, id(s)) for s in up.answer for rd in s]
        view.answer = answer
        view.tc = bool(up.flags & dns.flags.TC)
