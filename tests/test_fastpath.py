"""The fast path against the slow path (the chain), in one process, over the example cluster.

A Runtime serves the example cluster (examples/cluster, plus a headless service with 40
endpoints whose SRV answers must be cut to fit) with the example Corefile's plugins. For each
randomized query (hypothesis: names of the cluster and around it in random case, every type the
plugins answer, UDP and TCP, without EDNS and with EDNS of several sizes, DO, CD and RD bits),
the answer the fast path gives must be the answer the chain gives at the same moment — byte
for byte, the ID included — and cluster names must get fast answers at all.

With `loadbalance`, both paths shuffle: with the shuffle made the identity (monkeypatched) the
answers must still be identical bytes, and with real shuffling they must hold the same records.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clusterdns import config as config_mod
from clusterdns.config import ListenAddr
from clusterdns.runtime import Runtime
from clusterdns.server import fastpath
from clusterdns.server.dispatch import Router
from tests.harness import ROOT, free_port

CLIENT = ("10.244.1.10", 40000)

COREFILE = """\
example.org:{port} {{
    bind 127.0.0.1
    errors
    hosts {{
        10.0.0.10 db.example.org
        fd00::10 db.example.org
        ttl 60
        fallthrough
    }}
    whoami
}}

.:{port} {{
    bind 127.0.0.1
    errors
    health 127.0.0.1:{p1}
    ready 127.0.0.1:{p2}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       manifests {cluster} {extra}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus 127.0.0.1:{p3}
    forward . 127.0.0.1:{dead}
    {cache}
    {loadbalance}
}}
"""

BIG = 40  # endpoints of the big headless service: its SRV answer overflows 512 and 1232 bytes


def big_headless() -> str:
    eps = "\n".join(
        f"  - addresses: [10.245.0.{i + 1}]\n    hostname: big-{i}\n    conditions: {{ready: true}}"
        for i in range(BIG)
    )
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: big, namespace: demo}}
spec:
  clusterIP: None
  ports: [{{name: http, port: 80, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: big-1
  namespace: demo
  labels: {{kubernetes.io/service-name: big}}
addressType: IPv4
endpoints:
{eps}
ports: [{{name: http, port: 80, protocol: TCP}}]
"""


Z = "cluster.local."
NAMES = [
    f"web.demo.svc.{Z}", f"db.demo.svc.{Z}", f"db-0.db.demo.svc.{Z}", f"db-2.db.demo.svc.{Z}",
    f"big.demo.svc.{Z}", f"big-7.big.demo.svc.{Z}", f"_http._tcp.big.demo.svc.{Z}",
    f"_http._tcp.web.demo.svc.{Z}", f"_postgres._tcp.db.demo.svc.{Z}", f"search.demo.svc.{Z}",
    f"kubernetes.default.svc.{Z}", f"kube-dns.kube-system.svc.{Z}", f"_dns._udp.kube-dns.kube-system.svc.{Z}",
    f"10-244-1-10.demo.pod.{Z}", f"nothere.demo.svc.{Z}", f"web.nons.svc.{Z}", f"demo.svc.{Z}",
    f"svc.{Z}", Z, f"dns-version.{Z}", f"x.web.demo.svc.{Z}",
    "10.100.96.10.in-addr.arpa.", "1.0.96.10.in-addr.arpa.", "20.1.244.10.in-addr.arpa.",
    "db.example.org.", "other.example.org.", "example.org.",
]  # fmt: skip
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "NS", "SOA", "MX", "CNAME", "ANY", "HINFO"]


class Served:
    """A Runtime in its own event loop, with the router of its one address."""

    def __init__(self, corefile: str) -> None:
        self.loop = asyncio.new_event_loop()
        cfg = config_mod.build(
            config_mod.parse_corefile_text(corefile, "Corefile"), "Corefile", corefile
        )
        self.rt = Runtime(cfg)
        self.loop.run_until_complete(self.rt.start())
        (self.router,) = {lst.router for lst in self.rt.listeners.values()}

    def slow(self, data: bytes, proto: str) -> tuple[bytes | None, Any]:
        local = ("127.0.0.1", 53)
        return self.loop.run_until_complete(self.router.serve(data, CLIENT, local, proto))

    def fast(self, data: bytes, proto: str) -> bytes | None:
        assert self.router.fast is not None
        return self.router.fast.answer(data, CLIENT[0], proto)

    def close(self) -> None:
        self.loop.run_until_complete(self.rt.stop(lameduck=False))
        self.loop.close()


