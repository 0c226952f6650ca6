"""debug: [DEBUG] lines appear only with it (local's intercepted localhost queries here)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.coredns_ref import serve_coredns
from tests.harness import serve, validate_block

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    debug
    log
    local
}
"""
LINE = '[DEBUG] plugin/local: Intercepting localhost query for "app.localhost." A, from 127.0.0.1'
LOGGED = r'\[INFO\] 127\.0\.0\.1:\d+ - \d+ "A IN app\.localhost\. '


def test_debug_lines(tmp_path: Path) -> None:
    with serve(COREFILE, tmp_path) as s:
        s.query("app.localhost.")
        s.wait_output(re.escape(LINE))


def test_same_line_in_coredns(tmp_path: Path) -> None:
    with serve_coredns(COREFILE, tmp_path) as ref:
        ref.query("app.localhost.")
        ref.wait_output(re.escape(LINE))


def test_no_debug_lines_without_it(tmp_path: Path) -> None:
    with serve(COREFILE.replace("    debug\n", ""), tmp_path) as s:
        s.query("app.localhost.")
        s.wait_output(LOGGED)  # the query's log line comes after any debug line of it
        assert "[DEBUG]" not in s.output


def test_setup_errors(tmp_path: Path) -> None:
    code, err, conf = validate_block(tmp_path, "  debug on\n")
    assert code == 1 and f"{conf}:2 - " in err and "wrong argument count" in err, err
