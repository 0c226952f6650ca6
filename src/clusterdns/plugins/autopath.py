"""autopath: walk the client's search path on the server, in one round trip (CoreDNS's autopath).

Syntax::

    autopath [ZONE...] RESOLV-CONF

ZONE (default: the server block's zones) limits the names autopath looks at. RESOLV-CONF is a
resolv.conf-style file whose `search` (or `domain`) line gives the search path (a relative
path is taken from the Corefile's directory), or `@PLUGIN` to ask that plugin of the same
server block for a per-query path: `@kubernetes` gives the path of the pod that sent the query
(`NS.svc.ZONE`, `svc.ZONE`, `ZONE`, then this server's own /etc/resolv.conf search domains),
and needs `pods verified`.

A query whose name lies below the first search element (`name.ns.svc.cluster.local` from a
pod in `ns`) is taken apart into its base (`name`) and asked again, through the rest of
the chain, with each search element appended in turn, the last being the bare name. The first
answer that is not NXDOMAIN is returned, with a CNAME from the asked name to the found one put
first in the answer, and counted in coredns_autopath_success_total{server}. When every try gives
NXDOMAIN, the reply to the first try is returned and the client walks its search path itself.
An error from the chain ends the walk (the error is returned). A reply the next plugins did not
really write — a bare SERVFAIL, REFUSED, FORMERR or NOTIMP without records, as hosts gives for
a name it does not know — counts as "not found here" and the walk goes on, as CoreDNS skips an
rcode that no plugin wrote. The first search element itself (`ns.svc.cluster.local`) is left
alone; CoreDNS answers it SERVFAIL (it cannot strip the element from the name).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset
from prometheus_client import Counter

from clusterdns import registry
from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.errors import PluginError
from clusterdns.pkg.resolvconf import resolv_search
from clusterdns.plugin import Plugin, Replay, SetupContext
from clusterdns.request import Request
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")

SUCCESS = Counter(
    "success_total",
    "Counter of requests that did autopath.",
    ["server"],
    namespace="coredns",
    subsystem="autopath",
)

SearchFunc = Callable[[Request], "list[str] | None"]
#: Rcodes a CoreDNS plugin returns without writing (plugin.ClientWrite is false for them).
_UNWRITTEN = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.NOTIMP})


class AutoPath(Plugin):
    name = "autopath"
    replay = Replay.WHEN  # not for its zones: the search path depends on the client

    def __init__(self, zones: list[str], search: list[str], source: str) -> None:
        self.zones = zones
        self.search = search  # from a resolv.conf, "" last; [] with @PLUGIN
        self.source = source  # the plugin named by @PLUGIN, or ""
        self.search_func: SearchFunc | None = None

    def replayable(self, req: Request) -> bool:
        return not longest_match(self.zones, req.qname)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> AutoPath:
        d = directives[0]
        if d.children or d.has_block:
            raise d.error("autopath: unexpected block")
        if not d.args:
            raise d.error("autopath: no resolv-conf specified")
        resolv = d.values[-1]
        search: list[str] = []
        source = ""
        if resolv.startswith("@"):
            source = resolv[1:]
            if not source:
                raise d.error("autopath: a plugin name must follow '@'")
            if not _can_autopath(source):
                raise d.error(f"autopath: {source} does not implement the AutoPather interface")
        else:
            path = resolv
            if not os.path.isabs(path):
                path = os.path.join(os.path.dirname(os.path.abspath(d.file)), path)
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise d.error(f'autopath: failed to parse "{resolv}": {e.strerror}') from None
            search = [*resolv_search(path), ""]
        zones = zones_from_args(d.args[:-1], default=ctx.zones)
        return cls(zones, search, source)

    async def start(self, rt: Runtime) -> None:
        """Find the @PLUGIN of our own server block, now that every plugin exists."""
        if not self.source:
            return
        block = next((b for b in rt.starting.blocks if self in b.plugins), None)
        other = block.find(self.source) if block is not None else None
        if other is None:
            # CoreDNS does nothing then, silently; say it at least.
            log.warning(
                "plugin/autopath: no '%s' plugin in this server block: autopath does nothing",
                self.source,
            )
            return
        method = getattr(other, "autopath_search", None)
        if not callable(method):
            log.error("plugin/autopath: %s does not implement autopath_search", self.source)
            return
        self.search_func = method

    async def stop(self) -> None:
        self.search_func = None

    async def serve(self, req: Request) -> dns.message.Message:
        if not longest_match(self.zones, req.qname):
            return await self.next(req)
        path = self.search_func(req) if self.search_func is not None else self.search
        if not path or not _first_in_path(req.qname, path[0]):
            return await self.next(req)
        base = _base_labels(req.name, path[0])
        first: dns.message.Message | None = None
        first_err: PluginError | None = None
        first_by = ""
        for i, element in enumerate(path):
            try:
                sub = req.derive(dns.name.Name((*base, *_labels(element))))
            except dns.name.NameTooLong:  # no such name can exist: as if it were NXDOMAIN
                continue
            try:
                resp = await self.next(sub)
            except PluginError as e:
                if not e.quiet:
                    raise  # an error ends the walk, as in CoreDNS
                if i == 0:  # an rcode nobody wrote (hosts' SERVFAIL): try the next element
                    first_err = e
                continue
            if i == 0:
                first, first_by = resp, sub.answered_by
            if not _written(resp) or resp.rcode() == dns.rcode.NXDOMAIN:
                continue
            cnamer(resp, req.name)
            resp.question = list(req.msg.question)
            SUCCESS.labels(req.server).inc()
            req.answered_by = sub.answered_by
            return resp
        if first is None:
            assert first_err is not None  # the path always has at least one element
            raise first_err
        first.question = list(req.msg.question)
        req.answered_by = first_by
        return first


def _can_autopath(source: str) -> bool:
    """Whether plugin `source` can give search paths (it has `autopath_search(req)`).

    A name that is no plugin here passes: CoreDNS only acts when the block has that plugin.
    """
    if source not in registry.AVAILABLE:
        return True
    mod = importlib.import_module(f"clusterdns.plugins.{registry.AVAILABLE[source]}")
    return callable(getattr(mod.PLUGIN, "autopath_search", None))


def _first_in_path(qname: str, first: str) -> bool:
    """The name lies below the first search element (CoreDNS's firstInSearchPath).

    CoreDNS also takes the element itself, then fails to strip it from the name and answers
    SERVFAIL; here that name simply goes on down the chain.
    """
    first = first.lower()
    if first in ("", "."):
        return qname != "."
    return qname.endswith("." + first)


def _labels(element: str) -> tuple[bytes, ...]:
    """The labels of a search element, the root label included ("" and "." are the root)."""
    if element in ("", "."):
        return (b"",)
    return dns.name.from_text(element).labels


def _base_labels(name: dns.name.Name, first: str) -> tuple[bytes, ...]:
    """`name` without the first search element, in the client's case (dnsutil.TrimZone)."""
    drop = len(_labels(first)) - 1  # without the root label
    return name.labels[: len(name.labels) - 1 - drop]


def _written(resp: dns.message.Message) -> bool:
    """Whether a CoreDNS plugin would have written this reply (see the module docstring)."""
    if resp.rcode() not in _UNWRITTEN:
        return True
    return bool(resp.answer or resp.authority or resp.additional)


def cnamer(m: dns.message.Message, original: dns.name.Name) -> None:
    """Put a CNAME from `original` to the owner of the first answer record not owned by
    `original` in front of the answer (TTL of that record), as CoreDNS's cnamer."""
    for rrset in m.answer:
        if rrset.name == original:  # dnspython compares names case-insensitively
            continue
        rd = dns.rdtypes.ANY.CNAME.CNAME(dns.rdataclass.IN, dns.rdatatype.CNAME, rrset.name)  # type: ignore[no-untyped-call]
        cname = dns.rrset.from_rdata_list(original, rrset.ttl, [rd])
        m.answer = [cname, *m.answer]
        return


PLUGIN = AutoPath
