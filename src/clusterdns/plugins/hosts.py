"""hosts: answer A, AAAA and PTR queries from an /etc/hosts style file and inline entries.

Syntax::

    hosts [FILE [ZONES...]] {
        [INLINE]
        ttl SECONDS
        no_reverse
        reload DURATION
        fallthrough [ZONES...]
        fallthrough_unsupported
    }

As CoreDNS's plugin/hosts: FILE defaults to /etc/hosts (a relative FILE is taken from the
*root* directory when set, else from the Corefile's directory); ZONES default to the server
block's. Any block line that is not an option and comes before `fallthrough` is an inline
hosts line (`IP NAME...`). ttl defaults to 3600 (1-65535); the file is re-read every
`reload` (default 5s, 0 disables) when its mtime or size changed; a deleted file keeps the
entries last read (each re-read voids the fast path's answers made from the entries). Names
outside ZONES go to the next plugin; PTR queries are answered for any
reverse name (unless no_reverse) and go to the next plugin when nothing matches. A name that
exists with another type gets NODATA; a name that does not exist gets SERVFAIL (there is no
SOA to build an NXDOMAIN from) unless `fallthrough` covers it. Answers are authoritative and
their owner is the lower-cased query name, as CoreDNS's `state.Name()`.

An owner `*.example.org` (a wildcard) stands for any one label below example.org that has
no entry of its own in the same address family (and source: file or inline); wildcard
entries get no PTR records. `fallthrough_unsupported` (which needs `fallthrough`) also passes
on, within the fallthrough zones, queries of types other than A, AAAA and PTR.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from prometheus_client import Gauge

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.durations import parse_go_duration
from clusterdns.errors import PluginError
from clusterdns.fallthrough import Fallthrough
from clusterdns.plugin import Plugin, Replay, SetupContext, unknown_option
from clusterdns.request import Request
from clusterdns.server import fastpath
from clusterdns.zones import longest_match

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.hosts")

DEFAULT_PATH = "/etc/hosts"
DEFAULT_TTL = 3600
DEFAULT_RELOAD = 5.0

ENTRIES = Gauge(
    "entries",
    "The combined number of entries in hosts and Corefile.",
    namespace="coredns",
    subsystem="hosts",
)
RELOAD_TIMESTAMP = Gauge(
    "reload_timestamp_seconds",
    "The timestamp of the last reload of hosts file.",
    namespace="coredns",
    subsystem="hosts",
)

_IN = dns.rdataclass.IN
#: Names dnspython would print unchanged: short labels of letters, digits, '-', '_' and '*'.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_*-]{1,63}\.)*[A-Za-z0-9_*-]{1,63}\.?")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP after dropping an IPv6 zone; IPv4-mapped IPv6 becomes IPv4."""
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(slots=True)
class HostsMap:
    """Forward (name → IPs, per family) and reverse (IP → names) entries of one source."""

    name4: dict[str, list[str]] = field(default_factory=dict)
    name6: dict[str, list[str]] = field(default_factory=dict)
    addr: dict[str, list[str]] = field(default_factory=dict)
    #: Wildcard owners (`*.example.org.`), per family; they have no reverse entries.
    wild4: dict[str, list[str]] = field(default_factory=dict)
    wild6: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        """Every address and reverse name, as CoreDNS's Map.Len counts for the gauge."""
        maps = (self.name4, self.name6, self.wild4, self.wild6, self.addr)
        return sum(len(v) for m in maps for v in m.values())

    def lookup(self, name: str, v4: bool) -> list[str]:
        """The name's own addresses, else those of the wildcard one label up (CoreDNS's
        lookupStaticHostLocked)."""
        found = (self.name4 if v4 else self.name6).get(name)
        if found is not None:
            return found
        wild = self.wild4 if v4 else self.wild6
        if wild:
            pattern = wildcard_of(name)
            if pattern:
                return wild.get(pattern, [])
        return []


def wildcard_of(name: str) -> str:
    """`*.` and the name without its first label; "" for a name of one label or the root."""
    if "\\" in name:
        labels = dns.name.from_text(name).labels
        if len(labels) < 3:
            return ""
        return dns.name.Name((b"*", *labels[1:])).to_text().lower()
    _, sep, rest = name.partition(".")
    return f"*.{rest}" if sep and rest and rest != "." else ""


def parse_hosts(text: str, origins: list[str], auto_reverse: bool) -> HostsMap:
    """Parse hosts(5) lines; names outside `origins` and lines without a valid IP are skipped."""
    hmap = HostsMap()
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        ip = parse_ip(fields[0])
        if ip is None:
            continue
        forward = hmap.name4 if ip.version == 4 else hmap.name6
        wild = hmap.wild4 if ip.version == 4 else hmap.wild6
        key = str(ip)
        for word in fields[1:]:
            norm = normalize_name(word)
            if not norm or not longest_match(origins, norm):
                continue
            if norm.startswith("*."):
                wild.setdefault(norm, []).append(key)
                continue
            forward.setdefault(norm, []).append(key)
            if auto_reverse:
                hmap.addr.setdefault(key, []).append(norm)
    return hmap


