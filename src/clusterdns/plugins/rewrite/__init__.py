"""rewrite: change the query before the rest of the chain sees it, and the answer after.

Syntax (each `rewrite` line, or block, is one rule; see docs/plugins/rewrite.md)::

    rewrite [continue|stop] FIELD [TYPE] [(FROM TO)|TTL] [OPTIONS]
    rewrite [continue|stop] {
        FIELD … [answer …]
    }

FIELD is `name` (names.py), `type`, `class`, `ttl`, `rcode`, `cname` (rules.py) or `edns0`
(edns0.py). As CoreDNS's plugin/rewrite: rules run in Corefile order on the query; a rule that
applies and is `stop` (the default) ends the list; the response rules the applied rules asked
for run on the answer last-first. The client gets its own question back (case included) —
also after `continue` rules that ask for no response rule, where CoreDNS would leak the
rewritten question (which resolvers then discard). A rewritten name that is not a domain name
is SERVFAIL, `invalid name after rewrite: NAME`. When a later plugin fails, its rcode is what
the response rules (rcode) see, as CoreDNS writes that reply through its reverter.

Fast path: the answers depend on the query and the rules only, except for `cname` rules that
ask the server again (vetoed: the inner query is logged and counted) and edns0 data from the
client's address or metadata (vetoed); `{qname}` data keeps the answer to the query's spelling.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.errors import PluginError
from clusterdns.pkg import upstream
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.plugins.rewrite.base import CONTINUE, STOP, Rule, RuleError, State
from clusterdns.plugins.rewrite.edns0 import (
    SUPPORTED,
    LocalRule,
    NsidRule,
    SubnetRule,
    new_edns0_rule,
)
from clusterdns.plugins.rewrite.names import new_name_rule
from clusterdns.plugins.rewrite.response import ResponseRule, View, rebuild, view_of
from clusterdns.plugins.rewrite.rules import (
    ClassRule,
    CnameResponse,
    CnameRule,
    TypeRule,
    new_rcode_rule,
    new_ttl_rule,
)
from clusterdns.request import Request
from clusterdns.server import fastpath

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.rewrite")

#: Lookups nested in one query (a cname rule's target answered by a CNAME it rewrites again …);
#: CoreDNS's server stops re-entering itself at 10.


def new_rule(args: list[str]) -> Rule:
    """newRule: the mode, then the field's own parser."""
    if not args:
        raise RuleError("no rule type specified for rewrite")
    arg0 = args[0].lower()
    mode, start = STOP, 1
    if arg0 in (CONTINUE, STOP):
        if len(args) < 2:
            raise RuleError(f"{arg0} rule must begin with a rule type")
        mode, start = arg0, 2
    field = args[start - 1].lower()
    rest = args[start:]
    if field == "answer":
        raise RuleError("response rewrites must begin with a name rule")
    if field == "name":
        return new_name_rule(mode, rest)
    if field in ("class", "type"):
        if len(rest) != 2:
            raise RuleError(f"{field} rules must have exactly two arguments")
        return ClassRule(mode, rest) if field == "class" else TypeRule(mode, rest)
    if field == "edns0":
        return new_edns0_rule(mode, rest)
    if field == "ttl":
        return new_ttl_rule(mode, rest)
    if field == "cname":
        return CnameRule(mode, rest)
    if field == "rcode":
        return new_rcode_rule(mode, rest)
    raise RuleError(f'invalid rule type "{args[0]}"')


def _tokens(d: Directive) -> list[str]:
    """The rule's words: the line's arguments, or (fewer than two) those plus the block's."""
    args = d.values
    if d.children and len(args) >= 2:
        # CoreDNS takes the line as a rule, then the block as another one, with no words.
        new_rule(args)
        return []
    out = list(args)

    def walk(children: list[Directive]) -> None:
        for c in children:
            out.append(c.name)
            out.extend(c.values)
            if c.children:
                out.append("{")
                walk(c.children)
                out.append("}")

    walk(d.children)
    return out


