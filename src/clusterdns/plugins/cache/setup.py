"""Parse a `cache` directive into Settings, with CoreDNS's defaults and checks (setup.go).

Errors name the Corefile and line. As CoreDNS: the first argument is the TTL when it is an
integer (it must be positive), the rest are zones (default: the server block's); TTLs must be
positive and minimum TTLs not negative; a prefetch PERCENTAGE needs its `%` and lies in
[10, 90]; `servfail` is at most 5m. Stricter than CoreDNS: a negative CAPACITY is refused
(CoreDNS would silently use the smallest cache), surplus arguments of `success` and `denial`
(which CoreDNS ignores) are accepted with a warning, and a second `disable` line for the same
cache type, which replaces the first as in CoreDNS, is warned about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import parse_go_duration
from clusterdns.plugin import SetupContext, unknown_option

DEFAULT_CAPACITY = 9984  # 256 shards of 39
MAX_TTL = 3600
MAX_NTTL = 1800
MIN_TTL = 5
DEFAULT_SERVFAIL = 5.0
MAX_SERVFAIL = 300.0
DEFAULT_PREFETCH_DURATION = 60.0
DEFAULT_PERCENTAGE = 10
DEFAULT_STALE = 3600.0


@dataclass(slots=True)
class Settings:
    zones: list[str]
    pcap: int = DEFAULT_CAPACITY
    pttl: int = MAX_TTL
    minpttl: int = MIN_TTL
    ncap: int = DEFAULT_CAPACITY
    nttl: int = MAX_NTTL
    minnttl: int = MIN_TTL
    failttl: float = DEFAULT_SERVFAIL
    prefetch: int = 0  # 0: no prefetching
    duration: float = DEFAULT_PREFETCH_DURATION
    percentage: int = DEFAULT_PERCENTAGE
    stale_up_to: float = 0.0  # 0: serve_stale off
    verify_stale: bool = False
    pexcept: list[str] = field(default_factory=list)
    nexcept: list[str] = field(default_factory=list)
    keepttl: bool = False


def _is_int(text: str) -> bool:
    """Go's strconv.Atoi: optional sign and ASCII digits."""
    body = text[1:] if text[:1] in "+-" else text
    return body.isascii() and body.isdigit()


def _int(opt: Directive, text: str, what: str) -> int:
    if not _is_int(text):
        raise opt.error(f"cache: {opt.name}: {what} '{text}' is not a number")
    return int(text)


def _duration(opt: Directive, text: str) -> float:
    try:
        return parse_go_duration(text)
    except ValueError as e:
        raise opt.error(f"cache: {opt.name}: invalid duration '{text}': {e}") from None


def _ttl(opt: Directive, text: str) -> int:
    ttl = _int(opt, text, "TTL")
    if ttl <= 0:
        raise opt.error(f"cache: cache TTL can not be zero or negative: {ttl}")
    return ttl


def _min_ttl(opt: Directive, text: str) -> int:
    ttl = _int(opt, text, "MINTTL")
    if ttl < 0:
        raise opt.error(f"cache: cache min TTL can not be negative: {ttl}")
    return ttl


def _class_option(opt: Directive, ctx: SetupContext) -> tuple[int, int | None, int | None]:
    """`success|denial CAPACITY [TTL] [MINTTL]`."""
    vals = opt.values
    if not vals:
        raise opt.arg_error()
    cap = _int(opt, vals[0], "CAPACITY")
    if cap < 0:
        raise opt.error(f"cache: {opt.name}: capacity can not be negative: {cap}")
    ttl = _ttl(opt, vals[1]) if len(vals) > 1 else None
    minttl = _min_ttl(opt, vals[2]) if len(vals) > 2 else None
    if len(vals) > 3:
        rest = " ".join(vals[3:])
        ctx.warn(opt, f"cache: ignoring extra arguments to '{opt.name}': {rest}")
    return cap, ttl, minttl


