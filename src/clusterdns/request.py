"""The request every plugin sees: the query plus what the server knows about who asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass(slots=True, eq=False)
class Request:
    """One query on its way through a server block's plugin chain.

    `qname` is lower-cased for matching (CoreDNS's `state.Name()`); `name` keeps the case the
    client used (`state.QName()`). On the wire, dnspython compresses names case-insensitively,
    so an answer owner equal to the question shows the client's case either way.
    """

    msg: dns.message.Message
    remote_ip: str
    remote_port: int
    proto: str  # "udp" or "tcp"
    size: int  # wire size of the query
    local_ip: str = ""
    local_port: int = 0
    server: str = ""  # metrics label, e.g. "dns://:53"
    zone: str = "."  # the server block zone that matched
    bufsize: int = 512  # the client's EDNS0 UDP size (or 512 without EDNS0)
    start: float = field(default_factory=time.perf_counter)
    answered_by: str = ""  # the plugin that produced the response
    trace: list[str] = field(default_factory=list)
    #: Set only by `clusterdns query --trace` (clusterdns.trace): receives `note`s.
    tracer: Callable[[str], None] | None = None
    #: Called once the response is on the wire: (request, response, wire size). The log and
    #: prometheus plugins record what was really written, as CoreDNS's recorder does.
    after_write: list[Callable[[Request, dns.message.Message, int], None]] = field(
        default_factory=list
    )
    #: Metadata published for this query (CoreDNS's metadata plugin): label -> function giving
    #: the value, e.g. "kubernetes/client-namespace". None unless a `metadata` plugin covers
    #: the query's zone; readers (log's {/label}, template's .Meta) treat None as "no metadata".
    metadata: dict[str, Callable[[], str]] | None = None
    #: Further messages to write after the response, on TCP only: a zone transfer's answer
    #: spans several messages (CoreDNS's plugins may WriteMsg more than once).
    more: list[dns.message.Message] | None = None
    #: Set by a plugin that answers by not answering (acl's `drop`, CoreDNS's `return
    #: RcodeSuccess` without a write): the server writes nothing; the after-write hooks run with
    #: size 0, as CoreDNS's recorders see an empty write.
    silent: bool = False
    #: The query as received (the tsig plugin verifies its MAC over these bytes).
    wire: bytes = b""
    #: What the relay (clusterdns.server.relaypath) already did for this query before it
    #: handed it to the chain: the terminal plugin that offered the relay continues from it.
    relayed: object = None
    _qname: str = ""

    def note(self, text: str) -> None:
        """Say why the current plugin answers or passes the query on (`query --trace`).

        A no-op unless tracing: one attribute test. Keep `text` a constant, or guard an
        f-string with `if req.tracer:`, so that serving pays nothing for it.
        """
        if self.tracer is not None:
            self.tracer(text)

    @property
    def question(self) -> dns.rrset.RRset:
        return self.msg.question[0]

    @property
    def name(self) -> dns.name.Name:
        return self.msg.question[0].name

    @property
    def qname(self) -> str:
        if not self._qname:
            self._qname = self.msg.question[0].name.to_text().lower()
        return self._qname

    @property
    def qtype(self) -> int:
        return int(self.msg.question[0].rdtype)

    @property
    def qclass(self) -> int:
        return int(self.msg.question[0].rdclass)

    @property
    def type_text(self) -> str:
        return dns.rdatatype.to_text(self.msg.question[0].rdtype)

    @property
    def class_text(self) -> str:
        return dns.rdataclass.to_text(self.msg.question[0].rdclass)

    @property
    def edns(self) -> bool:
        return self.msg.edns >= 0

    @property
    def do(self) -> bool:
        return bool(self.msg.ednsflags & dns.flags.DO)

    @property
    def family(self) -> int:
        """1 for IPv4, 2 for IPv6 (the values CoreDNS uses in its `family` label)."""
        return 2 if ":" in self.remote_ip else 1

    def derive(
        self,
        name: dns.name.Name | None = None,
        rdtype: int | None = None,
        *,
        flags: int | None = None,
        proto: str | None = None,
        bufsize: int | None = None,
    ) -> Request:
        """A new request from the same client asking another question (or the same one).

        For plugins that query the chain themselves: autopath's search walk, the kubernetes
        plugin's ExternalName targets, the cache's background refresh. The message keeps the
        ID, flags and EDNS0 of the original; the response hooks and trace do not carry over.
        """
        q = self.msg
        msg = dns.message.QueryMessage(id=q.id)
        msg.flags = q.flags if flags is None else flags
        old = q.question[0]
        msg.question = [
            dns.rrset.RRset(
                old.name if name is None else name,
                old.rdclass,
                old.rdtype if rdtype is None else dns.rdatatype.RdataType.make(rdtype),
            )
        ]
        if q.edns >= 0:
            msg.use_edns(q.edns, q.ednsflags, q.payload, options=list(q.options))
        return Request(
            msg=msg,
            remote_ip=self.remote_ip,
            remote_port=self.remote_port,
            proto=self.proto if proto is None else proto,
            size=self.size,
            local_ip=self.local_ip,
            local_port=self.local_port,
            server=self.server,
            zone=self.zone,
            bufsize=self.bufsize if bufsize is None else bufsize,
        )

    def reply(
        self, rcode: int = dns.rcode.NOERROR, authoritative: bool = False
    ) -> dns.message.Message:
        """A response skeleton: same ID and question (case as asked), RD/CD copied, QR set.

        EDNS0 is added by the server when it writes the answer, from the client's OPT.
        """
        q = self.msg
        r = dns.message.Message(id=q.id)
        r.flags = dns.flags.QR | (q.flags & (dns.flags.RD | dns.flags.CD))
        if authoritative:
            r.flags |= dns.flags.AA
        r.question = list(q.question)
        r.set_rcode(dns.rcode.Rcode.make(rcode))
        return r
