"""`make bench`'s own parts: the generated cluster is what the peer is told, the numbers in
docs/performance.md are the committed results', and the summaries pick and judge honestly.

The benchmark itself (dnsperf, minutes of load) runs in `make bench`, never here.
"""

from __future__ import annotations

import json
from pathlib import Path

import dns.rcode
import dns.rdatatype

from bench import gencluster, lib, mdreport, report
from tests.harness import serve

ROOT = Path(__file__).resolve().parent.parent


def test_docs_tables_are_the_committed_results() -> None:
    doc = mdreport.DOC.read_text()
    r = json.loads(mdreport.RESULTS.read_text())
    assert doc.count("<!-- bench:") == 4
    assert mdreport.fill(doc, mdreport.sections(r, report.TARGETS)) == doc, (
        "docs/performance.md's tables differ from bench/results/full.json: "
        "run `python -m bench.mdreport`"
    )


def _hosts(path: Path) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        ip, *owners = line.split()
        for owner in owners:
            names.setdefault(owner.lower() + ".", set()).add(ip)
    return names


def test_generated_cluster_answers_as_the_peers_hosts_file(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    argv = [str(out), "--services", "40", "--endpoints", "300", "--namespaces", "4"]
    assert gencluster.main([*argv, "--query-services", "40"]) == 0
    meta = json.loads((out / "cluster.json").read_text())
    assert meta["services"] == 40 and meta["endpoints"] == 300 and meta["headless_services"] > 0
    hosts = _hosts(out / "hosts")
    corefile = f"""\
.:@PORT@ {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        manifests {out / "cluster"}
    }}
}}
"""
    with serve(corefile, tmp_path) as srv:
        lines = (out / "queries-cluster-a.txt").read_text().splitlines()
        names = sorted({line.split()[0].lower() + "." for line in lines})
        assert len(names) > 10
        for name in names:
            resp = srv.query(name, "A")
            got = {rr.address for rrset in resp.answer for rr in rrset}
            assert got == hosts[name], name
        for line in (out / "queries-ndots.txt").read_text().splitlines()[:8]:
            name, qtype = line.split()
            want = dns.rcode.NOERROR if name.count(".cluster.local") == 1 else dns.rcode.NXDOMAIN
            assert srv.query(name, qtype).rcode() == want, name
        srv_lines = [x for x in (out / "queries-cluster.txt").read_text().splitlines()]
        srv_names = [x.split()[0] for x in srv_lines if x.endswith(" SRV")][:5]
        assert srv_names
        for name in srv_names:
            resp = srv.query(name, "SRV", proto="tcp")  # headless: too big for 512 bytes
            assert resp.rcode() == dns.rcode.NOERROR, name
            assert resp.answer and resp.answer[0].rdtype == dns.rdatatype.SRV, (name, resp)


DNSPERF_OUTPUT = """\
Statistics:

  Queries sent:         1906773
  Queries completed:    1906746 (100.00%)
  Queries lost:         27 (0.00%)

  Response codes:       NOERROR 1906700 (100.00%), NXDOMAIN 46 (0.00%)
  Average packet size:  request 37, response 53
  Run time (s):         15.000081
  Queries per second:   127108.468432

  Average Latency (s):  0.000451 (min 0.000011, max 0.012345)
  Latency StdDev (s):   0.000610
"""


def test_dnsperf_summary_and_latency_lines() -> None:
    p = lib.parse_dnsperf(DNSPERF_OUTPUT)
    assert (p.sent, p.completed, p.lost) == (1906773, 1906746, 27)
    assert round(p.qps) == 127108 and abs(p.avg_ms - 0.451) < 1e-9
    assert p.rcodes == {"NOERROR": 1906700, "NXDOMAIN": 46}
    probe = "\n".join(f"> NOERROR x.example. A {ms / 1000:.6f}" for ms in range(1, 100))
    p50, p99 = lib.percentiles(probe + "\n> T y.example. A\n")
    assert (
        p50 is not None
        and 50.0 <= p50 <= 51.0
        and p99 is not None
        and 99.0 <= p99 <= lib.TIMEOUT * 1000
    )
    assert lib.percentiles("> NOERROR x. A 0.001\n") == (None, None)


def _results(qps: dict[str, list[float]], rss: float) -> dict[str, object]:
    rows = [{"server": s, "qps": q, "p99_ms": 1.0} for s, qs in qps.items() for q in qs]
    return {
        "scenarios": {"1-cluster-cache-A": rows, "2-cluster-nocache": [rows[0]]},
        "curve": {"clusterdns": [{"pct": 50, "qps": 1.0, "p50_ms": 0.1, "p99_ms": 3.0}]},
        "startup": {"manifests_one_process": {"ready_s": 1.0, "rss_mb": rss}},
        "cluster": {"endpoints": 100_000},
    }


def test_medians_and_verdicts() -> None:
    r = _results({"clusterdns": [90.0, 120.0, 100.0], "dnsmasq": [130.0, 95.0, 99.0]}, 170)
    picked = {
        x["server"]: (x["qps"], x["runs"])
        for x in report.medians(r["scenarios"]["1-cluster-cache-A"])
    }  # type: ignore[index]
    assert picked == {"clusterdns": (100.0, 3), "dnsmasq": (99.0, 3)}
    v = report.verdicts(r, report.TARGETS)
    assert any(x.startswith("[met] scenario 1 >=") and "1.01x" in x for x in v)
    assert any(x.startswith("[MISSED] scenario 1 p99") for x in v)
    assert any(x.startswith("[MISSED] scenario 2") for x in v)  # 90 QPS
    assert any(x.startswith("[MISSED] RSS after sync, 10k/100k") for x in v)
    assert any(x.startswith("[met] ready with 100k") for x in v)
