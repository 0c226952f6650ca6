"""Parse a `kubernetes` directive into Settings, with CoreDNS's checks and error words.

Errors name the Corefile and line (`F:LINE - kubernetes: …`). Behaviour kept from CoreDNS's
ParseStanza: ZONES default to the server block's (CIDRs become reverse zones); at least one
zone must not be a reverse zone (`non-reverse zone name must be used`); surplus arguments of
`ttl` and `startup_timeout` are ignored (with a warning here); `namespaces` and
`namespace_labels` exclude each other. Ours: `manifests PATH…` (relative paths are taken from
the Corefile's directory); `upstream [ADDRESS…]`, removed from CoreDNS, is accepted with a
deprecation warning so old Corefiles still load; a negative `startup_timeout` is refused (CoreDNS
would panic). `zonal` with `noendpoints` is CoreDNS's error. `multicluster [ZONES…]`: the zones
(the last such line wins; none given: none, as CoreDNS) must be among the plugin's zones,
else CoreDNS's "is not authoritative for the multicluster zone …" (named at that line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import parse_go_duration
from clusterdns.fallthrough import Fallthrough
from clusterdns.plugin import SetupContext, unknown_option
from clusterdns.plugins.kubernetes.records import keep_targets, keep_zones
from clusterdns.plugins.kubernetes.selector import Selector, parse_selector
from clusterdns.plugins.kubernetes.snapshot_config import SnapshotSettings, parse_snapshot
from clusterdns.plugins.kubernetes.source import ApiSettings

POD_MODES = ("disabled", "verified", "insecure")
DEFAULT_TTL = 5
DEFAULT_STARTUP_TIMEOUT = 5.0
_API_OPTIONS = ("endpoint", "tls", "kubeconfig", "apiserver_qps", "apiserver_burst")


@dataclass(slots=True)
class Settings:
    """Everything the plugin needs from its Corefile lines."""

    zones: list[str]
    primary_zone: str
    api: ApiSettings = field(default_factory=ApiSettings)
    namespaces: frozenset[str] = frozenset()
    namespace_labels: Selector | None = None
    labels: str = ""  # the `labels` selector text (sources apply it)
    pod_mode: str = "disabled"
    endpoint_pod_names: bool = False
    ttl: int = DEFAULT_TTL
    noendpoints: bool = False
    fall: Fallthrough = field(default_factory=Fallthrough)
    ignore_empty_service: bool = False
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    manifests: list[str] = field(default_factory=list)
    bind_hosts: list[str] = field(default_factory=list)
    snapshot: SnapshotSettings | None = None  # `snapshot` option (snapshot_config.py)
    zonal: bool = False
    #: `multicluster` zones (normalized); a plugin zone below one of them is served from
    #: ServiceImports (CoreDNS's isMultiClusterZone).
    multicluster: list[str] = field(default_factory=list)

    def is_multicluster(self, zone: str) -> bool:
        """Whether the plugin zone `zone` (lower case) is a multicluster zone."""
        return any(m == "." or zone == m or zone.endswith("." + m) for m in self.multicluster)


def is_reverse(name: str) -> bool:
    """CoreDNS's dnsutil.IsReverse: below in-addr.arpa. or ip6.arpa. (not those names)."""
    return name.endswith((".in-addr.arpa.", ".ip6.arpa."))


def _err(opt: Directive, message: str) -> Exception:
    return opt.error(f"kubernetes: {message}")


def _count(opt: Directive, low: int, high: int | None = None) -> list[str]:
    n = len(opt.args)
    if n < low or (high is not None and n > high):
        raise opt.error(
            f"kubernetes: wrong argument count or unexpected line ending after '{opt.name}'"
        )
    return opt.values