def _prefetch(opt: Directive, s: Settings) -> None:
    vals = opt.values
    if not 1 <= len(vals) <= 3:
        raise opt.arg_error()
    amount = _int(opt, vals[0], "AMOUNT")
    if amount < 0:
        raise opt.error(f"cache: prefetch amount should be positive: {amount}")
    s.prefetch = amount
    if len(vals) > 1:
        s.duration = _duration(opt, vals[1])
    if len(vals) > 2:
        pct = vals[2]
        if not pct.endswith("%"):
            raise opt.error(
                f"cache: last character of percentage should be `%`, but is: '{pct[-1:]}'"
            )
        num = _int(opt, pct[:-1], "PERCENTAGE")
        if not 10 <= num <= 90:
            raise opt.error(f"cache: percentage should fall in range [10, 90]: {num}")
        s.percentage = num


def _serve_stale(opt: Directive, s: Settings) -> None:
    vals = opt.values
    if len(vals) > 2:
        raise opt.arg_error()
    s.stale_up_to = DEFAULT_STALE
    if vals:
        d = _duration(opt, vals[0])
        if d < 0:
            raise opt.error("cache: invalid negative duration for serve_stale")
        s.stale_up_to = d
    s.verify_stale = False
    if len(vals) > 1:
        mode = vals[1].lower()
        if mode not in ("immediate", "verify"):
            raise opt.error(f"cache: invalid value for serve_stale refresh mode: {mode}")
        s.verify_stale = mode == "verify"


def _servfail(opt: Directive, s: Settings) -> None:
    vals = opt.values
    if len(vals) != 1:
        raise opt.arg_error()
    d = _duration(opt, vals[0])
    if d < 0:
        raise opt.error("cache: invalid negative ttl for servfail")
    if d > MAX_SERVFAIL:
        raise opt.error("cache: caching SERVFAIL responses over 5 minutes is not permitted")
    s.failttl = d


def _disable(opt: Directive, s: Settings, seen: set[str], ctx: SetupContext) -> None:
    vals = opt.values
    if not vals:
        raise opt.arg_error()
    kind = vals[0]
    if kind not in ("success", "denial"):
        raise opt.error('cache: cache type for disable must be "success" or "denial"')
    zones = zones_from_args(opt.args[1:]) or ["."]
    if kind in seen:
        ctx.warn(opt, f"cache: this 'disable {kind}' replaces the earlier one, as in CoreDNS")
    seen.add(kind)
    if kind == "success":
        s.pexcept = zones
    else:
        s.nexcept = zones


def parse(d: Directive, ctx: SetupContext) -> Settings:
    args = list(d.args)
    ttl: int | None = None
    if args and _is_int(args[0].text):
        ttl = int(args[0].text)
        if ttl <= 0:
            raise d.error(f"cache: cache TTL can not be zero or negative: {ttl}")
        args = args[1:]
    s = Settings(zones=zones_from_args(args, default=ctx.zones))
    if ttl is not None:
        s.pttl = s.nttl = ttl
    disabled: set[str] = set()
    for opt in d.children:
        if opt.children:
            raise opt.error(f"cache: unexpected block after '{opt.name}'")
        if opt.name == "success":
            s.pcap, pttl, minttl = _class_option(opt, ctx)
            s.pttl = pttl if pttl is not None else s.pttl
            s.minpttl = minttl if minttl is not None else s.minpttl
        elif opt.name == "denial":
            s.ncap, nttl, minttl = _class_option(opt, ctx)
            s.nttl = nttl if nttl is not None else s.nttl
            s.minnttl = minttl if minttl is not None else s.minnttl
        elif opt.name == "prefetch":
            _prefetch(opt, s)
        elif opt.name == "serve_stale":
            _serve_stale(opt, s)
        elif opt.name == "servfail":
            _servfail(opt, s)
        elif opt.name == "disable":
            _disable(opt, s, disabled, ctx)
        elif opt.name == "keepttl":
            if opt.args:
                raise opt.arg_error()
            s.keepttl = True
        else:
            raise unknown_option("cache", opt)
    return s
