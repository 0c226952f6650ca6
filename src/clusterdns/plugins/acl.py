"""acl: allow, block, filter or drop queries by type and client network.

Syntax::

    acl [ZONES...] {
        ACTION [type QTYPE...] [net SOURCE...]
    }

As CoreDNS's plugin/acl. ZONES default to the server block's zones; each `acl` line is a rule,
and the rules are tried in order: the first whose zones contain the query name and has a
policy matching the query decides; a rule with no matching policy lets the next rule try.
Within a rule the policies are tried in order and the first match wins. ACTION is

* `allow`: the query goes on to the next plugin (no later rule is tried);
* `block`: REFUSED, with an OPT holding Extended DNS Error 15 (Blocked);
* `filter`: an empty NOERROR, with Extended DNS Error 17 (Filtered);
* `drop`: no reply at all.

QTYPE is a type name (upper case, as miekg/dns spells it) or `*` (every type, the default);
SOURCE a CIDR, an address (a /32 or /128) or `*` (every address, the default). As in CoreDNS,
the words after a `*` in the same section are not read. The EDE replies carry an OPT (UDP size
4096, DO set) even when the query had none, as CoreDNS's `SetEdns0(4096, true)` does.

Metrics (CoreDNS's names and labels): coredns_acl_blocked_requests_total,
coredns_acl_filtered_requests_total and coredns_acl_dropped_requests_total {server, zone, view}
with the rule's matching zone, and coredns_acl_allowed_requests_total {server, view} for every
query let through (allowed, or matched by no policy).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import re
from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from prometheus_client import Counter

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

log = logging.getLogger("clusterdns.plugins.acl")

VIEW = ""
_LABELS = ["server", "zone", "view"]
BLOCKED = Counter(
    "blocked_requests_total", "Counter of DNS requests being blocked.", _LABELS,
    namespace="coredns", subsystem="acl",
)  # fmt: skip
FILTERED = Counter(
    "filtered_requests_total", "Counter of DNS requests being filtered.", _LABELS,
    namespace="coredns", subsystem="acl",
)  # fmt: skip
ALLOWED = Counter(
    "allowed_requests_total", "Counter of DNS requests being allowed.", ["server", "view"],
    namespace="coredns", subsystem="acl",
)  # fmt: skip
DROPPED = Counter(
    "dropped_requests_total", "Counter of DNS requests being dropped.", _LABELS,
    namespace="coredns", subsystem="acl",
)  # fmt: skip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_GENERIC_TYPE = re.compile(r"TYPE\d+")


class Action(enum.Enum):
    ALLOW = "allow"
    BLOCK = "block"
    FILTER = "filter"
    DROP = "drop"


@dataclass(slots=True)
class Policy:
    action: Action
    qtypes: frozenset[int] | None  # None: every type
    nets: tuple[Network, ...] | None  # None: every address

    def matches(self, qtype: int, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.qtypes is not None and qtype not in self.qtypes:
            return False
        return self.nets is None or any(ip in n for n in self.nets)


@dataclass(slots=True)
class Rule:
    zones: list[str]
    policies: list[Policy]


def _qtype(opt: Directive, token: str) -> int:
    """miekg/dns's StringToType: the upper-case mnemonics only (no TYPEnnn)."""
    if token == token.upper() and not _GENERIC_TYPE.fullmatch(token):
        try:
            return int(dns.rdatatype.from_text(token))
        except dns.rdatatype.UnknownRdatatype:
            pass
    raise opt.error(f"acl: unexpected token {token!r}; expect legal QTYPE")


def _net(opt: Directive, token: str) -> Network:
    if "/" not in token:  # CoreDNS's normalize: a bare address is a host route
        token += "/128" if ":" in token else "/32"
    try:
        return ipaddress.ip_network(token, strict=False)
    except ValueError:
        raise opt.error(f"acl: illegal CIDR notation {token!r}") from None


def _section(word: str) -> bool:
    return word.lower() in ("type", "net")


