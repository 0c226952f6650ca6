"""loadbalance: shuffle address and MX records in answers (round-robin DNS), or weigh them.

Syntax::

    loadbalance [round_robin] {
        prefer CIDR [CIDR...]
    }
    loadbalance weighted WEIGHTFILE {
        reload DURATION
    }

As CoreDNS's plugin/loadbalance. Only NOERROR responses are touched (zone transfers excepted).

* `round_robin` (the default): each section is reordered record by record: CNAMEs first (stub
  resolvers such as glibc want the chain before the addresses), then other records in their
  order, then the A and AAAA records shuffled, then the MX records shuffled. `prefer` then
  moves, in the answer and additional sections, the addresses inside the CIDRs to the front
  of the addresses (in CIDR order), giving CNAME, addresses, MX, the rest.
* `weighted` (answers to A, AAAA and SRV queries; answer and additional sections): one
  address, picked at random with the probabilities its weight gives (weight 1 for addresses
  the file does not list for the record's owner), is moved to the first address position;
  the section becomes CNAME, the rest, the addresses, MX. The WEIGHTFILE (relative paths from
  the *root* directory if set, else the Corefile's) holds owner names, each followed by
  `IP WEIGHT` lines (1-255); `#` lines are comments. It is read at start (a missing file is
  only a warning when it is reloaded) and re-read every `reload` (default 30s, 0 never) when
  its content changed; a bad file keeps the weights in force.

Fast path: only round_robin without `prefer` is replayed (its shuffle is redone per replay);
the other forms veto.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import random
from typing import TYPE_CHECKING

import dns.message
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset

from clusterdns.corefile.ast import Directive
from clusterdns.errors import ConfigError
from clusterdns.plugin import (
    Plugin,
    RecordTypes,
    RelayQuestion,
    Replay,
    ReplayableHook,
    SetupContext,
    parse_duration,
    unknown_option,
)
from clusterdns.request import Request
from clusterdns.server import fastpath

if TYPE_CHECKING:
    from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns.plugins.loadbalance")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Weights = dict[str, list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]]

POLICIES = ("round_robin", "weighted")
_ADDRESS = (dns.rdatatype.A, dns.rdatatype.AAAA)
_TRANSFER = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)

#: One resource record: owner, class, type, TTL and data, so a section can be reordered freely.
Record = tuple[dns.rrset.RRset, dns.rdata.Rdata]


def _shuffle(records: list[Record]) -> None:
    if len(records) > 1:
        random.shuffle(records)


def round_robin(section: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """CNAMEs, the rest, shuffled A/AAAA, shuffled MX; regrouped into consecutive RRsets."""
    if sum(len(rrset) for rrset in section) <= 1:
        return section
    cname, address, mx, rest = _split(section)
    _shuffle(address)
    _shuffle(mx)
    return _regroup(cname + rest + address + mx)


def _rank(rtype: int) -> int:
    """A record's place in round_robin's order: CNAME, the rest, A/AAAA, MX."""
    if rtype == dns.rdatatype.CNAME:
        return 0
    if rtype in _ADDRESS:
        return 2
    return 3 if rtype == dns.rdatatype.MX else 1


def _round_robin_fixed(types: tuple[int, ...]) -> bool:
    """Whether round_robin gives records of these types back in the same order."""
    ranks = [_rank(t) for t in types]
    return ranks == sorted(ranks) and ranks.count(2) <= 1 and ranks.count(3) <= 1


def _regroup(records: list[Record]) -> list[dns.rrset.RRset]:
    """Records back into RRsets, consecutive ones of one owner/type/TTL sharing one."""
    out: list[dns.rrset.RRset] = []
    for src, rd in records:
        last = out[-1] if out else None
        if (
            last is not None
            and last.name == src.name
            and last.rdtype == src.rdtype
            and last.rdclass == src.rdclass
            and last.covers == src.covers
            and last.ttl == src.ttl
        ):
            last.add(rd)
        else:
            new = dns.rrset.RRset(src.name, src.rdclass, src.rdtype, src.covers)
            new.update_ttl(src.ttl)
            new.add(rd)
            out.append(new)
    return out


def _split(section: list[dns.rrset.RRset]) -> tuple[list[Record], ...]:
    """(CNAME, A/AAAA, MX, other) records of a section, each in its order."""
    cname: list[Record] = []
    address: list[Record] = []
    mx: list[Record] = []
    rest: list[Record] = []
    buckets = (cname, rest, address, mx)  # by _rank: round_robin's order
    for rrset in section:
        buckets[_rank(rrset.rdtype)].extend((rrset, rd) for rd in rrset)
    return cname, address, mx, rest


def _ip(rd: dns.rdata.Rdata) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(rd.address)  # type: ignore[attr-defined]


def prefer(section: list[dns.rrset.RRset], subnets: list[Network]) -> list[dns.rrset.RRset]:
    """CoreDNS's reorderRecords: CNAME, addresses in the subnets (in subnet order), the other
    addresses, MX, the rest."""
    if not section:
        return section
    cname, address, mx, rest = _split(section)
    matched: list[Record] = []
    seen: set[int] = set()
    for net in subnets:
        for i, rec in enumerate(address):
            if i not in seen and _ip(rec[1]) in net:
                matched.append(rec)
                seen.add(i)
    unmatched = [rec for i, rec in enumerate(address) if i not in seen]
    return _regroup(cname + matched + unmatched + mx + rest)


def weighted(section: list[dns.rrset.RRset], weights: Weights) -> list[dns.rrset.RRset]:
    """CoreDNS's weightedRoundRobin: one address, drawn by weight, to the front."""
    cname, address, mx, rest = _split(section)
    if not address:
        return section
    values = []
    for rrset, rd in address:
        ip = _ip(rd)
        w = next((v for a, v in weights.get(rrset.name.to_text(), ()) if a == ip), 1)
        values.append(w)
    top = random.choices(range(len(address)), weights=values)[0]
    address[0], address[top] = address[top], address[0]
    return _regroup(cname + rest + address + mx)


