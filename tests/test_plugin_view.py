"""view: server blocks chosen by expressions on the query (split DNS), CoreDNS's routing order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from clusterdns.pkg.expr import CompileError, EvalError, compile_expr
from clusterdns.plugins.view import FUNCTIONS, incidr
from tests import coredns_ref
from tests.harness import Case, Server, check, rrs, run_cli, serve, setup_error

COREFILE = """
example.org:@PORT@ {
    bind 127.0.0.1
    view v6 {
        expr type() == 'AAAA'
    }
    hosts {
        fd00::1 www.example.org
    }
}
example.org:@PORT@ {
    bind 127.0.0.1
    view local {
        expr incidr(client_ip(), '127.0.0.0/24') && name() matches '^w'
        expr proto() in ['udp', 'tcp'] and not (port() == '0')
    }
    hosts {
        10.0.0.1 www.example.org
    }
}
example.org:@PORT@ {
    bind 127.0.0.1
    view remote {
        expr incidr(client_ip(), '192.168.0.0/16')
    }
    hosts {
        10.0.0.2 www.example.org abc.example.org
    }
}
.:@PORT@ {
    bind 127.0.0.1
    view tcp {
        expr proto() == 'tcp' && bufsize() > 512 && server_port() != '' && size() > 12
    }
    hosts {
        10.0.0.3 www.example.org abc.example.org other.test
    }
}
.:@PORT@ {
    bind 127.0.0.1
    hosts {
        10.0.0.4 www.example.org abc.example.org other.test
        fallthrough
    }
}
.:@P1@ {
    bind 127.0.0.1
    view bad {
        expr incidr(client_ip(), 'not-a-cidr')
    }
    hosts {
        10.0.0.5 x.test
    }
}
.:@P2@ {
    bind 127.0.0.1
    hosts {
        10.0.0.6 x.test
    }
}
.:@P3@ {
    bind 127.0.0.1
    view even {
        expr id() % 2 == 0
    }
    hosts {
        10.0.0.8 y.test
    }
}
.:@P3@ {
    bind 127.0.0.1
    hosts {
        10.0.0.9 y.test
    }
}
.:@P2@ {
    bind 127.0.0.1
    view shadowed {
        expr true
    }
    hosts {
        10.0.0.7 x.test
    }
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("view")) as s:
        yield s


def a(name: str, ip: str, proto: str = "udp") -> Case:
    return Case(name, "A", answer=[f"{name} 3600 IN A {ip}"], proto=proto)


def test_routing(srv: Server) -> None:
    check(
        srv,
        [
            # the first example.org block whose view passes
            Case("www.example.org.", "AAAA", answer=["www.example.org. 3600 IN AAAA fd00::1"]),
            a("www.example.org.", "10.0.0.1"),
            a("www.example.org.", "10.0.0.1", "tcp"),
            # no example.org view passes: on to ".", where the tcp view or the catch-all takes it
            a("abc.example.org.", "10.0.0.4"),
            a("abc.example.org.", "10.0.0.3", "tcp"),
            a("other.test.", "10.0.0.4"),
            a("other.test.", "10.0.0.3", "tcp"),
        ],
    )


def test_no_view_passes_is_refused(srv: Server) -> None:
    # A bad CIDR is an error while running: no match, and nothing else serves P1.
    r = srv.query("x.test.", "A", port=srv.ports["P1"])
    assert r.rcode() == dns.rcode.REFUSED


def test_an_unfiltered_block_first_shadows_the_views(srv: Server) -> None:
    r = srv.query("x.test.", "A", port=srv.ports["P2"])
    assert rrs(r.answer) == ["x.test. 3600 IN A 10.0.0.6"]


def test_answers_are_not_replayed_across_views(srv: Server) -> None:
    """The same question from one client gets each view's answer, however often asked: the
    fast path (which keys answers by the question, not the ID) must not replay the other's."""
    for i in range(6):
        for qid, ip in ((2 * i + 1, "10.0.0.9"), (2 * i + 2, "10.0.0.8")):
            q = dns.message.make_query("y.test.", "A")
            q.id = qid
            r = srv.send(q, port=srv.ports["P3"])
            assert rrs(r.answer) == [f"y.test. 3600 IN A {ip}"], qid


def _norm(r: dns.message.Message) -> tuple[object, ...]:
    return (r.rcode(), r.flags, rrs(r.answer), rrs(r.authority), rrs(r.additional))


