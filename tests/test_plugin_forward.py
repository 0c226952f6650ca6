"""forward (and the legacy proxy): policies, health checks, spraying, max_concurrent,
anti-spoofing, truncation, DoT, except/next/failover, resolv.conf upstreams, pooling, metrics.

Upstreams are a real ClusterDNS process (hosts plugin) or the scripted servers of
tests/upstreams.py. Forwarded zones are never the root zone, so the harness's readiness probe
(`probe.invalid.`) is REFUSED at once instead of being forwarded.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from tests.harness import Case, Server, check, free_port, metric, run_cli
from tests.upstreams import (
    Reply,
    Upstream,
    answer,
    make_cert,
    rcode_reply,
    serve_ip,
    server_tls,
    silent,
)

Factory = Callable[..., Server]


@pytest.fixture
def ups() -> Iterator[Callable[..., Upstream]]:
    started: list[Upstream] = []

    def make(*args: object, **kw: object) -> Upstream:
        u = Upstream(*args, **kw).start()  # type: ignore[arg-type]
        started.append(u)
        return u

    yield make
    for u in started:
        u.stop()


def a_ips(r: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)


def first_ip(srv: Server, name: str, proto: str = "udp", timeout: float = 8) -> str:
    r = srv.query(name, "A", proto=proto, timeout=timeout)
    assert r.rcode() == dns.rcode.NOERROR, r
    return a_ips(r)[0]


def both(cases: list[Case]) -> list[Case]:
    return cases + [dataclasses.replace(c, proto="tcp") for c in cases]


# ---- basics -------------------------------------------------------------------------------


def test_forward_to_a_clusterdns_upstream(server_factory: Factory) -> None:
    up = server_factory("""
example.test:@PORT@ {
    bind 127.0.0.1
    hosts {
        10.1.2.3 www.example.test
        fallthrough
    }
}
""")
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . 127.0.0.1:{up.port}
}}
""")
    rr = "www.example.test. 3600 IN A 10.1.2.3"
    check(fw, both([Case("www.example.test.", answer=[rr], flags={"AA"})]))
    # The client's case and ID come back (the upstream saw a random ID).
    q = dns.message.make_query("WwW.Example.TEST.", "A")
    q.id = 4242
    r = fw.send(q)
    assert r.id == 4242 and r.question[0].name.to_text() == "WwW.Example.TEST."
    body = fw.metrics()
    to = f"127.0.0.1:{up.port}"
    count = "coredns_proxy_request_duration_seconds_count"
    assert metric(body, count, proxy_name="forward", to=to, rcode="NOERROR") == 3
    for proto in ("udp", "tcp"):
        assert metric(body, "coredns_proxy_conn_cache_misses_total",
                      proxy_name="forward", to=to, proto=proto) == 1  # fmt: skip
    # Pooled: the second UDP query reused the first one's socket.
    assert metric(body, "coredns_proxy_conn_cache_hits_total",
                  proxy_name="forward", to=to, proto="udp") == 1  # fmt: skip
    assert metric(body, "coredns_forward_healthcheck_broken_total") == 0
    assert metric(body, "coredns_forward_max_concurrent_rejects_total") == 0


def test_random_upstream_ids(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    seen: list[int] = []

    def record(q: dns.message.Message, proto: str) -> list[Reply]:
        seen.append(q.id)
        return [answer(q)]

    up = ups(record)
    fw = server_factory(f"example.test:@PORT@ {{\n bind 127.0.0.1\n forward . {up.addr}\n}}\n")
    for _ in range(3):
        q = dns.message.make_query("a.example.test.", "A")
        q.id = 777
        assert fw.send(q).id == 777
    assert len(seen) == 3 and seen != [777, 777, 777]


def test_connection_expiry(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    up = ups()
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {up.addr} {{
        expire 200ms
    }}
}}
""")
    first_ip(fw, "a.example.test.")
    first_ip(fw, "a.example.test.")
    time.sleep(0.4)
    first_ip(fw, "a.example.test.")
    body = fw.metrics()
    labels = {"proxy_name": "forward", "to": up.addr, "proto": "udp"}
    assert metric(body, "coredns_proxy_conn_cache_hits_total", **labels) == 1
    assert metric(body, "coredns_proxy_conn_cache_misses_total", **labels) == 2


def test_stale_pooled_tcp_connection_is_redialed(
    server_factory: Factory, ups: Callable[..., Upstream]
) -> None:
    up = ups(serve_ip("10.0.0.4"), close_tcp=True)
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {up.addr} {{
        force_tcp
    }}
}}
""")
    for i in range(3):
        assert first_ip(fw, f"q{i}.example.test.") == "10.0.0.4"
        time.sleep(0.1)  # the upstream's close reaches us
    body = fw.metrics()
    labels = {"proxy_name": "forward", "to": up.addr, "proto": "tcp"}
    # Queries 2 and 3 took the pooled connection, found it closed and dialed again.
    assert metric(body, "coredns_proxy_conn_cache_hits_total", **labels) == 2
    assert metric(body, "coredns_proxy_conn_cache_misses_total", **labels) == 3
    assert metric(body, "coredns_proxy_healthcheck_failures_total",
                  proxy_name="forward", to=up.addr) is None  # fmt: skip


