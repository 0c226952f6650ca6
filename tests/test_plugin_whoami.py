"""whoami: the client's address (A/AAAA) and port (SRV _udp/_tcp) in the additional section."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.harness import HOST, Server, rrs, run_cli, serve

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    whoami
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("whoami")) as s:
        yield s


def ask(
    srv: Server, name: str, rdtype: str, proto: str, host: str = HOST
) -> tuple[dns.message.Message, int]:
    """Query from a socket of our own, so we know the client port the server should see."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    q = dns.message.make_query(name, rdtype)
    if proto == "udp":
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            r = dns.query.udp(q, host, port=srv.port, timeout=3, sock=s)
            return r, s.getsockname()[1]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.bind((host, 0))
        s.connect((host, srv.port))
        r = dns.query.tcp(q, host, port=srv.port, timeout=3, sock=s)
        return r, s.getsockname()[1]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT", "MX"])
def test_client_address_and_port(srv: Server, proto: str, rdtype: str) -> None:
    r, port = ask(srv, "example.org.", rdtype, proto)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert r.answer == []
    assert rrs(r.additional) == sorted(
        [
            "example.org. 0 IN A 127.0.0.1",
            f"_{proto}.example.org. 0 IN SRV 0 0 {port} .",
        ]
    )


def test_root_query(srv: Server) -> None:
    r, port = ask(srv, ".", "A", "tcp")
    assert rrs(r.additional) == sorted([". 0 IN A 127.0.0.1", f"_tcp. 0 IN SRV 0 0 {port} ."])


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_ipv6_client_gets_aaaa(tmp_path: Path, proto: str) -> None:
    corefile = ".:@PORT@ {\n    bind 127.0.0.1 ::1\n    whoami\n}\n"
    with serve(corefile, tmp_path) as s:
        r, port = ask(s, "example.org.", "A", proto, host="::1")
        assert rrs(r.additional) == sorted(
            ["example.org. 0 IN AAAA ::1", f"_{proto}.example.org. 0 IN SRV 0 0 {port} ."]
        )


def test_setup_errors(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(".:1053 {\n  whoami\n  whoami extra\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert f"{conf}:3" in r.stderr
    conf.write_text(".:1053 {\n  whoami extra\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert f"{conf}:2" in r.stderr
    assert "wrong argument count" in r.stderr
