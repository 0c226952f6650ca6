"""proxy: CoreDNS 1.x's forwarder (removed in CoreDNS 1.7), run here by forward.

Syntax::

    proxy FROM TO... {
        policy random|round_robin|always_first
        max_fails INTEGER
        except IGNORED_NAMES...
        spray
        protocol dns [force_tcp]
    }

Old Corefiles keep working: each `proxy` line becomes a `forward` stanza and a deprecation
warning (`proxy is deprecated, use forward`) is logged at start. What maps onto forward is
accepted: `policy` (always_first is forward's sequential), `max_fails`, `except`, `spray`
(forward always sprays when every upstream is down) and `protocol dns [force_tcp]`. TO is
`IP[:PORT]` or a resolv.conf file, as for forward. What has no forward equivalent is an error
naming it: `policy least_conn`, `fail_timeout`, `health_check PATH:PORT` (HTTP checks;
forward checks upstreams over DNS), `protocol https_google|grpc`.

Upstreams are health checked and counted as forward's are (the metrics say
proxy_name="forward"), with forward's defaults: max_fails 2, health checks every 0.5s.
"""

from __future__ import annotations

from typing import ClassVar

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.pkg.forward import Forward
from clusterdns.pkg.forward.policy import Random, RoundRobin, Sequential
from clusterdns.pkg.forward.setup import (
    Stanza,
    UpstreamOptions,
    build_upstreams,
    check_count,
    parse_from,
    parse_to,
    uint_option,
)
from clusterdns.plugin import SetupContext, unknown_option

DEPRECATED = "proxy is deprecated, use forward"

_POLICIES = {"random": Random, "round_robin": RoundRobin, "always_first": Sequential}
_NO_EQUIVALENT = {
    "fail_timeout": "has no forward equivalent (forward marks an upstream down after failed "
    "health checks instead); remove it",
    "health_check": "(HTTP health checks on PATH:PORT) has no forward equivalent: forward "
    "checks upstreams over DNS by itself; remove it",
}


def _option(opt: Directive, st: Stanza) -> None:
    name, vals = opt.name, opt.values
    if opt.children:
        raise opt.error(f"proxy: unexpected block after '{name}'")
    if name == "policy":
        if len(vals) != 1:
            raise opt.arg_error()
        if vals[0] == "least_conn":
            raise opt.error(
                "proxy: policy least_conn has no forward equivalent; use random, round_robin "
                "or always_first"
            )
        cls = _POLICIES.get(vals[0])
        if cls is None:
            raise opt.error(f"proxy: unknown policy '{vals[0]}'")
        st.policy = cls()
    elif name == "max_fails":
        st.max_fails = uint_option(opt, "proxy")
    elif name == "except":
        if not vals:
            raise opt.arg_error()
        st.ignored.extend(zones_from_args(opt.args))
    elif name == "spray":
        if vals:
            raise opt.arg_error()
    elif name == "protocol":
        if not vals:
            raise opt.arg_error()
        if vals[0] != "dns":
            if vals[0] in ("https_google", "grpc"):
                raise opt.error(
                    f"proxy: protocol {vals[0]} is not supported (forward speaks DNS over "
                    "UDP/TCP and DNS-over-TLS: write forward . tls://IP instead)"
                )
            raise opt.error(f"proxy: invalid protocol: {vals[0]}")
        if len(vals) > 1:
            if vals[1:] != ["force_tcp"]:
                raise opt.error("proxy: only force_tcp allowed as parameter to dns")
            st.force_tcp = True
    elif name in _NO_EQUIVALENT:
        raise opt.error(f"proxy: '{name}' {_NO_EQUIVALENT[name]}")
    else:
        raise unknown_option("proxy", opt)


def parse_proxy(d: Directive, ctx: SetupContext) -> Stanza:
    if len(d.args) < 2:
        raise d.arg_error()
    from_zone = parse_from(d, ctx, "proxy")
    targets = [t for tok in d.args[1:] for t in parse_to(d, tok, ctx, "proxy")]
    for t in targets:
        if t.transport != "dns":
            raise d.error("proxy: tls:// upstreams need the forward plugin")
    check_count(d, len(targets), "proxy")
    st = Stanza(from_zone=from_zone, upstreams=[])
    for opt in d.children:
        _option(opt, st)
    st.upstreams = build_upstreams(d, targets, st, UpstreamOptions(), ctx, "proxy")
    return st


class Proxy(Forward):
    name: ClassVar[str] = "proxy"

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Proxy:
        stanzas = []
        for d in directives:
            ctx.warn(d, f"plugin/proxy: {DEPRECATED}")
            stanzas.append(parse_proxy(d, ctx))
        return cls(stanzas)


PLUGIN = Proxy
