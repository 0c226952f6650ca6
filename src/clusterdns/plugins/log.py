"""log: one line per query on stdout, in CoreDNS's format.

Syntax::

    log [NAMES...] [FORMAT] {
        class CLASSES...
        minDuration [DURATION]
    }

NAMES (default `.`) limit logging to queries at or below those names; the first `log` rule whose
name matches a query is the only one used. FORMAT is a template of placeholders (see
`LABELS`), or `{common}` / `{combined}`; as in CoreDNS it is only recognised as the last of two or
more arguments containing a `{`. CLASSES are `all` (the default), `success`, `denial`, `error`
(CoreDNS's plugin/pkg/response classification); `minDuration` (default 100ms when given bare) also
logs responses slower than DURATION that their class would not log.

The line is rendered from what was written (rcode, flags, wire size) in an `after_write` hook, as
CoreDNS's recorder does; a query that ends in a PluginError is logged with the error's rcode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from clusterdns import metrics
from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import normalize_zone
from clusterdns.durations import parse_go_duration
from clusterdns.pkg import metadata
from clusterdns.pkg.response import CLASSES, classify, typify
from clusterdns.pkg.written import through_chain
from clusterdns.plugin import Plugin, Replay, SetupContext, expect_args, unknown_option
from clusterdns.request import Request
from clusterdns.zones import is_subdomain

log = logging.getLogger("clusterdns")

EMPTY = "-"
COMMON_FORMAT = (
    '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
    "{rcode} {>rflags} {rsize} {duration}"
)
COMBINED_FORMAT = COMMON_FORMAT + ' "{>opcode}"'
DEFAULT_MIN_DURATION = 0.1

# ---- values shared with the prometheus plugin -------------------------------------------

#: miekg/dns's RcodeToString (16 is "BADSIG" there, not dnspython's "BADVERS").
_FLAGS = (
    ("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100),
    ("ra", 0x0080), ("z", 0x0040), ("ad", 0x0020), ("cd", 0x0010),
)  # fmt: skip


def flags_text(flags: int) -> str:
    """Header flags as CoreDNS's {>rflags}: `qr,aa,rd`, in header order."""
    return ",".join(name for name, bit in _FLAGS if flags & bit)


