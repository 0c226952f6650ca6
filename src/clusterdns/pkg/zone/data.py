"""One zone's records, read from an RFC 1035 master file by dnspython's zone reader.

The layout follows CoreDNS's plugin/file Zone: the apex SOA and NS apart (`soa`, `ns`), every
other record set in `nodes` by owner name. Names are normalized as CoreDNS's Zone.Insert does:
owners lower-cased (SRV owners keep their case), and the targets of NS, CNAME, MX, SVCB, HTTPS
and SOA's names lower-cased. dnspython's Name compares and hashes case-insensitively, so
`nodes` answers a query name in any case.

Deviations dnspython brings: a record set has one TTL (the lowest of its records), duplicate
records are kept once, and a name with a CNAME and other data is an error (RFC 1034 3.6.2),
which CoreDNS's parser accepts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import IO, Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.tokenizer
import dns.zone
import dns.zonefile

_T = dns.rdatatype
#: Record types whose target CoreDNS lower-cases on insert (the field dnspython calls it).
_LOWER_TARGET = {_T.NS: "target", _T.CNAME: "target", _T.MX: "exchange", _T.SVCB: "target",
                 _T.HTTPS: "target"}  # fmt: skip


class ZoneFileError(Exception):
    """A zone file that cannot be served; `file` and `line` name where (line 0: the file)."""

    def __init__(self, message: str, file: str, line: int = 0) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class NoChange(Exception):
    """The file's SOA serial is the one already served (CoreDNS's serialErr): nothing read."""


@dataclass(slots=True)
class ZoneData:
    """A zone's records; immutable once built (a reload builds a new one and swaps it in)."""

    origin: dns.name.Name
    soa: dns.rrset.RRset | None = None
    ns: dns.rrset.RRset | None = None
    nodes: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = field(default_factory=dict)
    #: Every name that has a name below it in `nodes` (empty non-terminals included).
    parents: set[dns.name.Name] = field(default_factory=set)

    @property
    def serial(self) -> int:
        """The SOA serial, or -1 without a SOA (a secondary not transferred yet)."""
        if self.soa is None:
            return -1
        rd: dns.rdtypes.ANY.SOA.SOA = self.soa[0]
        return int(rd.serial)

    def search(self, name: dns.name.Name) -> dict[int, dns.rrset.RRset] | None:
        return self.nodes.get(name)

    def has_descendant(self, name: dns.name.Name) -> bool:
        return name in self.parents

    def insert(self, rrset: dns.rrset.RRset) -> None:
        """Add one record set (CoreDNS's Zone.Insert, a set at a time)."""
        rdtype = rrset.rdtype
        if rdtype in (_T.NSEC3, _T.NSEC3PARAM):
            raise ValueError(
                f"NSEC3 zone is not supported, dropping RR: {rrset.name} for zone: {self.origin}"
            )
        if rdtype != _T.SRV:
            rrset = _renamed(rrset, rrset.name.canonicalize())
        attr = _LOWER_TARGET.get(rdtype)
        if attr is not None:
            rrset = _lower_rdata(rrset, (attr,))
        if rdtype == _T.SOA:
            self.soa = _lower_rdata(rrset, ("mname", "rname"))
            return
        if rdtype == _T.NS and rrset.name == self.origin:
            if self.ns is None:
                self.ns = rrset
            else:
                for rd in rrset:
                    self.ns.add(rd, rrset.ttl)
            return
        node = self.nodes.setdefault(rrset.name, {})
        old = node.get(rdtype)
        if old is None:
            node[rdtype] = rrset
        else:
            for rd in rrset:
                old.add(rd, rrset.ttl)
        name = rrset.name
        while name != self.origin and len(name) > 1:
            name = name.parent()
            if name in self.parents:
                break
            self.parents.add(name)

    def records(self) -> list[dns.rrset.RRset]:
        """The zone as a transfer sends it: SOA, apex NS, then every set in canonical order."""
        out: list[dns.rrset.RRset] = []
        if self.soa is not None:
            out.append(self.soa)
        if self.ns is not None:
            out.append(self.ns)
        for name in sorted(self.nodes):
            node = self.nodes[name]
            out.extend(node[t] for t in sorted(node))
        return out


def _renamed(rrset: dns.rrset.RRset, name: dns.name.Name) -> dns.rrset.RRset:
    if rrset.name.to_text() == name.to_text():
        return rrset
    return dns.rrset.from_rdata_list(name, rrset.ttl, list(rrset))