class WeightFileError(ValueError):
    """A weight file that cannot be used (CoreDNS's messages)."""


def parse_weights(text: str, path: str) -> Weights:
    """CoreDNS's parseWeights: a name line, then `IP WEIGHT` lines for it."""
    domains: Weights = {}
    dname = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            if _parse_ip(fields[0]) is not None:
                raise WeightFileError(
                    f'wrong domain name:"{fields[0]}" in weight file {path}. '
                    "(Maybe a missing weight value?)"
                )
            dname = fields[0] if fields[0].endswith(".") else fields[0] + "."
            domains.setdefault(dname, [])
        elif len(fields) == 2:
            ip = _parse_ip(fields[0])
            if ip is None:
                raise WeightFileError(f'wrong IP address:"{fields[0]}" in weight file {path}')
            w = fields[1]
            if not (w.isascii() and w.isdigit()) or not 0 < int(w) <= 255:
                raise WeightFileError(f'wrong weight value:"{w}" in weight file {path}')
            if not dname:
                raise WeightFileError(f"missing domain name in weight file {path}")
            domains[dname].append((ip, int(w)))
        else:
            raise WeightFileError(f'could not parse weight line:"{line}" in weight file {path}')
    return domains


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP; an IPv4-mapped IPv6 address equals its IPv4 form (net.IP.Equal)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class LoadBalance(Plugin):
    name = "loadbalance"
    replay = Replay.ALWAYS  # shuffles are replayed (fastpath.shuffled)

    def __init__(
        self,
        subnets: list[Network] | None = None,
        weight_file: str = "",
        reload: float = 30.0,
        directive: Directive | None = None,
    ) -> None:
        self.subnets = subnets or []
        self.weight_file = weight_file
        self.reload = reload
        self.directive = directive
        self.weights: Weights = {}
        self._digest = b""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> LoadBalance:
        d = directives[0]
        args = d.values
        policy = args[0] if args else "round_robin"
        if policy == "weighted":
            if len(args) < 2:
                raise d.error("loadbalance: missing weight file argument")
            if len(args) > 2:
                raise d.error("loadbalance: unexpected argument(s)")
            path = args[1]
            if not os.path.isabs(path):
                root = ctx.extra.get("root")
                base = root if isinstance(root, str) and root else os.path.dirname(d.file)
                path = os.path.join(os.path.abspath(base), path)
            reload = 30.0
            for opt in d.children:
                if opt.name != "reload":
                    raise unknown_option("loadbalance", opt)
                vals = opt.values
                if not vals:
                    raise opt.error("loadbalance: reload duration value is missing")
                if len(vals) > 1:
                    raise opt.error("loadbalance: unexpected argument")
                reload = parse_duration(opt, vals[0])
                if reload < 0:
                    raise opt.error(f"loadbalance: invalid reload duration '{vals[0]}'")
            return cls(weight_file=path, reload=reload, directive=d)
        if policy != "round_robin":
            raise d.error(f"loadbalance: unknown policy: {policy}")
        if len(args) > 1:
            raise d.error(f"loadbalance: unknown property for {policy}")
        subnets: list[Network] = []
        for opt in d.children:
            if opt.name != "prefer":
                raise unknown_option("loadbalance", opt)
            for cidr in opt.values:
                try:
                    subnets.append(ipaddress.ip_network(cidr, strict=False))
                except ValueError as e:
                    raise opt.error(f'loadbalance: invalid CIDR "{cidr}": {e}') from None
        return cls(subnets=subnets, directive=d)

    # ---- the weight file -----------------------------------------------------------------

    def update_weights(self) -> None:
        """Read the weight file if its content changed (blocking; run it in a thread).

        Raises OSError when it cannot be read, WeightFileError when it is bad."""
        with open(self.weight_file, "rb") as f:
            data = f.read()
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        if digest == self._digest:
            return
        self._digest = digest
        self.weights = parse_weights(data.decode("utf-8", "surrogateescape"), self.weight_file)
        log.info("plugin/loadbalance: Successfully reloaded weight file %s", self.weight_file)

    async def start(self, rt: Runtime) -> None:
        if not self.weight_file:
            return
        try:
            await asyncio.to_thread(self.update_weights)
        except OSError as e:
            if self.reload == 0:
                raise self._start_error(f"weight file open error: {e.strerror}") from None
            log.warning(
                "plugin/loadbalance: Failed to open weight file:%s. Will try again in %ss",
                self.weight_file,
                f"{self.reload:g}",
            )
        except WeightFileError as e:
            raise self._start_error(str(e)) from None
        if self.reload > 0:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def _start_error(self, message: str) -> ConfigError:
        d = self.directive
        return ConfigError(
            f"plugin/loadbalance: {message}", d.file if d else "", d.line if d else 0
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload)
            try:
                await asyncio.to_thread(self.update_weights)
            except OSError as e:
                log.error("plugin/loadbalance: weight file open error: %s", e.strerror)
            except Exception as e:  # a bad file keeps the weights in force
                log.error("plugin/loadbalance: %s", e)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---- serving -------------------------------------------------------------------------

    def relay_pass(self, q: RelayQuestion) -> tuple[ReplayableHook, ...] | None:
        return None if self.weight_file or self.subnets else ()

    def relay_keeps(self, q: RelayQuestion, rcode: int, types: RecordTypes) -> bool:
        """round_robin leaves a section as it is when it is already CNAMEs, the rest, the
        addresses, the MX records, with one address and one MX at most."""
        if rcode != dns.rcode.NOERROR or q.qtype in _TRANSFER:
            return True
        return all(len(s) <= 1 or _round_robin_fixed(s) for s in types)

    async def serve(self, req: Request) -> dns.message.Message:
        if self.weight_file or self.subnets:
            # The fast path redoes round-robin shuffles only; these orders are not that.
            fastpath.veto("loadbalance: weighted or prefer")
        resp = await self.next(req)
        if resp.rcode() != dns.rcode.NOERROR or req.qtype in _TRANSFER:
            return resp
        fastpath.shuffled(req, resp)
        # New lists and RRsets: the RRsets handed to us may be shared (a cache's copy).
        if self.weight_file:
            if req.qtype in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV):
                resp.answer = weighted(resp.answer, self.weights)
                resp.additional = weighted(resp.additional, self.weights)
            return resp
        resp.answer = round_robin(resp.answer)
        resp.authority = round_robin(resp.authority)
        resp.additional = round_robin(resp.additional)
        if self.subnets:
            resp.answer = prefer(resp.answer, self.subnets)
            resp.additional = prefer(resp.additional, self.subnets)
        return resp


PLUGIN = LoadBalance
