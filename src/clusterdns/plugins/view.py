"""view: route a query to this server block only when expressions on it hold (split DNS).

Syntax::

    view NAME {
        expr EXPRESSION
    }

As CoreDNS's plugin/view: server blocks sharing a zone and port are tried in Corefile order;
the first whose every `expr` is true (or that has no view) takes the query; when none does,
the next shorter zone is tried (then REFUSED). An expression is a subset of expr-lang
(clusterdns.pkg.expr) over CoreDNS's functions: bufsize(), class(), client_ip(), do(), id(),
name(), opcode(), port(), proto(), server_ip(), server_port(), size(), type(),
incidr(ip, cidr), metadata(label). Expressions outside the subset are setup errors; one that
fails while running (a bad CIDR) or is not true means "no match". `view/name` is published
as metadata.

The routing itself is a hook in clusterdns.config / clusterdns.server.dispatch: this plugin
provides `filter(req)` (clusterdns.pkg.view.RequestFilter); its handler only passes the query
on. Answers routed by a filter are not replayed by the fast path (they depend on the client).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype

from clusterdns.corefile.ast import Directive
from clusterdns.pkg.expr import CompileError, Env, EvalError, Program, Value, compile_expr
from clusterdns.plugin import Plugin, SetupContext, unknown_option
from clusterdns.request import Request

#: CoreDNS's expression.DefaultEnv: name -> (argument count, result kind).
FUNCTIONS: dict[str, tuple[int, str | None]] = {
    "incidr": (2, "bool"), "metadata": (1, "string"), "type": (0, "string"),
    "name": (0, "string"), "class": (0, "string"), "proto": (0, "string"), "size": (0, "int"),
    "client_ip": (0, "string"), "port": (0, "string"), "id": (0, "int"), "opcode": (0, "int"),
    "do": (0, "bool"), "bufsize": (0, "int"), "server_ip": (0, "string"),
    "server_port": (0, "string"),
}  # fmt: skip


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # Go's net.ParseIP: a 4-in-6 address is an IPv4 one
    return ip


def incidr(ip_text: Value, cidr_text: Value) -> bool:
    """Go's ParseIP/ParseCIDR/Contains; a bad argument is an error (so: no match)."""
    if not isinstance(ip_text, str) or not isinstance(cidr_text, str):
        raise EvalError("incidr takes two strings")
    ip = _parse_ip(ip_text)
    if ip is None:
        raise EvalError("first argument is not an IP address")
    try:
        net = ipaddress.ip_network(cidr_text, strict=False)
    except ValueError as e:
        raise EvalError(f"invalid CIDR address: {cidr_text}: {e}") from None
    return ip.version == net.version and ip in net


def environment(req: Request) -> Env:
    """The functions an expression may call, bound to one request (CoreDNS's DefaultEnv)."""
    msg = req.msg

    def metadata(label: Value) -> str:
        funcs = req.metadata
        f = funcs.get(str(label)) if funcs is not None else None
        return f() if f is not None else ""

    def bufsize() -> int:
        return 65535 if req.proto == "tcp" else req.bufsize

    env: dict[str, Callable[..., Value]] = {
        "incidr": incidr,
        "metadata": metadata,
        "type": lambda: req.type_text,
        "name": lambda: req.qname,
        "class": lambda: req.class_text,
        "proto": lambda: req.proto,
        "size": lambda: req.size,
        "client_ip": lambda: req.remote_ip,
        "port": lambda: str(req.remote_port),
        "id": lambda: msg.id,
        "opcode": lambda: msg.opcode(),
        "do": lambda: bool(msg.ednsflags & dns.flags.DO),
        "bufsize": bufsize,
        "server_ip": lambda: req.local_ip,
        "server_port": lambda: str(req.local_port),
    }
    return env


class View(Plugin):
    name = "view"

    def __init__(self, view_name: str, programs: list[Program]) -> None:
        self.view_name = view_name
        self.programs = programs

    @classmethod
    def setup(cls, directives: list[Directive], ctx: SetupContext) -> View:
        d = directives[0]
        if len(d.args) != 1:
            raise d.arg_error()
        programs: list[Program] = []
        for opt in d.children:
            if opt.name != "expr":
                raise unknown_option("view", opt)
            text = " ".join(opt.values)
            try:
                programs.append(compile_expr(text, FUNCTIONS))
            except CompileError as e:
                raise opt.error(f"plugin/view: {e}") from None
        return cls(d.values[0], programs)

    def filter(self, req: Request) -> bool:
        """CoreDNS's View.Filter: every expression true; an error or a non-true value is no."""
        if not self.programs:
            return True
        env = environment(req)
        for run in self.programs:
            try:
                if run(env) is not True:
                    return False
            except EvalError:
                return False
        return True

    async def serve(self, req: Request) -> dns.message.Message:
        if req.metadata is not None:
            name = self.view_name
            req.metadata["view/name"] = lambda: name
        return await self.next(req)


PLUGIN = View