def normalize_name(word: str) -> str:
    """The name as `Request.qname` spells it (lower-case, absolute, escaped); "" if invalid."""
    if len(word) <= 253 and _PLAIN_NAME.fullmatch(word):  # the common case, without dnspython
        return word.lower() if word.endswith(".") else word.lower() + "."
    try:
        # Bytes keep non-ASCII labels raw (no IDNA), as DNS carries them.
        return dns.name.from_text(word.encode("utf-8", "surrogateescape")).to_text().lower()
    except (dns.exception.DNSException, ValueError):
        return ""


def address_from_reverse(qname: str) -> str:
    """The address a reverse name stands for ("" if it is not one), as CoreDNS's dnsutil."""
    if qname.endswith(".in-addr.arpa."):
        labels = qname[: -len(".in-addr.arpa.")].split(".")
        return ".".join(reversed(labels))
    if qname.endswith(".ip6.arpa."):
        nibbles = list(reversed(qname[: -len(".ip6.arpa.")].split(".")))
        groups = ["".join(nibbles[i : i + 4]) for i in range(0, len(nibbles) // 4 * 4, 4)]
        ip = parse_ip(":".join(groups))
        return "" if ip is None else str(ip)
    return ""


class Hosts(Plugin):
    name = "hosts"
    replay = Replay.ALWAYS  # depends on its data slot

    def __init__(
        self,
        path: str,
        origins: list[str],
        fall: Fallthrough,
        ttl: int,
        reload: float,
        auto_reverse: bool,
        inline: HostsMap,
        fall_unsupported: bool = False,
    ) -> None:
        self.path = path
        self.fall_unsupported = fall_unsupported
        self.origins = origins
        self.fall = fall
        self.ttl = ttl
        self.reload = reload
        self.auto_reverse = auto_reverse
        self.inline = inline
        self.hmap = HostsMap()
        self._mtime_ns = -1
        self._size = -1
        self._task: asyncio.Task[None] | None = None
        self.slot = fastpath.new_slot()

    # ---- setup ---------------------------------------------------------------------------

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Hosts:
        d = directives[0]
        path = DEFAULT_PATH
        if d.args:
            path = _resolve_path(d, d.values[0], ctx)
            _check_path(d, path, ctx)
        origins = zones_from_args(d.args[1:], default=ctx.zones)
        fall = Fallthrough()
        ttl, reload, auto_reverse = DEFAULT_TTL, DEFAULT_RELOAD, True
        inline: list[Directive] = []
        unsupported: Directive | None = None
        for opt in d.children:
            vals = opt.values
            if opt.name == "fallthrough":
                fall = Fallthrough.from_directive(opt)
            elif opt.name == "fallthrough_unsupported":
                if vals or opt.children:
                    raise opt.arg_error()
                unsupported = opt
            elif opt.name == "no_reverse":
                _extra_args(opt, vals, 0, ctx)
                auto_reverse = False
            elif opt.name == "ttl":
                if not vals:
                    raise opt.error("hosts: ttl needs a time in second")
                _extra_args(opt, vals, 1, ctx)
                if not _is_int(vals[0]):
                    raise opt.error("hosts: ttl needs a number of second")
                ttl = int(vals[0])
                if not 0 < ttl <= 65535:
                    raise opt.error("hosts: ttl provided is invalid")
            elif opt.name == "reload":
                if len(vals) != 1:
                    raise opt.error("hosts: reload needs a duration (zero seconds to disable)")
                try:
                    reload = parse_go_duration(vals[0])
                except ValueError:
                    raise opt.error(f"hosts: invalid duration for reload '{vals[0]}'") from None
                if reload < 0:
                    raise opt.error(f"hosts: invalid negative duration for reload '{vals[0]}'")
            elif not fall.enabled:
                # CoreDNS: before `fallthrough`, any other line is an inline hosts entry.
                if opt.children or opt.has_block:
                    raise opt.error(f"hosts: unexpected block after inline entry '{opt.name}'")
                inline.append(opt)
            else:
                raise unknown_option("hosts", opt)
        if unsupported is not None and not fall.enabled:
            raise unsupported.error("hosts: fallthrough_unsupported requires fallthrough")
        text = "\n".join(" ".join([o.name, *o.values]) for o in inline)
        inline_map = parse_hosts(text, origins, auto_reverse)
        for o in inline:
            if parse_ip(o.name) is None:
                ctx.warn(
                    o, f"hosts: inline line '{o.name}' does not start with an IP address; ignored"
                )
        return cls(
            path, origins, fall, ttl, reload, auto_reverse, inline_map, unsupported is not None
        )

    # ---- file reading --------------------------------------------------------------------

    def read_hosts(self) -> None:
        """Re-parse the file if its mtime or size changed (blocking; run it in a thread)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_mtime_ns == self._mtime_ns and st.st_size == self._size:
                    return
                data = f.read()
        except OSError:
            return  # setup already warned; keep what was read before
        hmap = parse_hosts(data.decode("utf-8", "surrogateescape"), self.origins, self.auto_reverse)
        log.debug("Parsed hosts file into %d entries", len(hmap))
        self.hmap = hmap  # one reference swap: readers see the old or the new map
        fastpath.bump(self.slot)
        self._mtime_ns, self._size = st.st_mtime_ns, st.st_size
        ENTRIES.set(len(self.inline) + len(hmap))
        RELOAD_TIMESTAMP.set(st.st_mtime_ns / 1e9)

    async def start(self, rt: Runtime) -> None:
        await asyncio.to_thread(self.read_hosts)
        if self.reload > 0:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload)
            try:
                await asyncio.to_thread(self.read_hosts)
            except Exception:  # a bad read must not end the watcher
                log.exception("plugin/hosts: reading %s failed", self.path)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---- lookups -------------------------------------------------------------------------

    def lookup_v4(self, name: str) -> list[str]:
        return self.hmap.lookup(name, True) + self.inline.lookup(name, True)

    def lookup_v6(self, name: str) -> list[str]:
        return self.hmap.lookup(name, False) + self.inline.lookup(name, False)

    def lookup_addr(self, addr: str) -> list[str]:
        ip = parse_ip(addr)
        if ip is None:
            return []
        key = str(ip)
        return self.hmap.addr.get(key, []) + self.inline.addr.get(key, [])

    # ---- serving -------------------------------------------------------------------------

    async def serve(self, req: Request) -> dns.message.Message:
        qname, qtype = req.qname, req.qtype
        if qtype != dns.rdatatype.PTR and not longest_match(self.origins, qname):
            req.note("name outside the hosts plugin's zones")
            return await self.next(req)
        fastpath.depend(self.slot)
        owner = req.name.canonicalize()  # lower-cased, as CoreDNS's state.Name()
        values: list[str] = []
        if qtype == dns.rdatatype.PTR:
            values = self.lookup_addr(address_from_reverse(qname))
            if not values:
                req.note("no hosts entry has this address")
                return await self.next(req)  # regardless of fallthrough, as CoreDNS
        elif qtype == dns.rdatatype.A:
            values = self.lookup_v4(qname)
        elif qtype == dns.rdatatype.AAAA:
            values = self.lookup_v6(qname)
        elif self.fall_unsupported and self.fall.through(qname):
            req.note("fallthrough_unsupported: a type hosts does not serve")
            return await self.next(req)
        rrset: dns.rrset.RRset | None = None
        if values:
            rdtype = dns.rdatatype.RdataType(qtype)
            rdatas = [dns.rdata.from_text(_IN, rdtype, v) for v in values]
            rrset = dns.rrset.from_rdata_list(owner, self.ttl, rdatas)
        if rrset is None and not (self.lookup_v4(qname) or self.lookup_v6(qname)):
            if self.fall.through(qname):
                req.note("fallthrough: name not in hosts")
                return await self.next(req)
            req.note("name not in hosts, and no fallthrough for it")
            # No SOA to build an NXDOMAIN from: CoreDNS answers SERVFAIL (without an error).
            raise PluginError(self.name, "name not found", dns.rcode.SERVFAIL, quiet=True)
        m = req.reply(authoritative=True)
        if rrset is not None:
            m.answer = [rrset]
        return m


# ---- setup helpers -----------------------------------------------------------------------


def _resolve_path(d: Directive, path: str, ctx: SetupContext) -> str:
    """A relative FILE hangs off the root plugin's directory, else off the Corefile's."""
    if os.path.isabs(path):
        return path
    root = ctx.extra.get("root")
    base = root if isinstance(root, str) and root else os.path.dirname(os.path.abspath(d.file))
    return os.path.join(base, path)


def _check_path(d: Directive, path: str, ctx: SetupContext) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        ctx.warn(d, f"plugin/hosts: File does not exist: {path}")
        return
    except OSError as e:
        raise d.error(f"hosts: unable to access hosts file '{path}': {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        ctx.warn(d, f'plugin/hosts: Hosts file "{path}" is a directory')


def _extra_args(opt: Directive, vals: list[str], allowed: int, ctx: SetupContext) -> None:
    """CoreDNS ignores surplus arguments here; accept them as it does, but say so."""
    if len(vals) > allowed:
        ctx.warn(
            opt, f"hosts: ignoring extra arguments to '{opt.name}': {' '.join(vals[allowed:])}"
        )


def _is_int(text: str) -> bool:
    """Go's strconv.Atoi: optional sign and ASCII digits only."""
    body = text[1:] if text[:1] in "+-" else text
    return body.isascii() and body.isdigit()


PLUGIN = Hosts
