"""The serving core: routing between blocks, EDNS0, truncation, TCP framing, bad input."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest

from tests.harness import HOST, Case, Server, check, serve

ZONES = """
example.org:@PORT@ {
    bind 127.0.0.1
    chaos
    hosts {
        10.1.0.1 a.example.org
        fallthrough
    }
    whoami
}
sub.example.org:@PORT@ {
    bind 127.0.0.1
    hosts {
        10.2.0.1 a.sub.example.org
    }
}
big.test:@PORT@ {
    bind 127.0.0.1
    hosts {
MANY
    }
}
""".replace("MANY", "\n".join(f"        10.9.0.{i + 1} many.big.test" for i in range(120)))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Server:
    with serve(ZONES, tmp_path_factory.mktemp("server")) as s:
        yield s  # type: ignore[misc]


def test_most_specific_zone_wins(srv: Server) -> None:
    check(
        srv,
        [
            Case("a.example.org.", "A", answer=["a.example.org. 3600 IN A 10.1.0.1"]),
            Case("a.sub.example.org.", "A", answer=["a.sub.example.org. 3600 IN A 10.2.0.1"]),
            Case(
                "a.sub.example.org.",
                "A",
                proto="tcp",
                answer=["a.sub.example.org. 3600 IN A 10.2.0.1"],
            ),
            # Names not in any served zone are refused.
            Case("example.com.", "A", rcode=dns.rcode.REFUSED, answer=[]),
            Case("org.", "A", rcode=dns.rcode.REFUSED, answer=[]),
        ],
    )


def test_ds_goes_to_the_parent_zone(srv: Server) -> None:
    # sub.example.org is served by the sub block, but its DS lives in the parent: the
    # example.org block's whoami answers (sub's hosts would have said SERVFAIL).
    r = srv.query("sub.example.org.", "DS")
    assert r.rcode() == dns.rcode.NOERROR
    assert any(rr.rdtype == dns.rdatatype.SRV for rr in r.additional)


def test_reply_echoes_question_id_and_rd(srv: Server) -> None:
    q = dns.message.make_query("A.Example.ORG.", "A")
    q.flags &= ~dns.flags.RD
    r = srv.send(q)
    assert r.id == q.id
    assert r.question[0].name.to_text() == "A.Example.ORG."  # case preserved
    assert r.flags & dns.flags.QR
    assert not r.flags & dns.flags.RD
    assert not r.flags & dns.flags.RA
    q2 = dns.message.make_query("a.example.org.", "A")
    assert srv.send(q2).flags & dns.flags.RD


def test_edns_is_answered_with_opt_only_when_asked(srv: Server) -> None:
    r = srv.query("a.example.org.", "A", use_edns=0, payload=1400, want_dnssec=True)
    assert r.edns == 0
    assert r.payload == 1400
    assert r.ednsflags & dns.flags.DO
    r = srv.query("a.example.org.", "A", use_edns=False)
    assert r.edns == -1


def test_unknown_edns_version_gets_badvers(srv: Server) -> None:
    r = srv.query("a.example.org.", "A", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS


def test_large_answer_truncates_over_udp_and_is_whole_over_tcp(srv: Server) -> None:
    whole = srv.query("many.big.test.", "A", proto="tcp")
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 120
    r = srv.query("many.big.test.", "A", use_edns=0, payload=4096)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 120
    # As CoreDNS (miekg's Truncate): as many records as fit, in order, and TC. 12 bytes of
    # header, 19 of question, 16 a record (owner compressed): 30 of them in 512 bytes.
    r = srv.query("many.big.test.", "A", use_edns=False)
    assert r.flags & dns.flags.TC
    assert len(r.to_wire()) <= 512
    assert [rd.address for rd in r.answer[0]] == [rd.address for rd in whole.answer[0]][:30]


def test_small_edns_size_is_raised_to_512(srv: Server) -> None:
    r = srv.query("many.big.test.", "A", use_edns=0, payload=100)
    assert r.flags & dns.flags.TC
    assert 0 < len(r.to_wire()) <= 512


def test_other_opcodes_get_notimp(srv: Server) -> None:
    q = dns.message.make_query("a.example.org.", "A")
    q.set_opcode(dns.opcode.STATUS)
    r = srv.send(q)
    assert r.rcode() == dns.rcode.NOTIMP
    assert r.id == q.id


def _raw_udp(srv: Server, data: bytes, timeout: float = 0.5) -> bytes | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(data, (HOST, srv.port))
        return s.recv(65535)
    except TimeoutError:
        return None
    finally:
        s.close()


def _good_query() -> bytes:
    return dns.message.make_query("a.example.org.", "A").to_wire()


@pytest.mark.parametrize(
    ("name", "packet", "want"),
    [
        ("empty", b"", None),
        ("short header", b"\x12\x34\x01", None),
        ("response bit", b"\x12\x34\x81\x00" + b"\x00\x01" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01", None),
        ("no question", b"\x12\x34\x01\x00" + b"\x00" * 8, dns.rcode.FORMERR),
        ("two questions", b"\x12\x34\x01\x00\x00\x02" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01" * 2,
         dns.rcode.FORMERR),
        ("counts that lie", b"\x12\x34\x01\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x01\x00\x01",
         dns.rcode.FORMERR),
        ("label past the end", b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x3fabc",
         dns.rcode.FORMERR),
        ("pointer loop", b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c\x00\x01\x00\x01",
         dns.rcode.FORMERR),
        ("truncated question", b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x01a\x00\x00",
         dns.rcode.FORMERR),
    ],
)  # fmt: skip
def test_malformed_packets(srv: Server, name: str, packet: bytes, want: int | None) -> None:
    reply = _raw_udp(srv, packet)
    if want is None:
        assert reply is None, f"{name}: expected silence"
    else:
        assert reply is not None, f"{name}: expected a reply"
        r = dns.message.from_wire(reply)
        assert r.rcode() == want, name
        assert r.id == 0x1234
    # The server keeps serving.
    assert srv.query("a.example.org.", "A").rcode() == dns.rcode.NOERROR


def _tcp_connect(srv: Server) -> socket.socket:
    s = socket.create_connection((HOST, srv.port), timeout=3)
    return s


def _recv_frame(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 2:
        chunk = s.recv(2 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    (n,) = struct.unpack("!H", head)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return body


def test_tcp_pipelined_queries_on_one_connection(srv: Server) -> None:
    names = ["a.example.org.", "a.sub.example.org.", "x.example.org.", "many.big.test."]
    queries = [dns.message.make_query(n, "A") for n in names]
    with _tcp_connect(srv) as s:
        s.sendall(b"".join(q.to_wire(prepend_length=True) for q in queries))
        got = {}
        for _ in queries:
            r = dns.message.from_wire(_recv_frame(s))
            got[r.id] = r
    assert set(got) == {q.id for q in queries}
    for q in queries:
        assert got[q.id].question[0].name == q.question[0].name


def test_tcp_garbage_frame_closes_only_that_connection(srv: Server) -> None:
    with _tcp_connect(srv) as s:
        s.sendall(b"\x00\x03abc")
        s.settimeout(2)
        assert s.recv(10) == b""
    assert srv.query("a.example.org.", "A", proto="tcp").rcode() == dns.rcode.NOERROR


def test_tcp_frame_longer_than_data_waits_and_others_still_served(srv: Server) -> None:
    with _tcp_connect(srv) as s:
        s.sendall(b"\xff\xff" + _good_query())  # says 65535 bytes follow; they never do
        assert srv.query("a.example.org.", "A", proto="tcp").rcode() == dns.rcode.NOERROR


def test_udp_query_with_trailing_garbage_is_answered(srv: Server) -> None:
    reply = _raw_udp(srv, _good_query() + b"\x00garbage")
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR


def test_many_udp_queries_all_answered(srv: Server) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    ids = set()
    for i in range(200):
        q = dns.message.make_query(f"n{i}.example.org.", "A", id=i)
        s.sendto(q.to_wire(), (HOST, srv.port))
        ids.add(i)
    got = set()
    deadline = time.monotonic() + 5
    while got != ids and time.monotonic() < deadline:
        got.add(dns.message.from_wire(s.recv(4096)).id)
    s.close()
    assert got == ids


def test_same_zone_twice_on_a_port_is_an_error(tmp_path: Path) -> None:
    from tests.harness import run_cli

    conf = tmp_path / "Corefile"
    conf.write_text("example.org:1053 {\n whoami\n}\n\nexample.org:1053 {\n whoami\n}\n")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1
    assert f"{conf}:5" in r.stderr
    assert "it is already defined" in r.stderr
