"""The real-world Corefiles in ../shared/corefiles parse; missing plugins are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness import run_cli

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"
ENV = {
    "CLUSTER_DNS_UPSTREAM": "10.96.0.10",
    "CLUSTER_DOMAIN": "cluster.local",
    "DNS_TTL": "30",
    "DNS_PORT": "53",
    "SHARED_COREFILES": str(SHARED),
}


@pytest.mark.parametrize("path", sorted(SHARED.glob("*.Corefile")), ids=lambda p: p.name)
def test_shared_corefile_is_accepted(path: Path) -> None:
    r = run_cli("-conf", str(path), "-validate", env=ENV)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_legacy_corefiles_warn_with_the_replacement() -> None:
    r = run_cli("-conf", str(SHARED / "legacy-proxy-cidr.Corefile"), "-validate", env=ENV)
    assert r.returncode == 0, r.stderr
    assert re.search(r"legacy-proxy-cidr.Corefile:\d+ - .*proxy.*forward", r.stderr), r.stderr
    r = run_cli("-conf", str(SHARED / "legacy-upstream.Corefile"), "-validate", env=ENV)
    assert r.returncode == 0, r.stderr
    assert re.search(r"legacy-upstream.Corefile:\d+ - .*upstream", r.stderr), r.stderr


def test_shared_corefiles_exist() -> None:
    assert len(list(SHARED.glob("*.Corefile"))) >= 5