def go_seconds(elapsed: float) -> str:
    """Go's strconv.FormatFloat(d.Seconds(), 'f', -1, 64): shortest digits, never an exponent."""
    ns = int(elapsed * 1e9)
    secs = ns // 1_000_000_000 + (ns % 1_000_000_000) / 1e9
    text = format(Decimal(repr(secs)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _addr(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def bufsize(req: Request) -> int:
    """CoreDNS's state.Size(): 65535 over TCP, else the EDNS0 UDP size, at least 512."""
    if req.proto == "tcp":
        return 65535
    return max(512, req.msg.payload) if req.msg.edns >= 0 else 512


# ---- the replacer (CoreDNS plugin/pkg/replacer) --------------------------------------------


@dataclass(slots=True)
class Written:
    """What one query's log line is made of."""

    req: Request
    resp: dns.message.Message | None
    rsize: int
    elapsed: float


def _rcode(w: Written) -> str:
    if w.resp is None:
        return EMPTY
    rc = w.resp.rcode()
    return metrics.RCODE_NAMES.get(rc, str(rc))


_Value = Callable[[Written], str]
LABELS: dict[str, _Value] = {
    "{type}": lambda w: w.req.type_text,
    "{name}": lambda w: w.req.qname,
    "{class}": lambda w: w.req.class_text,
    "{proto}": lambda w: w.req.proto,
    "{size}": lambda w: str(w.req.size),
    "{remote}": lambda w: _addr(w.req.remote_ip),
    "{port}": lambda w: str(w.req.remote_port),
    "{local}": lambda w: _addr(w.req.local_ip),
    "{>id}": lambda w: str(w.req.msg.id),
    "{>opcode}": lambda w: str(int(dns.opcode.from_flags(w.req.msg.flags))),
    "{>do}": lambda w: "true" if w.req.do else "false",
    "{>bufsize}": lambda w: str(bufsize(w.req)),
    "{rcode}": _rcode,
    "{rsize}": lambda w: EMPTY if w.resp is None and not w.req.silent else str(w.rsize),
    "{duration}": lambda w: go_seconds(w.elapsed) + "s",
    "{>rflags}": lambda w: EMPTY if w.resp is None else flags_text(w.resp.flags),
}

Node = str | _Value


def parse_format(fmt: str) -> list[Node]:
    """Split a format into literal strings and value functions, as CoreDNS's parseFormat.

    Each `}` is paired with the nearest `{` before it, so `{{remote}}` keeps its outer braces;
    unknown `{x}` stays literal and `{/label}` is the metadata plugin's value (`-` when unset).
    """
    nodes: list[Node] = []
    s = fmt
    while True:
        j = s.find("}")
        if j < 0:
            break
        i = s.rfind("{", 0, j)
        if i < 0:
            nodes.append(s[: j + 1])
            s = s[j + 1 :]
            continue
        label = s[i : j + 1]
        value: Node | None = LABELS.get(label)
        if value is None and label.startswith("{/"):
            value = _meta(label[2:-1])
        if value is None:
            nodes.append(s[: j + 1])
        else:
            if i:
                nodes.append(s[:i])
            nodes.append(value)
        s = s[j + 1 :]
    if s:
        nodes.append(s)
    return nodes


def _meta(label: str) -> _Value:
    def get(w: Written) -> str:
        v = metadata.value(w.req, label)
        return EMPTY if v is None else v

    return get


def render(nodes: list[Node], w: Written) -> str:
    return "".join(n if isinstance(n, str) else n(w) for n in nodes)


# ---- the plugin ---------------------------------------------------------------------------


@dataclass(slots=True)
class Rule:
    zone: str
    fmt: list[Node]
    classes: frozenset[str] = frozenset({"all"})
    min_duration: float = 0.0

    def wants(self, resp: dns.message.Message | None, elapsed: float) -> bool:
        if "all" in self.classes:
            return True
        if classify(typify(resp)) in self.classes:
            return True
        return self.min_duration > 0 and elapsed > self.min_duration


def _format(arg: str) -> str:
    return {"{common}": COMMON_FORMAT, "{combined}": COMBINED_FORMAT}.get(arg, arg)


def _parse(d: Directive, ctx: SetupContext) -> list[Rule]:
    args = list(d.values)
    fmt = COMMON_FORMAT
    if len(args) == 1 and "{" in args[0]:
        ctx.warn(d, f"log: '{args[0]}' is taken as a name, as CoreDNS does; "
                    f"write 'log . {args[0]}' for a format")  # fmt: skip
    if len(args) > 1 and "{" in args[-1]:
        fmt = _format(args.pop())
    names = [normalize_zone(a) for a in args] or ["."]
    classes: set[str] = set()
    min_duration = 0.0
    for opt in d.children:
        if opt.name == "class":
            for c in expect_args(opt, 1):
                if c not in CLASSES:
                    raise opt.error(f"log: invalid Class: {c}")
                classes.add(c)
        elif opt.name == "minDuration":
            vals = expect_args(opt, 0, 1)
            if vals:
                try:
                    min_duration = parse_go_duration(vals[0])
                except ValueError:
                    raise opt.error(f"log: Illegal duration found: '{vals[0]}'") from None
            else:
                min_duration = DEFAULT_MIN_DURATION
        else:
            raise unknown_option("log", opt)
    nodes = parse_format(fmt)
    cls = frozenset(classes or {"all"})
    return [Rule(n, nodes, cls, min_duration) for n in names]


class Log(Plugin):
    name = "log"
    replay = Replay.WHEN  # not when a query a rule logs gets its line: the chain answers it
    once = False  # every `log` line of a block adds rules

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def replayable(self, req: Request) -> bool:
        return self.rule_for(req.qname) is None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Log:
        rules: list[Rule] = []
        for d in directives:
            rules.extend(_parse(d, ctx))
        return cls(rules)

    def rule_for(self, qname: str) -> Rule | None:
        for r in self.rules:
            if is_subdomain(r.zone, qname):
                return r
        return None

    async def serve(self, req: Request) -> dns.message.Message:
        rule = self.rule_for(req.qname)
        if rule is None:
            return await self.next(req)
        # A PluginError is logged from the hook, with the rcode of the server's error reply.
        return await through_chain(
            req, self.next, partial(self._written, rule, time.perf_counter())
        )

    @staticmethod
    def _written(
        rule: Rule, start: float, req: Request, resp: dns.message.Message, size: int
    ) -> None:
        elapsed = time.perf_counter() - start
        if rule.wants(resp, elapsed):
            # A query answered by silence (acl's drop) shows as CoreDNS's empty recorder.
            written = Written(req, None if req.silent else resp, size, elapsed)
            log.info("%s", render(rule.fmt, written))


PLUGIN = Log
