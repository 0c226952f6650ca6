"""cache: hits and misses, TTL countdown, the key (DO, CD, case), zones, denial and SERVFAIL
caching, disable, keepttl, capacity and eviction, prefetch, serve_stale, metrics, setup errors.

Backends are plugins of the same server: `hosts` (its file is rewritten to change an answer
under the cache, and a name it does not know gets SERVFAIL), `kubernetes` serving manifests
(NXDOMAIN and NODATA with an SOA, for denial caching) and `whoami` (its answer carries the
client's source port, so a reply from the cache is recognisable: it shows the port of the
query that filled the entry). A name outside the cache's zones (`probe.other.org`) is always
answered by hosts itself: it tells when hosts has re-read its file.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.config import build
from clusterdns.corefile.parser import parse_corefile_text
from clusterdns.errors import ConfigErrors
from tests.harness import DEMO_WEB, HOST, Server, exchange, metric, run_cli, serve

Factory = Callable[..., Server]

K8S = DEMO_WEB

MAIN = """
.:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    log
    cache 30 example.org cluster.local who.test
    hosts hosts.txt example.org other.org {
        ttl 20
    }
    kubernetes cluster.local {
        manifests k8s.yaml
        ttl 30
    }
    whoami
}
"""
ZONES_LABEL = "example.org.,cluster.local.,who.test."


def label(srv: Server) -> str:
    return f"dns://{HOST}:{srv.port}"


def hosts_file(path: Path, *lines: str) -> None:
    """Rewrite the hosts file; `probe.other.org` carries a fresh value each time."""
    stamp = f"10.200.{int(time.time() * 1000) % 250}.{len(lines) + 1}"
    path.write_text("\n".join([*lines, f"{stamp} probe.other.org", ""]))
    path.with_suffix(".stamp").write_text(stamp)


def wait_reloaded(srv: Server, path: Path, timeout: float = 5.0) -> None:
    """Until hosts serves the probe value last written (probe.other.org is not cached)."""
    want = path.with_suffix(".stamp").read_text()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = srv.query("probe.other.org", "A")
        if r.answer and r.answer[0][0].to_text() == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"hosts never served {want}")


def address(r: dns.message.Message) -> str:
    assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())
    return r.answer[0][0].to_text()


def ttl_of(r: dns.message.Message) -> int:
    return min(rrset.ttl for rrset in [*r.answer, *r.authority, *r.additional])


def whoami_port(r: dns.message.Message) -> int:
    srv = [rrset for rrset in r.additional if rrset.rdtype == dns.rdatatype.SRV]
    return int(srv[0][0].port)


def query_from(srv: Server, q: dns.message.Message) -> tuple[dns.message.Message, int]:
    """Send `q` from a fresh socket; return the reply and the source port used."""
    wire, port = exchange(srv, q)
    return dns.message.from_wire(wire), port


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cache")
    hosts_file(tmp / "hosts.txt", "10.0.0.1 a.example.org", "10.0.0.5 case.example.org")
    (tmp / "k8s.yaml").write_text(K8S)
    with serve(MAIN, tmp) as s:
        yield s


# ---- hits, misses, TTLs --------------------------------------------------------------------


def test_ttl_counts_down_and_keepttl_keeps_it(main: Server, server_factory: Factory,
                                               tmp_path: Path) -> None:  # fmt: skip
    hosts_file(tmp_path / "hosts.txt", "10.0.0.1 a.example.org")
    keep = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n cache 30 {\n keepttl\n }\n"
        " hosts hosts.txt {\n ttl 20\n }\n}\n"
    )
    before = metric(main.metrics(), "coredns_cache_hits_total", server=label(main),
                    type="success", zones=ZONES_LABEL, view="") or 0  # fmt: skip
    first = main.query("a.example.org", "A")
    neg = main.query("nope.demo.svc.cluster.local", "A")
    nodata = main.query("web.demo.svc.cluster.local", "AAAA")
    k1 = keep.query("a.example.org", "A")
    assert (address(first), ttl_of(first)) == ("10.0.0.1", 20)
    assert neg.rcode() == dns.rcode.NXDOMAIN and ttl_of(neg) == 30
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and ttl_of(nodata) == 30
    assert ttl_of(k1) == 20
    time.sleep(1.1)
    for proto in ("udp", "tcp"):
        again = main.query("a.example.org", "A", proto=proto)
        assert address(again) == "10.0.0.1"
        assert 18 <= ttl_of(again) <= 19, again
        assert again.flags & dns.flags.AA  # as CoreDNS: answers from the cache are AA
        neg2 = main.query("nope.demo.svc.cluster.local", "A", proto=proto)
        assert neg2.rcode() == dns.rcode.NXDOMAIN and 28 <= ttl_of(neg2) <= 29
        assert neg2.authority[0].rdtype == dns.rdatatype.SOA
        nodata2 = main.query("web.demo.svc.cluster.local", "AAAA", proto=proto)
        assert nodata2.rcode() == dns.rcode.NOERROR and 28 <= ttl_of(nodata2) <= 29
        assert ttl_of(keep.query("a.example.org", "A", proto=proto)) == 20
    text = main.metrics()
    hits = metric(text, "coredns_cache_hits_total", server=label(main), type="success",
                  zones=ZONES_LABEL, view="")  # fmt: skip
    assert hits == before + 2
    denial = metric(text, "coredns_cache_hits_total", server=label(main), type="denial",
                    zones=ZONES_LABEL, view="")  # fmt: skip
    assert denial is not None and denial >= 4


def test_hit_keeps_client_id_and_question_case(main: Server) -> None:
    main.query("case.example.org", "A")
    q = dns.message.make_query("CaSe.ExAmPlE.oRg", "A")
    wire, _ = exchange(main, q)
    r = dns.message.from_wire(wire)
    assert r.id == q.id
    assert b"\x04CaSe\x07ExAmPlE\x03oRg\x00" in wire
    assert address(r) == "10.0.0.5"


def test_hit_is_logged_and_counted_as_the_cache_answer(main: Server) -> None:
    main.query("a.example.org", "MX")  # NODATA from hosts: a positive, empty answer
    r = main.query("a.example.org", "MX")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    main.wait_output(r'"MX IN a\.example\.org\. udp \d+ false \d+" NOERROR qr,aa,rd(.|\n)*'
                     r'"MX IN a\.example\.org\. udp \d+ false \d+" NOERROR qr,aa,rd')  # fmt: skip
    text = main.metrics()
    by_cache = metric(text, "coredns_dns_responses_total", server=label(main), zone=".",
                      view="", rcode="NOERROR", plugin="cache")  # fmt: skip
    assert by_cache is not None and by_cache >= 1


def test_do_and_cd_are_part_of_the_key(main: Server) -> None:
    def ask(do: bool = False, cd: bool = False) -> tuple[int, int]:
        q = dns.message.make_query("key.who.test", "A", want_dnssec=do)
        if cd:
            q.flags |= dns.flags.CD
        r, port = query_from(main, q)
        return whoami_port(r), port

    plain, p1 = ask()
    assert plain == p1
    assert ask()[0] == p1  # from the cache: the first client's port
    with_do, p2 = ask(do=True)
    assert with_do == p2  # another entry
    assert ask(do=True)[0] == p2
    with_cd, p3 = ask(cd=True)
    assert with_cd == p3
    assert ask(cd=True)[0] == p3
    both, p4 = ask(do=True, cd=True)
    assert both == p4
    assert ask()[0] == p1


def test_only_names_in_the_cache_zones_are_cached(main: Server) -> None:
    a, p1 = query_from(main, dns.message.make_query("x.elsewhere.test", "A"))
    b, p2 = query_from(main, dns.message.make_query("x.elsewhere.test", "A"))
    assert (whoami_port(a), whoami_port(b)) == (p1, p2)  # each answered by whoami itself


def test_answer_changes_under_the_cache_only_after_expiry(server_factory: Factory,
                                                         tmp_path: Path) -> None:  # fmt: skip
    hosts = tmp_path / "hosts.txt"
    hosts_file(hosts, "10.0.0.1 a.example.org")
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n cache 2 example.org\n"
        " hosts hosts.txt {\n ttl 20\n reload 50ms\n }\n}\n"
    )
    r = srv.query("a.example.org", "A")
    stored = time.monotonic()
    assert (address(r), ttl_of(r)) == ("10.0.0.1", 2)  # TTL capped by `cache 2`
    hosts_file(hosts, "10.0.0.2 a.example.org")
    wait_reloaded(srv, hosts)
    assert address(srv.query("a.example.org", "A")) == "10.0.0.1"
    while address(srv.query("a.example.org", "A")) == "10.0.0.1":
        assert time.monotonic() - stored < 3.5, "the entry outlived its TTL"
        time.sleep(0.05)
    assert time.monotonic() - stored >= 1.0


# ---- denial, SERVFAIL, disable -------------------------------------------------------------


def test_servfail_is_cached_for_servfail_duration(server_factory: Factory,
                                                  tmp_path: Path) -> None:  # fmt: skip
    # hosts says SERVFAIL without writing a reply (CoreDNS's `return SERVFAIL, nil`), which no
    # cache stores; a SERVFAIL relayed by forward is a written reply, and that one is cached.
    hosts = tmp_path / "hosts.txt"
    hosts_file(hosts)
    upstream = server_factory(
        f".:@PORT@ {{\n bind 127.0.0.1\n hosts {hosts} example.org other.org {{\n"
        " reload 50ms\n }\n}\n",
        tmp=_sub(tmp_path, "up"),
    )
    conf = (".:@PORT@ {{\n bind 127.0.0.1\n prometheus 127.0.0.1:@P1@\n"
            " cache 30 example.org {{\n {opt}\n }}\n"
            " forward . 127.0.0.1:{port}\n}}\n")  # fmt: skip
    port = upstream.port
    two = server_factory(conf.format(opt="servfail 2s", port=port), tmp=_sub(tmp_path, "a"))
    off = server_factory(conf.format(opt="servfail 0", port=port), tmp=_sub(tmp_path, "b"))
    nodenial = server_factory(conf.format(opt="disable denial", port=port),
                              tmp=_sub(tmp_path, "c"))  # fmt: skip
    for s in (two, off, nodenial):
        assert s.query("late.example.org", "A").rcode() == dns.rcode.SERVFAIL
    stored = time.monotonic()
    hosts_file(hosts, "10.0.0.3 late.example.org")
    wait_reloaded(upstream, hosts)
    assert address(off.query("late.example.org", "A")) == "10.0.0.3"
    assert address(nodenial.query("late.example.org", "A")) == "10.0.0.3"
    r = two.query("late.example.org", "A")
    assert r.rcode() == dns.rcode.SERVFAIL
    assert metric(two.metrics(), "coredns_cache_hits_total", server=label(two), type="denial",
                  zones="example.org.", view="") == 1  # fmt: skip
    while two.query("late.example.org", "A").rcode() == dns.rcode.SERVFAIL:
        assert time.monotonic() - stored < 3.5
        time.sleep(0.05)
    assert time.monotonic() - stored >= 1.0


def _sub(tmp: Path, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    return d


def test_disable_success_and_denial_per_zone(server_factory: Factory, tmp_path: Path) -> None:
    (tmp_path / "k8s.yaml").write_text(K8S)
    hosts_file(tmp_path / "hosts.txt", "10.0.0.1 a.sub.example.org b.example.org")
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n prometheus 127.0.0.1:@P1@\n"
        " cache {\n disable success sub.example.org\n disable denial demo.svc.cluster.local\n }\n"
        " hosts hosts.txt example.org\n kubernetes cluster.local {\n manifests k8s.yaml\n }\n}\n"
    )
    lab = {"server": label(srv), "zones": ".", "view": ""}
    names = ["a.sub.example.org", "b.example.org", "x.demo.svc.cluster.local",
             "y.svc.cluster.local"]  # fmt: skip
    series = [("coredns_cache_hits_total", {"type": "success"}),
              ("coredns_cache_hits_total", {"type": "denial"}),
              ("coredns_cache_misses_total", {}), ("coredns_cache_requests_total", {})]  # fmt: skip

    def counts() -> list[float]:
        text = srv.metrics()
        return [metric(text, name, **extra, **lab) or 0 for name, extra in series]

    before = counts()  # the harness's readiness probe went through the cache too
    rcodes = [srv.query(name, "A").rcode() for _ in range(2) for name in names]
    assert rcodes == [0, 0, 3, 3] * 2
    after = counts()
    # b.example.org and y.svc.cluster.local hit the second time; the disabled ones never.
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 6, 8]
    text = srv.metrics()
    assert metric(text, "coredns_cache_entries", type="success", **lab) == 1
    assert metric(text, "coredns_cache_entries", type="denial", **lab) == 1


# ---- capacity ------------------------------------------------------------------------------


def burst(srv: Server, names: list[str], batch: int = 100) -> int:
    """Ask every name (A) quickly over one UDP socket; return how many answers came back."""
    got = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for i in range(0, len(names), batch):
            chunk = names[i : i + batch]
            for j, name in enumerate(chunk):
                q = dns.message.make_query(name, "A")
                q.id = j
                s.sendto(q.to_wire(), (HOST, srv.port))
            for _ in chunk:
                s.recv(65535)
                got += 1
    return got


def test_capacity_is_bounded_and_evictions_counted(server_factory: Factory) -> None:
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n prometheus 127.0.0.1:@P1@\n"
        " cache who.test {\n success 10\n }\n whoami\n}\n"
    )
    n = 1500
    assert burst(srv, [f"n{i}.who.test" for i in range(n)]) == n
    text = srv.metrics()
    lab = {"server": label(srv), "zones": "who.test.", "view": ""}
    entries = metric(text, "coredns_cache_entries", type="success", **lab)
    evictions = metric(text, "coredns_cache_evictions_total", type="success", **lab)
    assert entries is not None and evictions is not None
    # 10 is below the minimum: 256 shards of 4 entries.
    assert entries <= 1024
    assert evictions > 0
    assert entries + evictions == n  # every new entry was added or pushed another out


# ---- prefetch ------------------------------------------------------------------------------


def test_prefetch_refreshes_a_popular_entry_before_it_expires(server_factory: Factory,
                                                              tmp_path: Path) -> None:  # fmt: skip
    hosts = tmp_path / "hosts.txt"
    hosts_file(hosts, "10.0.0.1 hot.example.org")
    srv = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n prometheus 127.0.0.1:@P1@\n"
        " cache example.org {\n success 1024 4 0\n prefetch 2 1m 50%\n }\n"
        " hosts hosts.txt example.org other.org {\n ttl 4\n reload 50ms\n }\n}\n"
    )
    lab = {"server": label(srv), "zones": "example.org.", "view": ""}
    first = srv.query("hot.example.org", "A")
    stored = time.monotonic()
    assert ttl_of(first) == 4
    assert address(srv.query("hot.example.org", "A")) == "10.0.0.1"  # hit 1: not popular yet
    hosts_file(hosts, "10.0.0.2 hot.example.org")
    wait_reloaded(srv, hosts)
    assert metric(srv.metrics(), "coredns_cache_prefetch_total", **lab) is None
    time.sleep(max(0.0, stored + 2.05 - time.monotonic()))  # remaining TTL now 2 = 50%
    r = srv.query("hot.example.org", "A")  # hit 2: popular and due, served then refreshed
    assert (address(r), ttl_of(r)) == ("10.0.0.1", 2)
    deadline = time.monotonic() + 1.5
    while address(r := srv.query("hot.example.org", "A")) != "10.0.0.2":
        assert time.monotonic() < deadline, "never refreshed"
        time.sleep(0.02)
    assert ttl_of(r) >= 3
    assert time.monotonic() - stored < 4  # refreshed before the old entry expired
    text = srv.metrics()
    assert metric(text, "coredns_cache_prefetch_total", **lab) == 1
    assert metric(text, "coredns_cache_misses_total", **lab) == 1  # the backend saw no miss


# ---- serve_stale ---------------------------------------------------------------------------


def test_serve_stale_immediate_and_verify(server_factory: Factory, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts_file(hosts, "10.0.0.1 old.example.org")
    conf = (".:@PORT@ {{\n bind 127.0.0.1\n prometheus 127.0.0.1:@P1@\n"
            " cache example.org {{\n success 1024 1 0\n {mode}\n }}\n"
            " hosts {hosts} example.org other.org {{\n reload 50ms\n }}\n}}\n")  # fmt: skip
    imm = server_factory(conf.format(mode="serve_stale 1h immediate", hosts=hosts),
                         tmp=_sub(tmp_path, "i"))  # fmt: skip
    ver = server_factory(conf.format(mode="serve_stale 1h verify", hosts=hosts),
                         tmp=_sub(tmp_path, "v"))  # fmt: skip
    plain = server_factory(conf.format(mode="servfail 0", hosts=hosts), tmp=_sub(tmp_path, "p"))
    for s in (imm, ver, plain):
        assert ttl_of(s.query("old.example.org", "A")) == 1
    stored = time.monotonic()
    hosts_file(hosts)  # the backend now fails (SERVFAIL) for the name
    for s in (imm, ver, plain):
        wait_reloaded(s, hosts)
    time.sleep(max(0.0, stored + 2.05 - time.monotonic()))  # expired a whole second ago
    # Without serve_stale an expired entry is a miss: the backend's failure shows.
    assert plain.query("old.example.org", "A").rcode() == dns.rcode.SERVFAIL
    for s in (imm, ver):
        for _ in range(2):
            r = s.query("old.example.org", "A")
            assert (address(r), ttl_of(r)) == ("10.0.0.1", 0)
    stale = {"server": "", "zones": "example.org.", "view": ""}
    ti, tv = imm.metrics(), ver.metrics()
    assert metric(ti, "coredns_cache_served_stale_total", **{**stale, "server": label(imm)}) == 2
    assert metric(tv, "coredns_cache_served_stale_total", **{**stale, "server": label(ver)}) == 2
    # immediate refreshes in the background (and failed); verify asked the backend first.
    prefetched = metric(ti, "coredns_cache_prefetch_total", **{**stale, "server": label(imm)})
    assert prefetched is not None and prefetched >= 1
    assert metric(tv, "coredns_cache_prefetch_total", **{**stale, "server": label(ver)}) is None
    hosts_file(hosts, "10.0.0.2 old.example.org")  # the backend is back
    for s in (imm, ver):
        wait_reloaded(s, hosts)
    r = ver.query("old.example.org", "A")  # verify: the fresh answer at once
    assert (address(r), ttl_of(r)) == ("10.0.0.2", 1)
    r = imm.query("old.example.org", "A")  # immediate: stale once more, refreshed behind it
    assert address(r) in ("10.0.0.1", "10.0.0.2")
    deadline = time.monotonic() + 2
    while address(imm.query("old.example.org", "A")) != "10.0.0.2":
        assert time.monotonic() < deadline, "immediate mode never refreshed the stale entry"
        time.sleep(0.02)


def test_through_forward_and_stale_when_the_upstream_stops(server_factory: Factory,
                                                            tmp_path: Path) -> None:  # fmt: skip
    """A real upstream (another ClusterDNS serving hosts) behind forward; then it goes away."""
    up_dir = _sub(tmp_path, "up")
    hosts_file(up_dir / "hosts.txt", "10.1.1.1 up.example.org")
    up = server_factory(".:@PORT@ {\n bind 127.0.0.1\n log\n hosts hosts.txt\n}\n", tmp=up_dir)
    front = server_factory(
        ".:@PORT@ {\n bind 127.0.0.1\n prometheus 127.0.0.1:@P1@\n"
        " cache example.org {\n success 1024 1 0\n serve_stale 1h\n }\n"
        f" forward . {HOST}:{up.port}\n}}\n",
        tmp=_sub(tmp_path, "front"),
    )
    seen = up.output.count("up.example.org.")
    r = front.query("up.example.org", "A")
    stored = time.monotonic()
    assert (address(r), ttl_of(r)) == ("10.1.1.1", 1)
    up.wait_output(r"up\.example\.org\.")
    assert up.output.count("up.example.org.") == seen + 1
    assert address(front.query("up.example.org", "A")) == "10.1.1.1"  # a hit
    up.stop()
    assert up.output.count("up.example.org.") == seen + 1  # the hit never reached it
    time.sleep(max(0.0, stored + 2.05 - time.monotonic()))
    for _ in range(2):
        began = time.monotonic()
        r = front.query("up.example.org", "A")
        assert (address(r), ttl_of(r)) == ("10.1.1.1", 0)
        assert time.monotonic() - began < 0.3  # immediate: no wait for the dead upstream
    lab = {"server": label(front), "zones": "example.org.", "view": ""}
    assert metric(front.metrics(), "coredns_cache_served_stale_total", **lab) == 2


# ---- metrics -------------------------------------------------------------------------------


def test_metric_names_and_labels(main: Server) -> None:
    main.query("a.example.org", "A")
    main.query("a.example.org", "A")
    text = main.metrics()
    lab = {"server": label(main), "zones": ZONES_LABEL, "view": ""}
    for kind in ("success", "denial"):
        assert metric(text, "coredns_cache_entries", type=kind, **lab) is not None
    assert metric(text, "coredns_cache_requests_total", **lab) is not None
    assert metric(text, "coredns_cache_misses_total", **lab) is not None
    assert metric(text, "coredns_cache_hits_total", type="success", **lab) is not None
    for name, labels in (
        ("coredns_cache_prefetch_total", "server, zones, view"),
        ("coredns_cache_drops_total", "server, zones, view"),
        ("coredns_cache_served_stale_total", "server, zones, view"),
        ("coredns_cache_evictions_total", "server, type, zones, view"),
    ):
        assert f"# TYPE {name.removesuffix('_total')} counter" in text or (
            f"# TYPE {name} counter" in text
        ), (name, labels)


# ---- setup ---------------------------------------------------------------------------------

BAD = [
    ("cache 0", "cache TTL can not be zero or negative: 0"),
    ("cache -5", "cache TTL can not be zero or negative: -5"),
    ("cache {\n success\n }", "wrong argument count"),
    ("cache {\n success many\n }", "CAPACITY 'many' is not a number"),
    ("cache {\n success -1\n }", "capacity can not be negative"),
    ("cache {\n success 100 0\n }", "cache TTL can not be zero or negative: 0"),
    ("cache {\n denial 100 10 -1\n }", "cache min TTL can not be negative: -1"),
    ("cache {\n prefetch\n }", "wrong argument count"),
    ("cache {\n prefetch 1 2 3 4\n }", "wrong argument count"),
    ("cache {\n prefetch -1\n }", "prefetch amount should be positive: -1"),
    ("cache {\n prefetch 2 10\n }", "invalid duration '10'"),
    ("cache {\n prefetch 2 1m 50\n }", "last character of percentage should be `%`"),
    ("cache {\n prefetch 2 1m 5%\n }", "percentage should fall in range [10, 90]: 5"),
    ("cache {\n serve_stale 1h now\n }", "invalid value for serve_stale refresh mode: now"),
    ("cache {\n serve_stale -1s\n }", "invalid negative duration for serve_stale"),
    ("cache {\n serve_stale 1h verify extra\n }", "wrong argument count"),
    ("cache {\n servfail\n }", "wrong argument count"),
    ("cache {\n servfail 6m\n }", "over 5 minutes is not permitted"),
    ("cache {\n servfail -1s\n }", "invalid negative ttl for servfail"),
    ("cache {\n disable\n }", "wrong argument count"),
    ("cache {\n disable positive\n }", 'cache type for disable must be "success" or "denial"'),
    ("cache {\n keepttl now\n }", "wrong argument count"),
    ("cache {\n shrink 5\n }", "unknown property 'shrink'"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_setup_errors_name_file_and_line(text: str, message: str) -> None:
    conf = f".:53 {{\n    {text}\n    whoami\n}}\n"
    with pytest.raises(ConfigErrors) as e:
        build(parse_corefile_text(conf, "Corefile"), "Corefile", conf)
    err = e.value.errors[0]
    assert message in str(err)
    assert err.file == "Corefile" and err.line >= 2


def test_setup_accepts_every_option() -> None:
    conf = (".:53 {\n cache 300 example.org example.net {\n success 5000 600 10\n"
            " denial 2500 60 1\n prefetch 10 2m 20%\n serve_stale 30m verify\n servfail 10s\n"
            " disable denial sub.example.org\n keepttl\n }\n whoami\n}\n")  # fmt: skip
    cfg = build(parse_corefile_text(conf, "Corefile"), "Corefile", conf)
    cache = cfg.blocks[0].find("cache")
    s = cache.s  # type: ignore[union-attr]
    assert (s.zones, s.pcap, s.pttl, s.minpttl) == (["example.org.", "example.net."], 5000, 600, 10)
    assert (s.ncap, s.nttl, s.minnttl, s.failttl) == (2500, 60, 1, 10.0)
    assert (s.prefetch, s.duration, s.percentage) == (10, 120.0, 20)
    assert (s.stale_up_to, s.verify_stale, s.nexcept, s.keepttl) == (
        1800.0, True, ["sub.example.org."], True)  # fmt: skip
    defaults = build(parse_corefile_text(".:53 {\n cache\n whoami\n}\n", "C"), "C", "")
    d = defaults.blocks[0].find("cache").s  # type: ignore[union-attr]
    assert (d.zones, d.pcap, d.pttl, d.minpttl, d.ncap, d.nttl, d.minnttl) == (
        ["."], 9984, 3600, 5, 9984, 1800, 5)  # fmt: skip
    assert (d.failttl, d.prefetch, d.duration, d.percentage, d.stale_up_to) == (
        5.0, 0, 60.0, 10, 0.0)  # fmt: skip


def test_validate_reports_a_bad_option(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(".:53 {\n    cache {\n        servfail 10m\n    }\n}\n")
    res = run_cli("-conf", str(conf), "-validate")
    assert res.returncode == 1
    assert f"{conf}:3 - cache: caching SERVFAIL responses over 5 minutes" in res.stderr
