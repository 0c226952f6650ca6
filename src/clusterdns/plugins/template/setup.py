"""Reading `template` directives into Rules, with CoreDNS's checks and error texts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dns.edns
import dns.exception
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.fallthrough import Fallthrough
from clusterdns.plugin import SetupContext, unknown_option
from clusterdns.plugins.template.gotemplate import Template, TemplateError, parse
from clusterdns.plugins.template.govalues import parse_uint
from clusterdns.plugins.template.re2 import RegexError, compile_go

#: CoreDNS's maxRegexpLen: longer patterns are refused before compiling.
MAX_REGEX_LEN = 10000
#: miekg/dns StringToClass (case-sensitive, as in CoreDNS).
CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}
#: miekg/dns StringToRcode.
RCODES = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "DSOTYPENI": 11,
    "BADSIG": 16, "BADKEY": 17, "BADTIME": 18, "BADMODE": 19, "BADNAME": 20, "BADALG": 21,
    "BADTRUNC": 22, "BADCOOKIE": 23,
}  # fmt: skip
ANY = 255
SECTIONS = ("answer", "additional", "authority")
#: Data a rendering reads that is not in the question: such answers are not replayed.
DYNAMIC = frozenset({"Remote", "Meta", "Message"})


@dataclass(slots=True)
class Rule:
    """One `template` directive (CoreDNS's `template` struct)."""

    qclass: int
    qtype: int
    zones: list[str]
    #: (the pattern as written — the `.Regex` data —, its compiled form)
    regex: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)
    #: section -> its templates, in Corefile order.
    sections: dict[str, list[Template]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    rcode: int = dns.rcode.NOERROR
    ede: dns.edns.EDEOption | None = None
    fall: Fallthrough = field(default_factory=Fallthrough)
    #: Answers depend on more than the question (client address, metadata, message header).
    dynamic: bool = False
    #: Some answer may be a CNAME, which is chased through the server for A and AAAA.
    may_cname: bool = False
    #: It reads .Question, whose name keeps the query's case.
    case_sensitive: bool = False


def parse_type(text: str) -> int | None:
    """miekg/dns StringToType: upper-case mnemonics only (no TYPEnnn)."""
    try:
        value = dns.rdatatype.from_text(text)
    except (dns.exception.DNSException, ValueError):
        return None
    if text.startswith("TYPE") or dns.rdatatype.to_text(value) != text:
        return None
    return int(value)


def parse_rules(directives: list[Directive], ctx: SetupContext) -> list[Rule]:
    return [_rule(d, ctx) for d in directives]


def _rule(d: Directive, ctx: SetupContext) -> Rule:
    args = d.values
    if len(args) < 2:
        raise d.arg_error()
    qclass = CLASSES.get(args[0])
    if qclass is None:
        raise d.error(f"template: invalid query class {args[0]}")
    qtype = parse_type(args[1])
    if qtype is None:
        raise d.error(f"template: invalid RR class {args[1]}")
    zones = zones_from_args(d.args[2:], default=ctx.zones)
    rule = Rule(qclass, qtype, zones)
    for opt in d.children:
        vals = opt.values
        if opt.name == "match":
            if not vals:
                raise opt.arg_error()
            for pattern in vals:
                rule.regex.append((pattern, _regex(opt, pattern)))
        elif opt.name in SECTIONS:
            if not vals:
                raise opt.arg_error()
            for text in vals:
                try:
                    rule.sections[opt.name].append(parse(opt.name, text))
                except TemplateError as e:
                    raise opt.error(f"template: could not compile template: {text}, {e}") from None
        elif opt.name == "rcode":
            if len(vals) != 1:
                raise opt.arg_error()
            if vals[0] not in RCODES:
                raise opt.error(f"template: unknown rcode {vals[0]}")
            rule.rcode = RCODES[vals[0]]
        elif opt.name == "ederror":
            if len(vals) not in (1, 2):
                raise opt.arg_error()
            try:
                code = parse_uint(vals[0], 10, 16)
            except ValueError as e:
                raise opt.error(
                    f"template: error parsing extended DNS error code {vals[0]}, "
                    f'strconv.ParseUint: parsing "{vals[0]}": {e}'
                ) from None
            rule.ede = dns.edns.EDEOption(
                dns.edns.EDECode.make(code), vals[1] if len(vals) == 2 and vals[1] else None
            )
        elif opt.name == "fallthrough":
            rule.fall = Fallthrough.from_directive(opt)
        elif opt.name == "upstream":
            pass  # deprecated and ignored by CoreDNS: CNAME targets are always looked up
        else:
            raise unknown_option("template", opt)
    if not rule.regex:
        rule.regex.append((".*", re.compile(".*")))
    used = {u for ts in rule.sections.values() for t in ts for u in t.uses}
    rule.dynamic = bool(used & DYNAMIC)
    rule.case_sensitive = "Question" in used
    rule.may_cname = any("CNAME" in t.source.upper() for t in rule.sections["answer"])
    return rule


def _regex(opt: Directive, pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_REGEX_LEN:
        raise opt.error(f"template: regex pattern too long: {len(pattern)} > {MAX_REGEX_LEN}")
    try:
        return compile_go(pattern)
    except RegexError as e:
        raise opt.error(f"template: could not parse regex: {pattern}, {e}") from None
