"""Random bytes at both transports: the server answers or stays silent, and keeps serving."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import HOST, Server, serve

COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    errors
    log
    any
    chaos
    hosts {
        10.0.0.1 a.example.org
        fallthrough
    }
    loadbalance
    whoami
}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("fuzz")) as s:
        yield s


def _header() -> st.SearchStrategy[bytes]:
    """A query-looking header (QR clear, opcode QUERY, QDCOUNT 1) to get past the first checks."""
    return st.builds(
        lambda qid, flags, counts: (
            qid.to_bytes(2, "big") + (flags & 0x07FF).to_bytes(2, "big") + b"\x00\x01" + counts
        ),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.binary(min_size=6, max_size=6),
    )


packets = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda h, body: h + body, _header(), st.binary(max_size=300)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=packets)
def test_random_udp_packets(srv: Server, data: bytes) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(data, (HOST, srv.port))
        try:
            reply = s.recv(65535)
        except TimeoutError:
            reply = None
    finally:
        s.close()
    if reply is not None:
        r = dns.message.from_wire(reply, ignore_trailing=True)
        assert r.id == int.from_bytes(data[:2], "big")
    assert srv.proc.poll() is None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=st.lists(st.binary(min_size=0, max_size=200), min_size=1, max_size=4))
def test_random_tcp_frames(srv: Server, frames: list[bytes]) -> None:
    with socket.create_connection((HOST, srv.port), timeout=2) as s:
        s.settimeout(0.3)
        s.sendall(b"".join(len(f).to_bytes(2, "big") + f for f in frames))
        try:
            while s.recv(65535):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    assert srv.proc.poll() is None
    assert srv.query("a.example.org.", "A").rcode() == dns.rcode.NOERROR
