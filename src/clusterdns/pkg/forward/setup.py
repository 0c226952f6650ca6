"""Parse `forward FROM TO… { … }` stanzas (CoreDNS's plugin/forward/setup.go).

Nothing here touches the network: TLS files are loaded and resolv.conf files read, so
`-validate` reports the same errors a start would.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rcode

from clusterdns.corefile.ast import Directive, Token
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import parse_go_duration
from clusterdns.errors import ConfigError
from clusterdns.pkg.forward.policy import POLICIES, Policy, Random
from clusterdns.pkg.forward.proxy import HealthOptions, Upstream
from clusterdns.plugin import SetupContext, unknown_option
from clusterdns.zones import is_subdomain

MAX_UPSTREAMS = 15
DNS_PORT = 53
TLS_PORT = 853
#: Schemes CoreDNS knows but forward (here) cannot speak.
_OTHER_SCHEMES = ("https", "grpc", "quic", "https3", "unix")

#: Options of other tools or newer CoreDNS releases that ClusterDNS refuses by name rather
#: than ignore: a Corefile that relies on them would silently behave differently otherwise.
REJECTED = {
    "read_timeout": "is not a CoreDNS forward option (the read timeout is fixed at 2s)",
    "source_address": "is not a CoreDNS forward option (the source address is the kernel's choice)",
    "doh_method": "needs DNS-over-HTTPS upstreams, which ClusterDNS does not implement",
    "next_on_nodata": "is not supported by ClusterDNS yet",
    "resolver": "is not supported: ClusterDNS only forwards to IP addresses and resolv.conf files",
    "resolve_upstream": "is not supported: ClusterDNS only forwards to IP addresses and files",
    "fallthrough": "is not supported by ClusterDNS yet",
    "max_age": "is not supported by ClusterDNS yet",
}

#: RCODE names as miekg/dns's StringToRcode knows them.
RCODES: dict[str, int] = {name: int(r) for name, r in dns.rcode.Rcode.__members__.items()}


@dataclass(slots=True)
class Target:
    """One parsed TO: transport ("dns"/"tls"), IP, port and a per-endpoint TLS server name."""

    transport: str
    host: str
    port: int
    server_name: str = ""


@dataclass(slots=True, eq=False)
class Stanza:
    """One `forward` line of a server block, ready to serve."""

    from_zone: str
    upstreams: list[Upstream]
    ignored: list[str] = field(default_factory=list)
    policy: Policy = field(default_factory=Random)
    max_fails: int = 2
    max_concurrent: int = 0
    max_connect_attempts: int = 0
    force_tcp: bool = False
    prefer_udp: bool = False
    failfast: bool = False
    next_rcodes: frozenset[int] = frozenset()
    failover_rcodes: frozenset[int] = frozenset()
    inflight: int = 0

    def match(self, qname: str) -> bool:
        """FROM covers the name and no `except` name does (FROM itself always matches)."""
        if not is_subdomain(self.from_zone, qname):
            return False
        if not self.ignored or qname == self.from_zone:
            return True
        return not any(is_subdomain(ign, qname) for ign in self.ignored)


# ---- TO ------------------------------------------------------------------------------------


def resolve_path(d: Directive, path: str, ctx: SetupContext) -> str:
    """A relative path hangs off the root plugin's directory, else off the Corefile's."""
    if os.path.isabs(path):
        return path
    root = ctx.extra.get("root")
    base = root if isinstance(root, str) and root else os.path.dirname(os.path.abspath(d.file))
    return os.path.join(base, path)


def parse_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def split_host_port(text: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: `host:port` or `[v6]:port`; None when there is no port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 >= len(text) or text[end + 1] != ":":
            return None
        return text[1:end], text[end + 2 :]
    colon = text.rfind(":")
    if colon < 0 or ":" in text[:colon]:
        return None
    return text[:colon], text[colon + 1 :]


def read_resolv_conf(d: Directive, path: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf(5) file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise d.error(f"forward: cannot read {path}: {e.strerror}") from None
    out: list[str] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        ip = parse_ip(fields[1])
        if ip is None:
            raise d.error(f"forward: {path}: nameserver '{fields[1]}' is not an IP address")
        out.append(ip)
    if not out:
        raise d.error(f"forward: no nameserver lines in {path}")
    return out


def _port(d: Directive, text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise d.error(f"forward: invalid port '{text}' in '{what}'")
    return int(text)


def parse_to(d: Directive, tok: Token, ctx: SetupContext, plugin: str) -> list[Target]:
    text = tok.text
    scheme, sep, rest = text.partition("://")
    trans = scheme.lower() if sep else "dns"
    if not sep:
        rest = text
    if trans in _OTHER_SCHEMES:
        extra = " (DNS-over-HTTPS is not implemented in ClusterDNS)" if trans == "https" else ""
        raise d.error(
            f"{plugin}: '{trans}' is not supported as a destination protocol in {plugin}: "
            f"{text}{extra}",
            tok.line,
        )
    if trans not in ("dns", "tls"):
        raise d.error(f"{plugin}: not an IP address or file: {text!r}", tok.line)
    server_name = ""
    if trans == "tls" and "%" in rest:
        # tls://IP%NAME[:PORT]: a TLS server name for this endpoint only (CoreDNS's splitZone).
        at = rest.rfind("%")
        host_part, name = rest[:at], rest[at + 1 :]
        if host_part.startswith("["):
            host_part += "]"
        if ":" in name:
            colon = name.rfind(":")
            host_part, name = host_part + name[colon:], name[:colon]
        server_name, rest = name.rstrip("]"), host_part
    default = TLS_PORT if trans == "tls" else DNS_PORT
    hp = split_host_port(rest)
    if hp is None:
        bare = rest[1:-1] if rest.startswith("[") and rest.endswith("]") else rest
        ip = parse_ip(bare)
        if ip is not None:
            return [Target(trans, ip, default, server_name)]
    else:
        ip = parse_ip(hp[0])
        if ip is not None:
            return [Target(trans, ip, _port(d, hp[1], text), server_name)]
    path = resolve_path(d, rest, ctx)
    if not os.path.isfile(path):
        hint = ""
        if not rest.startswith((".", "/")):
            hint = " (host names are not supported as upstreams; use an IP address)"
        raise d.error(f"{plugin}: not an IP address or file: {rest!r}{hint}", tok.line)
    if trans == "tls":
        ctx.warn(d, f"plugin/{plugin}: tls:// does not apply to nameservers read from {path}; "
                    "they are queried over plain DNS (as CoreDNS does)")  # fmt: skip
    return [Target("dns", ip, DNS_PORT) for ip in read_resolv_conf(d, path)]


# ---- options -------------------------------------------------------------------------------


def uint_option(opt: Directive, plugin: str, bits: int = 32) -> int:
    if len(opt.args) != 1:
        raise opt.arg_error()
    text = opt.values[0]
    if not text.isdigit() or int(text) >= 1 << bits:
        raise opt.error(f"{plugin}: {opt.name}: invalid value '{text}'")
    return int(text)


def _nonneg_duration(opt: Directive, plugin: str) -> float:
    if len(opt.args) < 1:
        raise opt.arg_error()
    try:
        dur = parse_go_duration(opt.values[0])
    except ValueError as e:
        raise opt.error(f"{plugin}: {opt.name}: invalid duration '{opt.values[0]}': {e}") from None
    if dur < 0:
        raise opt.error(f"{plugin}: {opt.name} can't be negative: {opt.values[0]}")
    return dur


def _rcodes(opt: Directive, plugin: str) -> frozenset[int]:
    if not opt.args:
        raise opt.arg_error()
    out: set[int] = set()
    for text in opt.values:
        rc = RCODES.get(text.upper())
        if rc is None:
            raise opt.error(f"{plugin}: {text} is not a valid rcode")
        out.add(rc)
    return frozenset(out)


def tls_context(d: Directive, args: list[str], ctx: SetupContext, plugin: str) -> ssl.SSLContext:
    """CoreDNS's NewTLSConfigFromArgs for a client: [] / [CA] / [CERT KEY] / [CERT KEY CA]."""
    paths = [resolve_path(d, a, ctx) for a in args]
    for path in paths:
        if not os.path.isfile(path):
            raise d.error(f"{plugin}: tls: cannot read {path}: no such file")
    cert = key = ca = None
    if len(paths) == 1:
        ca = paths[0]
    elif len(paths) >= 2:
        cert, key = paths[0], paths[1]
        ca = paths[2] if len(paths) == 3 else None
    try:
        tctx = ssl.create_default_context(cafile=ca)
        if cert and key:
            tctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise d.error(f"{plugin}: tls: {what}") from None
    return tctx


