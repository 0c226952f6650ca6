"""Names built by putting labels in front of others must not overflow into a traceback.

kubernetes builds SRV, NS and PTR targets as `hostname.svc.ns.svc.ZONE` and the SOA as
`ns.dns.ZONE`; autopath appends search domains to a name's base. Under a long zone (or with a
long query) those can exceed 255 octets. CoreDNS writes them anyway (an answer no client can
read); here the record is left out. Each test also checks the server logged no traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterdns.plugins.kubernetes.local import TEST_ADDRS_ENV
from tests.harness import Case, Server, check, rrs, serve, start

NX = dns.rcode.NXDOMAIN
HOST63, SVC63, NS63 = "h" * 63, "s" * 63, "n" * 63
#: 87 octets: a query `_http._tcp.SVC.NS.svc.ZONE` fits (230), the target `HOST.SVC.NS.svc.ZONE`
#: does not (283).
ZONE = "z" * 50 + "." + "y" * 20 + ".cluster.local."
#: 251 octets: `ns.dns.` in front of it is 258.
HUGE = ".".join(["x" * 63, "x" * 63, "x" * 63, "x" * 57]) + "."


def manifest() -> str:
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS63}},
        {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": SVC63, "namespace": NS63},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "e", "namespace": NS63,
                         "labels": {"kubernetes.io/service-name": SVC63}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.78"], "hostname": HOST63}],
            "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
        },
        {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad", "namespace": NS63},
            "spec": {"type": "ExternalName", "externalName": "a..b.example"},
        },
    ]  # fmt: skip
    return "\n".join(json.dumps(o) for o in objs)


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("long")
    (tmp / "objects.json").write_text(manifest())
    cf = (
        f".:@PORT@ {{\n    kubernetes {ZONE} in-addr.arpa {{\n        manifests objects.json\n"
        f"    }}\n}}\n{HUGE}:@PORT@ {{\n    kubernetes {{\n        manifests objects.json\n"
        "    }\n}\n"
    )
    for attempt in range(5):  # unbound: a port free on 127.0.0.1 may be taken elsewhere
        try:
            srv = start(cf, tmp, env={TEST_ADDRS_ENV: "192.0.2.78"})
            break
        except AssertionError as e:
            if "Address already in use" not in str(e) or attempt == 4:
                raise
    try:
        yield srv
    finally:
        srv.stop()


def test_targets_too_long_are_left_out(k8s: Server) -> None:
    base = f"{SVC63}.{NS63}.svc.{ZONE}"
    serial = int(k8s.query(ZONE, "SOA").answer[0][0].serial)
    neg = [f"{ZONE} 5 IN SOA ns.dns.{ZONE} hostmaster.{ZONE} {serial} 7200 1800 86400 5"]
    check(k8s, [
        # The SRV targets `HOST63.SVC63.NS63.svc.ZONE` are 283 octets: no SRV, no glue.
        Case(f"_http._tcp.{base}", "SRV", answer=[], extra=[]),
        Case(base, "SRV", answer=[], extra=[]),
        Case(base, "A", answer=[f"{base} 5 IN A 192.0.2.78"]),
        # Our address is that endpoint: the NS target would be too long, so no NS at all.
        Case(ZONE, "NS", answer=[], ns=neg),
        # The PTR target is too long as well.
        Case("78.2.0.192.in-addr.arpa.", "PTR", answer=[]),
        # An ExternalName that is no valid name: no CNAME.
        Case(f"bad.{NS63}.svc.{ZONE}", "A", answer=[], ns=neg),
        Case(f"bad.{NS63}.svc.{ZONE}", "CNAME", answer=[], ns=neg),
        # A zone too long for `ns.dns.` in front: negative answers come without the SOA.
        Case(f"n.{HUGE}", "A", NX, ns=[]),
        Case(HUGE, "SOA", answer=[]),
    ])  # fmt: skip
    assert "Traceback" not in k8s.output


label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=63)
PARTS = [["_http", "_tcp", SVC63, NS63, "svc"], [HOST63, SVC63, NS63, "svc"], [SVC63, NS63, "svc"]]


@st.composite
def names_in_zone(draw: st.DrawFn) -> str:
    """Names under ZONE of up to 255 octets: real service names, random labels, or both."""
    labels = list(draw(st.sampled_from([[], *PARTS])))
    while draw(st.booleans()):
        labels.insert(0, draw(label))
    size = len(ZONE) + 1 + sum(len(x) + 1 for x in labels)
    while size > 255:
        size -= len(labels.pop(0)) + 1
    return ".".join([*labels, ZONE]) if labels else ZONE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names_in_zone(), rdtype=st.sampled_from(["A", "SRV", "NS", "PTR", "TXT", "SOA"]))
def test_long_names_in_the_zone_never_fail(k8s: Server, name: str, rdtype: str) -> None:
    r = k8s.query(name, rdtype)
    assert r.rcode() in (dns.rcode.NOERROR, NX)
    assert "Traceback" not in k8s.output


def test_autopath_skips_search_domains_that_make_the_name_too_long(tmp_path: Path) -> None:
    """base + a longer search domain than the first one can exceed 255 octets."""
    long_domain = ".".join(["d" * 63, "d" * 63]) + ".example."
    (tmp_path / "resolv.conf").write_text(f"search a.example {long_domain}\n")
    cf = ".:@PORT@ {\n    bind 127.0.0.1\n    autopath resolv.conf\n    hosts {\n    }\n}\n"
    base = ".".join(["b" * 63, "b" * 63]) + ".b"  # with a.example.: 141 octets; with the other, 259
    with serve(cf, tmp_path) as srv:
        r = srv.query(f"{base}.a.example.", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and rrs(r.answer) == []
        assert "Traceback" not in srv.output
        assert dns.name.from_text(f"{base}.a.example.")  # the query itself is a valid name


def test_loop_probe_name_too_long_for_the_zone(tmp_path: Path) -> None:
    """loop asks itself RANDOM.RANDOM.ZONE: under a zone of 230 octets that cannot be a name."""
    zone = ".".join(["l" * 63, "l" * 63, "l" * 63, "l" * 37]) + "."
    cf = f"{zone}:@PORT@ {{\n    bind 127.0.0.1\n    loop\n    whoami\n}}\n"
    with serve(cf, tmp_path) as srv:
        srv.wait_output(r"\[WARNING\] plugin/loop: zone \S+ too long for a probe name, unchecked")
        assert srv.query(f"a.{zone}", "A").rcode() == dns.rcode.NOERROR
    assert "Traceback" not in srv.output