def _policy(opt: Directive) -> Policy:
    try:
        action = Action(opt.name.lower())
    except ValueError:
        raise opt.error(
            f"acl: unexpected token {opt.name!r}; expect 'allow', 'block', 'filter' or 'drop'"
        ) from None
    qtypes: set[int] | None = None
    nets: list[Network] | None = None
    words = opt.values
    while words:
        if not _section(words[0]):
            raise opt.error(f"acl: unexpected token {words[0]!r}; expect 'type | net'")
        section = words[0].lower()
        i = 1
        while i < len(words) and not _section(words[i]):
            i += 1
        tokens, words = words[1:i], words[i:]
        if not tokens:
            raise opt.error(f"acl: no token specified in {section!r} section")
        if section == "type":
            qtypes = set() if qtypes is None else qtypes
            for t in tokens:
                if t == "*":
                    qtypes.add(0)  # dns.TypeNone: every type
                    break
                qtypes.add(_qtype(opt, t))
        else:
            nets = [] if nets is None else nets
            for t in tokens:
                if t == "*":
                    nets.append(ipaddress.ip_network("0.0.0.0/0"))
                    nets.append(ipaddress.ip_network("::/0"))
                    break
                nets.append(_net(opt, t))
    all_types = qtypes is None or 0 in qtypes
    return Policy(
        action,
        None if all_types else frozenset(qtypes or ()),
        None if nets is None else tuple(nets),
    )


class Acl(Plugin):
    name = "acl"
    once = False  # each `acl` line is one more rule
    # Replayable when no policy looks at the client's address (the counters are `count`ed).
    replay = Replay.WHEN

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.address_free = all(p.nets is None for r in rules for p in r.policies)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Acl:
        rules: list[Rule] = []
        for d in directives:
            zones = zones_from_args(d.args, default=ctx.zones)
            rules.append(Rule(zones, [_policy(opt) for opt in d.children]))
        return cls(rules)

    def replayable(self, req: Request) -> bool:
        return self.address_free

    def decide(self, req: Request) -> tuple[Action, str] | None:
        """The action and the rule's zone that decide `req`; None lets it through."""
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            ip = ipaddress.ip_address(req.remote_ip.split("%", 1)[0])
        except ValueError:
            ip = None
        for rule in self.rules:
            zone = longest_match(rule.zones, req.qname)
            if not zone:
                continue
            if ip is None:
                log.error("Blocking request. Unable to parse source address: %s", req.remote_ip)
                return Action.BLOCK, zone
            for p in rule.policies:
                if p.matches(req.qtype, ip):
                    if p.action is Action.ALLOW:
                        return None
                    return p.action, zone
        return None

    async def serve(self, req: Request) -> dns.message.Message:
        rec = fastpath.recorder()
        if rec is not None and not self.address_free:
            rec.veto("plugin/acl: by client address")
            rec = None
        decided = self.decide(req)
        if decided is None:
            labels: tuple[str, ...] = (req.server, VIEW)
            ALLOWED.labels(*labels).inc()
            if rec is not None:
                rec.count(ALLOWED, labels)
            return await self.next(req)
        action, zone = decided
        labels = (req.server, zone, VIEW)
        if action is Action.DROP:
            req.note("acl: dropped")
            DROPPED.labels(*labels).inc()
            req.silent = True
            fastpath.veto("plugin/acl: dropped")
            return req.reply()
        counter, rcode, code = (
            (BLOCKED, dns.rcode.REFUSED, dns.edns.EDECode.BLOCKED)
            if action is Action.BLOCK
            else (FILTERED, dns.rcode.NOERROR, dns.edns.EDECode.FILTERED)
        )
        if req.tracer:
            req.note(f"acl: {action.value}")
        counter.labels(*labels).inc()
        if rec is not None:
            rec.count(counter, labels)
        m = req.reply(rcode)
        m.use_edns(0, dns.flags.DO, 4096, options=[dns.edns.EDEOption(code)])
        return m


PLUGIN = Acl
