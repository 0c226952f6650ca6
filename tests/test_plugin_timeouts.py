"""timeouts: TCP connection limits handed to the listener (read/idle timeouts, maxtcpqueries)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import HOST, Server, serve, setup_error

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    timeouts {
        read 1s
        idle 1
        maxtcpqueries 2
    }
    hosts {
        10.0.0.1 a.example.
    }
}
.:@P1@ {
    bind 127.0.0.1
    hosts {
        10.0.0.1 a.example.
    }
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("timeouts")) as s:
        yield s


def answers_before_close(port: int, queries: int, timeout: float = 5.0) -> int:
    """Send `queries` queries one after another on one TCP connection; count the answers."""
    got = 0
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        for _ in range(queries):
            wire = dns.message.make_query("a.example.", "A").to_wire()
            try:
                s.sendall(len(wire).to_bytes(2, "big") + wire)
                n = s.recv(2)
            except (ConnectionError, BrokenPipeError):
                break
            if len(n) < 2:
                break
            body = b""
            while len(body) < int.from_bytes(n, "big"):
                chunk = s.recv(65535)
                if not chunk:
                    break
                body += chunk
            dns.message.from_wire(body)
            got += 1
    return got


def closed_while_silent(port: int, wait: float) -> bool:
    """Whether the server closes a connection on which nothing is sent within `wait` s."""
    with socket.create_connection((HOST, port), timeout=wait) as s:
        try:
            return s.recv(1) == b""
        except TimeoutError:
            return False


def test_maxtcpqueries_closes_after_that_many(srv: Server) -> None:
    assert answers_before_close(srv.port, 3) == 2
    assert answers_before_close(srv.ports["P1"], 3) == 3  # the default: no limit


def test_read_timeout_closes_a_silent_connection(srv: Server) -> None:
    # read 1s here; CoreDNS's default (3s) would outlast the 2.5s we wait.
    assert closed_while_silent(srv.port, 2.5)
    assert not closed_while_silent(srv.ports["P1"], 1.5)


def test_same_query_limit_as_coredns(tmp_path: Path) -> None:
    with serve_coredns(COREFILE, tmp_path) as ref:
        assert answers_before_close(ref.port, 3) == 2
        assert answers_before_close(ref.ports["P1"], 3) == 3


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  timeouts\n", 2, "timeouts block with no timeouts specified"),
        ("  timeouts {\n    read 500ms\n  }\n", 3, "needs to be between 1 second and 24 hours"),
        ("  timeouts {\n    idle 25h\n  }\n", 3, "needs to be between 1 second and 24 hours"),
        ("  timeouts {\n    write soon\n  }\n", 3, "failed to parse duration 'soon'"),
        ("  timeouts {\n    read\n  }\n", 3, "wrong argument count"),
        ("  timeouts {\n    maxtcpqueries 0\n  }\n", 3, "needs to be -1 (unlimited) or a positive"),
        ("  timeouts {\n    maxtcpqueries many\n  }\n", 3, "invalid value for maxtcpqueries"),
        ("  timeouts {\n    linger 1s\n  }\n", 3, "unknown option: 'linger'"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line: int, message: str) -> None:
    setup_error(tmp_path, body, line, message)
