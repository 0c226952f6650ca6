"""Shared fixtures: `server_factory` starts real servers and stops them after the test."""

from __future__ import annotations

import compileall
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, Server, start


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile src/ once: with PYTHONDONTWRITEBYTECODE set (as on some machines), every
    server process the tests start would compile the package again (~0.1 s of CPU each)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        compileall.compile_dir(str(ROOT / "src"), quiet=1)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(corefile: str, **kw: Any) -> Server:
        d = kw.pop("tmp", None) or tmp_path
        srv = start(corefile, d, **kw)
        started.append(srv)
        return srv

    yield make
    for s in started:
        s.stop()
