"""nsid: the NSID option in replies to queries that ask for it; differential against CoreDNS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import pytest

from tests.harness import Case, Server, check, serve, setup_error
from tests.refdiff import pair, query, same

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    nsid
    hosts {
        10.0.0.1 a.example.
    }
}
.:@P1@ {
    bind 127.0.0.1
    nsid Use The Force
    hosts {
        10.0.0.1 a.example.
    }
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("nsid")) as s:
        yield s


def nsid_of(srv: Server, port: int | None = None, proto: str = "udp", **kw: bool) -> list[bytes]:
    r = srv.send(query("a.example.", **kw), proto, port)
    return [o.to_wire() for o in r.options if o.otype == dns.edns.NSID]


def test_answers_are_unchanged(srv: Server) -> None:
    check(srv, [Case("a.example.", answer=["a.example. 3600 IN A 10.0.0.1"])])


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_nsid_only_when_asked(srv: Server, proto: str) -> None:
    assert nsid_of(srv, proto=proto, nsid=True) == [socket.gethostname().encode()]
    assert nsid_of(srv, proto=proto) == []
    r = srv.send(query("a.example.", edns=False), proto)
    assert r.edns < 0


def test_data_words_are_joined(srv: Server) -> None:
    assert nsid_of(srv, srv.ports["P1"], nsid=True) == [b"Use The Force"]


def test_reply_gets_do_as_in_coredns(srv: Server) -> None:
    r = srv.send(query("a.example.", nsid=True))
    assert r.ednsflags & dns.flags.DO


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  nsid\n  nsid\n", 3, "can only be used once"),
        ("  nsid a {\n    x\n  }\n", 2, "unexpected block"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


def test_same_as_coredns(tmp_path: Path) -> None:
    with pair(COREFILE, tmp_path) as servers:
        for q in (
            query("a.example.", nsid=True),
            query("a.example.", nsid=True, do=True),
            query("a.example."),
            query("a.example.", edns=False),
            query("b.example.", "AAAA", nsid=True),
        ):
            same(servers, q)
            same(servers, q, "tcp")
