"""The fast path in the running server, with a worker process: what clients and scrapes see.

A server with the fast path and one worker (`-workers 1`) and one without the fast path
(CLUSTERDNS_FASTPATH=off) serve the example cluster; the same queries, each from a fresh
client port (so the kernel spreads them over the main process and the worker), must get the
same bytes over UDP and TCP, and the per-query metrics must count the same. Logging blocks stay
on the slow path, a reload and a change of the cluster are seen at once, a killed worker is
started again.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rdatatype
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusterdns.server.fastwire import walk
from tests.harness import ROOT, Server, exchange, metric

CLUSTER = ROOT / "examples" / "cluster"
WORKERS = ("-workers", "1")
SLOW = {"CLUSTERDNS_FASTPATH": "off"}
Z = "cluster.local."

K8S = """\
.:@PORT@ {
    bind 127.0.0.1
    errors
    ready 127.0.0.1:@P2@
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests {manifests}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus 127.0.0.1:@P1@
    {extra}
}
"""

NAMES = [
    f"web.demo.svc.{Z}", f"db.demo.svc.{Z}", f"db-1.db.demo.svc.{Z}", f"_http._tcp.web.demo.svc.{Z}",
    f"_postgres._tcp.db.demo.svc.{Z}", f"kube-dns.kube-system.svc.{Z}", f"nothere.demo.svc.{Z}",
    f"10-244-1-10.demo.pod.{Z}", Z, "10.100.96.10.in-addr.arpa.",
]  # fmt: skip


def corefile(manifests: Path = CLUSTER, extra: str = "") -> str:
    return K8S.replace("{manifests}", str(manifests)).replace("{extra}", extra)


def query(name: str, rdtype: str, edns: int | None, do: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 0,
                               want_dnssec=do)  # fmt: skip
    q.id = 4321
    return q


def mask_serial(wire: bytes) -> bytes:
    """The SOA serial is when each server last saw the cluster change: the two servers read
    the files in different seconds. Everything else must be the same bytes."""
    recs = walk(wire)
    assert recs is not None
    out = bytearray(wire)
    for _, _, ttl_off, _, rtype in recs:
        if rtype == dns.rdatatype.SOA:
            i = ttl_off + 6
            for _ in range(2):  # MNAME, RNAME
                while out[i] and out[i] < 0xC0:
                    i += out[i] + 1
                i += 2 if out[i] >= 0xC0 else 1
            out[i : i + 4] = b"\0\0\0\0"
    return bytes(out)


def test_same_bytes_as_the_slow_path(server_factory: Callable[..., Server]) -> None:
    fast = server_factory(corefile(), args=WORKERS)
    slow = server_factory(corefile(), env=SLOW)
    variants = [(None, False), (1232, False), (4096, True), (512, True)]
    n = 0
    for name, rdtype, (edns, do), proto in itertools.product(
        NAMES, ["A", "AAAA", "SRV", "PTR", "SOA", "NS", "TXT"], variants, ["udp", "tcp"]
    ):
        q = query(name, rdtype, edns, do)
        want = mask_serial(exchange(slow, q, proto)[0])
        for _ in range(2):  # the first answer fills the entry, the second is replayed
            got = mask_serial(exchange(fast, q, proto)[0])
            assert got == want, (name, rdtype, edns, do, proto)
        n += 1
    text = fast.metrics("P1")
    for proto in ("udp", "tcp"):
        answers = metric(text, "clusterdns_fastpath_answers_total", proto=proto,
                         server=f"dns://127.0.0.1:{fast.port}")  # fmt: skip
        assert answers is not None and answers >= n / 4
    assert "clusterdns_fastpath_answers_total{" not in slow.metrics("P1")


PER_QUERY = (
    "coredns_dns_requests_total", "coredns_dns_responses_total", "coredns_dns_do_requests_total",
    "coredns_dns_request_size_bytes", "coredns_dns_response_size_bytes",
    "coredns_cache_requests_total", "coredns_cache_hits_total", "coredns_cache_misses_total",
)  # fmt: skip


def samples(text: str, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if (
                fam.name in PER_QUERY
                or s.name in PER_QUERY
                or (s.name == "coredns_dns_request_duration_seconds_count")
            ):
                labels = {k: v.replace(str(port), "PORT") for k, v in s.labels.items()}
                out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def test_metrics_count_every_fast_answer(server_factory: Callable[..., Server]) -> None:
    """Counters and histograms (durations aside) are what the slow path counts, at once."""
    fast = server_factory(corefile(extra="cache 30\n    loadbalance"), args=WORKERS)
    slow = server_factory(corefile(extra="cache 30\n    loadbalance"), env=SLOW)
    shapes = [("udp", None, False), ("udp", 1232, True), ("tcp", None, False)]
    for srv in (fast, slow):
        for name, rdtype, (proto, edns, do), _ in itertools.product(
            NAMES[:7], ["A", "AAAA", "SRV"], shapes, range(4)
        ):
            exchange(srv, query(name, rdtype, edns, do), proto)
    # A scrape waits 0.5 s for the worker's batches; one late on a loaded machine is folded
    # in by the next scrape, so ask again for a while before judging.
    deadline = time.monotonic() + 5
    while True:
        got = samples(fast.metrics("P1"), fast.port)
        want = samples(slow.metrics("P1"), slow.port)
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == want
    total = sum(v for (n, _), v in got.items() if n == "coredns_dns_requests_total")
    assert total == 252 + 1  # and the harness's readiness probe
    for proto in ("udp", "tcp"):
        n = metric(fast.metrics("P1"), "clusterdns_fastpath_answers_total", proto=proto,
                   server=f"dns://127.0.0.1:{fast.port}")  # fmt: skip
        assert n is not None and n >= 21 * (2 if proto == "udp" else 1)


def test_logged_blocks_stay_on_the_chain(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(corefile(extra=f"log web.demo.svc.{Z}"), args=WORKERS)
    for _ in range(6):
        exchange(srv, query(f"web.demo.svc.{Z}", "A", None))  # logged: never replayed
        exchange(srv, query(f"db.demo.svc.{Z}", "A", None))  # not logged: replayed
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and srv.output.count("web.demo.svc") < 6:
        time.sleep(0.05)
    assert srv.output.count(f'"A IN web.demo.svc.{Z} udp') == 6
    assert f"db.demo.svc.{Z}" not in srv.output
    answers = metric(srv.metrics("P1"), "clusterdns_fastpath_answers_total", proto="udp",
                     server=f"dns://127.0.0.1:{srv.port}")  # fmt: skip
    assert answers is not None and 1 <= answers <= 5


HOSTS = """\
.:@PORT@ {
    bind 127.0.0.1
    hosts {
        IP fixed.example.
        reload 0
    }
    ready 127.0.0.1:@P1@
    health 127.0.0.1:@P2@
}
"""


def answers(srv: Server, name: str, times: int = 10) -> set[str]:
    out: set[str] = set()
    for _ in range(times):
        wire, _ = exchange(srv, query(name, "A", None))
        out |= {rd.to_text() for rrset in dns.message.from_wire(wire).answer for rd in rrset}
    return out


def test_reload_voids_every_entry(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(HOSTS.replace("IP", "10.0.0.1"), args=WORKERS)
    assert answers(srv, "fixed.example.") == {"10.0.0.1"}
    assert srv.http("P1", "/ready")[0] == 200 and srv.http("P2", "/health")[0] == 200
    srv.conf.write_text(srv.conf.read_text().replace("10.0.0.1", "10.0.0.2"))
    srv.signal(signal.SIGUSR1)
    srv.wait_output(r"\[INFO\] Reloading complete")
    assert answers(srv, "fixed.example.", 20) == {"10.0.0.2"}  # main and worker alike


def test_cluster_change_is_seen(server_factory: Callable[..., Server], tmp_path: Path) -> None:
    d = tmp_path / "cluster"
    d.mkdir()
    svc = (CLUSTER / "demo" / "web.yaml").read_text()
    (d / "web.yaml").write_text(svc)
    srv = server_factory(corefile(manifests=d), args=WORKERS)
    name = f"web.demo.svc.{Z}"
    assert answers(srv, name) == {"10.96.100.10"}
    (d / "web.yaml").write_text(svc.replace("10.96.100.10", "10.96.100.99"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and answers(srv, name, 1) != {"10.96.100.99"}:
        time.sleep(0.05)
    assert answers(srv, name, 20) == {"10.96.100.99"}


def _worker(srv: Server) -> psutil.Process:
    """The live worker process (ValueError while there is none, or more than one)."""
    workers = []
    for k in psutil.Process(srv.proc.pid).children():
        try:  # a killed worker not yet reaped is a zombie: no command line
            if "clusterdns.server.worker" in " ".join(k.cmdline()):
                workers.append(k)
        except psutil.Error:
            continue
    (w,) = workers
    return w


def test_worker_restarted_and_stopped_with_the_server(
    server_factory: Callable[..., Server],
) -> None:
    srv = server_factory(corefile(), args=WORKERS)
    first = _worker(srv)
    os.kill(first.pid, signal.SIGKILL)
    srv.wait_output(r"fast path: worker 0 exited")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            second = _worker(srv)
            if second.pid != first.pid:
                break
        except ValueError:
            pass
        time.sleep(0.05)
    assert second.pid != first.pid
    assert answers(srv, f"web.demo.svc.{Z}", 20) == {"10.96.100.10"}
    assert srv.stop() == 0
    assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("value", ["-1", "many"])
def test_bad_worker_count(server_factory: Callable[..., Server], value: str) -> None:
    from tests.harness import run_cli

    r = run_cli("-workers", value, "-conf", "/nonexistent")
    assert r.returncode == 2 and "invalid worker count" in r.stderr
