"""The relay (clusterdns.server.relaypath, clusterdns.pkg.forward.udprelay) against the chain.

Two servers run the same Corefile and forward to the same scripted upstream: one relays, one
has CLUSTERDNS_RELAY=off (every query through the chain, the reference). Every question gets
the same bytes from both (IDs aside), and the coredns_* counters agree. The relay must have
answered the plain ones itself and handed the others (TC, CNAMEs, truncation, failover…) to the
chain, which the clusterdns_relay_* counters show.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Server, exchange, serve
from tests.upstreams import Reply, Upstream, answer, rcode_reply

KUBEADM = """\
.:@PORT@ {{
    bind 127.0.0.1
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       manifests {manifests}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus 127.0.0.1:@P1@
    forward . {up} {{
       max_concurrent 1000
    }}
    loop
    reload
    loadbalance
}}
"""

PLAIN = """\
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {up} {{
       {options}
    }}
}}
"""


def _soa(zone: dns.name.Name) -> dns.rrset.RRset:
    return dns.rrset.from_text(
        zone, 60, "IN", "SOA", "ns.example.test. admin.example.test. 1 7200 3600 86400 60"
    )


def script(q: dns.message.Message, proto: str) -> list[Reply]:
    """The upstream: what a reply looks like is chosen by the first label of the name."""
    name = q.question[0].name
    first = name.labels[0].decode().lower() if name.labels else ""
    qtype = q.question[0].rdtype
    r = answer(q, "192.0.2.1")
    if first == "two" and qtype == dns.rdatatype.A:
        r.answer[0].add(dns.rdata.from_text("IN", "A", "192.0.2.2"))
    elif first == "big" and qtype == dns.rdatatype.A:
        for i in range(2, 60):
            r.answer[0].add(dns.rdata.from_text("IN", "A", f"192.0.2.{i}"))
    elif first == "cname":
        r = dns.message.make_response(q)
        target = dns.name.from_text("target.example.test.")
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", target.to_text()))
        if qtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(target, 60, "IN", "A", "192.0.2.9"))
    elif first in ("nx", "nxbare"):
        r = rcode_reply(q, dns.rcode.NXDOMAIN)
        if first == "nx":
            r.authority.append(_soa(name.parent()))
    elif first == "fail":
        r = rcode_reply(q, dns.rcode.SERVFAIL)
    elif first == "tc" and proto == "udp":
        r = dns.message.make_response(q)
        r.flags |= dns.flags.TC
    elif first == "do" and r.edns >= 0:
        r.ednsflags |= dns.flags.DO
    elif first == "nsid" and r.edns >= 0:
        r.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(dns.edns.NSID, b"up")])
    elif first == "case":
        r.question[0].name = dns.name.from_text(name.to_text().lower())
    elif first == "ttl":
        r.answer[0].ttl = 0x80000001  # dnspython reads it as 0: the chain writes 0
    return [r.to_wire(want_shuffle=False)]  # the same order every time


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(script).start()
    yield up
    up.stop()


@dataclasses.dataclass
class Pair:
    relay: Server
    chain: Server


@contextlib.contextmanager
def pair(corefile: str, tmp: Path, args: tuple[str, ...] = ()) -> Iterator[Pair]:
    (tmp / "r").mkdir()
    (tmp / "c").mkdir()
    with (
        serve(corefile, tmp / "r", args=args) as relay,
        serve(corefile, tmp / "c", env={"CLUSTERDNS_RELAY": "off"}) as chain,
    ):
        yield Pair(relay, chain)


def counters(srv: Server, prefix: str = "coredns_") -> dict[tuple[str, tuple[str, ...]], float]:
    """Every sample of the server's coredns_* counters and histograms, server label aside
    (durations are timing: only their counts are compared)."""
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    for fam in text_string_to_metric_families(srv.metrics()):
        for s in fam.samples:
            if not s.name.startswith(prefix) or s.name.endswith("_created"):
                continue
            if "duration" in s.name and not s.name.endswith("_count"):
                continue
            if "conn_cache" in s.name or "version_info" in s.name:  # (the Corefiles' ports)
                continue  # the relay's socket is a pool of its own; the Corefile hash
            labels = {k: ("" if k == "server" else v) for k, v in s.labels.items()}
            out[s.name, tuple(sorted(labels.items()))] = s.value
    return out


def ask(srv: Server, q: dns.message.Message, timeout: float = 3.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q.to_wire(), ("127.0.0.1", srv.port))
        return s.recv(65535)


def relay_count(srv: Server, name: str) -> float:
    return sum(v for (n, _), v in counters(srv, "clusterdns_relay_").items() if n == name)


Make = Callable[[], dns.message.Message]


def queries() -> list[tuple[str, Make]]:
    def q(name: str, rdtype: str = "A", **kw: object) -> tuple[str, Make]:
        label = f"{name} {rdtype} {kw}"
        return label, lambda: dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]

    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    return [
        q("a.example.test."),
        q("A.Example.TEST."),
        q("a.example.test.", "AAAA"),
        q("a.example.test.", use_edns=0),
        q("a.example.test.", use_edns=0, payload=1232),
        q("a.example.test.", use_edns=0, payload=100),
        q("a.example.test.", want_dnssec=True),
        q("Do.example.test.", use_edns=0),
        q("a.example.test.", use_edns=0, options=[ecs]),
        q("nsid.example.test.", use_edns=0),
        q("two.example.test."),
        q("cname.example.test."),
        q("cname.example.test.", "AAAA"),
        q("nx.example.test."),
        q("nxbare.example.test.", use_edns=0),
        q("fail.example.test."),
        q("tc.example.test."),
        q("big.example.test."),
        q("big.example.test.", use_edns=0, payload=4096),
        q("case.Example.test."),
        q("ttl.example.test."),
        q("under_score.example.test."),
        q("a.example.test.", "MX"),
    ]


def compare(p: Pair, sort: bool = False) -> None:
    for label, make in queries():
        got, want = exchange(p.relay, make())[0], exchange(p.chain, make())[0]
        if sort:  # loadbalance shuffles: the same records in some order
            g, w = dns.message.from_wire(got), dns.message.from_wire(want)
            g.id = w.id
            if w.flags & dns.flags.TC:  # which records made it in depends on the shuffle
                assert g.flags == w.flags and len(got) == len(want), label
                continue
            assert g == w, label
            continue
        assert got[2:] == want[2:], f"{label}: relay and chain differ"


Counters = dict[tuple[str, tuple[str, ...]], float]


def same_counters(
    p: Pair, sums: bool = True, since: tuple[Counters, Counters] | None = None
) -> None:
    """`sums`: False where the loop plugin's probe (a random name of varying length) went
    through each server: size sums then differ by a byte or two, counts still agree. `since`:
    compare what was counted after these snapshots only."""
    a, b = counters(p.relay), counters(p.chain)
    if since is not None:
        a = {k: v - since[0].get(k, 0) for k, v in a.items()}
        b = {k: v - since[1].get(k, 0) for k, v in b.items()}
    if not sums:
        a = {k: v for k, v in a.items() if not k[0].endswith("_sum")}
        b = {k: v for k, v in b.items() if not k[0].endswith("_sum")}
    diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert not diff


def test_kubeadm_corefile_relay_answers_as_the_chain(upstream: Upstream, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    text = KUBEADM.format(manifests=tmp_path / "m", up=upstream.addr)
    with pair(text, tmp_path) as p:
        compare(p, sort=True)  # two/big are shuffled by loadbalance (in both)
        assert relay_count(p.relay, "clusterdns_relay_answers_total") >= 8
        assert relay_count(p.relay, "clusterdns_relay_handoffs_total") >= 5
        assert relay_count(p.chain, "clusterdns_relay_answers_total") == 0
        # Exactly the chain's bytes for the replies loadbalance leaves alone.
        for name in ("a.example.test.", "nx.example.test.", "cname.example.test."):
            q = dns.message.make_query(name, "A")
            assert exchange(p.relay, q)[0][2:] == exchange(p.chain, q)[0][2:], name
        same_counters(p, sums=False)


def test_plain_forward_relay_answers_as_the_chain(upstream: Upstream, tmp_path: Path) -> None:
    with pair(PLAIN.format(up=upstream.addr, options=""), tmp_path) as p:
        compare(p)
        assert relay_count(p.relay, "clusterdns_relay_answers_total") >= 8
        same_counters(p)


def test_relay_with_a_worker_process(upstream: Upstream, tmp_path: Path) -> None:
    """Queries a worker passes on are relayed by the main process, answered through the
    worker (the kernel spreads the clients' sockets over both processes)."""
    text = PLAIN.format(up=upstream.addr, options="")
    with pair(text, tmp_path, args=("-workers", "1")) as p:
        # The harness's readiness probe may reach a starting worker too (and be answered
        # twice): only what the queries below count is compared.
        time.sleep(1.0)
        since = counters(p.relay), counters(p.chain)
        for _ in range(3):
            compare(p)
        assert relay_count(p.relay, "clusterdns_relay_answers_total") >= 24
        same_counters(p, since=since)


@pytest.mark.parametrize("options", ["next SERVFAIL NXDOMAIN", "failover SERVFAIL NXDOMAIN"])
def test_next_and_failover_rcodes(upstream: Upstream, tmp_path: Path, options: str) -> None:
    """SERVFAIL/NXDOMAIN go on to the next forward line, or the second upstream."""
    second = Upstream(lambda q, proto: [answer(q, "198.51.100.1")]).start()
    try:
        if options.startswith("next"):
            text = f"""\
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {upstream.addr} {{
       {options}
    }}
    forward . {second.addr}
}}
"""
        else:
            text = PLAIN.format(
                up=f"{upstream.addr} {second.addr}", options=f"{options}\n       policy sequential"
            )
        with pair(text, tmp_path) as p:
            compare(p)
            for name in ("fail.example.test.", "nx.example.test."):
                for srv in (p.relay, p.chain):
                    r = srv.query(name)
                    assert r.rcode() == dns.rcode.NOERROR and r.answer, name
            same_counters(p)
    finally:
        second.stop()


def test_upstream_down_servfail_as_the_chain(tmp_path: Path) -> None:
    """Nothing answers: the relay hands its timeout to the chain, which retries until
    forward's deadline and answers SERVFAIL as it always does."""

    def script(q: dns.message.Message, proto: str) -> list[Reply] | None:
        return [answer(q)] if q.question[0].name.labels[0] == b"probe" else None

    silent = Upstream(script).start()
    try:
        with pair(PLAIN.format(up=silent.addr, options="max_fails 0"), tmp_path) as p:
            q = dns.message.make_query("down.example.test.", "A")
            with ThreadPoolExecutor(2) as pool:
                got, want = pool.map(lambda s: ask(s, q, 10.0), [p.relay, p.chain])
            assert dns.message.from_wire(got).rcode() == dns.rcode.SERVFAIL
            assert got[2:] == want[2:]
            assert relay_count(p.relay, "clusterdns_relay_handoffs_total") == 1
    finally:
        silent.stop()


def test_max_concurrent_refused(tmp_path: Path) -> None:
    slow = Upstream(lambda q, proto: [answer(q)], delay=0.5).start()
    try:
        with pair(PLAIN.format(up=slow.addr, options="max_concurrent 1"), tmp_path) as p:
            for srv in (p.relay, p.chain):
                with ThreadPoolExecutor(3) as pool:
                    rcodes = sorted(
                        pool.map(lambda i, s=srv: s.query(f"c{i}.example.test.").rcode(), range(3))
                    )
                assert rcodes == [dns.rcode.NOERROR, dns.rcode.REFUSED, dns.rcode.REFUSED]
            same_counters(p)
    finally:
        slow.stop()


@pytest.mark.parametrize(
    "name", ["a.example.test.", "Ab-c_d.E.", ".", "x.", "a\\.b.c.", "a b.c.", "\\046.x.", "é.x."]
)
def test_relayed_names_read_as_the_chain_reads_them(name: str) -> None:
    """The relay routes by the name's text: Request.qname's, or it does not relay."""
    from clusterdns.server.relaypath import _text

    n = dns.name.from_text(name)
    text = _text(n.to_wire().lower())  # type: ignore[union-attr]
    assert text is None or text == n.to_text().lower()
    assert (text is None) == ("\\" in n.to_text())
