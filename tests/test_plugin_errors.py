"""errors: the error line, consolidation per period and level, the flush on stop, setup errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import Case, Server, check, setup_error, validate_block


def test_errors_are_logged_and_answered(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        "only.test:@PORT@ {\n bind 127.0.0.1\n errors\n}\n"
        "withlog.test:@PORT@ {\n bind 127.0.0.1\n errors stdout\n log\n}\n"
        "fine.test:@PORT@ {\n bind 127.0.0.1\n errors\n whoami\n}\n"
    )
    check(
        srv,
        [
            Case("A.Only.Test.", "A", rcode=dns.rcode.SERVFAIL),
            Case("b.withlog.test.", "TYPE65280", rcode=dns.rcode.SERVFAIL, proto="tcp"),
            Case("c.fine.test.", "A", answer=[]),
        ],
    )
    srv.wait_output(r"b\.withlog\.test\. TYPE65280")
    out = srv.output
    assert "[ERROR] plugin/errors: 2 a.only.test. A: plugin/errors: no next plugin found\n" in out
    assert (
        "[ERROR] plugin/errors: 2 b.withlog.test. TYPE65280: plugin/log: no next plugin found\n"
        in out
    )
    assert "c.fine.test." not in out


CONSOLIDATE = """
warn.test:@PORT@ {
    bind 127.0.0.1
    errors {
        consolidate 1s "no next plugin" warning
        consolidate 300ms .* info
    }
}
info.test:@PORT@ {
    bind 127.0.0.1
    errors {
        consolidate 300ms "^nothing matches this$"
        consolidate 1500ms "plugin/errors: no next" info
    }
}
"""


def test_consolidate_counts_per_period(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(CONSOLIDATE)
    for i in range(2):
        srv.query(f"q{i}.info.test.", "AAAA", proto="tcp")
    for i in range(3):
        assert srv.query(f"q{i}.warn.test.", "A").rcode() == dns.rcode.SERVFAIL
    srv.wait_output(r"\[WARNING\] plugin/errors: 3 errors like 'no next plugin' occurred in last")
    assert "[WARNING] plugin/errors: 3 errors like 'no next plugin' occurred in last 1s\n" in (
        srv.output
    )
    assert "q0.warn.test." not in srv.output  # counted, never logged one by one
    assert "'.*'" not in srv.output  # the first matching pattern takes the error
    # A new period starts with the next error.
    srv.query("again.warn.test.", "A")
    srv.wait_output(r"1 errors like 'no next plugin' occurred in last 1s")
    srv.wait_output(
        r"\[INFO\] plugin/errors: 2 errors like 'plugin/errors: no next' occurred in last 1\.5s"
    )


def test_pending_counts_are_flushed_on_stop(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        "slow.test:@PORT@ {\n bind 127.0.0.1\n errors {\n"
        "  consolidate 1h no.next.plugin error\n }\n}\n"
    )
    srv.query("a.slow.test.", "A")
    srv.query("b.slow.test.", "A")
    assert srv.stop() == 0
    assert re.search(
        r"(?m)^\[ERROR\] plugin/errors: 2 errors like 'no.next.plugin' occurred in last 1h0m0s$",
        srv.output,
    ), srv.output


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("    errors errors.txt\n", 2, "errors: invalid log file: errors.txt"),
        ("    errors a b\n", 2, "wrong argument count"),
        ("    errors\n    errors\n", 3, "can only be used once per server block"),
        ("    errors {\n        log visible\n    }\n", 3, "errors: unknown property 'log'"),
        ("    errors {\n        consolidate\n    }\n", 3, "wrong argument count"),
        ("    errors {\n        consolidate 1m\n    }\n", 3, "wrong argument count"),
        ("    errors {\n        consolidate 1m .* warn x\n    }\n", 3, "wrong argument count"),
        ("    errors {\n        consolidate abc .*\n    }\n", 3, "invalid duration 'abc'"),
        ("    errors {\n        consolidate 1 .*\n    }\n", 3, "invalid duration '1'"),
        ("    errors {\n        consolidate 1m ())\n    }\n", 3, "invalid regexp '())'"),
        ("    errors {\n        consolidate 1m .* loud\n    }\n", 3,
         "unknown log level argument in consolidate: loud"),
        ("    errors {\n        stacktrace now\n    }\n", 3, "wrong argument count"),
    ],
)  # fmt: skip
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    body = (
        "    errors {\n        stacktrace\n"
        '        consolidate 5m ".* i/o timeout$" warning\n'
        '        consolidate 30s "^Failed to .+"\n'
        "        consolidate 1m error1 warn\n        consolidate 5s error2 debug\n"
        '        consolidate 1m "format error" error\n    }\n'
    )
    code, err, _ = validate_block(tmp_path, body)
    assert code == 0, err
