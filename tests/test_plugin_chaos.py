"""chaos: CH TXT answers for version, authors and hostname; everything else passes on."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from clusterdns import SERVER_NAME, __version__
from tests.harness import Case, Server, check, serve, setup_error

DEFAULT = """
.:@PORT@ {
    bind 127.0.0.1
    chaos
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(DEFAULT, tmp_path_factory.mktemp("chaos")) as s:
        yield s


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


def ch(name: str, text: str) -> Case:
    return Case(name, "TXT", qclass="CH", answer=[f"{name} 0 CH TXT {text}"], no_flags={"AA"})


def test_defaults(srv: Server) -> None:
    version = f'"{SERVER_NAME}-{__version__}"'
    host = f'"{socket.gethostname()}"'
    check(
        srv,
        both(
            [
                ch("version.bind.", version),
                ch("version.server.", version),
                ch("authors.bind.", '"ClusterDNS team"'),
                ch("hostname.bind.", host),
                ch("id.server.", host),
            ]
        ),
    )


def passed_on(name: str, rdtype: str, qclass: str = "IN") -> Case:
    """Nothing follows chaos here, so "passed on" shows as the chain's SERVFAIL."""
    return Case(name, rdtype, dns.rcode.SERVFAIL, answer=[], qclass=qclass)


def test_other_queries_go_to_the_next_plugin(srv: Server) -> None:
    check(
        srv,
        both(
            [
                passed_on("version.bind.", "TXT"),
                passed_on("version.bind.", "A", "CH"),
                passed_on("other.bind.", "TXT", "CH"),
                passed_on("example.org.", "A"),
            ]
        ),
    )


def test_version_and_authors(tmp_path: Path) -> None:
    long = "v" * 300
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    chaos v2.0 "Jane Doe" Bob Alice Bob
}
.:@P1@ {
    bind 127.0.0.1
    chaos LONG
}
""".replace("LONG", long)
    with serve(corefile, tmp_path) as s:
        check(
            s, [Case("version.bind.", "TXT", qclass="CH", answer=['version.bind. 0 CH TXT "v2.0"'])]
        )
        orders = set()
        for _ in range(30):
            r = s.query("authors.bind.", "TXT", "CH")
            orders.add(tuple(rd.strings[0].decode() for rd in r.answer[0]))
        # De-duplicated, and shuffled on each answer.
        assert {frozenset(o) for o in orders} == {frozenset({"Jane Doe", "Bob", "Alice"})}
        assert all(len(o) == 3 for o in orders)
        assert len(orders) > 1
        # Version strings are cut to the 255 bytes a TXT string holds.
        r = s.query("version.bind.", "TXT", "CH", port=s.ports["P1"])
        assert r.answer[0][0].strings == (b"v" * 255,)


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("chaos v1 {\n    unknown\n  }", 3, "unknown property 'unknown'"),
        ("chaos\n  chaos v2", 3, "can only be used once"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)
