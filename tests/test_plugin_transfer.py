"""transfer: AXFR/IXFR over TCP for the file plugin's zones, refusals, NOTIFY, setup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.zone
import pytest

from tests.coredns_ref import serve_coredns
from tests.harness import HOST, Server, serve, setup_error
from tests.xfr_client import ixfr, notify_catcher, records, transfer
from tests.zonefiles import EXAMPLE_ORG, soa_serial

COREFILE = """
example.org:@PORT@ {
    bind 127.0.0.1
    file db.example.org
    transfer {
        to *
    }
}
example.com:@PORT@ {
    bind 127.0.0.1
    file db.example.com
    transfer {
        to 192.0.2.1
    }
}
big.test:@PORT@ {
    bind 127.0.0.1
    file db.big.test
    transfer {
        to 127.0.0.1
    }
}
"""
EXAMPLE_COM = EXAMPLE_ORG.replace("example.org.", "example.com.")
BIG = "$ORIGIN big.test.\n$TTL 60\n@ IN SOA ns hm 7 1 1 1 1\n@ IN NS ns\n" + "".join(
    f'host{i} IN TXT "{"x" * 40}"\n' for i in range(2000)
)
FILES = {"db.example.org": EXAMPLE_ORG, "db.example.com": EXAMPLE_COM, "db.big.test": BIG}
SERIAL = 2026120101


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(COREFILE, tmp_path_factory.mktemp("transfer"), files=FILES) as s:
        yield s


def zone_lines(text: str, origin: str) -> list[str]:
    """The zone's records as the server keeps them (dnspython's reading, names lower-cased)."""
    z = dns.zone.from_text(text, origin, relativize=False)
    out = []
    for name, rdataset in z.iterate_rdatasets():
        out.extend(rdataset.to_text(name).lower().splitlines())
    return sorted(" ".join(x.split()) for x in out)


def test_axfr_sends_the_whole_zone_between_soas(srv: Server) -> None:
    msgs = transfer(srv.port, dns.message.make_query("example.org.", "AXFR"))
    lines = [" ".join(x.split()).lower() for x in records(msgs)]
    assert " soa " in lines[0].replace("in soa", " soa ") and lines[0] == lines[-1]
    assert sorted(lines[:-1]) == zone_lines(EXAMPLE_ORG, "example.org.")
    assert all(m.flags & dns.flags.AA and m.rcode() == 0 for m in msgs)


def test_dnspython_client_reads_the_transfer(srv: Server) -> None:
    z = dns.zone.from_xfr(dns.query.xfr(HOST, "example.org.", port=srv.port, lifetime=10))
    assert z.get_rdataset("www", "A") is not None
    assert str(z.get_rdataset("@", "SOA")[0].serial) == str(SERIAL)


def test_big_zone_spans_several_messages(srv: Server) -> None:
    msgs = transfer(srv.port, dns.message.make_query("big.test.", "AXFR"))
    assert len(msgs) > 1
    assert all(len(m.to_wire()) <= 65535 for m in msgs)
    assert len(records(msgs)) == 2000 + 3  # the TXTs, NS, and the SOA twice


def test_ixfr(srv: Server) -> None:
    # Up to date: the SOA alone, not authoritative (CoreDNS's answer).
    msgs = transfer(srv.port, ixfr("example.org.", SERIAL))
    assert len(msgs) == 1 and len(records(msgs)) == 1 and not msgs[0].flags & dns.flags.AA
    # Older: the full zone (AXFR fallback).
    full = transfer(srv.port, ixfr("example.org.", SERIAL - 1))
    axfr = transfer(srv.port, dns.message.make_query("example.org.", "AXFR"))
    assert records(full) == records(axfr)
    # No SOA in the authority section: SERVFAIL.
    bad = transfer(srv.port, dns.message.make_query("example.org.", "IXFR"))
    assert [m.rcode() for m in bad] == [dns.rcode.SERVFAIL]


@pytest.mark.parametrize(
    ("qname", "proto", "rcode"),
    [
        ("example.org.", "udp", dns.rcode.REFUSED),  # transfers only over TCP
        ("example.com.", "tcp", dns.rcode.REFUSED),  # 127.0.0.1 is not in `to`
        ("www.example.org.", "tcp", dns.rcode.REFUSED),  # not a zone: file refuses it
    ],
)
def test_refused(srv: Server, qname: str, proto: str, rcode: int) -> None:
    r = srv.query(qname, "AXFR", proto=proto)
    assert r.rcode() == rcode and not r.answer and not r.flags & dns.flags.AA


def test_same_as_coredns(srv: Server, tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    with serve_coredns(COREFILE, tmp_path) as ref:
        for q in (
            dns.message.make_query("example.org.", "AXFR"),
            dns.message.make_query("big.test.", "AXFR"),
            dns.message.make_query("example.com.", "AXFR"),
            dns.message.make_query("www.example.org.", "AXFR"),
            ixfr("example.org.", SERIAL),
            ixfr("example.org.", SERIAL + 5),
            dns.message.make_query("example.org.", "IXFR"),
        ):
            ours, theirs = transfer(srv.port, q), transfer(ref.port, q)
            assert [(m.rcode(), m.flags) for m in ours] == [(m.rcode(), m.flags) for m in theirs]
            a, b = records(ours), records(theirs)
            assert a[:1] == b[:1] and a[-1:] == b[-1:] and sorted(a) == sorted(b), q.question
        for r in (srv.query("example.org.", "AXFR"), ref.query("example.org.", "AXFR")):
            assert r.rcode() == dns.rcode.REFUSED


def test_notify_on_start_and_on_reload(tmp_path: Path) -> None:
    with notify_catcher() as catcher:
        corefile = """
