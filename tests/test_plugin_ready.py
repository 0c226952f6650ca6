"""ready: /ready with real plugins, the readiness aggregation, setup errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from clusterdns.plugins.ready import Readiness, not_ready
from tests.harness import Server, setup_error, validate_block


def test_ready_with_real_plugins(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        "a.test:@PORT@ {\n bind 127.0.0.1\n ready 127.0.0.1:@P1@\n whoami\n}\n"
        "b.test:@PORT@ {\n bind 127.0.0.1\n ready 127.0.0.1:@P1@ {\n  monitor continuously\n"
        " }\n log\n errors\n whoami\n}\n"
    )
    assert srv.http("P1", "/ready") == (200, "OK")
    assert srv.http("P1", "/ready") == (200, "OK")
    assert srv.http("P1", "/health") == (404, "404 page not found\n")
    assert "Plugins not ready" not in srv.output


class Fake:
    """A plugin as the aggregation sees it: a name and a readiness report that can change."""

    def __init__(self, name: str, state: bool | None) -> None:
        self.name = name
        self.state = state
        self.asked = 0

    def ready(self) -> bool | None:
        self.asked += 1
        return self.state


def test_not_ready_names_are_sorted_and_unique() -> None:
    plugins = [Fake("kubernetes", False), Fake("erratic", False), Fake("whoami", None),
               Fake("kubernetes", False), Fake("file", True)]  # fmt: skip
    assert not_ready(plugins, {}, keep=False) == "erratic,kubernetes"
    assert not_ready([Fake("file", True), Fake("log", None)], {}, keep=False) == ""
    assert not_ready([], {}, keep=False) == ""


def test_until_ready_stops_asking_a_plugin_once_ready() -> None:
    k, f = Fake("kubernetes", False), Fake("file", True)
    confirmed: dict[int, Readiness] = {}
    assert not_ready([k, f], confirmed, keep=False) == "kubernetes"
    k.state = True
    assert not_ready([k, f], confirmed, keep=False) == ""
    k.state = f.state = False  # they regress, but until-ready no longer asks them
    asked = (k.asked, f.asked)
    assert not_ready([k, f], confirmed, keep=False) == ""
    assert (k.asked, f.asked) == asked
    # A new configuration (other instances) starts unconfirmed; old entries are dropped.
    k2 = Fake("kubernetes", False)
    assert not_ready([k2], confirmed, keep=False) == "kubernetes"
    assert confirmed == {}


def test_continuously_keeps_asking() -> None:
    k = Fake("kubernetes", True)
    confirmed: dict[int, Readiness] = {}
    assert not_ready([k], confirmed, keep=True) == ""
    k.state = False
    assert not_ready([k], confirmed, keep=True) == "kubernetes"
    assert confirmed == {}


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("    ready bla\n", 2, "ready: address bla: missing port in address"),
        ("    ready bla bla\n", 2, "wrong argument count"),
        ("    ready localhost:1234 b\n", 2, "wrong argument count"),
        ("    ready\n    ready :8182\n", 3, "can only be used once per server block"),
        ("    ready {\n        monitor 404\n    }\n", 3, "ready: monitor type '404' not supported"),
        ("    ready {\n        monitor\n    }\n", 3, "wrong argument count"),
        ("    ready {\n        watch all\n    }\n", 3, "ready: unknown property 'watch'"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    for body in ("    ready\n", "    ready localhost:1234\n",
                 "    ready {\n        monitor until-ready\n    }\n",
                 "    ready localhost:1234 {\n        monitor continuously\n    }\n"):  # fmt: skip
        code, err, _ = validate_block(tmp_path, body)
        assert code == 0, err
