"""chaos: answer CH-class TXT queries for the server's version, authors and hostname.

Syntax::

    chaos [VERSION] [AUTHORS...]

As CoreDNS's plugin/chaos, for `CH TXT` queries only (anything else goes to the next plugin):

* version.bind, version.server: VERSION (default `ClusterDNS-<version>`);
* authors.bind: one TXT record per author, in random order (default "ClusterDNS team";
  given authors are de-duplicated and sorted);
* hostname.bind, id.server: the host's name.

Other CH names go to the next plugin. Answers have TTL 0, echo the query name's case and are
not authoritative. Strings are cut to 255 bytes, the most one TXT string holds.
"""

from __future__ import annotations

import random
import socket

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from clusterdns import SERVER_NAME, __version__
from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, unknown_option
from clusterdns.request import Request

DEFAULT_VERSION = f"{SERVER_NAME}-{__version__}"
DEFAULT_AUTHORS = ("ClusterDNS team",)


def trim(s: str) -> bytes:
    """At most 255 bytes: a TXT character-string cannot hold more."""
    return s.encode("utf-8", "surrogateescape")[:255]


def hostname() -> str:
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


class Chaos(Plugin):
    name = "chaos"
    replay = Replay.WHEN  # not when authors.bind is shuffled per query (class CH)
    other_classes = True  # CoreDNS's EnableChaos

    def __init__(self, version: bytes, authors: list[bytes]) -> None:
        self.version = version
        self.authors = authors

    def replayable(self, req: Request) -> bool:
        return req.qclass != dns.rdataclass.CH

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Chaos:
        d = directives[0]
        if d.children:
            raise unknown_option("chaos", d.children[0])
        args = d.values
        version = trim(args[0]) if args else trim(DEFAULT_VERSION)
        if len(args) > 1:
            authors = sorted({trim(a) for a in args[1:]})
        else:
            authors = [trim(a) for a in DEFAULT_AUTHORS]
        return cls(version, authors)

    async def serve(self, req: Request) -> dns.message.Message:
        if req.qclass != dns.rdataclass.CH or req.qtype != dns.rdatatype.TXT:
            return await self.next(req)
        qname = req.qname
        if qname == "authors.bind.":
            texts = [[a] for a in random.sample(self.authors, len(self.authors))]
        elif qname in ("version.bind.", "version.server."):
            texts = [[self.version]]
        elif qname in ("hostname.bind.", "id.server."):
            texts = [[trim(hostname())]]
        else:
            return await self.next(req)
        m = req.reply()
        txt, ch = dns.rdatatype.TXT, dns.rdataclass.CH
        rdatas = [dns.rdtypes.ANY.TXT.TXT(ch, txt, t) for t in texts]
        # An RRset keeps insertion order, so the authors' random order reaches the wire.
        m.answer = [dns.rrset.from_rdata_list(req.name, 0, rdatas)]
        return m


PLUGIN = Chaos