def test_max_idle_conns(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    up = ups(serve_ip("10.0.0.5"), delay=0.3)
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {up.addr} {{
        max_idle_conns 1
    }}
}}
""")

    def burst(tag: str) -> None:
        with ThreadPoolExecutor(3) as pool:
            ips = list(pool.map(lambda i: first_ip(fw, f"{tag}{i}.example.test."), range(3)))
        assert ips == ["10.0.0.5"] * 3

    burst("a")  # three sockets at once; one is kept idle
    burst("b")  # one reused, two dialed
    body = fw.metrics()
    labels = {"proxy_name": "forward", "to": up.addr, "proto": "udp"}
    assert metric(body, "coredns_proxy_conn_cache_hits_total", **labels) == 1
    assert metric(body, "coredns_proxy_conn_cache_misses_total", **labels) == 5


# ---- policies -----------------------------------------------------------------------------


def test_policies(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    a, b = ups(serve_ip("10.0.0.1")), ups(serve_ip("10.0.0.2"))
    blocks = "".join(f"""
{zone}:@PORT@ {{
    bind 127.0.0.1
    forward . {a.addr} {b.addr} {{
        policy {policy}
    }}
}}
""" for zone, policy in (("rr.test", "round_robin"), ("seq.test", "sequential"),
                         ("rnd.test", "random")))  # fmt: skip
    fw = server_factory(blocks)
    rr = [first_ip(fw, "x.rr.test.") for _ in range(6)]
    assert all(x != y for x, y in itertools.pairwise(rr)), rr
    assert {first_ip(fw, "x.seq.test.") for _ in range(6)} == {"10.0.0.1"}
    assert {first_ip(fw, "x.rnd.test.") for _ in range(30)} == {"10.0.0.1", "10.0.0.2"}


# ---- health ------------------------------------------------------------------------------


def test_upstream_down_and_back(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    a_port = free_port()  # nothing listens there yet: a refuses
    a_addr = f"127.0.0.1:{a_port}"
    b = ups(serve_ip("10.0.0.2"))
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {a_addr} {b.addr} {{
        policy sequential
        health_check 100ms no_rec domain HC.example.test
    }}
}}
""")

    def a_metric(name: str, **labels: str) -> float:
        return metric(fw.metrics(), name, proxy_name="forward", to=a_addr, **labels) or 0

    # a refuses, b answers; the failure starts a's health checks.
    assert first_ip(fw, "one.example.test.") == "10.0.0.2"
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and a_metric("coredns_proxy_healthcheck_failures_total") < 3:
        time.sleep(0.05)
    assert a_metric("coredns_proxy_healthcheck_failures_total") >= 3  # > max_fails (2): down
    dials = a_metric("coredns_proxy_conn_cache_misses_total", proto="udp")
    for i in range(3):
        assert first_ip(fw, f"two{i}.example.test.") == "10.0.0.2"
    assert a_metric("coredns_proxy_conn_cache_misses_total", proto="udp") == dials  # skipped
    # a comes back: the running probe gets an answer, a is healthy and first again.
    a = ups(serve_ip("10.0.0.1"), port=a_port)
    deadline = time.monotonic() + 5
    got = ""
    while time.monotonic() < deadline and got != "10.0.0.1":
        got = first_ip(fw, "three.example.test.")
        time.sleep(0.05)
    assert got == "10.0.0.1"
    checks = a.health_checks("hc.example.test.")
    assert checks and not any(m.flags & dns.flags.RD for m in checks)
    assert b.health_checks("hc.example.test.") == []  # b never failed: never probed


