"""prometheus: /metrics, CoreDNS's per-query metrics with their exact labels, setup errors."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import HOST, Server, exchange, metric, validate_block

COREFILE = """
example.org:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    whoami
}
sub.example.org:@PORT@ example.net:@PORT@ {
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    errors
}
"""


def label_sets(text: str, name: str) -> list[dict[str, str]]:
    return [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def _query(srv: Server, name: str, qtype: str, proto: str = "udp", **kw: object) -> tuple[int, int]:
    """(query size, response size) on the wire."""
    q = dns.message.make_query(name, qtype, **kw)  # type: ignore[arg-type]
    wire, _ = exchange(srv, q, proto)
    return len(q.to_wire()), len(wire)


def test_per_query_metrics_and_labels(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(COREFILE)
    s = f"dns://127.0.0.1:{srv.port}"
    org = {"server": s, "zone": "example.org.", "view": ""}
    q1, r1 = _query(srv, "a.example.org.", "A")
    q2, r2 = _query(srv, "B.example.org.", "AAAA", "tcp", want_dnssec=True)
    q3, r3 = _query(srv, "c.example.org.", "HINFO")
    assert srv.query("x.example.net.", "A").rcode() == dns.rcode.SERVFAIL
    assert srv.query("y.sub.example.org.", "MX", proto="tcp").rcode() == dns.rcode.SERVFAIL
    text = srv.metrics("P1")

    def req(zone: dict[str, str], proto: str, qtype: str) -> float | None:
        return metric(
            text, "coredns_dns_requests_total", **zone, proto=proto, family="1", type=qtype
        )

    net = {"server": s, "zone": "example.net.", "view": ""}
    sub = {"server": s, "zone": "sub.example.org.", "view": ""}
    assert req(org, "udp", "A") == 1
    assert req(org, "tcp", "AAAA") == 1
    assert req(org, "udp", "other") == 1
    assert req(net, "udp", "A") == 1
    assert req(sub, "tcp", "MX") == 1
    # The five above, plus the harness's start-up probe (probe.invalid.), refused as "dropped".
    dropped = {"server": s, "zone": "dropped", "view": ""}
    assert req(dropped, "udp", "A") is not None
    assert len(label_sets(text, "coredns_dns_requests_total")) == 6

    rcodes = "coredns_dns_responses_total"
    assert metric(text, rcodes, **org, rcode="NOERROR", plugin="whoami") == 3
    assert metric(text, rcodes, **net, rcode="SERVFAIL", plugin="") == 1
    assert metric(text, rcodes, **sub, rcode="SERVFAIL", plugin="") == 1
    assert len(label_sets(text, rcodes)) == 4  # + the dropped probe

    assert metric(text, "coredns_dns_do_requests_total", **org) == 1
    assert label_sets(text, "coredns_dns_do_requests_total") == [org]

    size = "coredns_dns_request_size_bytes"
    assert metric(text, f"{size}_count", **org, proto="udp") == 2
    assert metric(text, f"{size}_sum", **org, proto="udp") == q1 + q3
    assert metric(text, f"{size}_sum", **org, proto="tcp") == q2
    size = "coredns_dns_response_size_bytes"
    assert metric(text, f"{size}_sum", **org, proto="udp") == r1 + r3
    assert metric(text, f"{size}_sum", **org, proto="tcp") == r2
    assert metric(text, f"{size}_bucket", **org, proto="udp", le="100.0") == 2
    # CoreDNS's recorder never sees the server's error reply: size 0.
    assert metric(text, f"{size}_count", **net, proto="udp") == 1
    assert metric(text, f"{size}_sum", **net, proto="udp") == 0
    assert metric(text, f"{size}_bucket", **net, proto="udp", le="0.0") == 1

    dur = "coredns_dns_request_duration_seconds"
    assert metric(text, f"{dur}_count", **org, type="A") == 1
    assert metric(text, f"{dur}_count", **org, type="other") == 1
    assert metric(text, f"{dur}_bucket", **org, type="A", le="+Inf") == 1
    assert metric(text, f"{dur}_bucket", **org, type="A", le="8.192") == 1
    assert 0 < (metric(text, f"{dur}_sum", **org, type="A") or 0) < 5


def test_process_metrics(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(COREFILE)
    with urllib.request.urlopen(f"http://{HOST}:{srv.ports['P1']}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = r.read().decode()
    s = f"dns://127.0.0.1:{srv.port}"
    enabled = "coredns_plugin_enabled"
    for zone, name in [("example.org.", "whoami"), ("example.org.", "prometheus"),
                       ("example.net.", "errors"), ("sub.example.org.", "prometheus")]:  # fmt: skip
        assert metric(text, enabled, server=s, zone=zone, view="", name=name) == 1, (zone, name)
    (build,) = label_sets(text, "coredns_build_info")
    assert set(build) == {"version", "revision", "goversion"}
    assert metric(text, "coredns_build_info", **build) == 1
    assert metric(text, "coredns_panics_total") == 0
    assert metric(text, "coredns_health_request_failures_total") == 0
    assert metric(text, "coredns_health_request_duration_seconds_count") == 0
    assert metric(text, "coredns_reload_failed_total") == 0
    assert srv.http("P1", "/other") == (404, "404 page not found\n")


def test_refused_outside_every_zone_is_reported_as_dropped(
    server_factory: Callable[..., Server],
) -> None:
    srv = server_factory(COREFILE)
    s = f"dns://127.0.0.1:{srv.port}"
    dropped = {"server": s, "zone": "dropped", "view": ""}
    before = metric(srv.metrics("P1"), "coredns_dns_responses_total", **dropped,
                    rcode="REFUSED", plugin="") or 0  # fmt: skip
    assert srv.query("elsewhere.test.", "A").rcode() == dns.rcode.REFUSED
    after = metric(srv.metrics("P1"), "coredns_dns_responses_total", **dropped,
                   rcode="REFUSED", plugin="")  # fmt: skip
    assert after == before + 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    prometheus localhost\n", "address localhost: missing port in address"),
        ("    prometheus ::1:9153\n", "too many colons in address"),
        ("    prometheus [::1\n", "missing ']' in address"),
        ("    prometheus :99999\n", "invalid port '99999'"),
        ("    prometheus :9153 :9154\n", "wrong argument count"),
        ("    prometheus\n    prometheus :9154\n", "can only be used once per server block"),
        ("    prometheus {\n        path /x\n    }\n", "unexpected block"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, message: str) -> None:
    code, err, conf = validate_block(tmp_path, body)
    assert code == 1
    assert f"{conf}:" in err and message in err, err


def test_setup_accepts_coredns_forms(tmp_path: Path) -> None:
    for body in ("    prometheus\n", "    prometheus :9253\n", "    prometheus [::1]:9153\n"):
        code, err, _ = validate_block(tmp_path, body)
        assert code == 0, err