def served(tmp: Path, cache: bool, loadbalance: bool) -> Served:
    extra = tmp / "extra"
    extra.mkdir(exist_ok=True)
    (extra / "big.yaml").write_text(big_headless())
    text = COREFILE.format(
        port=free_port(), p1=free_port(), p2=free_port(), p3=free_port(), dead=free_port(),
        cluster=ROOT / "examples" / "cluster", extra=extra,
        cache="cache 30" if cache else "", loadbalance="loadbalance" if loadbalance else "",
    )  # fmt: skip
    return Served(text)


@pytest.fixture(scope="module", params=["cache", "nocache"])
def plain(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    s = served(tmp_path_factory.mktemp("fp"), cache=request.param == "cache", loadbalance=False)
    yield s
    s.close()


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = served(tmp_path_factory.mktemp("fplb"), cache=True, loadbalance=True)
    yield s
    s.close()


def random_case(name: str, rnd: random.Random) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c for c in name)


@st.composite
def queries(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    """(query as the entry is filled, the same query in another case, transport)."""
    name = draw(st.sampled_from(NAMES))
    rdtype = draw(st.sampled_from(TYPES))
    edns = draw(st.sampled_from([None, 512, 1232, 2500, 4096, 65535]))
    do = draw(st.booleans()) if edns is not None else False
    q = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 0,
                               want_dnssec=do)  # fmt: skip
    q.id = draw(st.integers(0, 65535))
    q.flags = (dns.flags.RD if draw(st.booleans()) else 0) | (
        dns.flags.CD if draw(st.integers(0, 4)) == 0 else 0
    )
    other = dns.message.make_query(random_case(name, random.Random(draw(st.integers()))), rdtype)
    other.flags, other.id = q.flags, draw(st.integers(0, 65535))
    if edns is not None:
        other.use_edns(0, q.ednsflags, edns)
    return q.to_wire(), other.to_wire(), draw(st.sampled_from(["udp", "tcp"]))


def same_moment(s: Served, data: bytes, proto: str) -> tuple[bytes | None, bytes | None]:
    """The slow and the fast answer to `data`, retried if a second ticked in between (the
    cache's TTLs count down in whole seconds)."""
    for _ in range(3):
        fast = s.fast(data, proto)
        slow, _ = s.slow(data, proto)
        if fast is None or fast == slow:
            return slow, fast
    return slow, fast


def fill(s: Served, data: bytes, proto: str) -> Any:
    s.slow(data, proto)  # a cache miss is never kept: the next answer is a hit
    return s.slow(data, proto)[1]


HYPO = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@HYPO
@given(qs=queries())
def test_fast_answers_are_the_chains(plain: Served, qs: tuple[bytes, bytes, str]) -> None:
    data, other, proto = qs
    kept = fill(plain, data, proto)
    slow, fast = same_moment(plain, data, proto)
    event("fast" if fast is not None else "slow only")
    assert fast is None or fast == slow
    if kept is not None:
        assert fast is not None, "an entry was kept but not used"
    # Another spelling: patched from the entry when only the question shows the case.
    for _ in range(3):
        fast = plain.fast(other, proto)
        slow, _ = plain.slow(other, proto)
        if fast is None or fast == slow:
            break
        fill(plain, data, proto)  # a second ticked in between: try again
    event("other case: fast" if fast is not None else "other case: slow only")
    assert fast is None or fast == slow


def test_cluster_names_are_answered_fast(plain: Served) -> None:
    """Not vacuous: every name of the cluster is kept, over UDP and TCP."""
    for name in [n for n in NAMES[:13] if not n.startswith("search.")]:  # ExternalName: upstream
        for rdtype in ("A", "AAAA", "SRV"):
            for proto in ("udp", "tcp"):
                q = dns.message.make_query(name, rdtype, use_edns=True, payload=1232)
                data = q.to_wire()
                assert fill(plain, data, proto) is not None, (name, rdtype, proto)
                slow, fast = same_moment(plain, data, proto)
                assert fast is not None and fast == slow


@HYPO
@given(qs=queries())
def test_loadbalance_identity_shuffle(
    balanced: Served, qs: tuple[bytes, bytes, str], identity_shuffle: None
) -> None:
    """With the shuffle fixed, loadbalanced answers (cut to fit included) are the same bytes."""
    data, _, proto = qs
    fill(balanced, data, proto)
    slow, fast = same_moment(balanced, data, proto)
    event("fast" if fast is not None else "slow only")
    assert fast is None or fast == slow


def test_loadbalance_cut_to_fit_identity(balanced: Served, identity_shuffle: None) -> None:
    """Answers too big for the client, shuffled records cut to fit: still the same bytes."""
    kept = cut = 0
    for name, rdtype in ((f"_http._tcp.big.demo.svc.{Z}", "SRV"), (f"big.demo.svc.{Z}", "A")):
        for payload in (None, 512, 1232, 2500, 2700, 4096):
            for proto in ("udp", "tcp"):
                q = dns.message.make_query(
                    name, rdtype, use_edns=payload is not None, payload=payload or 0
                )
                data = q.to_wire()
                kept += fill(balanced, data, proto) is not None
                slow, fast = same_moment(balanced, data, proto)
                assert fast is not None and fast == slow, (name, payload, proto)
                cut += bool(slow and slow[2] & 0x02)
    assert kept == 24 and cut == 7  # TC: the SRV answers under 4096 bytes, A under 1232


