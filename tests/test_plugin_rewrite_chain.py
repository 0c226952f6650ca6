"""rewrite with the rest of the chain: EDNS0 options as the next plugin sees them (a scripted
upstream behind forward records them), the answer's OPT (whoami), vanity names and
ExternalName services of the kubernetes plugin (`manifests`), CNAME target rewrites that ask
the server again, the fast path, the shared vanity Corefile, and the reference CoreDNS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import DEMO_WEB, Case, Server, check, exchange, rrs, serve
from tests.upstreams import Upstream, answer

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"


# ---- EDNS0: what the next plugin receives ----------------------------------------------------

EDNS_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    rewrite continue edns0 local set 0xffee 0x61626364
    rewrite continue edns0 local set 0xffe1 {qname}
    rewrite continue edns0 local set 0xffe2 {qtype}
    rewrite continue edns0 local set 0xffe3 {client_ip}
    rewrite continue edns0 local set 0xffe4 {client_port}
    rewrite continue edns0 local set 0xffe5 {protocol}
    rewrite continue edns0 local set 0xffe6 {server_ip}
    rewrite continue edns0 local set 0xffe7 {server_port}
    rewrite continue edns0 local append 0xffe8 text
    rewrite continue edns0 local replace 0xffe9 never
    rewrite continue edns0 local unset 0xfff0
    rewrite continue edns0 local set 0xffea {test/label}
    rewrite continue edns0 nsid set
    rewrite edns0 subnet set 24 56
    forward . 127.0.0.1:UP
}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream(lambda q, proto: [answer(q, "10.7.0.1")]) as up:
        yield up


@pytest.fixture(scope="module")
def edns_srv(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    corefile = EDNS_COREFILE.replace("UP", str(upstream.port))
    with serve(corefile, tmp_path_factory.mktemp("rewrite-edns")) as s:
        yield s


def received(up: Upstream, name: str) -> dns.message.Message:
    msgs = [m for m in up.messages if m.question[0].name.to_text() == name]
    assert msgs, f"{name} never reached the upstream"
    return msgs[-1]


def options(m: dns.message.Message) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for o in m.options:
        out[int(o.otype)] = o.to_wire()
    return out


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_edns0_options_the_next_plugin_sees(
    edns_srv: Server, upstream: Upstream, proto: str
) -> None:
    name = f"Opt-{proto}.Example.Org."
    q = dns.message.make_query(
        name,
        "AAAA",
        use_edns=0,
        options=[
            dns.edns.GenericOption(0xFFF0, b"gone"),
            dns.edns.ECSOption("192.0.2.0", 24),  # replaced by the client's own subnet
        ],
    )
    wire, client_port = exchange(edns_srv, q, proto)
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOERROR
    got = options(received(upstream, name))
    server_port = edns_srv.port.to_bytes(2, "big")
    assert got[0xFFEE] == b"abcd"
    assert got[0xFFE1] == name.encode()  # the name as the client wrote it
    assert got[0xFFE2] == (28).to_bytes(2, "big")
    assert got[0xFFE3] == ipaddress.ip_address("127.0.0.1").packed
    assert got[0xFFE4] == client_port.to_bytes(2, "big")
    assert got[0xFFE5] == proto.encode()
    assert got[0xFFE6] == ipaddress.ip_address("127.0.0.1").packed
    assert got[0xFFE7] == server_port
    assert got[0xFFE8] == b"text"
    assert 0xFFE9 not in got and 0xFFF0 not in got  # replace needs one; unset removed it
    assert 0xFFEA not in got  # no metadata plugin: no value, no option
    assert got[3] == b""  # NSID, empty
    ecs = dns.edns.ECSOption("127.0.0.0", 24)
    assert got[8] == ecs.to_wire()


def test_edns0_added_to_a_query_without_one(edns_srv: Server, upstream: Upstream) -> None:
    q = dns.message.make_query("plain.example.org.", "A", use_edns=False)
    r = edns_srv.send(q)
    assert r.answer == [dns.rrset.from_text("plain.example.org.", 60, "IN", "A", "10.7.0.1")]
    m = received(upstream, "plain.example.org.")
    assert m.edns == 0 and options(m)[0xFFEE] == b"abcd"


# ---- EDNS0: the answer's OPT ------------------------------------------------------------------

ECHO_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    rewrite edns0 local set 0xffee abcd
    whoami
}
.:@P1@ {
    bind 127.0.0.1
    rewrite continue edns0 local set 0xffee abcd
    rewrite edns0 local replace 0xffee bcde revert
    whoami
}
.:@P2@ {
    bind 127.0.0.1
    rewrite edns0 local set 0xffee abcd revert
    whoami
}
"""


