"""The benchmark's numbers as the Markdown tables of docs/performance.md.

The document's tables sit between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers and
are written from bench/results/full.json only (a full `make bench` rewrites them), so the
prose around them is kept and the numbers cannot drift from the JSON; tests/test_bench.py
checks that they agree. With `--quick`, the `quick_*` sections are written from
bench/results/coredns-quick.json (a copy of a `make bench QUICK=1` run's quick.json, which git
ignores: a quick run against CoreDNS, kept apart from the full run's numbers).

    python -m bench.mdreport [--quick] [RESULTS.json] [DOC.md]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench import scale_report
from bench.report import TARGETS, against_coredns, peer, summary_rows, verdicts

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "full.json"
QUICK = ROOT / "bench" / "results" / "coredns-quick.json"
SCALE = ROOT / "bench" / "results" / "scale.json"
DOC = ROOT / "docs" / "performance.md"
SCENARIOS = {
    "1-cluster-cache": "1 · cluster names A/AAAA/SRV, cache",
    "1-cluster-cache-A": "1 · cluster names A, cache",
    "2-cluster-nocache": "2 · cluster names A/AAAA/SRV, no cache",
    "3-ndots": "3 · ndots:5 search path",
    "4-external-cache": "4 · forwarded, cache",
    "4-external-nocache": "4 · forwarded, no cache",
}
MARKER = re.compile(r"(<!-- bench:(\w+) -->\n).*?(<!-- /bench:\2 -->)", re.S)


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _table(head: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["--:"] * (len(head) - 1)
    lines = [head, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def results_table(r: dict[str, Any]) -> str:
    rows = []
    for key, x, ratio in summary_rows(r):
        server = x["server"] + (f" (median of {x['runs']})" if x["runs"] > 1 else "")
        rows.append(
            [
                SCENARIOS.get(key, key),
                server,
                f"{x['qps']:,.0f}",
                _f(x["avg_ms"]),
                _f(x["p50_ms"]),
                _f(x["p99_ms"]),
                f"{x['lost']:,}",
                _f(x["server_cpu_s"], "{:.1f}"),
                _f(x["peak_rss_mb"], "{:.0f}"),
                ratio,
            ]
        )
    head = ["scenario", "server", "QPS", "avg ms", "p50 ms", "p99 ms", "lost", "CPU s"]
    return _table([*head, "peak RSS MB", f"vs {peer(r)}"], rows)


def coredns_table(r: dict[str, Any]) -> str:
    """ClusterDNS against CoreDNS, measure by measure (empty when the run had no CoreDNS)."""
    rows = [
        [
            x["what"],
            _f(x["clusterdns"], "{:,.0f}" if x["unit"] == "QPS" else "{:.2f}"),
            _f(x["coredns"], "{:,.0f}" if x["unit"] == "QPS" else "{:.2f}"),
            x["unit"],
            f"{x['ratio']:.2f}x",
            x["ahead"],
        ]
        for x in r.get("vs_coredns") or against_coredns(r)
    ]
    head = ["measure", "ClusterDNS", "CoreDNS", "unit", "ClusterDNS / CoreDNS", "ahead"]
    return _table(head, rows)


def curve_table(r: dict[str, Any]) -> str:
    names = list(r["curve"])
    if not names:  # a run without the curve
        return _table(["load"], [])
    head = ["load"] + [f"{n} {col}" for n in names for col in ("QPS", "p50 ms", "p99 ms")]
    rows = []
    for i, pct in enumerate(p["pct"] for p in r["curve"][names[0]]):
        cells = [f"{pct} %"]
        for n in names:
            p = r["curve"][n][i]
            cells += [f"{p['qps']:,.0f}", _f(p["p50_ms"]), _f(p["p99_ms"])]
        rows.append(cells)
    return _table(head, rows)


def startup_table(r: dict[str, Any]) -> str:
    c = r["cluster"]
    sizes = {"10k/100k": f"{c['services']:,} / {c['endpoints']:,}", "1k/10k": "1,000 / 10,000"}
    rows = []
    for key, s in r["startup"].items():
        size = "1k/10k" if "1k_10k" in key else "10k/100k"
        source = "manifests" if key.startswith("manifests") else "API server"
        if key == "coredns_api_cache":
            source += ", cache"
        rows.append(
            [
                "CoreDNS" if key.startswith("coredns") else "ClusterDNS",
                source,
                sizes[size] if c["endpoints"] >= 100_000 else sizes["10k/100k"],
                str(s.get("processes", 1)),
                _f(s["ready_s"]),
                _f(s.get("answer_s")),
                _f(s["rss_mb"], "{:.0f}"),
                _f(s.get("pss_mb"), "{:.0f}"),
            ]
        )
    head = ["server", "source", "services / endpoints", "processes", "ready s", "answering s"]
    head += ["RSS MB", "PSS MB"]
    out = _table(head, rows) + "\n"
    changes = []
    for name, w in r.get("watch", {}).items():
        how = "a watch event" if name == "api" else "a manifest file rewritten"
        changes.append(
            [how, str(w["n"]), _f(w.get("p50_ms")), _f(w.get("p99_ms")), _f(w.get("max_ms"))]
        )
    return out + _table(["change → new answer", "changes", "p50 ms", "p99 ms", "max ms"], changes)


def targets_list(r: dict[str, Any], targets: dict[str, float]) -> str:
    lines = verdicts(r, targets)
    return "".join(
        f"* {x.replace('[met]', '**met**:').replace('[MISSED]', '**missed**:')}\n".replace(
            "[not measured]", "**not measured**:"
        )
        for x in lines
    )


def sections(r: dict[str, Any], targets: dict[str, float]) -> dict[str, str]:
    parts = {
        "results": results_table(r),
        "curve": curve_table(r),
        "startup": startup_table(r),
        "targets": targets_list(r, targets),
    }
    if r.get("scale"):
        parts.update(scale_report.md_sections(r["scale"]))
    return parts


def load(results: Path = RESULTS, scale: Path = SCALE) -> dict[str, Any]:
    """A run's results, with the scale part from bench/results/scale.json when the run had
    none of its own (`--scale-only` runs are written there, apart from the dnsperf run)."""
    r: dict[str, Any] = json.loads(results.read_text())
    if not r.get("scale") and scale.exists():
        r["scale"] = json.loads(scale.read_text())["scale"]
    return r


def quick_sections(r: dict[str, Any]) -> dict[str, str]:
    """The quick run against CoreDNS: no targets (a quick run measures none of their sizes)."""
    return {
        "quick_vs_coredns": coredns_table(r),
        "quick_results": results_table(r),
        "quick_startup": startup_table(r),
    }


def fill(doc: str, parts: dict[str, str]) -> str:
    """`doc` with every marked section replaced by its part (unknown names are kept)."""

    def sub(m: re.Match[str]) -> str:
        body = parts.get(m.group(2))
        return m.group(0) if body is None else m.group(1) + body + m.group(3)

    return MARKER.sub(sub, doc)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    argv = [x for x in argv if x != "--quick"]
    results = Path(argv[0]) if argv else QUICK if quick else RESULTS
    doc = Path(argv[1]) if len(argv) > 1 else DOC
    r = json.loads(results.read_text()) if quick else load(results)
    parts = quick_sections(r) if quick else sections(r, TARGETS)
    doc.write_text(fill(doc.read_text(), parts))
    print(f"{doc}: tables from {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
