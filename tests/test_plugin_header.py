"""header: query and response flag rules (aa, ra, rd), applied in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.rcode
import pytest

from tests.harness import Case, Server, check, serve, setup_error
from tests.refdiff import pair, query, same

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    header {
        response set ra aa
        response clear aa
    }
    hosts {
        10.0.0.1 a.example.
    }
}
.:@P1@ {
    bind 127.0.0.1
    header {
        query clear rd
        response set aa
    }
    whoami
}
.:@P2@ {
    bind 127.0.0.1
    header {
        query set RD
    }
    whoami
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("header")) as s:
        yield s


def test_response_rules_in_order(srv: Server) -> None:
    check(srv, [
        Case("a.example.", answer=["a.example. 3600 IN A 10.0.0.1"], flags={"RA", "RD"},
             no_flags={"AA"}),
        Case("a.example.", proto="tcp", answer=None, flags={"RA"}, no_flags={"AA"}),
    ])  # fmt: skip


def test_server_error_replies_are_left_alone(srv: Server) -> None:
    # hosts passes an unknown name on; nothing follows: the server's SERVFAIL has no RA.
    check(srv, [Case("b.example.", rcode=dns.rcode.SERVFAIL, no_flags={"RA"})])


@pytest.mark.parametrize(("port", "rd", "want"), [("P1", True, False), ("P2", False, True)])
def test_query_rules_change_what_the_chain_sees(
    srv: Server, port: str, rd: bool, want: bool
) -> None:
    r = srv.send(query("a.example.", rd=rd), port=srv.ports[port])
    assert bool(r.flags & dns.flags.RD) is want


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  header\n", 2, "wrong argument count"),
        (
            "  header {\n    answer set aa\n  }\n",
            3,
            "invalid selector=answer should be query or response",
        ),
        ("  header {\n    query\n  }\n", 3, "no flag action provided"),
        (
            "  header {\n    query flip aa\n  }\n",
            3,
            "unknown flag action=flip, should be set or clear",
        ),
        ("  header {\n    query set\n  }\n", 3, "at least one should be provided"),
        ("  header {\n    query set qr\n  }\n", 3, "unknown/unsupported flag=qr"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


DIFF = """
.:@PORT@ {
    bind 127.0.0.1
    header {
        response set ra
        response clear aa
        query clear rd
    }
    hosts {
        10.0.0.1 a.example.
    }
}
"""


def test_same_as_coredns(tmp_path: Path) -> None:
    with pair(DIFF, tmp_path) as servers:
        for q in (query("a.example."), query("a.example.", rd=False), query("a.example.", "MX"),
                  query("b.example.")):  # fmt: skip
            same(servers, q)
            same(servers, q, "tcp")
