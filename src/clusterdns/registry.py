"""The one place that knows which plugins exist and the order they run in.

The order is CoreDNS's plugin.cfg: a plugin's position here, never its position in the Corefile,
decides where it sits in the chain.
"""

from __future__ import annotations

import importlib

from clusterdns.corefile.ast import Directive
from clusterdns.errors import ConfigError
from clusterdns.plugin import Plugin

#: CoreDNS 1.14.7's plugin.cfg, in execution order. `proxy` (removed from CoreDNS in 1.7) keeps
#: the place it had, next to forward, so old Corefiles still order correctly.
ORDER: tuple[str, ...] = (
    "root", "metadata", "geoip", "cancel", "proxyproto", "quic", "grpc_server", "https",
    "https3", "timeouts", "multisocket", "reload", "nsid", "bufsize", "bind", "debug", "trace",
    "ready", "health", "pprof", "shed", "prometheus", "errors", "log", "dnstap", "local",
    "dns64", "any", "chaos", "loadbalance", "tsig", "rewrite", "autopath", "acl", "cache",
    "header", "dnssec", "tls", "minimal", "template", "transfer", "hosts", "route53", "azure",
    "clouddns", "k8s_external", "kubernetes", "file", "auto", "secondary", "etcd", "loop",
    "forward", "proxy", "grpc", "erratic", "whoami", "on", "sign", "view", "nomad",
)  # fmt: skip

#: Directives implemented here: name -> module under clusterdns.plugins.
AVAILABLE: dict[str, str] = {
    "reload": "reload",
    "bufsize": "bufsize",
    "bind": "bind",
    "ready": "ready",
    "health": "health",
    "shed": "shed",
    "prometheus": "prometheus",
    "errors": "errors",
    "log": "log",
    "any": "any",
    "chaos": "chaos",
    "loadbalance": "loadbalance",
    "rewrite": "rewrite",
    "hosts": "hosts",
    "whoami": "whoami",
    "forward": "forward",
    "proxy": "proxy",
    "loop": "loop",
    "cache": "cache",
    "autopath": "autopath",
    "kubernetes": "kubernetes",
    "file": "file",
    "auto": "auto",
    "secondary": "secondary",
    "transfer": "transfer",
    "template": "template",
    "nsid": "nsid",
    "minimal": "minimal",
    "local": "local",
    "acl": "acl",
    "header": "header",
    "dns64": "dns64",
    "metadata": "metadata",
    "debug": "debug",
    "root": "root",
    "cancel": "cancel",
    "timeouts": "timeouts",
    "k8s_external": "k8s_external",
    "view": "view",
    "tsig": "tsig",
}

#: Directives that later work will bring; named so users know it is coming, not a typo.
PLANNED: dict[str, str] = {}

_RANK = {name: i for i, name in enumerate(ORDER)}


def rank(name: str) -> int:
    return _RANK[name]


def plugin_class(d: Directive) -> type[Plugin]:
    """The class for directive `d`, or a ConfigError that says why there is none."""
    name = d.name
    if name in AVAILABLE:
        mod = importlib.import_module(f"clusterdns.plugins.{AVAILABLE[name]}")
        cls: type[Plugin] = mod.PLUGIN
        return cls
    if name in PLANNED:
        raise ConfigError(
            f"plugin '{name}' is not available yet in ClusterDNS (coming with {PLANNED[name]})",
            d.file,
            d.line,
        )
    if name in _RANK:
        raise ConfigError(f"plugin '{name}' is not supported by ClusterDNS", d.file, d.line)
    raise ConfigError(f"unknown directive '{name}'", d.file, d.line)


def available() -> list[str]:
    return sorted(AVAILABLE)
