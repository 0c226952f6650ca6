"""shed: CoreDNS 1.14's syntax and metric; the bound itself is tested in test_abuse.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Case, Server, check, metric, serve, setup_error

COREFILE = """
example.org:@PORT@ {
    bind 127.0.0.1
    shed
    prometheus 127.0.0.1:@P1@
    hosts {
        10.0.0.1 a.example.org
    }
}
example.net:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    whoami
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("shed")) as s:
        yield s


def test_queries_pass_through(srv: Server) -> None:
    check(
        srv,
        [
            Case("a.example.org.", answer=["a.example.org. 3600 IN A 10.0.0.1"]),
            Case("a.example.org.", proto="tcp", answer=["a.example.org. 3600 IN A 10.0.0.1"]),
        ],
    )


def test_dropped_series_exist_from_the_start(srv: Server) -> None:
    body = srv.metrics()
    label = f"dns://127.0.0.1:{srv.port}"
    for reason in ("query", "response"):
        assert metric(body, "coredns_shed_dropped_total", server=label, reason=reason) == 0
    assert 'coredns_plugin_enabled{name="shed"' in body


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("shed extra\n", 2, "wrong argument count"),
        ("shed {\n depth 10\n}\n", 2, "plugin/shed: shed takes no options"),
        ("shed\nshed\n", 3, "plugin/shed: this plugin can only be used once per server block"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)