def test_all_down(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    s1, s2, s3, s4 = ups(silent), ups(silent), ups(silent), ups(silent)
    good = ups(serve_ip("10.0.0.8"))
    closed = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    fw = server_factory(f"""
dead.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {closed[0]} {closed[1]} {{
        health_check 100ms
    }}
}}
silent.test:@PORT@ {{
    bind 127.0.0.1
    forward . {s1.addr} {s2.addr} {{
        health_check 100ms
    }}
}}
next.test:@PORT@ {{
    bind 127.0.0.1
    forward . {s4.addr} {good.addr} {{
        policy sequential
    }}
}}
once.test:@PORT@ {{
    bind 127.0.0.1
    forward . {s3.addr} {{
        max_connect_attempts 1
    }}
}}
fast.test:@PORT@ {{
    bind 127.0.0.1
    forward . {closed[0]} {{
        health_check 100ms
        failfast_all_unhealthy_upstreams
    }}
}}
""")

    def timed(name: str) -> tuple[int, float]:
        t = time.monotonic()
        rcode = fw.query(name, timeout=15).rcode()
        return rcode, time.monotonic() - t

    # The slow cases run side by side: the test takes as long as the longest.
    names = ["x.dead.test.", "x.silent.test.", "x.once.test."]
    with ThreadPoolExecutor(4) as pool:
        moved_on = pool.submit(first_ip, fw, "x.next.test.")
        dead, silent_all, once = pool.map(timed, names)
    # A timeout moves on to the next upstream.
    assert moved_on.result() == "10.0.0.8" and s4.names() == ["x.next.test."]
    assert dead[0] == silent_all[0] == once[0] == dns.rcode.SERVFAIL
    assert dead[1] < 10 and silent_all[1] < 10  # CoreDNS's 5s deadline plus one read timeout
    # Both refused upstreams were marked down, then one was sprayed at.
    assert (metric(fw.metrics(), "coredns_forward_healthcheck_broken_total") or 0) >= 1
    # max_connect_attempts 1: one read timeout (2s), one query upstream.
    assert once[1] < 4
    assert s3.names() == ["x.once.test."]
    # failfast: once the upstream is down, SERVFAIL without trying it.
    fw.query("x.fast.test.", timeout=10)
    time.sleep(0.5)
    before = metric(fw.metrics(), "coredns_proxy_conn_cache_misses_total",
                    proxy_name="forward", to=closed[0], proto="udp")  # fmt: skip
    assert fw.query("y.fast.test.", timeout=10).rcode() == dns.rcode.SERVFAIL
    after = metric(fw.metrics(), "coredns_proxy_conn_cache_misses_total",
                   proxy_name="forward", to=closed[0], proto="udp")  # fmt: skip
    assert before and before == after


# ---- concurrency ---------------------------------------------------------------------------


def test_max_concurrent(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    up = ups(serve_ip("10.0.0.9"), delay=1.0)
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . {up.addr} {{
        max_concurrent 1
    }}
}}
""")
    socks = []
    for i in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(
            dns.message.make_query(f"q{i}.example.test.", "A").to_wire(), ("127.0.0.1", fw.port)
        )
        socks.append(s)
        time.sleep(0.2)  # the first is in flight (the upstream holds it for 1s)
    t = time.monotonic()
    second = dns.message.from_wire(socks[1].recv(65535))
    assert second.rcode() == dns.rcode.REFUSED and time.monotonic() - t < 0.5
    first = dns.message.from_wire(socks[0].recv(65535))
    assert first.rcode() == dns.rcode.NOERROR and a_ips(first) == ["10.0.0.9"]
    for s in socks:
        s.close()
    assert metric(fw.metrics(), "coredns_forward_max_concurrent_rejects_total") == 1


# ---- what comes back -----------------------------------------------------------------------


def test_spoofed_replies_are_ignored(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    def spoofing(q: dns.message.Message, proto: str) -> list[Reply]:
        wrong_id = answer(q, "6.6.6.1")
        wrong_id.id = q.id ^ 0x5A5A
        other = dns.message.make_query("evil.example.test.", "A")
        other.id = q.id
        wrong_q = answer(other, "6.6.6.2")
        wrong_type = dns.message.make_query(q.question[0].name, "AAAA")
        wrong_type.id = q.id
        garbage = q.id.to_bytes(2, "big") + b"\x81\x80garbage"
        return [wrong_id, wrong_q, answer(wrong_type), garbage, answer(q, "10.0.0.1")]

    up = ups(spoofing)
    fw = server_factory(f"example.test:@PORT@ {{\n bind 127.0.0.1\n forward . {up.addr}\n}}\n")
    rr = "www.example.test. 60 IN A 10.0.0.1"
    check(fw, both([Case("www.example.test.", answer=[rr], flags={"RA"})]))


def test_truncated_udp_reply_is_retried_over_tcp(
    server_factory: Factory, ups: Callable[..., Upstream]
) -> None:
    def tc_over_udp(q: dns.message.Message, proto: str) -> list[Reply]:
        if proto == "udp":
            r = dns.message.make_response(q)
            r.flags |= dns.flags.TC
            return [r]
        r = answer(q, "10.0.0.1")
        for i in range(2, 4):
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", f"10.0.0.{i}"))
        return [r]

    up, tcp_only = ups(tc_over_udp), ups(tc_over_udp)
    prefer = ups(tc_over_udp)
    fw = server_factory(f"""
