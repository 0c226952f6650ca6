"""`edns0` rules (CoreDNS's edns0.go): set, replace, append or unset options of the query.

Syntax::

    edns0 local set|replace|append CODE DATA [revert]
    edns0 local unset CODE
    edns0 nsid set|replace|append [revert]
    edns0 nsid unset
    edns0 subnet set|replace|append V4BITS V6BITS [revert]
    edns0 subnet unset

CODE is a Go unsigned integer (`0xffee`, `65518`, `0o…`); DATA is hex after `0x`, else the
text's bytes, or a variable: {qname} {qtype} {client_ip} {client_port} {protocol} {server_ip}
{server_port}, or a metadata label `{plugin/label}`. As in CoreDNS a query without EDNS0 gets an
OPT (4096 bytes, no DO), so its answer has one too; the local codes become "supported" options,
which the answer echoes from the query's OPT unless the rule says `revert`. `append` adds a
local or NSID option even if one is there (CoreDNS's code, not its README).
"""

from __future__ import annotations

import ipaddress

import dns.edns

from clusterdns.plugins.rewrite.base import Rule, RuleError, State
from clusterdns.plugins.rewrite.response import OptionRevert, ResponseRule

SET, REPLACE, APPEND, UNSET = "set", "replace", "append", "unset"
NSID, SUBNET = 3, 8
VARIABLES = (
    "{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}", "{server_ip}",
    "{server_port}",
)  # fmt: skip
#: Variables whose value depends on who asks (and so may not be replayed by the fast path).
CLIENT_VARIABLES = ("{client_ip}", "{client_port}", "{protocol}", "{server_ip}", "{server_port}")
#: Codes miekg/dns parses into their own types: a `local` rule never matches them.
TYPED_CODES = frozenset({1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 15})
#: Options SizeAndDo copies from the query into an answer without OPT: these, plus every local
#: code a rewrite rule names (edns.SetSupportedOption is process-wide in CoreDNS too).
SUPPORTED: set[int] = {3, 9, 10, 11, 12}


def go_uint(s: str, bits: int) -> int:
    """strconv.ParseUint(s, 0, bits) with Go's error text."""
    bad = RuleError(f'strconv.ParseUint: parsing "{s}": invalid syntax')
    t, base = s, 10
    if len(t) > 1 and t[0] == "0":
        p = t[1].lower()
        base, t = {"x": (16, t[2:]), "o": (8, t[2:]), "b": (2, t[2:])}.get(p, (8, t[1:]))
        if "_" in t:
            if t.startswith("_") and base != 8:
                t = t[1:]
            if t.startswith("_") or t.endswith("_") or "__" in t:
                raise bad
            t = t.replace("_", "")
    if not t or t.strip("0123456789abcdefABCDEF_") or t.startswith("_"):
        raise bad
    try:
        v = int(t, base)
    except ValueError:
        raise bad from None
    if v >= 1 << bits:
        raise RuleError(f'strconv.ParseUint: parsing "{s}": value out of range')
    return v


def go_hex(s: str) -> bytes:
    """hex.DecodeString with Go's error text."""
    for c in s:
        if c not in "0123456789abcdefABCDEF":
            raise RuleError(f"encoding/hex: invalid byte: U+{ord(c):04X} '{c}'")
    if len(s) % 2:
        raise RuleError("encoding/hex: odd length hex string")
    return bytes.fromhex(s)


def _opts(st: State) -> list[dns.edns.Option]:
    """setupEdns0Opt: the query's options, giving it an OPT (4096, no DO) if it has none."""
    m = st.req.msg
    if m.opt is None:
        m.use_edns(0, 0, 4096)
        st.req.bufsize = 4096
    return list(m.options)


def _store(st: State, options: list[dns.edns.Option]) -> None:
    m = st.req.msg
    m.use_edns(m.edns, m.ednsflags, m.payload, options=options)


class LocalRule(Rule):
    def __init__(self, mode: str, action: str, code: int, data: bytes | str, revert: bool):
        self.mode = mode
        self.action = action
        self.code = code
        self.data = data  # a str is a variable
        self.revert = revert
        SUPPORTED.add(code)

    def value(self, st: State) -> bytes | None:
        v = self.data
        if isinstance(v, bytes):
            return v
        req = st.req
        if v in CLIENT_VARIABLES:
            st.client_dependent = True
        if v == "{qname}":
            st.case_dependent = True
            return st.qname().encode()
        if v == "{qtype}":
            return req.qtype.to_bytes(2, "big")
        if v == "{client_ip}":
            return _ip(req.remote_ip, req.family)
        if v == "{server_ip}":
            return _ip(req.local_ip, req.family)
        if v == "{client_port}":
            return req.remote_port.to_bytes(2, "big")
        if v == "{server_port}":
            return req.local_port.to_bytes(2, "big")
        if v == "{protocol}":
            return req.proto.encode()
        st.client_dependent = True  # metadata (client namespace …)
        fetch = (req.metadata or {}).get(v[1:-1])
        value = fetch() if fetch is not None else ""
        return value.encode() if value else None

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        if self.action == UNSET:
            _store(st, [o for o in _opts(st) if o.otype != self.code])
            return []
        variable = isinstance(self.data, str)
        data = self.value(st)
        if data is None:
            return None
        opts = _opts(st)
        new = dns.edns.GenericOption(dns.edns.OptionType.make(self.code), data)
        for i, o in enumerate(opts):
            if o.otype == self.code and self.code not in TYPED_CODES:
                if self.action in (REPLACE, SET):
                    opts[i] = new
                    _store(st, opts)
                    return [OptionRevert(self.code, o)] if self.revert else []
                if variable:
                    return None
        if self.action in (APPEND, SET):
            _store(st, [*opts, new])
            return [OptionRevert(self.code)] if self.revert else []
        return None