def echoed(srv: Server, port_name: str | None, edns: bool) -> tuple[int, dict[int, bytes]]:
    q = dns.message.make_query("who.example.", "A", use_edns=0 if edns else False)
    port = srv.ports[port_name] if port_name else None
    r = srv.send(q, port=port)
    return r.payload, {int(o.otype): o.to_wire() for o in r.options}


def test_edns0_options_echoed_unless_reverted(tmp_path: Path) -> None:
    """As CoreDNS: an answer without OPT gets the query's, with the rewrite's codes in it;
    `revert` undoes the rule's change first; a query without OPT got one (4096)."""
    with serve(ECHO_COREFILE, tmp_path) as s:
        assert echoed(s, None, True) == (1232, {0xFFEE: b"abcd"})
        assert echoed(s, None, False) == (4096, {0xFFEE: b"abcd"})
        assert echoed(s, "P1", True) == (1232, {0xFFEE: b"abcd"})
        assert echoed(s, "P2", True) == (1232, {})
        assert echoed(s, "P2", False) == (4096, {})


def test_edns0_echo_like_coredns(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    with (
        serve(ECHO_COREFILE, tmp_path / "ours") as ours,
        serve_coredns(ECHO_COREFILE, tmp_path / "ref") as ref,
    ):
        for port in (None, "P1", "P2"):
            for edns in (True, False):
                assert echoed(ours, port, edns) == echoed(ref, port, edns), (port, edns)


# ---- kubernetes: vanity names, ExternalName, CNAME targets -----------------------------------

K8S = (
    DEMO_WEB
    + """---
apiVersion: v1
kind: Service
metadata:
  name: ext
  namespace: demo
spec:
  type: ExternalName
  externalName: www.cdn.example.
"""
)

K8S_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    rewrite stop {
        name regex (.*)\\.api\\.example\\.com\\.$ {1}.demo.svc.cluster.local.
        answer name (.*)\\.demo\\.svc\\.cluster\\.local\\.$ {1}.api.example.com.
    }
    rewrite name exact db.example.internal. web.demo.svc.cluster.local.
    rewrite continue name exact vanity-ext.example. ext.demo.svc.cluster.local.
    rewrite continue name suffix .corp.example. .demo.svc.cluster.local. answer auto
    rewrite cname suffix .cdn.example. .other.example.
    hosts {
        10.5.0.1 www.cdn.example.
        10.5.0.2 www.other.example.
        fallthrough
    }
    kubernetes cluster.local {
        manifests k8s.yaml
    }
}
.:@P1@ {
    bind 127.0.0.1
    hosts {
        10.5.0.1 www.cdn.example.
        fallthrough
    }
    kubernetes cluster.local {
        manifests k8s.yaml
    }
}
"""


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("rewrite-k8s")
    with serve(K8S_COREFILE, tmp, files={"k8s.yaml": K8S}) as s:
        yield s


def test_vanity_names_onto_services(k8s: Server) -> None:
    check(
        k8s,
        [
            Case("web.api.example.com.", answer=["web.api.example.com. 5 IN A 10.96.0.50"]),
            Case("db.example.internal.", answer=["db.example.internal. 5 IN A 10.96.0.50"]),
            Case("web.corp.example.", answer=["web.corp.example. 5 IN A 10.96.0.50"]),
            Case("nope.api.example.com.", rcode=dns.rcode.NXDOMAIN, answer=[]),
        ],
    )


def test_cname_target_rewrite_resolves_again(k8s: Server) -> None:
    """The ExternalName's CNAME points into .cdn.example; the rule makes it .other.example and
    the records after it are what the server answers for the new target."""
    check(
        k8s,
        [
            Case(
                "ext.demo.svc.cluster.local.",
                answer=[
                    "ext.demo.svc.cluster.local. 5 IN CNAME www.other.example.",
                    "www.other.example. 3600 IN A 10.5.0.2",
                ],
            ),
            # A vanity name onto the ExternalName (continue), then the cname rule: both.
            Case(
                "vanity-ext.example.",
                answer=[
                    "vanity-ext.example. 5 IN CNAME www.other.example.",
                    "www.other.example. 3600 IN A 10.5.0.2",
                ],
            ),
            # A name that is not a CNAME: the cname rule changes nothing.
            Case("www.cdn.example.", answer=["www.cdn.example. 3600 IN A 10.5.0.1"]),
        ],
    )
    # Without the rule (second block): the ExternalName's own target.
    r = k8s.query("ext.demo.svc.cluster.local.", port=k8s.ports["P1"])
    assert rrs(r.answer) == [
        "ext.demo.svc.cluster.local. 5 IN CNAME www.cdn.example.",
        "www.cdn.example. 3600 IN A 10.5.0.1",
    ]


# ---- the fast path ----------------------------------------------------------------------------

FAST_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    rewrite continue name suffix .corp.example. .example. answer auto
    rewrite continue ttl suffix .example. 30-60
    rewrite continue edns0 local set 0xffee {qname}
    rewrite name regex ^(.*)-v\\.example\\.$ {1}.example. answer auto
    hosts {
        10.0.0.1 a.example.
        10.0.0.2 b.example.
    }
    cache 30
}
"""