tc.test:@PORT@ {{
    bind 127.0.0.1
    forward . {up.addr}
}}
force.test:@PORT@ {{
    bind 127.0.0.1
    forward . {tcp_only.addr} {{
        force_tcp
    }}
}}
prefer.test:@PORT@ {{
    bind 127.0.0.1
    forward . {prefer.addr} {{
        prefer_udp
    }}
}}
""")
    r = fw.query("big.tc.test.", "A", use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and a_ips(r) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert up.names("udp") == ["big.tc.test."] and up.names("tcp") == ["big.tc.test."]
    r = fw.query("big.force.test.", "A")
    assert len(a_ips(r)) == 3 and tcp_only.names("udp") == []
    r = fw.query("big.prefer.test.", "A", proto="tcp")
    assert len(a_ips(r)) == 3
    assert prefer.names("udp") == ["big.prefer.test."] and prefer.names("tcp") == [
        "big.prefer.test."
    ]


def test_dns_over_tls(
    server_factory: Factory, ups: Callable[..., Upstream], tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path)
    dot = ups(serve_ip("10.0.0.53"), tls=server_tls(cert, key))
    fw = server_factory(f"""
dot.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . tls://{dot.addr} {{
        tls {cert}
        tls_servername dot.test
    }}
}}
ip.test:@PORT@ {{
    bind 127.0.0.1
    forward . tls://127.0.0.1%dot.test:{dot.port} {{
        tls {cert}
    }}
}}
bad.test:@PORT@ {{
    bind 127.0.0.1
    forward . tls://{dot.addr} {{
        tls {cert}
        tls_servername wrong.example
        max_connect_attempts 1
    }}
}}
""")
    for name in ("a.dot.test.", "b.dot.test.", "a.ip.test."):
        assert first_ip(fw, name) == "10.0.0.53"
    assert first_ip(fw, "c.dot.test.", proto="tcp") == "10.0.0.53"
    assert set(dot.names()) == {"a.dot.test.", "b.dot.test.", "c.dot.test.", "a.ip.test."}
    assert {p for p, _, t in dot.queries if t != "NS"} == {"tls"}
    body = fw.metrics()
    labels = {"proxy_name": "forward", "to": dot.addr, "proto": "tcp-tls"}
    assert metric(body, "coredns_proxy_conn_cache_misses_total", **labels) == 2  # per block
    assert metric(body, "coredns_proxy_conn_cache_hits_total", **labels) == 2
    # The certificate is not for wrong.example: no answer from it.
    assert fw.query("a.bad.test.", timeout=10).rcode() == dns.rcode.SERVFAIL
    assert "a.bad.test." not in dot.names()


# ---- matching and rcodes ------------------------------------------------------------------


def test_except_hands_names_to_the_next_plugin(
    server_factory: Factory, ups: Callable[..., Upstream]
) -> None:
    up = ups(serve_ip("10.0.0.1"))
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    forward example.test {up.addr} {{
        except private.example.test other.example.test
    }}
    whoami
}}
""")
    assert first_ip(fw, "www.example.test.") == "10.0.0.1"
    for name in ("private.example.test.", "db.private.example.test.", "other.example.test."):
        r = fw.query(name)
        assert r.answer == [] and r.additional, name  # whoami answered
    assert set(up.names()) == {"www.example.test."}