example.org:@PORT@ {
    bind 127.0.0.1
    file db.example.org {
        reload 100ms
    }
    transfer {
        to 127.0.0.1:CATCHER
    }
}
""".replace("CATCHER", str(catcher.port))
        with serve(corefile, tmp_path, files={"db.example.org": EXAMPLE_ORG}) as s:
            assert catcher.wait(1) == ["example.org."]
            (tmp_path / "db.example.org").write_text(soa_serial(EXAMPLE_ORG, SERIAL + 1))
            s.wait_output("Successfully reloaded")
            assert catcher.wait(2) == ["example.org.", "example.org."]
            # 127.0.0.1 is in `to`, so it may transfer.
            msgs = transfer(s.port, dns.message.make_query("example.org.", "AXFR"))
            assert str(SERIAL + 1) in records(msgs)[0]


@pytest.mark.parametrize(
    ("block", "line", "message"),
    [
        ("transfer", 2, "'to' is required"),
        ("transfer {\n    to\n  }", 3, "wrong argument count"),
        ("transfer {\n    to example.org\n  }", 3, "must specify an IP address"),
        ("transfer {\n    to *\n    source 1.2.3.4\n    source 1.2.3.5\n  }", 5,
         "source already specified"),
        ("transfer {\n    to *\n    source nowhere\n  }", 4, 'invalid source address "nowhere"'),
        ("transfer {\n    to *\n    bogus\n  }", 4, 'unknown property "bogus"'),
    ],
)  # fmt: skip
def test_setup_errors(tmp_path: Path, block: str, line: int, message: str) -> None:
    setup_error(tmp_path, f"  {block}\n", line, message)


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    from tests.harness import validate_block

    code, err, _ = validate_block(
        tmp_path, "  transfer example.org {\n    to * 10.0.0.1 10.0.0.2:5300 [::1]:53\n"
        "    to ::1\n    source 127.0.0.1\n  }\n",
    )  # fmt: skip
    assert code == 0, err


# ---- kubernetes implements the Transferer protocol too ------------------------------------------

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.50
  clusterIPs: [10.96.0.50]
  ports: [{name: http, protocol: TCP, port: 80}, {protocol: UDP, port: 53}]
---
apiVersion: v1
kind: Service
metadata: {name: head, namespace: demo}
spec:
  clusterIP: None
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: head-1
  namespace: demo
  labels: {kubernetes.io/service-name: head}
addressType: IPv4
endpoints:
- {addresses: [10.1.0.1], conditions: {ready: true}, hostname: h1}
- {addresses: [10.1.0.2], conditions: {ready: true}}
- {addresses: [10.1.0.3], conditions: {ready: false}}
ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: demo}
spec: {type: ExternalName, externalName: example.com}
"""


def test_kubernetes_zone_transfer(tmp_path: Path) -> None:
    corefile = """
.:@PORT@ {
    bind 127.0.0.1
    kubernetes cluster.local {
        manifests cluster.yaml
    }
    transfer {
        to *
    }
}
"""
    with serve(corefile, tmp_path, files={"cluster.yaml": MANIFESTS}) as s:
        msgs = transfer(s.port, dns.message.make_query("cluster.local.", "AXFR"))
        lines = [" ".join(x.split()) for x in records(msgs)]
        soa = lines[0]
        assert soa.startswith("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.")
        # The layout of CoreDNS's xfr.go: services by name, address records then SRVs.
        body = [x for x in lines[1:-1] if " NS " not in x and not x.startswith("ns.dns.")]
        assert body == [
            "ext.demo.svc.cluster.local. 5 IN CNAME example.com.",
            "head.demo.svc.cluster.local. 5 IN A 10.1.0.1",
            "h1.head.demo.svc.cluster.local. 5 IN A 10.1.0.1",
            "_http._tcp.head.demo.svc.cluster.local. 5 IN SRV 0 50 80 h1.head.demo.svc.cluster.local.",
            "head.demo.svc.cluster.local. 5 IN A 10.1.0.2",
            "10-1-0-2.head.demo.svc.cluster.local. 5 IN A 10.1.0.2",
            "_http._tcp.head.demo.svc.cluster.local. 5 IN SRV 0 50 80 "
            "10-1-0-2.head.demo.svc.cluster.local.",
            "web.demo.svc.cluster.local. 5 IN A 10.96.0.50",
            "web.demo.svc.cluster.local. 5 IN SRV 0 100 80 web.demo.svc.cluster.local.",
            "_http._tcp.web.demo.svc.cluster.local. 5 IN SRV 0 100 80 web.demo.svc.cluster.local.",
            "web.demo.svc.cluster.local. 5 IN SRV 0 100 53 web.demo.svc.cluster.local.",
        ]  # fmt: skip
        assert lines[-1] == soa
        serial = int(soa.split()[6])
        up_to_date = transfer(s.port, ixfr("cluster.local.", serial))
        assert [" ".join(x.split()) for x in records(up_to_date)] == [soa]