def test_answers_byte_identical_with_and_without_fast_path(tmp_path: Path) -> None:
    queries = [
        dns.message.make_query(n, t, id=4242, use_edns=e)
        for n in ("a.corp.example.", "B.Corp.Example.", "a-v.example.", "b.example.")
        for t in ("A", "AAAA")
        for e in (0, False)
    ]
    answers: dict[str, list[bytes]] = {}
    for mode in ("off", "on"):
        env = {"CLUSTERDNS_FASTPATH": mode}
        (tmp_path / mode).mkdir()
        with serve(FAST_COREFILE, tmp_path / mode, env=env) as s:
            got: list[bytes] = []
            for q in queries:
                for _ in range(3):  # the second and third may come from the fast path
                    got.append(exchange(s, q)[0])
            answers[mode] = got
    assert answers["on"] == answers["off"]
    for i in range(0, len(answers["on"]), 3):
        assert len(set(answers["on"][i : i + 3])) == 1


# ---- the shared vanity Corefile ---------------------------------------------------------------


def test_shared_vanity_corefile_serves(tmp_path: Path) -> None:
    text = (SHARED / "rewrite-vanity.Corefile").read_text()
    text = (
        text.replace(".:53 {", ".:@PORT@ {\n    bind 127.0.0.1")
        .replace("lameduck 5s", "lameduck 100ms")
        .replace("health {", "health 127.0.0.1:@P1@ {")
        .replace("    ready\n", "    ready 127.0.0.1:@P2@\n")
        .replace("prometheus :9153", "prometheus 127.0.0.1:@P3@")
        .replace("pods insecure", "pods insecure\n        manifests k8s.yaml")
        .replace("forward . /etc/resolv.conf", "forward . 127.0.0.1:9")
    )
    assert text.count("@P") == 4 and "manifests" in text
    k8s = DEMO_WEB.replace("demo", "prod") + K8S_MORE
    with serve(text, tmp_path, files={"k8s.yaml": k8s}) as s:
        check(
            s,
            [
                Case("web.api.example.com.", answer=["web.api.example.com. 30 IN A 10.96.0.50"]),
                Case("db.example.internal.", answer=["db.example.internal. 30 IN A 10.96.0.60"]),
                Case(
                    "kubernetes.corp.example.",
                    answer=["kubernetes.corp.example. 30 IN A 10.96.0.1"],
                ),
                Case(
                    "n1.nodes.vcluster.com.",
                    answer=["kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"],
                ),
            ],
        )


K8S_MORE = """---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: prod
spec:
  clusterIP: 10.96.0.60
  ports:
  - name: sql
    port: 5432
---
apiVersion: v1
kind: Namespace
metadata:
  name: default
---
apiVersion: v1
kind: Service
metadata:
  name: kubernetes
  namespace: default
spec:
  clusterIP: 10.96.0.1
  ports:
  - name: https
    port: 443
"""


# ---- the reference CoreDNS --------------------------------------------------------------------