def test_next_and_failover(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    def nx_for_missing(q: dns.message.Message, proto: str) -> list[Reply]:
        if q.question[0].name.to_text().startswith("missing."):
            return [rcode_reply(q, dns.rcode.NXDOMAIN)]
        return [answer(q, "10.0.0.1")]

    def servfail(q: dns.message.Message, proto: str) -> list[Reply]:
        return [rcode_reply(q, dns.rcode.SERVFAIL)]

    first, second = ups(nx_for_missing), ups(serve_ip("10.0.0.2"))
    bad1, bad2, good = ups(servfail), ups(servfail), ups(serve_ip("10.0.0.3"))
    fw = server_factory(f"""
next.test:@PORT@ {{
    bind 127.0.0.1
    forward . {first.addr} {{
        next NXDOMAIN SERVFAIL
    }}
    forward . {second.addr}
}}
last.test:@PORT@ {{
    bind 127.0.0.1
    forward . {first.addr} {{
        next nxdomain
    }}
}}
failover.test:@PORT@ {{
    bind 127.0.0.1
    forward . {bad1.addr} {bad2.addr} {good.addr} {{
        policy sequential
        failover SERVFAIL REFUSED
    }}
}}
allbad.test:@PORT@ {{
    bind 127.0.0.1
    forward . {bad1.addr} {bad2.addr} {{
        policy sequential
        failover SERVFAIL
    }}
}}
""")
    assert first_ip(fw, "found.next.test.") == "10.0.0.1"
    assert first_ip(fw, "missing.next.test.") == "10.0.0.2"
    # `next` on the last forward line is ignored: the NXDOMAIN stands.
    assert fw.query("missing.last.test.").rcode() == dns.rcode.NXDOMAIN
    assert first_ip(fw, "x.failover.test.") == "10.0.0.3"
    assert bad1.names().count("x.failover.test.") == 1
    # Every upstream failed over: the last answer is returned, at once.
    t = time.monotonic()
    assert fw.query("x.allbad.test.").rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - t < 1.5
    assert bad2.names().count("x.allbad.test.") == 1


# ---- TO forms ------------------------------------------------------------------------------


def _bind53(ip: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 53))
        except OSError:
            return False
    return True


def test_resolv_conf_file_as_to(server_factory: Factory, tmp_path: Path) -> None:
    ip = f"127.53.{int(time.time()) % 200 + 1}.{free_port() % 200 + 1}"
    bindable = _bind53(ip)
    up = Upstream(serve_ip("10.0.0.77"), host=ip, port=53).start() if bindable else None
    try:
        (tmp_path / "resolv.conf").write_text(
            f"# generated\nsearch example.test\nnameserver {ip}\noptions ndots:5\n"
        )
        fw = server_factory("""
example.test:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . resolv.conf {
        max_connect_attempts 1
    }
}
""")
        r = fw.query("a.example.test.", timeout=10)
        labels = {"proxy_name": "forward", "to": f"{ip}:53", "proto": "udp"}
        assert metric(fw.metrics(), "coredns_proxy_conn_cache_misses_total", **labels) == 1
        if up is not None:
            assert a_ips(r) == ["10.0.0.77"]
    finally:
        if up is not None:
            up.stop()


# ---- legacy proxy -------------------------------------------------------------------------


