"""What every rewrite rule shares: the request being rewritten, the rule interface, and the
small parsing helpers whose quirks are CoreDNS's (names lower-cased and made absolute, regex
patterns checked against their `{N}` templates)."""

from __future__ import annotations

import re

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.plugins.rewrite.regex import MAX_LEN, RegexError, compile_re2
from clusterdns.plugins.rewrite.response import ResponseRule
from clusterdns.request import Request

STOP = "stop"
CONTINUE = "continue"
EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX = "exact", "prefix", "suffix", "substring", "regex"
MATCH_TYPES = (EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX)


class RuleError(ValueError):
    """A rule CoreDNS would refuse; the text is CoreDNS's (after `plugin/rewrite: `)."""


class State:
    """The request as the rules see it: they change its question (and OPT) in place, as
    CoreDNS does, so the plugins after rewrite (and log, prometheus) see the rewritten query."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.original = req.msg.question[0]
        #: A name a rule produced that is not a domain name (CoreDNS's IsDomainName).
        self.invalid: str | None = None
        #: Set by edns0 rules whose data depends on the client (fast path: not replayable).
        self.client_dependent = False
        self.case_dependent = False

    def name(self) -> str:
        """The current question name, lower-cased (CoreDNS's state.Name())."""
        return self.req.qname

    def qname(self) -> str:
        """The current question name as written (state.QName())."""
        return str(self.req.name.to_text())

    def _set_question(self, name: dns.name.Name, rdclass: int, rdtype: int) -> None:
        self.req.msg.question = [
            dns.rrset.RRset(
                name, dns.rdataclass.RdataClass.make(rdclass), dns.rdatatype.RdataType.make(rdtype)
            )
        ]
        self.req._qname = ""  # the cached lower-cased name is stale now

    def set_name(self, text: str) -> None:
        try:
            name = dns.name.from_text(text)
        except (dns.exception.DNSException, ValueError):
            self.invalid = text
            return
        q = self.req.question
        self._set_question(name, q.rdclass, q.rdtype)

    def set_type(self, rdtype: int) -> None:
        q = self.req.question
        self._set_question(q.name, q.rdclass, rdtype)

    def set_class(self, rdclass: int) -> None:
        q = self.req.question
        self._set_question(q.name, rdclass, q.rdtype)

    def restore(self) -> None:
        """Put the client's question back (CoreDNS does so before answering an error)."""
        self.req.msg.question = [self.original]
        self.req._qname = ""


class Rule:
    """One `rewrite` directive. `rewrite` returns the response rules it asks for, or None when
    it did not apply (CoreDNS's RewriteIgnored)."""

    mode: str = STOP

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        raise NotImplementedError


def normalize(s: str) -> str:
    """plugin.Name(s).Normalize(): absolute (an escaped final dot does not count), lower-case."""
    return fqdn(s).lower()


def fqdn(s: str) -> str:
    if s.endswith("."):
        slashes = len(s) - 1 - len(s[:-1].rstrip("\\"))
        if slashes % 2 == 0:
            return s
    return s + "."


def sub_expr_usage(s: str) -> int:
    """How many of `{0}`…`{100}` the template `s` uses (getSubExprUsage)."""
    return sum(1 for i in range(101) if "{" + str(i) + "}" in s)


def valid_regex(pattern: str, template: str) -> re.Pattern[str]:
    """isValidRegexPattern: length, syntax, and no more `{N}` than the pattern has groups."""
    if len(pattern) > MAX_LEN:
        raise RuleError(f"regex pattern too long: {len(pattern)} > {MAX_LEN}")
    rx = compile_re2_or(pattern, f"invalid regex matching pattern: {pattern}")
    if sub_expr_usage(template) > rx.groups:
        raise RuleError(
            f"the rewrite regex pattern ({template}) uses more subexpressions than its "
            f"corresponding matching regex pattern ({pattern})"
        )
    return rx


def compile_re2_or(pattern: str, message: str) -> re.Pattern[str]:
    """Compile or fail with CoreDNS's `message`, plus why (RE2 and Python differ; see regex)."""
    try:
        return compile_re2(pattern)
    except RegexError as e:
        raise RuleError(f"{message} ({e})") from None


def matches(kind: str, what: str | re.Pattern[str], name: str) -> bool:
    if isinstance(what, re.Pattern):
        return what.search(name) is not None
    if kind == EXACT:
        return name == what
    if kind == PREFIX:
        return name.startswith(what)
    if kind == SUFFIX:
        return name.endswith(what)
    return what in name
