"""The plugin chain: registry order, not Corefile order; the end of the chain; setup rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dns.rcode

from tests.harness import Case, Server, check, run_cli


def test_registry_order_not_corefile_order(server_factory: Callable[..., Server]) -> None:
    # whoami is written first but runs after hosts (plugin.cfg order); hosts answers its name
    # and passes the rest on.
    srv = server_factory(
        """
.:@PORT@ {
    whoami
    hosts {
        10.0.0.1 known.example.org
        fallthrough
    }
    bind 127.0.0.1
}
"""
    )
    check(srv, [Case("known.example.org.", "A", answer=["known.example.org. 3600 IN A 10.0.0.1"])])
    r = srv.query("other.example.org.", "A")
    assert r.answer == [] and r.additional, "whoami answers names hosts passes on"


def test_end_of_chain_is_servfail(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        """
.:@PORT@ {
    bind 127.0.0.1
    hosts {
        10.0.0.1 known.example.org
        fallthrough
    }
}
"""
    )
    check(
        srv,
        [
            Case("known.example.org.", "A", answer=["known.example.org. 3600 IN A 10.0.0.1"]),
            Case("unknown.example.org.", "A", rcode=dns.rcode.SERVFAIL, answer=[]),
            Case("unknown.example.org.", "A", rcode=dns.rcode.SERVFAIL, answer=[], proto="tcp"),
        ],
    )


def _validate(tmp_path: Path, body: str) -> tuple[int, str, Path]:
    conf = tmp_path / "Corefile"
    conf.write_text(body)
    r = run_cli("-conf", str(conf), "-validate")
    return r.returncode, r.stderr, conf


def test_plugin_twice_in_a_block_is_an_error(tmp_path: Path) -> None:
    code, err, conf = _validate(tmp_path, ".:1053 {\n    whoami\n    whoami\n}\n")
    assert code == 1
    assert f"{conf}:3 - plugin/whoami: this plugin can only be used once per server block" in err


def test_coredns_plugins_we_lack_are_named(tmp_path: Path) -> None:
    code, err, conf = _validate(tmp_path, ".:1053 {\n    clouddns a:b:c\n    whoami\n}\n")
    assert code == 1
    assert f"{conf}:2 - plugin 'clouddns' is not supported by ClusterDNS" in err


def test_zone_on_all_addresses_and_one_address_overlap(tmp_path: Path) -> None:
    code, err, _ = _validate(
        tmp_path,
        "example.org:1053 {\n    whoami\n}\nexample.org:1053 {\n    bind 127.0.0.1\n    whoami\n}\n",
    )
    assert code == 1
    assert "zone overlap listener capacity" in err


def test_same_zone_on_two_ports_is_fine(tmp_path: Path) -> None:
    code, err, _ = _validate(
        tmp_path, "example.org:1053 {\n    whoami\n}\nexample.org:1054 {\n    whoami\n}\n"
    )
    assert code == 0, err