class Rewrite(Plugin):
    name = "rewrite"
    once = False
    replay = Replay.ALWAYS

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.has_edns0 = any(isinstance(r, LocalRule | NsidRule | SubnetRule) for r in rules)
        self.runtime: Runtime | None = None
        for r in rules:
            if isinstance(r, CnameRule):
                r.lookup = self.lookup

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Rewrite:
        rules: list[Rule] = []
        for d in directives:
            try:
                rules.append(new_rule(_tokens(d)))
            except RuleError as e:
                raise d.error(f"plugin/rewrite: {e}") from None
        return cls(rules)

    async def start(self, rt: Runtime) -> None:
        self.runtime = rt

    async def stop(self) -> None:
        self.runtime = None

    async def serve(self, req: Request) -> dns.message.Message:
        st = State(req)
        rules: list[ResponseRule] = []
        done = False
        for rule in self.rules:
            got = rule.rewrite(st)
            if got is None:
                continue
            done = True
            if st.invalid is not None:
                st.restore()
                raise PluginError("rewrite", f"invalid name after rewrite: {st.invalid}")
            rules.extend(got)
            if rule.mode == STOP:
                break
        if st.client_dependent:
            fastpath.veto("rewrite: edns0 data from the client")
        rec = fastpath.recorder()
        if st.case_dependent and rec is not None:
            rec.case_sensitive = True
        if not done:
            req.note("no rewrite rule applies")
            return await self.next(req)
        if req.tracer:
            req.note(f"rewritten to {req.qname} {req.class_text} {req.type_text}")
        try:
            resp = await self.next(req)
        except PluginError as e:
            # CoreDNS writes the failure through its reverter: the client's question, and
            # the rcode as the response rules leave it.
            view = View(e.rcode, False, [], [], [], None)
            await self._run(view, rules)
            st.restore()
            raise PluginError(e.plugin, e.message, view.rcode, e.quiet) from e
        return await self._respond(st, resp, rules)

    async def _respond(
        self, st: State, resp: dns.message.Message, rules: list[ResponseRule]
    ) -> dns.message.Message:
        view = view_of(resp)
        if rules:
            await self._run(view, rules)
        out = rebuild(resp, view, [st.original])
        req = st.req
        if self.has_edns0 and resp.opt is None and req.msg.opt is not None:
            # SizeAndDo: an answer without OPT gets the query's, with its supported options
            # (after the `revert` rules undid theirs).
            opts = list(req.msg.options)
            for r in reversed(rules):
                if r.request_revert:
                    r.apply(View(0, False, [], [], [], opts), None)
            echo = [o for o in opts if o.otype in SUPPORTED]
            if echo:
                out.use_edns(0, 0, req.msg.payload, options=echo)
                out.set_rcode(dns.rcode.Rcode.make(view.rcode))
        return out

    async def _run(self, view: View, rules: list[ResponseRule]) -> None:
        """Every rule on every record, last rule first (ResponseReverter.WriteMsg)."""
        order = list(reversed(rules))
        sections = (view.ns, view.answer, view.extra)
        if not any(sections):
            for r in order:
                if r.message_level:
                    r.apply(view, None)
            return
        for section in sections:
            for rec in list(section):
                for r in order:
                    if isinstance(r, CnameResponse):
                        await r.run(view, rec)
                    else:
                        r.apply(view, rec)
        if view.options is not None:  # miekg/dns keeps the OPT among the extra records
            for r in order:
                if r.request_revert:
                    r.apply(view, None)

    async def lookup(self, st: State, target: str, qtype: int) -> dns.message.Message | None:
        """Resolve `target` through this server from the top, as CoreDNS's upstream.Lookup:
        a copy of the (rewritten) query asking `target`, class IN."""
        fastpath.veto("rewrite: cname target lookup")
        name = dns.name.from_text(target)
        return await upstream.lookup(self.runtime, st.req, name, qtype, in_class=True)


PLUGIN = Rewrite
