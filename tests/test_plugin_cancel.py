"""cancel: the rest of the chain gets TIMEOUT to answer; a slower answer becomes SERVFAIL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import Case, Server, check, serve, setup_error
from tests.upstreams import Upstream


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The upstream answers after 1s: far past 100ms, well within the default 5001ms.
    up = Upstream(delay=1.0).start()
    corefile = f"""
.:@PORT@ {{
    bind 127.0.0.1
    cancel 100ms
    forward . {up.addr}
}}
.:@P1@ {{
    bind 127.0.0.1
    cancel
    forward . {up.addr}
}}
"""
    try:
        with serve(corefile, tmp_path_factory.mktemp("cancel")) as s:
            yield s
    finally:
        up.stop()


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_slow_answers_are_cancelled(srv: Server, proto: str) -> None:
    check(srv, [Case("slow.example.", rcode=dns.rcode.SERVFAIL, proto=proto)])


def test_answers_in_time_pass(srv: Server) -> None:
    r = srv.query("slow.example.", port=srv.ports["P1"], timeout=4)
    assert [rd.to_text() for rd in r.answer[0]] == ["10.0.0.1"]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  cancel 0s\n", 2, "cancel: invalid negative duration: '0s'"),
        ("  cancel -1s\n", 2, "cancel: invalid negative duration: '-1s'"),
        ("  cancel soon\n", 2, "cancel: invalid duration: 'soon'"),
        ("  cancel 1s 2s\n", 2, "wrong argument count"),
        ("  cancel {\n    x\n  }\n", 2, "unexpected block"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)
