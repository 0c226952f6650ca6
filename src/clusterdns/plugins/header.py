"""header: set or clear header flags on queries and on responses.

Syntax::

    header {
        SELECTOR ACTION FLAGS...
    }

As CoreDNS's plugin/header: SELECTOR is `query` (the flags of the query, before the next
plugins see it) or `response` (the flags of the reply the next plugins give); ACTION is `set`
or `clear`; FLAGS are `aa`, `ra` and `rd`. Rules apply in the order written, so a later rule
on the same flag wins. Replies the server writes itself after a plugin error (SERVFAIL …) are
not changed, as in CoreDNS, where they bypass the plugin's writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.flags
import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request

FLAGS = {"aa": dns.flags.AA, "ra": dns.flags.RA, "rd": dns.flags.RD}


@dataclass(frozen=True, slots=True)
class Rule:
    flag: int
    state: bool


def apply(flags: int, rules: list[Rule]) -> int:
    for r in rules:
        flags = flags | r.flag if r.state else flags & ~r.flag
    return flags


def _rules(opt: Directive) -> list[Rule]:
    args = opt.values
    if not args:
        raise opt.error("header: setting up rule: no flag action provided")
    action = args[0].lower()
    if action not in ("set", "clear"):
        raise opt.error(
            f"header: setting up rule: unknown flag action={action}, should be set or clear"
        )
    if len(args) < 2:
        raise opt.error(
            "header: setting up rule: invalid length for flags, at least one should be provided"
        )
    rules: list[Rule] = []
    for arg in args[1:]:
        flag = FLAGS.get(arg.lower())
        if flag is None:
            raise opt.error(f"header: setting up rule: unknown/unsupported flag={arg.lower()}")
        rules.append(Rule(flag, action == "set"))
    return rules


class Header(Plugin):
    name = "header"
    # Flags follow from the query and the configuration alone.
    replay = Replay.ALWAYS

    def __init__(self, query: list[Rule], response: list[Rule]) -> None:
        self.query = query
        self.response = response

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Header:
        d = directives[0]
        if d.args:
            raise d.arg_error()
        query: list[Rule] = []
        response: list[Rule] = []
        for opt in d.children:
            selector = opt.name.lower()
            if selector == "query":
                query.extend(_rules(opt))
            elif selector == "response":
                response.extend(_rules(opt))
            else:
                raise opt.error(
                    f"header: setting up rule: invalid selector={selector} "
                    "should be query or response"
                )
        if not query and not response:
            raise d.arg_error()
        return cls(query, response)

    async def serve(self, req: Request) -> dns.message.Message:
        if self.query:
            req.msg.flags = apply(req.msg.flags, self.query)
        resp = await self.next(req)
        if self.response:
            resp.flags = apply(resp.flags, self.response)
        return resp


PLUGIN = Header
