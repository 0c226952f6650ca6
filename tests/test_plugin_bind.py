"""bind: a server block listens only on the addresses (or interfaces) it names."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import psutil
import pytest

from tests.harness import Server, run_cli, serve, setup_error


def ask(srv: Server, host: str, name: str = "example.org.", proto: str = "udp",
        port: int | None = None) -> dns.message.Message:  # fmt: skip
    q = dns.message.make_query(name, "A")
    p = port or srv.port
    if proto == "tcp":
        return dns.query.tcp(q, host, port=p, timeout=2)
    return dns.query.udp(q, host, port=p, timeout=2)


def refuses_connections(srv: Server, host: str) -> bool:
    """Nothing listens there: TCP is refused outright (no waiting for a UDP timeout)."""
    try:
        ask(srv, host, proto="tcp")
    except ConnectionRefusedError:
        return True
    return False


def listening(srv: Server) -> set[str]:
    """The addresses of the start banner's `ZONE:PORT on IP` lines (CoreDNS's)."""
    srv.wait_output(r"ClusterDNS-\d")  # the banner is complete
    return set(re.findall(r"(?m)^\S+:\d+ on (\S+)$", srv.output))


def lo_addresses() -> list[str]:
    return [a.address for a in psutil.net_if_addrs().get("lo", [])
            if a.family in (socket.AF_INET, socket.AF_INET6)]  # fmt: skip


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return "::1" in lo_addresses()
    except OSError:
        return False


def test_bind_address(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n", tmp_path) as s:
        for proto in ("udp", "tcp"):
            assert ask(s, "127.0.0.1", proto=proto).rcode() == dns.rcode.NOERROR
        assert listening(s) == {"127.0.0.1"}
        assert refuses_connections(s, "127.0.0.3")


def test_blocks_bound_to_different_addresses(tmp_path: Path) -> None:
    corefile = """
a.test:@PORT@ {
    bind 127.0.0.2
    whoami
}
b.test:@PORT@ {
    bind 127.0.0.1
    whoami
}
"""
    with serve(corefile, tmp_path) as s:
        for proto in ("udp", "tcp"):
            assert ask(s, "127.0.0.2", "x.a.test.", proto).rcode() == dns.rcode.NOERROR
            assert ask(s, "127.0.0.1", "x.b.test.", proto).rcode() == dns.rcode.NOERROR
            # Each address only knows its own block's zone.
            assert ask(s, "127.0.0.1", "x.a.test.", proto).rcode() == dns.rcode.REFUSED
            assert ask(s, "127.0.0.2", "x.b.test.", proto).rcode() == dns.rcode.REFUSED


def test_several_bind_lines_add_up(tmp_path: Path) -> None:
    corefile = ".:@PORT@ {\n    bind 127.0.0.1\n    bind 127.0.0.3 127.0.0.1\n    whoami\n}\n"
    with serve(corefile, tmp_path) as s:
        assert ask(s, "127.0.0.1").rcode() == dns.rcode.NOERROR
        assert ask(s, "127.0.0.3").rcode() == dns.rcode.NOERROR
        assert listening(s) == {"127.0.0.1", "127.0.0.3"}
        assert refuses_connections(s, "127.0.0.4")


@pytest.mark.skipif("lo" not in psutil.net_if_addrs(), reason="no 'lo' interface")
def test_bind_interface(tmp_path: Path) -> None:
    with serve(".:@PORT@ {\n    bind lo\n    whoami\n}\n", tmp_path) as s:
        expected = {"127.0.0.1"} | ({"::1"} if ipv6_loopback() else set())
        assert expected <= listening(s)
        for host in expected:
            for proto in ("udp", "tcp"):
                assert ask(s, host, proto=proto).rcode() == dns.rcode.NOERROR


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on 'lo'")
def test_except_removes_addresses(tmp_path: Path) -> None:
    corefile = ".:@PORT@ {\n    bind lo {\n        except ::1\n    }\n    whoami\n}\n"
    with serve(corefile, tmp_path) as s:
        assert "::1" not in listening(s)
        assert "127.0.0.1" in listening(s)
        assert ask(s, "127.0.0.1").rcode() == dns.rcode.NOERROR
        assert refuses_connections(s, "::1")


def test_except_with_an_address_list(tmp_path: Path) -> None:
    corefile = (".:@PORT@ {\n    bind 127.0.0.1 127.0.0.3 {\n        except 127.0.0.3\n    }\n"
                "    whoami\n}\n")  # fmt: skip
    with serve(corefile, tmp_path) as s:
        assert listening(s) == {"127.0.0.1"}
        assert refuses_connections(s, "127.0.0.3")


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("bind", 2, "at least one address or interface name is expected"),
        ("bind nosuchiface0", 2, 'not a valid IP address or interface name: "nosuchiface0"'),
        ("bind 127.0.0.1 300.1.1.1", 2, 'not a valid IP address or interface name: "300.1.1.1"'),
        ("bind fe80::1%lo", 2, "not a valid IP address or interface name"),
        ("bind 127.0.0.1 {\n    exclude 127.0.0.1\n  }", 3, 'invalid option "exclude"'),
        ("bind 127.0.0.1 {\n    except\n  }", 3, "at least one address or interface must be"),
        ("bind 127.0.0.1 {\n    except nosuchiface0\n  }", 3, "nosuchiface0"),
        ("bind 127.0.0.1 {\n    except 127.0.0.1\n  }", 2, "leaves no address"),
        ("bind 127.0.0.1\n  bind bogus", 3, '"bogus"'),
    ],
)
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n  whoami\n", line, message)


def test_setup_accepts_ipv6_and_interfaces(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    iface = next(iter(psutil.net_if_addrs()))
    conf.write_text(f".:1053 {{\n  bind ::1 127.0.0.1 {iface}\n  whoami\n}}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr


def test_unreachable_addresses_time_out_not_answer(tmp_path: Path) -> None:
    """UDP sent where nothing listens gets no DNS answer (guards against a wildcard bind)."""
    corefile = ".:@PORT@ {\n    bind 127.0.0.1\n    whoami\n}\n"
    q = dns.message.make_query("example.org.", "A")
    with (
        serve(corefile, tmp_path) as s,
        pytest.raises((dns.exception.Timeout, ConnectionRefusedError)),
    ):
        dns.query.udp(q, "127.0.0.5", port=s.port, timeout=0.5)