def test_same_routing_as_coredns(srv: Server, tmp_path: Path) -> None:
    coredns_ref.require()
    with coredns_ref.serve_coredns(COREFILE, tmp_path) as ref:
        diffs = []
        for port in ("", "P1", "P2"):
            for name in ("www.example.org.", "abc.example.org.", "other.test.", "x.test."):
                for rdtype in ("A", "AAAA"):
                    for proto in ("udp", "tcp"):
                        ours = srv.query(name, rdtype, proto=proto, port=srv.ports.get(port))
                        theirs = ref.query(name, rdtype, proto=proto, port=ref.ports.get(port))
                        if _norm(ours) != _norm(theirs):
                            diffs.append(f"{port} {name} {rdtype} {proto}: {ours} / {theirs}")
        assert not diffs, "\n".join(diffs)


# ---- expressions ----------------------------------------------------------------------------


def run(text: str, **values: object) -> object:
    env = {name: (lambda v=v: v) for name, v in values.items()}
    env["incidr"] = incidr
    return compile_expr(text, FUNCTIONS)(env)


@pytest.mark.parametrize(
    ("text", "values", "want"),
    [
        ("type() in ['A', 'AAAA']", {"type": "AAAA"}, True),
        ("type() not in ['A', 'AAAA']", {"type": "MX"}, True),
        ("name() matches '^abc\\\\..*\\\\.example\\\\.com\\\\.$'", {"name": "abc.x.example.com."}, True),
        ("name() matches '^abc\\\\..*\\\\.example\\\\.com\\\\.$'", {"name": "abcx.example.com."}, False),
        ("(type() == 'A' && name() == 'example.com.') || client_ip() == '1.2.3.4'",
         {"type": "MX", "name": "x.", "client_ip": "1.2.3.4"}, True),
        ("incidr(client_ip(), '2001:0DB8::/32')", {"client_ip": "2001:db8::5"}, True),
        ("incidr(client_ip(), '10.0.0.0/8')", {"client_ip": "::1"}, False),
        ("bufsize() >= 1232 and !do()", {"bufsize": 1232, "do": False}, True),
        ("id() % 2 == 1 ? true : false", {"id": 7}, True),
        ("1 + 2 * 3 == 7 && -opcode() == 0", {"opcode": 0}, True),
        ("name() startsWith 'www' and name() endsWith '.org.' and name() contains 'exa'",
         {"name": "www.example.org."}, True),
        ("'a' + name() == 'ab'", {"name": "b"}, True),
        ("nil ?? 'y'", {}, "y"),
    ],
)  # fmt: skip
def test_expressions(text: str, values: dict[str, object], want: object) -> None:
    assert run(text, **values) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type() == 1", "mismatched types string and int"),
        ("foo()", "unknown func foo"),
        ("client", "unknown name client"),
        ("type(1)", "too many arguments to call type"),
        ("incidr(client_ip())", "too few arguments to call incidr"),
        ("type() ==", "unexpected end"),
        ("name().x", "unexpected token"),
        ("len(name()) > 3", "unknown func len"),
        ("name() | upper()", "unexpected token"),
        ("name() matches '('", "invalid regular expression"),
        ("", "empty expression"),
    ],
)
def test_unsupported_expressions(text: str, message: str) -> None:
    with pytest.raises(CompileError, match=message.replace("(", r"\(")):
        compile_expr(text, FUNCTIONS)


def test_runtime_errors() -> None:
    with pytest.raises(EvalError):
        run("incidr(client_ip(), '10.0.0.0/8')", client_ip="not-an-ip")
    with pytest.raises(EvalError):
        run("id() / 0 == 1", id=3)


# ---- setup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("view", 2, "wrong argument count"),
        ("view a b", 2, "wrong argument count"),
        ("view a {\n    when x\n  }", 3, "unknown property 'when'"),
        ("view a {\n    expr type() == 1\n  }", 3, "plugin/view: invalid operation"),
        ("view a {\n    expr len(name())\n  }", 3, "plugin/view: unknown func len"),
        ("view a\n  view b", 3, "can only be used once"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


def test_two_unfiltered_blocks_still_clash(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(
        ".:1053 {\n  view a {\n    expr true\n  }\n  whoami\n}\n"
        ".:1053 {\n  whoami\n}\n.:1053 {\n  whoami\n}\n"
    )
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert (
        f"{conf}:10 - cannot serve dns://.:1053 - it is already defined (at {conf}:7)" in r.stderr
    )