def test_proxy_runs_as_forward(server_factory: Factory, ups: Callable[..., Upstream]) -> None:
    a, b = ups(serve_ip("10.0.0.1")), ups(serve_ip("10.0.0.2"))
    fw = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    proxy . {a.addr} {b.addr} {{
        policy always_first
        protocol dns force_tcp
        except skip.example.test
        spray
        max_fails 3
    }}
    whoami
}}
""")
    fw.wait_output(r"\[WARNING\] .*Corefile:4 - plugin/proxy: proxy is deprecated, use forward")
    assert {first_ip(fw, "www.example.test.") for _ in range(4)} == {"10.0.0.1"}
    assert a.names("udp") == [] and a.names("tcp")
    assert fw.query("skip.example.test.").additional  # whoami


# ---- setup --------------------------------------------------------------------------------

ERRORS = [
    ("forward", "wrong argument count"),
    ("forward .", "wrong argument count"),
    ("forward . 10.0.0.1 {\n read_timeout 1s\n}", "'read_timeout' is not a CoreDNS forward option"),
    ("forward . 10.0.0.1 {\n source_address 10.0.0.2\n}", "'source_address' is not a CoreDNS"),
    ("forward . 10.0.0.1 {\n doh_method GET\n}", "'doh_method' needs DNS-over-HTTPS"),
    ("forward . 10.0.0.1 {\n bogus\n}", "forward: unknown property 'bogus'"),
    ("forward . https://10.0.0.1", "'https' is not supported as a destination protocol"),
    ("forward . dns.example.com", "not an IP address or file: 'dns.example.com' (host names"),
    ("forward . 10.0.0.1:99999", "invalid port '99999'"),
    ("forward . " + " ".join(f"10.0.0.{i}" for i in range(16)), "more than 15 TOs configured: 16"),
    ("forward . 10.0.0.1 {\n policy least_conn\n}", "unknown policy 'least_conn'"),
    ("forward . 10.0.0.1 {\n failover NOERROR\n}", "NoError cannot be used in failover"),
    ("forward . 10.0.0.1 {\n next NOPE\n}", "NOPE is not a valid rcode"),
    ("forward . 10.0.0.1 {\n health_check 1s fast\n}", "health_check: unknown option fast"),
    ("forward . 10.0.0.1 {\n health_check -1s\n}", "health_check can't be negative"),
    ("forward . 10.0.0.1 {\n expire soon\n}", "invalid duration 'soon'"),
    ("forward . 10.0.0.1 {\n max_fails -1\n}", "max_fails: invalid value '-1'"),
    ("forward . 10.0.0.1 {\n max_concurrent x\n}", "max_concurrent: invalid value 'x'"),
    ("forward . 10.0.0.1 {\n force_tcp yes\n}", "wrong argument count"),
    ("forward . 10.0.0.1 {\n tls a b c d\n}", "wrong argument count"),
    ("forward . 10.0.0.1 {\n tls missing-ca.pem\n}", "forward: tls: "),
    ("forward . tls://10.0.0.1%a.example {\n tls_servername b.example\n}", "both forward"),
    ("proxy . 10.0.0.1 {\n fail_timeout 5s\n}", "proxy: 'fail_timeout' has no forward equivalent"),
    ("proxy . 10.0.0.1 {\n health_check /health:8080\n}", "proxy: 'health_check' (HTTP"),
    ("proxy . 10.0.0.1 {\n policy least_conn\n}", "policy least_conn has no forward equivalent"),
    ("proxy . 10.0.0.1 {\n protocol https_google\n}", "protocol https_google is not supported"),
    ("proxy . 10.0.0.1 {\n protocol dns tcp\n}", "only force_tcp allowed as parameter to dns"),
    ("loop extra", "wrong argument count"),
]


def test_setup_errors(tmp_path: Path) -> None:
    """Every bad line in its own server block: one -validate run reports them all."""
    text, spans = "", []
    for n, (body, _) in enumerate(ERRORS):
        first = text.count("\n") + 2
        text += f"z{n}.test:53 {{\n{body}\n}}\n"
        spans.append(range(first, text.count("\n")))
    conf = tmp_path / "Corefile"
    conf.write_text(text)
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 1, r.stdout
    lines = r.stderr.splitlines()
    for (body, message), span in zip(ERRORS, spans, strict=True):
        hits = [ln for ln in lines if message in ln]
        where = [int(m.group(1)) for ln in hits if (m := re.search(rf"{conf}:(\d+) - ", ln))]
        assert any(w in span for w in where), f"{body!r}: {message!r} not at {span}:\n{r.stderr}"


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text("nameserver 10.0.0.1\nnameserver fd00::1\n")
    cert, key = make_cert(tmp_path)
    conf = tmp_path / "Corefile"
    conf.write_text(f"""
.:53 {{
    forward . 10.0.0.1 10.0.0.2:5353 [2003::1]:53 ::1 dns://10.0.0.3 tls://10.0.0.4 resolv.conf {{
        except example.org example.net
        force_tcp
        prefer_udp
        expire 5s
        max_idle_conns 4
        max_fails 0
        max_connect_attempts 2
        tls {cert} {key} {cert}
        tls_servername dns.example
        policy round_robin
        health_check 1s no_rec domain example.org
        max_concurrent 1000
        next NXDOMAIN
        failover SERVFAIL refused
        failfast_all_unhealthy_upstreams
    }}
    forward example.com 10.0.0.5
    loop
}}
10.3.0.0/24 {{
    proxy . 10.0.0.1:53 resolv.conf {{
        policy round_robin
        protocol dns
    }}
    proxy example.org 10.0.0.2
}}
""")
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr
    assert "plugin/proxy: proxy is deprecated, use forward" in r.stderr
