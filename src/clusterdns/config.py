"""Turn a parsed Corefile into runnable server blocks: plugins set up, chains built, routes laid.

Nothing here opens a socket or talks to an API; `-validate` runs exactly this.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.message

from clusterdns import registry
from clusterdns.corefile.ast import Directive, ServerBlock
from clusterdns.corefile.keys import ZoneAddr, parse_key
from clusterdns.corefile.parser import parse_corefile, parse_corefile_text
from clusterdns.errors import ConfigError, ConfigErrors
from clusterdns.pkg.view import RequestFilter
from clusterdns.plugin import Handler, Plugin, SetupContext, terminal
from clusterdns.request import Request


@dataclass(frozen=True, slots=True)
class ListenAddr:
    """One listening address: all interfaces when host is ""."""

    transport: str
    host: str
    port: int

    @property
    def label(self) -> str:
        """The `server` label CoreDNS puts on its metrics, e.g. dns://:53."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


@dataclass(slots=True, eq=False)
class Block:
    """One server block: its keys, its plugins in registry order, and the chain's entry."""

    keys: list[ZoneAddr]
    plugins: list[Plugin]
    chain: Handler
    hosts: list[str]
    file: str
    line: int
    #: The filters of plugins like *view* (clusterdns.pkg.view): all must pass for a query to
    #: be routed here. Empty for an ordinary block.
    filters: list[Callable[[Request], bool]] = field(default_factory=list)
    #: Only in `Config.routes`, for blocks sharing one zone and address where one has
    #: filters: those blocks, in Corefile order (this entry itself has no plugins).
    members: list[Block] | None = None

    def find(self, name: str) -> Plugin | None:
        for p in self.plugins:
            if p.name == name:
                return p
        return None

    def select(self, req: Request | None) -> Block | None:
        """The block that takes `req`: this one, or for a group the first member whose
        filters pass; None if none does. Without a request, filters are not consulted."""
        for b in self.members if self.members is not None else (self,):
            if req is None or all(f(req) for f in b.filters):
                return b
        return None


@dataclass(slots=True)
class Config:
    path: str
    digest: str  # sha512 of the Corefile text, as the reload plugin reports it
    blocks: list[Block]
    routes: dict[ListenAddr, dict[str, Block]]
    warnings: list[str] = field(default_factory=list)

    def plugins(self) -> list[Plugin]:
        return [p for b in self.blocks for p in b.plugins]


DEFAULT_COREFILE = ".:{port} {{\n    whoami\n    log\n}}\n"


def _wrap(plugin: Plugin) -> Handler:
    """Bind the plugin's handler and note, once, which plugin produced the response."""
    serve = plugin.serve
    name = plugin.name

    async def handle(req: Request) -> dns.message.Message:
        resp = await serve(req)
        if not req.answered_by:
            req.answered_by = name
        return resp

    return handle


def build_chain(plugins: list[Plugin], wrap: Callable[[Plugin], Handler] = _wrap) -> Handler:
    """Link handlers last to first so each plugin's `next` is the following one.

    `wrap` binds each plugin's handler; `clusterdns query --trace` passes a tracing one, so
    serving itself never pays for tracing.
    """
    handlers = [p for p in plugins if p.handler]
    if not handlers:
        return terminal("server")
    nxt: Handler = terminal(handlers[-1].name)
    for p in reversed(handlers):
        p.next = nxt
        nxt = wrap(p)
    return nxt


def setup_block(
    sb: ServerBlock, default_port: int, errors: list[ConfigError], warnings: list[str]
) -> Block | None:
    keys: list[ZoneAddr] = []
    for tok in sb.keys:
        try:
            keys.extend(parse_key(tok, default_port))
        except ConfigError as e:
            errors.append(e)
    if not keys:
        return None
    ctx = SetupContext(file=sb.file, keys=keys, default_port=default_port)
    grouped: dict[str, list[Directive]] = {}
    for d in sb.directives:
        grouped.setdefault(d.name, []).append(d)
    plugins: list[Plugin] = []
    classes: list[tuple[type[Plugin], list[Directive]]] = []
    for name, ds in grouped.items():
        try:
            cls = registry.plugin_class(ds[0])
        except ConfigError as e:
            errors.append(e)
            continue
        if cls.once and len(ds) > 1:
            errors.append(
                ds[1].error(f"plugin/{name}: this plugin can only be used once per server block")
            )
            continue
        classes.append((cls, ds))
    classes.sort(key=lambda c: registry.rank(c[0].name))
    for cls, ds in classes:
        try:
            plugins.append(cls.setup(ds, ctx))
        except ConfigError as e:
            errors.append(e)
    block = Block(
        keys=keys,
        plugins=plugins,
        chain=build_chain(plugins),
        hosts=list(ctx.bind_hosts) or [""],
        file=sb.file,
        line=sb.line,
        filters=[p.filter for p in plugins if isinstance(p, RequestFilter)],
    )
    warnings.extend(ctx.warnings)
    return block


