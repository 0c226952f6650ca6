"""A rendered template to one resource record, as miekg/dns's NewRR reads it (dnspython parses).

NewRR reads zone-file text with origin "." and takes the first record: relative names get
the root appended, a missing TTL is 3600 (or `$TTL`), a missing class IN; `$ORIGIN` and `$TTL`
are allowed, `$INCLUDE` is not. Any class is accepted (CoreDNS's README writes `{{ .Class }}`).
"""

from __future__ import annotations

from typing import Any, cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rrset
import dns.tokenizer
import dns.transaction
import dns.zonefile

DEFAULT_TTL = 3600
_CLASSES = (dns.rdataclass.IN, dns.rdataclass.CH, dns.rdataclass.HS, dns.rdataclass.NONE,
            dns.rdataclass.ANY)  # fmt: skip


class RRError(ValueError):
    """The text is not a resource record."""


class _Found(Exception):
    def __init__(self, name: dns.name.Name, ttl: int, rd: dns.rdata.Rdata) -> None:
        self.rrset = dns.rrset.from_rdata(name, ttl, rd)


class _Manager:
    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return dns.name.root, False, dns.name.root


class _First:
    """The part of a dnspython zone transaction the reader uses: it stops at the first record."""

    manager = _Manager()

    def add(self, name: dns.name.Name, ttl: int, rd: dns.rdata.Rdata) -> None:
        raise _Found(name, ttl, rd)

    def _set_origin(self, origin: dns.name.Name) -> None:
        pass

    def check_put_rdataset(self, check: object) -> None:
        pass


def parse_rr(text: str) -> dns.rrset.RRset:
    """The first record in `text`, as a one-record RRset; RRError if there is none or it is bad."""
    last: Exception | None = None
    for rdclass in _CLASSES:  # the reader wants to know the class; miekg takes any
        tok = dns.tokenizer.Tokenizer(text, "<template>")
        txn = cast(dns.transaction.Transaction, cast(Any, _First()))
        reader = dns.zonefile.Reader(
            tok, rdclass, txn, allow_directives={"$ORIGIN", "$TTL"}, default_ttl=DEFAULT_TTL
        )
        try:
            reader.read()
        except _Found as found:
            return found.rrset
        except Exception as e:  # dnspython may raise more than DNSException on odd text
            last = e
            if "not zone's class" in str(e):
                continue
            break
        else:
            raise RRError("no resource record")
    raise RRError(str(last))