def _ip(ip: str, family: int) -> bytes | None:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if family == 1:
        return a.packed if a.version == 4 else None
    return a.packed if a.version == 6 else ipaddress.IPv6Address(f"::ffff:{a}").packed


class NsidRule(Rule):
    def __init__(self, mode: str, action: str, revert: bool) -> None:
        self.mode = mode
        self.action = action
        self.revert = revert

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        opts = _opts(st)
        if self.action == UNSET:
            _store(st, [o for o in opts if o.otype != NSID])
            return []
        for i, o in enumerate(opts):
            if o.otype == NSID and self.action in (REPLACE, SET):
                opts[i] = dns.edns.NSIDOption(b"")
                _store(st, opts)
                return [OptionRevert(NSID, o)] if self.revert else []
        if self.action in (APPEND, SET):
            _store(st, [*opts, dns.edns.NSIDOption(b"")])
            return [OptionRevert(NSID)] if self.revert else []
        return None


class SubnetRule(Rule):
    def __init__(self, mode: str, action: str, v4: int, v6: int, revert: bool) -> None:
        self.mode = mode
        self.action = action
        self.v4 = v4
        self.v6 = v6
        self.revert = revert

    def ecs(self, st: State) -> dns.edns.ECSOption | None:
        try:
            a = ipaddress.ip_address(st.req.remote_ip)
        except ValueError:
            return None
        bits = self.v4 if a.version == 4 else self.v6
        net = ipaddress.ip_network(f"{a}/{bits}", strict=False)
        return dns.edns.ECSOption(str(net.network_address), bits, 0)

    def rewrite(self, st: State) -> list[ResponseRule] | None:
        opts = _opts(st)
        if self.action == UNSET:
            _store(st, [o for o in opts if o.otype != SUBNET])
            return []
        for i, o in enumerate(opts):
            if o.otype == SUBNET:
                new = self.ecs(st) if self.action in (REPLACE, SET) else None
                if new is None:
                    return None
                opts[i] = new
                _store(st, opts)
                return [OptionRevert(SUBNET, o)] if self.revert else []
        if self.action in (APPEND, SET):
            new = self.ecs(st)
            if new is not None:
                _store(st, [*opts, new])
                return [OptionRevert(SUBNET)] if self.revert else []
        return None


def new_edns0_rule(mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise RuleError("too few arguments for an EDNS0 rule")
    kind, action = args[0].lower(), args[1].lower()
    if action == UNSET:
        return _unset_rule(mode, kind, args)
    if action not in (APPEND, REPLACE, SET):
        raise RuleError(f'invalid action: "{action}"')
    revert = args[-1] == "revert"
    if revert:
        args = args[:-1]
    if kind == "local":
        if len(args) != 4:
            raise RuleError("EDNS0 local rules require three or four args")
        code = go_uint(args[2], 16)
        data = args[3]
        if data.startswith("{") and data.endswith("}"):
            label = data[1:-1]
            p = label.find("/")
            if data not in VARIABLES and not 0 < p < len(label) - 1:
                raise RuleError(f'unsupported variable name "{data}"')
            return LocalRule(mode, action, code, data, revert)
        raw = go_hex(data[2:]) if data.startswith("0x") else data.encode()
        return LocalRule(mode, action, code, raw, revert)
    if kind == "nsid":
        if len(args) != 2:
            raise RuleError("EDNS0 NSID rules can accept no more than one arg")
        return NsidRule(mode, action, revert)
    if kind == "subnet":
        if len(args) != 4:
            raise RuleError("EDNS0 subnet rules require three or four args")
        v4 = go_uint(args[2], 16)
        if v4 > 32:
            raise RuleError(f"invalid IPv4 bit mask length {v4}")
        v6 = go_uint(args[3], 16)
        if v6 > 128:
            raise RuleError(f"invalid IPv6 bit mask length {v6}")
        return SubnetRule(mode, action, v4, v6, revert)
    raise RuleError(f'invalid rule type "{kind}"')


def _unset_rule(mode: str, kind: str, args: list[str]) -> Rule:
    if kind == "local":
        if len(args) != 3:
            raise RuleError("local unset action requires exactly two arguments")
        return LocalRule(mode, UNSET, go_uint(args[2], 16), b"", False)
    if kind == "nsid":
        if len(args) != 2:
            raise RuleError("nsid unset action requires exactly one argument")
        return NsidRule(mode, UNSET, False)
    if kind == "subnet":
        if len(args) != 2:
            raise RuleError("subnet unset action requires exactly one argument")
        return SubnetRule(mode, UNSET, 0, 0, False)
    raise RuleError(f'invalid rule type "{kind}"')