def b_error(b: Block, message: str) -> ConfigError:
    return ConfigError(message, b.file, b.line)


def build(blocks_src: list[ServerBlock], path: str, text: str, default_port: int = 53) -> Config:
    """Set up every block and lay out routes; all errors are collected, then raised together."""
    errors: list[ConfigError] = []
    warnings: list[str] = []
    blocks: list[Block] = []
    for sb in blocks_src:
        b = setup_block(sb, default_port, errors, warnings)
        if b is not None:
            blocks.append(b)
    routes: dict[ListenAddr, dict[str, Block]] = {}
    seen: dict[tuple[str, str, int], dict[str, Block]] = {}  # (transport, zone, port) -> host
    plain: dict[tuple[ListenAddr, str], Block] = {}  # the unfiltered block of an address+zone
    for b in blocks:
        for k in b.keys:
            hosts = seen.setdefault((k.transport, k.zone, k.port), {})
            for host in b.hosts:
                la = ListenAddr(k.transport, host, k.port)
                what = f"{la.transport}://{k.zone}:{k.port}"
                other = hosts.get(host)
                zone_routes = routes.setdefault(la, {})
                unfiltered = plain.get((la, k.zone))
                if other is not None and other is not b and (b.filters or unfiltered is None):
                    # CoreDNS lets filtered (view) blocks share a zone and address with each
                    # other and with one unfiltered block: tried in Corefile order, the first
                    # whose filters pass takes the query.
                    zone_routes[k.zone] = _group(zone_routes.get(k.zone, other), b)
                    if not b.filters:
                        plain[(la, k.zone)] = b
                    continue
                if unfiltered is not None:
                    other = unfiltered
                if other is not None and other is not b:
                    errors.append(b_error(b, f"cannot serve {what} - it is already defined "
                                             f"(at {other.file}:{other.line})"))  # fmt: skip
                wild = hosts.get("") if host else next(iter(hosts.values()), None)
                if other is None and wild is not None and wild is not b:
                    errors.append(b_error(b, f"cannot serve {what} - zone overlap listener "
                                             f"capacity with {wild.file}:{wild.line}"))  # fmt: skip
                hosts[host] = b
                zone_routes[k.zone] = b
                if not b.filters:
                    plain[(la, k.zone)] = b
    if not blocks and not errors:
        errors.append(ConfigError("no server blocks defined", path))
    if errors:
        raise ConfigErrors(errors)
    digest = hashlib.sha512(text.encode()).hexdigest()
    return Config(path, digest, blocks, routes, warnings)


def _group(first: Block, b: Block) -> Block:
    """The routes entry for `first` (a block or a group) followed by block `b`."""
    members = [*(first.members if first.members is not None else [first]), b]
    head = members[0]
    return Block(
        keys=head.keys, plugins=[], chain=head.chain, hosts=head.hosts, file=head.file,
        line=head.line, members=members,
    )  # fmt: skip


def load(path: str | None, default_port: int = 53) -> Config:
    """Read, parse and build the Corefile at `path` (None: the built-in default)."""
    if path is None:
        text = DEFAULT_COREFILE.format(port=default_port)
        return build(parse_corefile_text(text, "<default>"), "<default>", text, default_port)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigErrors([ConfigError(f"cannot read Corefile: {e.strerror}", path)]) from None
    try:
        parsed = parse_corefile(path)
    except ConfigError as e:
        raise ConfigErrors([e]) from None
    return build(parsed, os.path.abspath(path), text, default_port)
