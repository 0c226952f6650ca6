"""any: ANY queries get RFC 8482's short HINFO answer; other types pass on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Case, Server, check, serve, setup_error

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    any
    hosts {
        10.0.0.1 a.example.org
    }
}
"""
HINFO = '8482 IN HINFO "ANY obsoleted" "See RFC 8482"'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("any")) as s:
        yield s


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_table(srv: Server, proto: str) -> None:
    check(
        srv,
        [
            Case("a.example.org.", "ANY", answer=[f"a.example.org. {HINFO}"], no_flags={"AA"},
                 proto=proto),
            # Whatever the name: hosts never sees the query.
            Case("nowhere.test.", "ANY", answer=[f"nowhere.test. {HINFO}"], proto=proto),
            Case(".", "ANY", answer=[f". {HINFO}"], proto=proto),
            # Other types go on to hosts.
            Case("a.example.org.", "A", answer=["a.example.org. 3600 IN A 10.0.0.1"],
                 flags={"AA"}, proto=proto),
        ],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("any foo", 2, "wrong argument count"),
        ("any {\n    foo\n  }", 3, "unknown property 'foo'"),
        ("any\n  any", 3, "can only be used once"),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


def test_same_as_coredns(tmp_path: Path) -> None:
    from tests.refdiff import pair, query, same

    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    any
    hosts {
        10.0.0.1 a.example.org.
    }
}
"""
    with pair(corefile, tmp_path) as servers:
        for q in (query("A.Example.org.", "ANY"), query("a.example.org.", "ANY", edns=False),
                  query("a.example.org.", "ANY", do=True, nsid=True), query("a.example.org.")):  # fmt: skip
            same(servers, q)
            same(servers, q, "tcp")