DIFF_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    chaos
    rewrite class CH IN
    rewrite name exact foo.example. target.example.
    rewrite name prefix www. web.
    rewrite name substring -dev. .
    rewrite name suffix .corp.example. .example. answer auto
    rewrite name regex (.*)-(west)\\.example\\. {1}.{2}.region.example.
    rewrite stop {
        name regex (.*)\\.svc\\.example\\. {1}.region.example.
        answer name (.*)\\.region\\.example\\. {1}.svc.example.
    }
    rewrite continue name exact a.chain. b.chain.
    rewrite continue name exact b.chain. target.example.
    rewrite continue ttl regex (.*)\\.short\\.example 15
    rewrite continue ttl suffix .clamp.example. 30-300
    rewrite rcode exact missing.example. SERVFAIL NXDOMAIN
    rewrite type AAAA A
    rewrite name suffix .arpa. .arpa. answer auto answer value (.*)\\.internal\\.example\\. {1}.public.example.
    hosts /dev/null . {
        10.0.0.1 target.example.
        10.0.0.2 web.shop.example.
        10.0.0.3 api.example.
        10.0.0.4 app.example.
        10.0.0.5 api.west.region.example.
        10.0.0.6 db.region.example.
        10.0.0.7 a.short.example. x.clamp.example.
        10.9.0.1 host.internal.example.
    }
}
"""

DIFF_QUERIES: list[tuple[str, ...]] = [
    ("foo.example.", "A"), ("FOO.example.", "A"), ("www.shop.example.", "A"),
    ("api-dev.example.", "A"), ("app.corp.example.", "A"), ("api-west.example.", "A"),
    ("db.svc.example.", "A"), ("a.chain.", "A"), ("a.short.example.", "A"),
    ("x.clamp.example.", "A"), ("missing.example.", "A"), ("target.example.", "AAAA"),
    ("target.example.", "MX"), ("1.0.9.10.in-addr.arpa.", "PTR"), ("nothing.example.", "A"),
    ("target.example.", "A", "CH"), ("foo.example.", "A", "CH"),
]  # fmt: skip


def _sections(r: dns.message.Message) -> tuple[object, ...]:
    """What must agree; owner names compared lower-cased (dnspython compresses an owner equal
    to the question onto it, showing the client's case, where CoreDNS writes it as is)."""
    low = [[line.lower() for line in rrs(s)] for s in (r.answer, r.authority, r.additional)]
    return (r.rcode(), r.flags, r.question[0].to_text(), *map(tuple, low), r.payload)


def test_like_coredns(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    with (
        serve(DIFF_COREFILE, tmp_path / "ours") as ours,
        serve_coredns(DIFF_COREFILE, tmp_path / "ref") as ref,
    ):
        for name, qtype, *qclass in DIFF_QUERIES:
            for proto in ("udp", "tcp"):
                q = dns.message.make_query(name, qtype, *qclass, use_edns=0)
                got, want = ours.send(q, proto), ref.send(q, proto)
                assert _sections(got) == _sections(want), (name, qtype, proto)


def cdn(q: dns.message.Message, proto: str) -> list[dns.message.Message]:
    """An upstream with a CNAME into a CDN, and the other CDN's address."""
    r = dns.message.make_response(q)
    name = q.question[0].name.to_text().lower()
    if name == "app.example.":
        r.answer = [
            dns.rrset.from_text("app.example.", 300, "IN", "CNAME", "app.cdn.example."),
            dns.rrset.from_text("app.cdn.example.", 60, "IN", "A", "20.0.0.1"),
        ]
    elif name == "app.other.example.":
        r.answer = [dns.rrset.from_text("app.other.example.", 30, "IN", "A", "30.0.0.1")]
    else:
        r.set_rcode(dns.rcode.NXDOMAIN)
    return [r]


CDN_COREFILE = """
.:@PORT@ {
    bind 127.0.0.1
    rewrite continue ttl suffix .example. 100-200
    rewrite cname suffix .cdn.example. .other.example.
    forward . 127.0.0.1:UP
}
"""


def test_cname_rewrite_through_forward_like_coredns(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    with Upstream(cdn) as up:
        corefile = CDN_COREFILE.replace("UP", str(up.port))
        with (
            serve(corefile, tmp_path / "ours") as ours,
            serve_coredns(corefile, tmp_path / "ref") as ref,
        ):
            for name in ("app.example.", "app.other.example.", "none.example."):
                q = dns.message.make_query(name, "A", use_edns=0)
                got, want = ours.send(q), ref.send(q)
                assert _sections(got) == _sections(want), (name, got, want)
            r = ours.query("app.example.")
            assert rrs(r.answer) == [
                "app.example. 200 IN CNAME app.other.example.",
                "app.other.example. 100 IN A 30.0.0.1",
            ]


def test_edns0_upstream_sees_what_coredns_sends(tmp_path: Path) -> None:
    """The options forward passes on, in order, as the reference's (ports left out: the
    two servers listen on different ones)."""
    ports = (0xFFE4, 0xFFE7)
    seen: dict[bool, list[object]] = {}
    (tmp_path / "ours").mkdir()
    with Upstream(lambda q, proto: [answer(q, "10.7.0.1")]) as up:
        corefile = EDNS_COREFILE.replace("UP", str(up.port))
        with (
            serve(corefile, tmp_path / "ours") as ours,
            serve_coredns(corefile, tmp_path / "ref") as ref,
        ):
            for srv in (ours, ref):
                got: list[object] = []
                for edns in (True, False):
                    opts = [
                        dns.edns.ECSOption("192.0.2.0", 24),
                        dns.edns.GenericOption(0xFFF0, b"x"),
                        dns.edns.GenericOption(0xFFE9, b"old"),
                    ]
                    q = dns.message.make_query(
                        "x.example.org.", "A", use_edns=0 if edns else False,
                        options=opts if edns else None,
                    )  # fmt: skip
                    r = srv.send(q)
                    m = up.messages[-1]
                    sent = [(o.otype, o.to_wire()) for o in m.options if o.otype not in ports]
                    got.append((m.payload, m.ednsflags, sent, r.payload, r.options))
                seen[srv is ours] = got
    assert seen[True] == seen[False]
