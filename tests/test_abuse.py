"""Abusive clients: idle and half-sent TCP connections, slowloris, a UDP flood of new names.

Each test starts its own server (they load it on purpose) and checks that a well-behaved
client is still served.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from clusterdns.server.backlog import Dropped, Limits
from clusterdns.server.pacer import Pacer
from tests.harness import HOST, Server, metric, serve

TCP = """
example.org:@PORT@ {
    bind 127.0.0.1
    whoami
}
"""


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Raise this process's soft RLIMIT_NOFILE (the server raises its own at start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < 2000:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 1,700 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect(port: int) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return s


def test_idle_and_half_sent_connections_do_not_lock_clients_out(
    tmp_path: Path, many_fds: None
) -> None:
    """1,500 idle and 200 half-sent connections: a new client is still answered at once
    (the connection idle the longest is closed to make room, RFC 7766 §6.2.3)."""
    wire = dns.message.make_query("held.example.org.", "A").to_wire()
    socks: list[socket.socket] = []
    with serve(TCP, tmp_path) as srv:
        try:
            for _ in range(1500):
                socks.append(_connect(srv.port))
            for _ in range(200):
                s = _connect(srv.port)
                s.sendall(len(wire).to_bytes(2, "big") + wire[:5])  # never completed
                socks.append(s)
            for _ in range(3):
                r = dns.query.tcp(
                    dns.message.make_query("fresh.example.org.", "A"), HOST, port=srv.port,
                    timeout=1.0,
                )  # fmt: skip
                assert r.rcode() == dns.rcode.NOERROR
            r = srv.query("fresh.example.org.", "A")  # and UDP, of course
            assert r.rcode() == dns.rcode.NOERROR
        finally:
            for s in socks:
                s.close()


def test_idle_timeout_shrinks_under_pressure(tmp_path: Path, many_fds: None) -> None:
    """900 connections that each had a query answered: past half the bound (512) the ones idle
    the longest are closed before the 10s idle timeout, until the pressure eases."""
    import selectors

    socks: list[socket.socket] = []
    with serve(TCP, tmp_path) as srv:
        try:
            first = 0.0
            for _ in range(900):
                s = _connect(srv.port)
                dns.query.tcp(dns.message.make_query("idle.example.org.", "A"), HOST, sock=s)
                first = first or time.monotonic()
                socks.append(s)
            sel = selectors.DefaultSelector()
            for s in socks:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            closed = 0
            deadline = first + 8  # the first one is then idle 8s: under the 10s idle timeout
            while closed < 200 and time.monotonic() < deadline:
                for key, _ in sel.select(0.2):
                    sel.unregister(key.fileobj)
                    closed += 1
            assert closed >= 200, f"only {closed} of 900 idle connections closed"
            r = dns.query.tcp(dns.message.make_query("x.example.org.", "A"), HOST, port=srv.port)
            assert r.rcode() == dns.rcode.NOERROR
        finally:
            for s in socks:
                s.close()


def _closed_by_server(s: socket.socket, trickle: bytes, until: float) -> bool:
    """Send `trickle` a byte every 0.3s; True once the server closed the connection."""
    s.settimeout(0.3)
    for b in trickle:
        if time.monotonic() > until:
            return False
        try:
            s.sendall(bytes([b]))
            if s.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_slowloris_connections_are_closed(tmp_path: Path) -> None:
    """A message sent a byte at a time must still arrive within the read timeout (3s, as
    CoreDNS's): each byte does not restart the clock, as it would with only an idle timeout."""
    wire = dns.message.make_query("slow.example.org.", "A").to_wire()
    framed = len(wire).to_bytes(2, "big") + wire
    with serve(TCP, tmp_path) as srv:
        # A complete first query, then the next one trickled byte by byte.
        s = socket.create_connection((HOST, srv.port), timeout=3)
        with s:
            r = dns.query.tcp(dns.message.make_query("a.example.org.", "A"), HOST, sock=s)
            assert r.rcode() == dns.rcode.NOERROR
            assert _closed_by_server(s, framed * 10, time.monotonic() + 9)
        # Only a length prefix, a byte at a time.
        s = socket.create_connection((HOST, srv.port), timeout=3)
        with s:
            s.sendall(framed[:1])
            assert _closed_by_server(s, b"\x00" * 30, time.monotonic() + 9)


FLOOD = """
example.org:@PORT@ {
    bind 127.0.0.1
    whoami
}
.:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . 127.0.0.1:HOLE
}
"""


def _rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def _wait_answering(srv: Server) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            srv.query("warm.example.org.", timeout=0.2)
            return
        except dns.exception.Timeout:
            time.sleep(0.05)
    raise AssertionError(srv.output)


def _answered_within(srv: Server, name: str, seconds: float) -> bool:
    """Asked again every 0.2s, as a stub resolver retries: the first try may meet the tail of
    the flood in the kernel's full receive queue, which drops it before the server sees it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            r = srv.query(name, timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            return r.rcode() == dns.rcode.NOERROR
        except (dns.exception.Timeout, BlockingIOError):
            continue
    return False


def test_udp_flood_of_new_names_is_bounded(tmp_path: Path) -> None:
    """50,000 never-seen names forwarded to an upstream that never answers: memory stays
    bounded, the drops are counted, and a new name is answered within a second after."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # reads nothing: a black hole
    hole.bind((HOST, 0))
    corefile = FLOOD.replace("HOLE", str(hole.getsockname()[1]))
    wires = [dns.message.make_query(f"n{i}.flood.test.", "A").to_wire() for i in range(50_000)]
    with hole, serve(corefile, tmp_path, wait=False) as srv:
        _wait_answering(srv)
        label = f"dns://127.0.0.1:{srv.port}"
        before = _rss_mib(srv.proc.pid)
        peak = before
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i, w in enumerate(wires):
                s.sendto(w, (HOST, srv.port))
                if i % 500 == 499:  # let the server read them rather than the kernel drop them
                    time.sleep(0.01)
                    peak = max(peak, _rss_mib(srv.proc.pid))
        assert _answered_within(srv, "never-asked.example.org.", 1.0)
        for _ in range(6):  # the forwarded queries time out meanwhile
            time.sleep(0.5)
            peak = max(peak, _rss_mib(srv.proc.pid))
        assert peak - before < 50, f"RSS {before} MiB before, {peak} MiB at the peak"
        body = srv.metrics()
        dropped = sum(
            metric(body, "clusterdns_udp_dropped_total", server=label, reason=reason) or 0
            for reason in ("overflow", "stale", "cancelled")
        )
        assert dropped > 0, body
        assert _answered_within(srv, "after.example.org.", 1.0)


# ---- the pacer's bounded queue, on a real event loop --------------------------------------


async def _queued(p: Pacer, n: int) -> list[asyncio.Task[str]]:
    async def one(i: int) -> str:
        try:
            await p.turn()
        except Dropped as e:
            return f"{i}:{e.reason}"
        return f"{i}:ran"

    p.first = time.perf_counter() - 1  # this turn's budget is spent: everything queues
    tasks = [asyncio.get_running_loop().create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0)  # each task asks for its turn, in order
    return tasks


def test_pacer_bounds_the_queue_and_starts_the_newest_first() -> None:
    async def run() -> list[str]:
        p = Pacer()
        p.sheddable = lambda task: True
        p.limits = Limits(waiting=3, inflight=100, max_age=60)
        tasks = await _queued(p, 5)
        order: list[str] = []
        for t in tasks:
            t.add_done_callback(lambda t: order.append(t.result()))
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(run())
    # 0 and 1 were pushed out by 3 and 4; the three left start newest first.
    assert order[:2] == ["0:overflow", "1:overflow"]
    assert order[2:] == ["4:ran", "3:ran", "2:ran"]


def test_pacer_drops_queries_waiting_too_long_but_never_tcp() -> None:
    async def run() -> list[str]:
        p = Pacer()
        udp: set[asyncio.Task[object] | None] = set()
        p.sheddable = lambda task: task in udp
        p.limits = Limits(waiting=10, inflight=100, max_age=0.0)
        p.first = time.perf_counter() - 1  # this turn's budget is spent: everything queues

        async def one(i: int, sheddable: bool) -> str:
            if sheddable:
                udp.add(asyncio.current_task())
            try:
                await p.turn()
            except Dropped as e:
                return f"{i}:{e.reason}"
            return f"{i}:ran"

        tasks = [asyncio.get_running_loop().create_task(one(i, i % 2 == 0)) for i in range(4)]
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(run()) == ["0:stale", "1:ran", "2:stale", "3:ran"]