def _lower_rdata(rrset: dns.rrset.RRset, attrs: tuple[str, ...]) -> dns.rrset.RRset:
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rd in rrset:
        kw: dict[str, Any] = {a: getattr(rd, a).canonicalize() for a in attrs}
        out.add(rd.replace(**kw), rrset.ttl)
    return out


# ---- reading zone files ----------------------------------------------------------------------


class _LineTokenizer(dns.tokenizer.Tokenizer):
    """Remembers the line each record starts on: dnspython reports a bad record at the line
    its reader stopped on, often the next one once it has read the end of line."""

    start_line = 1
    _at_start = True
    _include_next = False

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        tok = super().get(want_leading, want_comment)
        if self._at_start and not tok.is_eol_or_eof() and not tok.is_comment():
            self.start_line = self.line_number
            self._at_start = False
        if tok.is_eol():
            self._at_start = True
        if self._include_next and (tok.is_identifier() or tok.is_quoted_string()):
            # miekg/dns takes a relative $INCLUDE from the including file's directory;
            # dnspython from the working directory.
            self._include_next = False
            base = os.path.dirname(str(self.filename))
            if not os.path.isabs(tok.value) and base:
                path = os.path.join(base, tok.value)
                tok = dns.tokenizer.Token(tok.ttype, path, tok.has_escape, tok.comment)
        elif tok.is_identifier() and tok.value.upper() == "$INCLUDE":
            self._include_next = True
        return tok


class _Reader(dns.zonefile.Reader):
    """dnspython's zone reader; errors name the line the bad record starts on."""

    @property
    def tok(self) -> dns.tokenizer.Tokenizer:
        return self._tok

    @tok.setter
    def tok(self, t: dns.tokenizer.Tokenizer) -> None:
        if type(t) is dns.tokenizer.Tokenizer:  # a $INCLUDE's file
            t.__class__ = _LineTokenizer
        self._tok = t

    def read(self) -> None:
        try:
            super().read()
        except dns.exception.DNSException as e:  # SyntaxError, CNAMEAndOtherData, ...
            file, line = self._tok.where()
            text = str(e) or type(e).__name__
            prefix = f"{file}:{line}: "
            detail = text[len(prefix) :] if text.startswith(prefix) else text
            if isinstance(self._tok, _LineTokenizer):
                line = self._tok.start_line
            raise ZoneFileError(detail, file, line) from None


def parse(stream: IO[str], origin: str, filename: str, serial: int = -1) -> ZoneData:
    """Read a zone from `stream` (CoreDNS's file.Parse). `serial` >= 0: raise NoChange if the
    file's SOA has that serial. $INCLUDE is allowed, as CoreDNS allows it."""
    oname = dns.name.from_text(origin)
    zone = dns.zone.Zone(oname, dns.rdataclass.IN, relativize=False)
    try:
        with zone.writer(True) as txn:
            tok = _LineTokenizer(stream, filename)
            _Reader(tok, dns.rdataclass.IN, txn, allow_include=True).read()
    except ZoneFileError:
        raise
    except dns.exception.DNSException as e:
        raise ZoneFileError(str(e) or type(e).__name__, filename) from None
    except OSError as e:  # a $INCLUDE that cannot be opened
        raise ZoneFileError(f"{e.strerror}: {e.filename}", filename) from None
    data = ZoneData(oname)
    soa_seen = False
    for name, rdataset in zone.iterate_rdatasets():
        rrset = dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
        if rdataset.rdtype == _T.SOA:
            soa_seen = True
            if serial >= 0 and int(rdataset[0].serial) == serial:
                raise NoChange(
                    f"no change in SOA serial for origin {origin} in file {filename}, "
                    f"with {serial} SOA serial"
                )
        try:
            data.insert(rrset)
        except ValueError as e:
            raise ZoneFileError(str(e), filename) from None
    if not soa_seen:
        raise ZoneFileError(f"file {filename!r} has no SOA record for origin {origin}", filename)
    return data


def parse_file(path: str, origin: str, serial: int = -1) -> ZoneData:
    """Read the zone file at `path` (OSError if it cannot be opened)."""
    with open(os.path.normpath(path), encoding="utf-8", errors="surrogateescape") as f:
        return parse(f, origin, path, serial)


def from_records(origin: str, rrsets: list[dns.rrset.RRset]) -> ZoneData:
    """A zone made of transferred record sets (a secondary's AXFR)."""
    data = ZoneData(dns.name.from_text(origin))
    for rrset in rrsets:
        if rrset.name.is_subdomain(data.origin):
            data.insert(rrset)
    if data.soa is None:
        raise ZoneFileError("transfer has no SOA record", origin)
    return data
