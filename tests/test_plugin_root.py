"""root: relative file names of the block are taken from PATH (hosts here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Case, check, serve, validate_block
from tests.refdiff import pair, query, same


def corefile(root: Path) -> str:
    return f"""
.:@PORT@ {{
    bind 127.0.0.1
    root {root}
    hosts hosts.txt
}}
"""


def test_relative_files_hang_off_root(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hosts.txt").write_text("10.0.0.7 a.example.\n")
    (tmp_path / "hosts.txt").write_text("10.0.0.8 a.example.\n")  # beside the Corefile: unused
    with serve(corefile(data), tmp_path) as s:
        check(s, [Case("a.example.", answer=["a.example. 3600 IN A 10.0.0.7"])])


def test_missing_root_is_a_warning(tmp_path: Path) -> None:
    code, err, conf = validate_block(tmp_path, f"  root {tmp_path / 'nowhere'}\n")
    assert code == 0, err
    assert f"{conf}:2 - plugin/root: Root path does not exist: {tmp_path / 'nowhere'}" in err


@pytest.mark.parametrize("body", ["  root\n", "  root /a /b\n"])
def test_setup_errors(tmp_path: Path, body: str) -> None:
    code, err, conf = validate_block(tmp_path, body)
    assert code == 1 and f"{conf}:2 - " in err and "wrong argument count" in err, err


def test_same_as_coredns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hosts.txt").write_text("10.0.0.7 a.example.\n")
    with pair(corefile(data), tmp_path) as servers:
        same(servers, query("a.example."))
        same(servers, query("b.example.", "AAAA"))
