"""tsig: verify TSIG-signed queries with shared secrets, sign their answers, require signing.

Syntax::

    tsig [ZONES...] {
        secret NAME KEY
        secrets FILE
        require [QTYPE...]
        require_opcode [OPCODE...]
    }

As CoreDNS's plugin/tsig. ZONES default to the server block's. `secret` (repeatable) and
`secrets` (a named.conf style file of `key "NAME" { secret "KEY"; };` entries; `algorithm`
lines are ignored) define the shared keys, by name; a name defined twice is an error.
`require` names the query types (`all`, `none`) and `require_opcode` the opcodes that must
be signed: unsigned ones in ZONES are REFUSED. Default: nothing required.

A signed query in ZONES is verified against the raw query (Request.wire) with the key its
TSIG names and the algorithm it uses. When that fails the answer is NOTAUTH with an unsigned
TSIG carrying BADKEY (unknown key), BADTIME (outside the fudge; signed) or BADSIG. Otherwise
the TSIG is taken off the query (later plugins do not see it) and the answer, whatever the
next plugins give (an error included), is signed with the same key (fudge 300), unless it
already carries a TSIG. Queries outside ZONES, and unsigned queries that need not be signed,
go to the next plugin untouched.

Signed answers are never replayed by the fast path (this plugin vetoes when entered).
Differences from CoreDNS: a BADTIME answer's TSIG carries the server's time as Time Signed
(CoreDNS copies the client's), and hmac-md5 is refused (BADSIG) as CoreDNS 1.14.7 does.
"""

from __future__ import annotations

import logging
import os
import time

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig

from clusterdns.corefile.ast import Directive
from clusterdns.corefile.keys import zones_from_args
from clusterdns.errors import ConfigError, PluginError
from clusterdns.plugin import Plugin, SetupContext, unknown_option
from clusterdns.request import Request
from clusterdns.zones import longest_match

log = logging.getLogger("clusterdns.plugins.tsig")

FUDGE = 300
_OPCODES = {"QUERY": 0, "IQUERY": 1, "STATUS": 2, "NOTIFY": 4, "UPDATE": 5}
_MD5 = dns.name.from_text("hmac-md5.sig-alg.reg.int.")


def normalize(name: str) -> str:
    """CoreDNS's plugin.Name.Normalize: lower-case and absolute."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


def parse_key_file(text: str) -> dict[str, str]:
    """CoreDNS's parseKeyFile (named.conf `key` statements), with its error messages."""
    secrets: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if fields[0] != "key":
            raise ValueError(f'unexpected token "{fields[0]}"')
        if len(fields) < 2 or not fields[1].strip('"{'):
            raise ValueError(f'expected key name "{line}"')
        key = normalize(fields[1].strip('"{'))
        if key in secrets:
            raise ValueError(f'key "{key}" redefined')
        for inner in lines:
            f = inner.split()
            if not f or f[0] == "algorithm":
                continue
            if f[0] == "secret":
                secret = f[1].strip('";') if len(f) > 1 else ""
                if not secret:
                    raise ValueError(f'expected secret key "{inner}"')
                secrets[key] = secret
            elif f[0] in ("}", "};"):
                break
            else:
                raise ValueError(f'unexpected token "{f[0]}"')
        if key not in secrets:
            raise ValueError(f'expected secret for key "{key}"')
    return secrets