@dataclass(slots=True)
class UpstreamOptions:
    tls: ssl.SSLContext | None = None
    tls_servername: str = ""
    expire: float = 10.0
    max_idle: int = 0
    health: HealthOptions = field(default_factory=HealthOptions)


def _option(opt: Directive, st: Stanza, o: UpstreamOptions, ctx: SetupContext, plugin: str) -> None:
    name, vals = opt.name, opt.values
    if opt.children:
        raise opt.error(f"{plugin}: unexpected block after '{name}'")
    if name == "except":
        if not vals:
            raise opt.arg_error()
        st.ignored.extend(zones_from_args(opt.args))
    elif name == "max_fails":
        st.max_fails = uint_option(opt, plugin)
    elif name == "max_connect_attempts":
        st.max_connect_attempts = uint_option(opt, plugin)
    elif name == "health_check":
        o.health.interval = _nonneg_duration(opt, plugin)
        o.health.domain = "."
        rest = iter(vals[1:])
        for word in rest:
            if word == "no_rec":
                o.health.recursion_desired = False
            elif word == "domain":
                domain = next(rest, None)
                if domain is None:
                    raise opt.arg_error()
                try:
                    dns.name.from_text(domain)
                except dns.exception.DNSException:
                    raise opt.error(
                        f"{plugin}: health_check: invalid domain name {domain}"
                    ) from None
                o.health.domain = domain.lower() if domain.endswith(".") else domain.lower() + "."
            else:
                raise opt.error(f"{plugin}: health_check: unknown option {word}")
    elif name in ("force_tcp", "prefer_udp", "failfast_all_unhealthy_upstreams"):
        if vals:
            raise opt.arg_error()
        if name == "force_tcp":
            st.force_tcp = True
        elif name == "prefer_udp":
            st.prefer_udp = True
        else:
            st.failfast = True
    elif name == "tls":
        if len(vals) > 3:
            raise opt.arg_error()
        o.tls = tls_context(opt, vals, ctx, plugin)
    elif name == "tls_servername":
        if len(vals) != 1:
            raise opt.arg_error()
        o.tls_servername = vals[0]
    elif name == "expire":
        o.expire = _nonneg_duration(opt, plugin)
    elif name == "max_idle_conns":
        o.max_idle = uint_option(opt, plugin, 63)
    elif name == "policy":
        if len(vals) != 1:
            raise opt.arg_error()
        cls = POLICIES.get(vals[0])
        if cls is None:
            raise opt.error(f"{plugin}: unknown policy '{vals[0]}'")
        st.policy = cls()
    elif name == "max_concurrent":
        st.max_concurrent = uint_option(opt, plugin, 63)
    elif name == "next":
        st.next_rcodes = _rcodes(opt, plugin)
    elif name == "failover":
        rcodes = _rcodes(opt, plugin)
        if dns.rcode.NOERROR in rcodes:
            raise opt.error(f"{plugin}: NoError cannot be used in failover")
        st.failover_rcodes = rcodes
    elif name in REJECTED:
        raise opt.error(f"{plugin}: '{name}' {REJECTED[name]}")
    else:
        raise unknown_option(plugin, opt)


