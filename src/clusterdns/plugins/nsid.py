"""nsid: put a Name Server Identifier (RFC 5001) in the answers to queries that ask for one.

Syntax::

    nsid [DATA...]

As CoreDNS's plugin/nsid: DATA (its words joined by one space; default the host's name, or
`localhost` when it has none) is sent as the NSID option of the reply's OPT record, but only
to a query whose own OPT carries an NSID option. CoreDNS keeps DATA hex-encoded and miekg/dns
decodes it when packing, so the option holds DATA's bytes as they are.

The reply gets an OPT even when the answering plugin gave it none, with the DO bit set (CoreDNS
adds it with `SetEdns0(size, true)`, and the server's SizeAndDo does not clear DO again). An
NSID option already in the reply (from an upstream) is replaced by ours.
"""

from __future__ import annotations

import socket

import dns.edns
import dns.flags
import dns.message

from clusterdns.corefile.ast import Directive
from clusterdns.plugin import Plugin, Replay, SetupContext, no_block
from clusterdns.request import Request


def default_data() -> str:
    """Go's os.Hostname(), "localhost" when it fails (as CoreDNS's nsidParse)."""
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


class Nsid(Plugin):
    name = "nsid"
    # The option depends only on the query's OPT and the configuration.
    replay = Replay.ALWAYS

    def __init__(self, data: bytes) -> None:
        self.option = dns.edns.NSIDOption(data)

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Nsid:
        d = directives[0]
        no_block(d)
        args = d.values
        data = " ".join(args) if args else default_data()
        return cls(data.encode("utf-8", "surrogateescape"))

    async def serve(self, req: Request) -> dns.message.Message:
        q = req.msg
        if q.edns < 0 or not any(o.otype == dns.edns.NSID for o in q.options):
            return await self.next(req)
        resp = await self.next(req)
        if resp.edns < 0:
            resp.use_edns(0, dns.flags.DO, q.payload)
        options = [o for o in resp.options if o.otype != dns.edns.NSID]
        if len(options) == len(resp.options):
            options.append(self.option)
        else:  # CoreDNS rewrites the existing option in place
            at = next(i for i, o in enumerate(resp.options) if o.otype == dns.edns.NSID)
            options.insert(at, self.option)
        resp.use_edns(resp.edns, resp.ednsflags, resp.payload, options=options)
        return resp


PLUGIN = Nsid
