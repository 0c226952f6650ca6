"""Shared fixtures: `server_factory` starts real servers and stops them after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Server, start


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