def build_upstreams(
    d: Directive,
    targets: list[Target],
    st: Stanza,
    o: UpstreamOptions,
    ctx: SetupContext,
    plugin: str,
) -> list[Upstream]:
    ups: list[Upstream] = []
    for t in targets:
        tls = None
        sni: str | None = None
        if t.transport == "tls":
            if t.server_name and o.tls_servername:
                raise d.error(
                    f"{plugin}: both forward ('{o.tls_servername}') and proxy level "
                    f"('{t.server_name}') TLS servernames are set for upstream proxy "
                    f"'{t.host}'"
                )
            tls = o.tls or tls_context(d, [], ctx, plugin)
            sni = t.server_name or o.tls_servername or None
        up = Upstream(t.host, t.port, tls, sni)
        up.expire = o.expire
        up.max_idle = o.max_idle
        up.health = HealthOptions(
            interval=o.health.interval,
            recursion_desired=o.health.recursion_desired,
            domain=o.health.domain,
            tcp=st.force_tcp and tls is None,
        )
        ups.append(up)
    return ups


def parse_from(d: Directive, ctx: SetupContext, plugin: str) -> str:
    zones = zones_from_args(d.args[:1])
    if len(zones) > 1:
        ctx.warn(d, f"plugin/{plugin}: Unsupported CIDR notation: '{d.values[0]}' expands to "
                    f"multiple zones. Using only '{zones[0]}'.")  # fmt: skip
    return zones[0]


def check_count(d: Directive, n: int, plugin: str) -> None:
    if n > MAX_UPSTREAMS:
        raise d.error(f"{plugin}: more than {MAX_UPSTREAMS} TOs configured: {n}")


def parse_stanza(d: Directive, ctx: SetupContext) -> Stanza:
    """One `forward FROM TO… { … }` line."""
    plugin = "forward"
    if len(d.args) < 2:
        raise d.arg_error()
    from_zone = parse_from(d, ctx, plugin)
    targets = [t for tok in d.args[1:] for t in parse_to(d, tok, ctx, plugin)]
    check_count(d, len(targets), plugin)
    st = Stanza(from_zone=from_zone, upstreams=[])
    o = UpstreamOptions()
    for opt in d.children:
        _option(opt, st, o, ctx, plugin)
    st.upstreams = build_upstreams(d, targets, st, o, ctx, plugin)
    return st


__all__ = ["ConfigError", "Stanza", "Target", "parse_stanza"]
