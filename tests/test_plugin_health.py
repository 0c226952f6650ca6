"""health: /health, the self-check metrics, lameduck on SIGTERM, setup errors."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import HOST, Server, metric, setup_error, validate_block


def test_health_answers_ok(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        "a.test:@PORT@ {\n bind 127.0.0.1\n health 127.0.0.1:@P1@\n whoami\n}\n"
        "b.test:@PORT@ {\n bind 127.0.0.1\n health 127.0.0.1:@P1@\n whoami\n}\n"
    )
    assert srv.http("P1", "/health") == (200, "OK")
    assert srv.http("P1", "/ready") == (404, "404 page not found\n")
    assert srv.query("x.b.test.", "A").rcode() == dns.rcode.NOERROR


def test_self_check_is_measured(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n health 127.0.0.1:@P1@\n"
        " prometheus 127.0.0.1:@P2@\n whoami\n}\n"
    )
    deadline = time.monotonic() + 5
    count = 0.0
    while time.monotonic() < deadline and count < 2:
        text = srv.metrics("P2")
        count = metric(text, "coredns_health_request_duration_seconds_count") or 0
        time.sleep(0.2)
    assert count >= 2, "the self check runs once a second"
    assert metric(text, "coredns_health_request_duration_seconds_bucket", le="2.5") == count
    assert metric(text, "coredns_health_request_failures_total") == 0


def test_lameduck_keeps_serving_while_unhealthy(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n whoami\n ready 127.0.0.1:@P2@\n"
        " health 127.0.0.1:@P1@ {\n  lameduck 2s\n }\n}\n"
    )
    assert srv.http("P1", "/health") == (200, "OK")
    assert srv.http("P2", "/ready") == (200, "OK")
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.wait_output(r"\[INFO\] plugin/health: Going into lameduck mode for 2s\n")
    assert srv.query("during.lameduck.", "A", proto="udp").rcode() == dns.rcode.NOERROR
    assert srv.query("during.lameduck.", "A", proto="tcp").rcode() == dns.rcode.NOERROR
    assert srv.http("P1", "/health") == (503, "Shutting down")
    assert srv.http("P2", "/ready") == (503, "Shutting down")
    assert time.monotonic() - t0 < 1.8, "the checks above must run inside the lameduck window"
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - t0 >= 1.9


def test_endpoints_survive_reloads(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n whoami\n health 127.0.0.1:@P1@\n"
        " ready 127.0.0.1:@P1@\n prometheus 127.0.0.1:@P1@\n}\n"
    )
    text = srv.conf.read_text()
    p1 = srv.ports["P1"]

    def endpoints() -> list[int]:
        return [srv.http("P1", path)[0] for path in ("/health", "/ready", "/metrics")]

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # Starts its plugins (sharing P1), then cannot listen: the old config must keep P1.
        srv.conf.write_text(
            text + f"busy.test:{taken} {{\n bind 127.0.0.1\n whoami\n health 127.0.0.1:{p1}\n"
            f" ready 127.0.0.1:{p1}\n prometheus 127.0.0.1:{p1}\n}}\n"
        )
        srv.signal(signal.SIGUSR1)
        srv.wait_output(r"\[ERROR\] reload: cannot listen")
        assert endpoints() == [200, 200, 200]
    srv.conf.write_text(
        text + f"other.test:{srv.port} {{\n bind 127.0.0.1\n health 127.0.0.1:{p1}\n}}\n"
    )
    srv.signal(signal.SIGUSR1)
    srv.wait_output(r"\[INFO\] Reloading complete")
    assert endpoints() == [200, 200, 200]
    assert srv.query("x.other.test.", "A").rcode() == dns.rcode.SERVFAIL
    srv.conf.write_text(".:" + str(srv.port) + " {\n bind 127.0.0.1\n whoami\n}\n")
    srv.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and srv.output.count("Reloading complete") < 2:
        time.sleep(0.05)
    with pytest.raises(OSError):
        srv.http("P1", "/health")  # nobody serves the address any more: it is closed


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("    health localhost\n", 2, "health: address localhost: missing port in address"),
        ("    health :8080 :8081\n", 2, "wrong argument count"),
        ("    health {\n        lameduck\n    }\n", 3, "wrong argument count"),
        ("    health {\n        lameduck 1s 2s\n    }\n", 3, "wrong argument count"),
        ("    health {\n        lameduck soon\n    }\n", 3,
         "health: unable to parse lameduck duration value: 'soon'"),
        ("    health {\n        path /x\n    }\n", 3, "health: unknown property 'path'"),
    ],
)  # fmt: skip
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    for body in ("    health\n", "    health localhost:8091\n",
                 "    health :8081 {\n        lameduck 5s\n    }\n"):  # fmt: skip
        code, err, _ = validate_block(tmp_path, body)
        assert code == 0, err
