"""Changing the Corefile under a running server: valid changes apply, invalid ones don't."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import dns.rcode

from tests.harness import Server, run_cli

BASE = """
.:@PORT@ {
    bind 127.0.0.1
    reload 2s 1s
    prometheus 127.0.0.1:@P1@
    hosts {
        10.0.0.1 a.example.org
    }
}
"""


def _answer(srv: Server, name: str) -> str:
    r = srv.query(name, "A")
    return r.answer[0][0].to_text() if r.answer else dns.rcode.to_text(r.rcode())


def _wait(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _metric(srv: Server, name: str) -> float:
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", srv.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


def test_valid_change_takes_effect(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(BASE)
    assert _answer(srv, "a.example.org.") == "10.0.0.1"
    text = srv.conf.read_text().replace("10.0.0.1 a.example.org", "10.0.0.2 a.example.org")
    srv.conf.write_text(text)
    assert _wait(lambda: _answer(srv, "a.example.org.") == "10.0.0.2"), srv.output
    srv.wait_output(r"plugin/reload: Running configuration SHA512 = [0-9a-f]{128}")
    assert re.search(r'coredns_reload_version_info\{hash="sha512",value="[0-9a-f]{128}"\} 1',
                     srv.metrics())  # fmt: skip


def test_invalid_change_keeps_old_config(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(BASE)
    before = _metric(srv, "coredns_reload_failed_total")
    srv.conf.write_text(
        srv.conf.read_text().replace(
            "hosts {", "hosts {\n        bogus_option 1 2 3\n        ttl x"
        )
    )
    srv.wait_output(r"\[ERROR\] Restart failed: .*Corefile:\d+ - ")
    srv.wait_output(
        r"\[ERROR\] plugin/reload: Corefile changed but reload failed: .*Corefile:\d+ - "
    )
    assert _answer(srv, "a.example.org.") == "10.0.0.1"
    assert _wait(lambda: _metric(srv, "coredns_reload_failed_total") == before + 1)
    # A later valid change still applies.
    srv.conf.write_text(BASE.replace("@PORT@", str(srv.port)).replace("@P1@", str(srv.ports["P1"]))
                        .replace("10.0.0.1", "10.0.0.3"))  # fmt: skip
    assert _wait(lambda: _answer(srv, "a.example.org.") == "10.0.0.3"), srv.output


def test_sigusr1_reloads_now_and_adds_a_listener(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(BASE.replace("reload 2s 1s", ""))
    from tests.harness import free_port

    port2 = free_port()
    srv.conf.write_text(
        srv.conf.read_text() + f"\nother.test:{port2} {{\n    bind 127.0.0.1\n    whoami\n}}\n"
    )
    srv.signal(signal.SIGUSR1)

    def second_listener_up() -> bool:
        try:
            return srv.query("x.other.test.", "A", port=port2, timeout=0.3).rcode() == 0
        except Exception:
            return False

    assert _wait(second_listener_up), srv.output
    # The first listener was kept and still answers.
    assert _answer(srv, "a.example.org.") == "10.0.0.1"


def test_reload_options_are_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "Corefile"
    for bad in ("reload 1s", "reload 10s 500ms", "reload 10s 1s 3", "reload x"):
        conf.write_text(f".:1053 {{\n    {bad}\n    whoami\n}}\n")
        r = run_cli("-conf", str(conf), "-validate")
        assert r.returncode == 1, bad
        assert f"{conf}:2 - " in r.stderr, r.stderr
