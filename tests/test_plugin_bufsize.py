"""bufsize: the query's EDNS0 UDP size is lowered to SIZE, which the reply's OPT reflects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import pytest

from tests.harness import Server, run_cli, serve, setup_error

MANY = "\n".join(f"        10.9.0.{i} many.example.org" for i in range(1, 101))
COREFILE = f"""
.:@PORT@ {{
    bind 127.0.0.1
    bufsize
    hosts {{
        10.0.0.1 a.example.org
{MANY}
    }}
}}
.:@P1@ {{
    bind 127.0.0.1
    bufsize 1000
    hosts {{
{MANY}
    }}
}}
.:@P2@ {{
    bind 127.0.0.1
    hosts {{
{MANY}
    }}
}}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("bufsize")) as s:
        yield s


def ask(srv: Server, name: str, payload: int | None, port: str | None = None,
        proto: str = "udp") -> dns.message.Message:  # fmt: skip
    if payload is None:
        q = dns.message.make_query(name, "A")
    else:
        q = dns.message.make_query(name, "A", use_edns=0, payload=payload)
    return srv.send(q, proto, srv.ports[port] if port else None)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_reply_opt_reflects_the_lowered_size(srv: Server, proto: str) -> None:
    assert ask(srv, "a.example.org.", 4096, proto=proto).payload == 1232  # the default
    assert ask(srv, "a.example.org.", 4096, "P1", proto).payload == 1000
    assert ask(srv, "a.example.org.", 1233, proto=proto).payload == 1232
    # Sizes at or under SIZE are left alone.
    assert ask(srv, "a.example.org.", 1232, proto=proto).payload == 1232
    assert ask(srv, "a.example.org.", 600, proto=proto).payload == 600
    assert ask(srv, "a.example.org.", 600, "P1", proto).payload == 600
    # Without bufsize the client's size stands.
    assert ask(srv, "a.example.org.", 4096, "P2", proto).payload == 4096


def test_no_edns_stays_without_opt(srv: Server) -> None:
    r = ask(srv, "a.example.org.", None)
    assert r.edns == -1


def test_udp_answers_are_cut_to_the_lowered_size(srv: Server) -> None:
    # 100 A records need about 1.6 kB: too big for 1232 or 1000 bytes, fine in 4096.
    full = ask(srv, "many.example.org.", 4096, "P2")
    assert not full.flags & dns.flags.TC
    assert len(full.answer[0]) == 100
    for port in (None, "P1"):
        r = ask(srv, "many.example.org.", 4096, port)
        assert r.flags & dns.flags.TC, port
        assert len(r.to_wire()) <= (1000 if port else 1232)
    # TCP has no such limit.
    r = ask(srv, "many.example.org.", 4096, proto="tcp")
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("511", "out of range"),
        ("4097", "out of range"),
        ("abc123", "not a number"),
        ("5_12", "not a number"),
        ("512 512", "wrong argument count"),
        ("512 {\n    foo\n  }", "unexpected block"),
    ],
)
def test_setup_errors(tmp_path: Path, args: str, message: str) -> None:
    setup_error(tmp_path, f"  bufsize {args}\n", 2, message)


@pytest.mark.parametrize("args", ["512", "4096", "1232", ""])
def test_setup_accepts_the_range(tmp_path: Path, args: str) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(f".:1053 {{\n  bufsize {args}\n}}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr
