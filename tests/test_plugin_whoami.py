"""whoami: the client's address (A/AAAA) and port (SRV _udp/_tcp) in the additional section."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.coredns_ref import serve_coredns
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


# ---- long names ------------------------------------------------------------------------------


def long_name(octets: int, label: int = 63) -> dns.name.Name:
    """A name of exactly `octets` octets on the wire, labels of at most `label` octets."""
    labels: list[bytes] = []
    left = octets - 1
    while left > 0:
        n = min(label, left - 1)
        labels.append(b"a" * n)
        left -= n + 1
    return dns.name.Name([*labels, b""])


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize("octets", [250, 251, 255])
def test_srv_left_out_when_its_owner_would_be_too_long(
    srv: Server, proto: str, octets: int
) -> None:
    """`_udp.` before a name of 251+ octets is over 255: CoreDNS sends that owner all the same
    (a message no client can parse, see below); we answer without the SRV, and log nothing."""
    name = long_name(octets)
    r, port = ask(srv, name.to_text(), "A", proto)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    expected = [f"{name} 0 IN A 127.0.0.1"]
    if octets <= 250:
        expected.append(f"_{proto}.{name} 0 IN SRV 0 0 {port} .")
    assert rrs(r.additional) == sorted(expected)
    assert "Traceback" not in srv.output


label_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63)


@st.composite
def long_names(draw: st.DrawFn) -> dns.name.Name:
    """Names of 200 to 255 octets, often with 63-octet labels."""
    target = draw(st.integers(200, 255))
    labels: list[bytes] = []
    size = 1
    while size < target:
        room = min(63, target - size - 1)
        if room < 1:
            break
        n = draw(st.one_of(st.just(room), st.integers(1, room)))
        text = draw(label_text.filter(lambda t: len(t) >= 1))
        labels.append((text * 63)[:n].encode())
        size += n + 1
    return dns.name.Name([*labels, b""])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=long_names(), proto=st.sampled_from(["udp", "tcp"]), rdtype=st.sampled_from(["A", "TXT"])
)
def test_long_names_never_fail(srv: Server, name: dns.name.Name, proto: str, rdtype: str) -> None:
    r, port = ask(srv, name.to_text(), rdtype, proto)
    assert r.rcode() == dns.rcode.NOERROR
    owners = {rrset.name: rrset for rrset in r.additional}
    assert name in owners
    if len(name.to_wire()) + len(proto) + 2 <= 255:
        srv_owner = dns.name.Name([f"_{proto}".encode(), *name.labels])
        assert [rd.port for rd in owners[srv_owner]] == [port]
    else:
        assert len(owners) == 1
    assert "Traceback" not in srv.output


def test_reference_coredns_sends_an_unparsable_answer(tmp_path: Path) -> None:
    """Why the SRV is left out: CoreDNS's answer for a 251-octet name cannot be read."""
    with serve_coredns(COREFILE, tmp_path) as ref:
        q = dns.message.make_query(long_name(251), "A")
        with pytest.raises(dns.name.NameTooLong):
            dns.query.udp(q, HOST, port=ref.port, timeout=3)
        ok = dns.query.udp(
            dns.message.make_query(long_name(250), "A"), HOST, port=ref.port, timeout=3
        )
        assert len(ok.additional) == 2