def _extra(opt: Directive, used: int, ctx: SetupContext) -> None:
    """CoreDNS reads only the first arguments of some options; say so instead of staying mute."""
    if len(opt.args) > used:
        rest = " ".join(opt.values[used:])
        ctx.warn(opt, f"kubernetes: ignoring extra arguments to '{opt.name}': {rest}")


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: optional sign, ASCII digits."""
    body = text[1:] if text[:1] in "+-" else text
    if not (body.isascii() and body.isdigit()):
        return None
    return int(text)


def _go_int_error(fn: str, text: str) -> str:
    return f'strconv.{fn}: parsing "{text}": invalid syntax'


def _selector(opt: Directive, what: str) -> Selector:
    text = " ".join(_count(opt, 1))
    try:
        return parse_selector(text)
    except ValueError as e:
        raise _err(opt, f"unable to parse {what} selector value: '{text}': {e}") from None


def _nonneg_int(opt: Directive) -> int:
    text = _count(opt, 1, 1)[0]
    value = _atoi(text)
    if value is None:
        raise _err(opt, f'invalid {opt.name} "{text}": {_go_int_error("Atoi", text)}')
    if value < 0:
        raise _err(opt, f"{opt.name} must be >= 0")
    return value


def _qps(opt: Directive) -> float:
    text = _count(opt, 1, 1)[0]
    try:
        value = float(text)
    except ValueError:
        raise _err(
            opt, f'invalid apiserver_qps "{text}": {_go_int_error("ParseFloat", text)}'
        ) from None
    if value != value:  # NaN: ParseFloat accepts it, nothing sensible follows from it
        raise _err(opt, f'invalid apiserver_qps "{text}": not a number')
    if value < 0:
        raise _err(opt, "apiserver_qps must be >= 0")
    return value


def _no_block(opt: Directive) -> None:
    if opt.children or opt.has_block:
        raise _err(opt, f"unexpected block after '{opt.name}'")


def parse(directives: list[Directive], ctx: SetupContext) -> Settings:
    d = directives[0]
    zones = zones_from_args(d.args, default=ctx.zones)
    primary = next((z for z in zones if not is_reverse(z)), "")
    if not primary:
        raise d.error("kubernetes: non-reverse zone name must be used")
    s = Settings(zones=zones, primary_zone=primary, bind_hosts=list(ctx.bind_hosts))
    s.api.file, s.api.line = d.file, d.line
    for z in zones:
        if len(z.encode()) + 1 + len("ns.dns.") > 255:  # wire length, root label included
            ctx.warn(d, f"kubernetes: zone {z} is too long for the SOA's ns.dns.{z}: "
                     "negative answers will carry no SOA")  # fmt: skip
    base = os.path.dirname(os.path.abspath(d.file)) if d.file else os.getcwd()
    seen: dict[str, Directive] = {}
    for opt in d.children:
        name = opt.name
        seen[name] = opt
        if name not in ("fallthrough", "snapshot"):
            _no_block(opt)
        if name == "endpoint_pod_names":
            _count(opt, 0, 0)
            s.endpoint_pod_names = True
        elif name == "pods":
            mode = _count(opt, 1, 1)[0]
            if mode not in POD_MODES:
                raise _err(
                    opt,
                    f"wrong value for pods: {mode},  must be one of: disabled, verified, insecure",
                )
            s.pod_mode = mode
        elif name == "namespaces":
            s.namespaces = s.namespaces | frozenset(_count(opt, 1))
        elif name == "endpoint":
            urls = _count(opt, 1)
            s.api.endpoint = urls[0]
            if not s.api.kubeconfig:
                s.api.line = opt.line
            if len(urls) > 1:
                ctx.warn(
                    opt,
                    "kubernetes: Multiple endpoints have been deprecated, only the first "
                    f"specified endpoint '{urls[0]}' is used",
                )
        elif name == "tls":
            s.api.tls_cert, s.api.tls_key, s.api.tls_ca = _count(opt, 3, 3)
        elif name == "kubeconfig":
            args = _count(opt, 1, 2)
            s.api.kubeconfig = args[0]
            s.api.line = opt.line  # kubeconfig wins over endpoint, as in CoreDNS
            s.api.context = args[1] if len(args) == 2 else ""
        elif name == "labels":
            s.labels = str(_selector(opt, "label"))
        elif name == "namespace_labels":
            s.namespace_labels = _selector(opt, "namespace_label")
        elif name == "fallthrough":
            s.fall = Fallthrough.from_directive(opt)
        elif name == "ttl":
            text = _count(opt, 1)[0]
            ttl = _atoi(text)
            if ttl is None:
                raise _err(opt, _go_int_error("Atoi", text))
            if not 0 <= ttl <= 3600:
                raise _err(opt, f"ttl must be in range [0, 3600]: {ttl}")
            _extra(opt, 1, ctx)
            s.ttl = ttl
        elif name == "noendpoints":
            _count(opt, 0, 0)
            s.noendpoints = True
        elif name == "zonal":
            _count(opt, 0, 0)
            s.zonal = True
        elif name == "ignore":
            if not opt.args:
                ctx.warn(opt, "kubernetes: 'ignore' without a value does nothing")
                continue
            if opt.values[0] != "empty_service":
                raise _err(opt, f"unable to parse ignore value: '{opt.values[0]}'")
            _extra(opt, 1, ctx)
            s.ignore_empty_service = True
        elif name == "startup_timeout":
            text = _count(opt, 1)[0]
            try:
                timeout = parse_go_duration(text)
            except ValueError:
                why = f'time: invalid duration "{text}"'
                if text.isdigit():
                    why = f'time: missing unit in duration "{text}"'
                raise _err(opt, f"failed to parse startup_timeout: {text}, {why}") from None
            if timeout < 0:
                raise _err(opt, f"failed to parse startup_timeout: {text}, must not be negative")
            _extra(opt, 1, ctx)
            s.startup_timeout = timeout
        elif name == "apiserver_qps":
            s.api.qps = _qps(opt)
        elif name == "apiserver_burst":
            s.api.burst = _nonneg_int(opt)
        elif name == "apiserver_max_inflight":
            s.api.max_inflight = _nonneg_int(opt)
        elif name == "manifests":
            for p in _count(opt, 1):
                path = p if os.path.isabs(p) else os.path.join(base, p)
                if not os.path.exists(path):
                    ctx.warn(opt, f"kubernetes: manifests path does not exist (yet): {path}")
                s.manifests.append(path)
        elif name == "snapshot":
            s.snapshot = parse_snapshot(opt, base)
        elif name == "upstream":
            ctx.warn(
                opt,
                "kubernetes: 'upstream' is deprecated and ignored: CNAME targets outside the "
                "zones are always resolved through this server, as CoreDNS does",
            )
        elif name == "multicluster":
            s.multicluster = zones_from_args(opt.args, default=[]) if opt.args else []
        else:
            raise unknown_option("kubernetes", opt)
    for mz in s.multicluster:
        if mz not in zones:
            listed = " ".join(zones)
            raise _err(
                seen["multicluster"],
                f"is not authoritative for the multicluster zone {mz} "
                f"(authoritative zones: [{listed}])",
            )
    if s.zonal and s.noendpoints:
        last = max(seen["zonal"], seen["noendpoints"], key=lambda o: o.line)
        raise _err(last, "zonal requires the endpoint cache; remove noendpoints")
    if s.zonal:
        keep_zones()  # EndpointSlice zones are only kept from now on (records.py)
    if s.endpoint_pod_names:
        keep_targets()  # endpoints' pod names too (records.py)
    if s.namespaces and s.namespace_labels is not None:
        last = max(seen["namespaces"], seen["namespace_labels"], key=lambda o: o.line)
        raise _err(last, "namespaces and namespace_labels cannot both be set")
    if s.manifests:
        api = [o for n, o in seen.items() if n in (*_API_OPTIONS, "apiserver_max_inflight")]
        for o in api:
            ctx.warn(o, f"kubernetes: '{o.name}' is ignored: objects come from 'manifests'")
        if "snapshot" in seen:
            ctx.warn(
                seen["snapshot"],
                "kubernetes: 'snapshot' is ignored with 'manifests': the files are the "
                "last-known state already",
            )
    return s