class Tsig(Plugin):
    name = "tsig"

    def __init__(
        self,
        zones: list[str],
        secrets: dict[str, str],
        types: set[int],
        opcodes: set[int],
        all_types: bool = False,
        all_opcodes: bool = False,
    ) -> None:
        self.zones = zones
        self.secrets = secrets
        self.types = types
        self.opcodes = opcodes
        self.all_types = all_types
        self.all_opcodes = all_opcodes

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> Tsig:
        d = directives[0]
        zones = zones_from_args(d.args, default=ctx.zones)
        secrets: dict[str, str] = {}
        types: set[int] = set()
        opcodes: set[int] = set()
        all_types = all_opcodes = False
        for opt in d.children:
            vals = opt.values
            if opt.name == "secret":
                if len(vals) != 2:
                    raise opt.arg_error()
                _add(opt, secrets, {normalize(vals[0]): vals[1]})
            elif opt.name == "secrets":
                if len(vals) != 1:
                    raise opt.arg_error()
                path = vals[0]
                if not os.path.isabs(path):
                    path = os.path.join(os.path.dirname(os.path.abspath(opt.file)), path)
                try:
                    with open(path, encoding="utf-8", errors="surrogateescape") as f:
                        found = parse_key_file(f.read())
                except OSError as e:
                    raise opt.error(f"tsig: open {vals[0]}: {e.strerror}") from None
                except ValueError as e:
                    raise opt.error(f"tsig: {e}") from None
                _add(opt, secrets, found)
            elif opt.name == "require":
                types, all_types = set(), False
                if not vals:
                    raise opt.arg_error()
                if vals[0] == "all":
                    all_types = True
                elif vals[0] != "none":
                    for text in vals:
                        try:
                            types.add(int(dns.rdatatype.from_text(text)))
                        except dns.rdatatype.UnknownRdatatype:
                            raise opt.error(f"tsig: unknown query type '{text}'") from None
            elif opt.name == "require_opcode":
                opcodes, all_opcodes = set(), False
                if not vals:
                    raise opt.arg_error()
                if vals[0] == "all":
                    all_opcodes = True
                elif vals[0] != "none":
                    for text in vals:
                        if text not in _OPCODES:
                            raise opt.error(f"tsig: unknown opcode '{text}'")
                        opcodes.add(_OPCODES[text])
            else:
                raise unknown_option("tsig", opt)
        return cls(zones, secrets, types, opcodes, all_types, all_opcodes)

    def required(self, qtype: int, opcode: int) -> bool:
        return self.all_types or qtype in self.types or self.all_opcodes or opcode in self.opcodes

    async def serve(self, req: Request) -> dns.message.Message:
        q = req.msg
        tsig = q.tsig
        if tsig is None and not self.required(req.qtype, q.opcode()):
            return await self.next(req)
        if not longest_match(self.zones, req.qname):
            return await self.next(req)
        if tsig is None:
            req.note("tsig: an unsigned query of a type that must be signed")
            return req.reply(dns.rcode.REFUSED)
        rd: dns.rdtypes.ANY.TSIG.TSIG = tsig[0]
        keyname = tsig.name
        secret = self.secrets.get(keyname.to_text().lower())
        error = self.verify(req, keyname, rd, secret)
        # Later plugins do not see the TSIG (CoreDNS strips it; see its README on RFC 8945 5.5).
        q.tsig = None
        if error in (dns.rcode.BADKEY, dns.rcode.BADSIG):
            req.note("tsig: the query's signature does not verify")
            resp = req.reply(dns.rcode.NOTAUTH)
            unsigned = rd.replace(time_signed=0, fudge=FUDGE, mac=b"", original_id=resp.id,
                                  error=error, other=b"")  # fmt: skip
            resp.tsig = dns.rrset.from_rdata(keyname, 0, unsigned)
            return resp
        if error == dns.rcode.BADTIME:
            req.note("tsig: the query's time is outside the fudge")
            resp = req.reply(dns.rcode.NOTAUTH)
            other = int(time.time()).to_bytes(8, "big")[2:]
        else:
            try:
                resp = await self.next(req)
            except PluginError as e:  # CoreDNS writes (and signs) the error itself
                if not e.quiet:
                    log.error("plugin/tsig: request handler returned an error: %s", e)
                resp = req.reply(e.rcode)
            other = b""
            if resp.tsig is not None:  # signed further down: leave it
                return resp
        assert secret is not None
        key = dns.tsig.Key(keyname, secret, rd.algorithm)
        resp.use_tsig(key, fudge=FUDGE, original_id=resp.id, tsig_error=error, other_data=other)
        resp.request_mac = rd.mac
        return resp

    def verify(
        self,
        req: Request,
        keyname: dns.name.Name,
        rd: dns.rdtypes.ANY.TSIG.TSIG,
        secret: str | None,
    ) -> int:
        """The TSIG error for the query as received: 0, BADKEY, BADTIME or BADSIG."""
        if secret is None:
            return dns.rcode.BADKEY
        if rd.algorithm == _MD5:
            return dns.rcode.BADSIG
        try:
            key = dns.tsig.Key(keyname, secret, rd.algorithm)
            dns.message.from_wire(
                req.wire, keyring=key, ignore_trailing=True, one_rr_per_rrset=True
            )
        except dns.tsig.BadTime:
            return dns.rcode.BADTIME
        except (dns.exception.DNSException, ValueError, NotImplementedError):
            return dns.rcode.BADSIG
        return dns.rcode.NOERROR


def _add(opt: Directive, secrets: dict[str, str], new: dict[str, str]) -> None:
    for name, secret in new.items():
        if name in secrets:
            raise ConfigError(f'plugin/tsig: key "{name}" redefined', opt.file, opt.line)
        secrets[name] = secret


PLUGIN = Tsig