def records(wire: bytes) -> tuple[Any, ...]:
    m = dns.message.from_wire(wire)
    sections = tuple(
        sorted(f"{rrset.name} {rrset.ttl} {rd}" for rrset in s for rd in rrset)
        for s in (m.answer, m.authority)
    )
    return (m.id, m.flags, m.edns, m.payload, m.question, *sections)


def test_loadbalance_shuffles_fast_answers(balanced: Served) -> None:
    q = dns.message.make_query(f"big.demo.svc.{Z}", "A", use_edns=True, payload=4096)
    data = q.to_wire()
    fill(balanced, data, "udp")
    orders = set()
    for _ in range(20):
        fast = balanced.fast(data, "udp")
        assert fast is not None
        for _ in range(3):  # the cache's TTL may tick between the two answers (under load)
            slow = balanced.slow(data, "udp")[0] or b""
            if records(fast) == records(slow):
                break
            fast = balanced.fast(data, "udp")
            assert fast is not None
        assert records(fast) == records(slow)
        orders.add(tuple(str(rd) for rd in dns.message.from_wire(fast).answer[0]))
    assert len(orders) > 1
    # 40 SRV records fit in 2500 bytes, their targets' addresses do not all: as many
    # additional records as fit, from a new shuffle each time, and TC (as CoreDNS sets it
    # whenever a record is left out).
    q = dns.message.make_query(f"_http._tcp.big.demo.svc.{Z}", "SRV", use_edns=True, payload=2500)
    data = q.to_wire()
    fill(balanced, data, "udp")
    extras = set()
    for _ in range(20):
        fast = balanced.fast(data, "udp")
        assert fast is not None and len(fast) <= 2500
        m = dns.message.from_wire(fast)
        assert m.flags & dns.flags.TC and len(m.answer[0]) == BIG
        assert 0 < len(m.additional) < BIG
        extras.add(tuple(sorted(f"{rrset.name} {rd}" for rrset in m.additional for rd in rrset)))
    assert len(extras) > 1


@pytest.fixture
def identity_shuffle() -> Iterator[None]:
    """random.shuffle as the identity, for both paths, while the test runs."""
    saved = random.shuffle
    random.shuffle = lambda x, *a: None  # type: ignore[assignment]
    try:
        yield
    finally:
        random.shuffle = saved


def test_reload_and_data_change_void_entries(plain: Served) -> None:
    q = dns.message.make_query(f"web.demo.svc.{Z}", "A")
    data = q.to_wire()
    fill(plain, data, "udp")
    assert plain.fast(data, "udp") is not None
    fastpath.new_epoch()  # what a reload does
    assert plain.fast(data, "udp") is None
    fill(plain, data, "udp")
    assert plain.fast(data, "udp") is not None


def test_vetoed_answers_are_not_kept(plain: Served) -> None:
    """whoami (the client's address), forward (upstream) and errors are never replayed."""
    for name, rdtype in (("other.example.org.", "A"), ("www.example.com.", "A")):
        data = dns.message.make_query(name, rdtype).to_wire()
        assert fill(plain, data, "udp") is None
        assert plain.fast(data, "udp") is None


def test_router_without_fast_path() -> None:
    """Routers made elsewhere (clusterdns query) never keep anything."""
    assert Router(ListenAddr("dns", "127.0.0.1", 53), {}).fast is None


def test_identical_queries_wait_for_one_chain_run(plain: Served) -> None:
    """A burst of one question whose entry just went void costs the chain once."""
    data = dns.message.make_query(f"kubernetes.default.svc.{Z}", "A").to_wire()
    fill(plain, data, "udp")
    fastpath.new_epoch()  # void: the next query goes to the chain
    runs = 0
    real = plain.router._serve

    async def counted(*a: Any) -> Any:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)  # as if waiting on an upstream: the others arrive meanwhile
        return await real(*a)

    plain.router._serve = counted  # type: ignore[method-assign]
    try:

        async def burst() -> list[Any]:
            local = ("127.0.0.1", 53)
            return await asyncio.gather(
                *(plain.router.serve(data, CLIENT, local, "udp") for _ in range(10))
            )

        answers = plain.loop.run_until_complete(burst())
    finally:
        del plain.router._serve
    assert runs == 1
    assert len({w for w, _ in answers}) == 1 and answers[0][0] is not None
