"""The benchmark's summary table and its latency-vs-load chart (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The issue's targets (issue 6), checked against a run, never asserted in tests.
TARGETS = {
    "s1_vs_dnsmasq": 1.0,
    "s1_p99_ms_at_50pct": 2.0,
    "s2_qps": 25_000,
    "rss_10k_100k_mb": 164,
    "rss_1k_10k_mb": 70,
    "ready_100k_s": 5.0,
    "watch_p99_ms": 100,
}


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def table(r: dict[str, Any], targets: dict[str, float]) -> str:
    lines = [
        "",
        f"ClusterDNS benchmark ({r['mode']}): {r['cluster']['services']} services, "
        f"{r['cluster']['endpoints']} endpoints, {r['cluster']['namespaces']} namespaces; "
        f"{r['seconds']:g} s per run, -workers {r['workers']}; {r['versions']['cpus']} CPUs "
        f"({r['versions']['cpu']})",
        "",
        f"{'scenario':22s} {'server':22s} {'QPS':>8s} {'avg ms':>7s} {'p50 ms':>7s} "
        f"{'p99 ms':>7s} {'lost':>6s} {'CPU s':>6s} {'RSS MB':>7s} {'vs ' + peer(r):>10s}",
    ]
    for key, x, ratio in summary_rows(r):
        server = x["server"] + (f" (of {x['runs']})" if x["runs"] > 1 else "")
        lines.append(
            f"{key:22s} {server:22s} {x['qps']:8.0f} {x['avg_ms']:7.2f} "
            f"{_f(x['p50_ms']):>7s} {_f(x['p99_ms']):>7s} {x['lost']:6d} "
            f"{_f(x['server_cpu_s'], '{:.1f}'):>6s} {_f(x['peak_rss_mb'], '{:.0f}'):>7s} "
            f"{ratio:>10s}"
        )
    lines.append("")
    for name, points in r["curve"].items():
        cells = "  ".join(
            f"{p['pct']}%: {p['qps']:.0f} qps p50 {_f(p['p50_ms'])} p99 {_f(p['p99_ms'])} ms"
            for p in points
        )
        lines.append(f"latency vs load, {name}: {cells}")
    lines.append("")
    for name, s in r["startup"].items():
        lines.append(
            f"start-up ({name}): ready in {_f(s['ready_s'])} s, answering in "
            f"{_f(s.get('answer_s'))} s, RSS after sync "
            f"{_f(s['rss_mb'], '{:.0f}')} MB (PSS {_f(s.get('pss_mb'), '{:.0f}')} MB, "
            f"{s.get('processes', 1)} processes)"
        )
    for name, w in r.get("watch", {}).items():
        lines.append(
            f"change → answer ({name}): p50 {_f(w.get('p50_ms'))} ms, p99 "
            f"{_f(w.get('p99_ms'))} ms over {w['n']} changes"
        )
    vs = r.get("vs_coredns") or against_coredns(r)
    if vs:
        lines += ["", "ClusterDNS against CoreDNS (ratio = ClusterDNS / CoreDNS):"]
        for x in vs:
            lines.append(
                f"  {x['what']:44s} {x['clusterdns']:>10.2f} {x['coredns']:>10.2f} {x['unit']:5s}"
                f" {x['ratio']:6.2f}x  {x['ahead']} ahead"
            )
    if r.get("scale"):
        from bench import scale_report

        lines += scale_report.lines(r["scale"])
    lines += ["", "targets (from the issue):"]
    lines += [f"  {line}" for line in verdicts(r, targets)]
    return "\n".join(lines)


def peer(r: dict[str, Any]) -> str:
    """The server every ratio is taken against: "coredns" when the run had one."""
    return str(r.get("peer", "dnsmasq"))


def summary_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(scenario, median row, "1.05x" against the peer in that scenario or "") in order."""
    out = []
    for key, all_rows in sorted(r["scenarios"].items()):
        rows = medians(all_rows)
        ref = next((x for x in rows if x["server"] == peer(r)), None)
        for x in rows:
            ratio = ""
            if ref is not None and x is not ref and ref["qps"]:
                ratio = f"{x['qps'] / ref['qps']:.2f}x"
            out.append((key, x, ratio))
    return out


#: The scenarios compared with CoreDNS (label, key): median QPS, higher is better.
QPS_VS_COREDNS = [
    ("1 · cluster names A, cache (head to head)", "1-cluster-cache-A"),
    ("1 · cluster names A/AAAA/SRV, cache", "1-cluster-cache"),
    ("2 · cluster names A/AAAA/SRV, no cache", "2-cluster-nocache"),
    ("3 · ndots:5 search path", "3-ndots"),
    ("4 · forwarded, cache", "4-external-cache"),
    ("4 · forwarded, no cache", "4-external-nocache"),
]
#: Start-up, both from the test API server with the same Corefile (no cache), one process.
STARTUP_VS_COREDNS = [
    ("RSS after sync", "rss_mb", "MB"),
    ("exec to /ready", "ready_s", "s"),
    ("exec to the first answer", "answer_s", "s"),
]


def against_coredns(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ratio ClusterDNS / CoreDNS the run has (none without CoreDNS): QPS (higher is
    better), then RSS and start-up times (lower is better), with who is ahead."""
    out: list[dict[str, Any]] = []

    def add(what: str, ours: Any, theirs: Any, unit: str, higher: bool) -> None:
        if not ours or not theirs:
            return
        better = ours >= theirs if higher else ours <= theirs
        out.append(
            {
                "what": what,
                "unit": unit,
                "clusterdns": ours,
                "coredns": theirs,
                "ratio": round(ours / theirs, 3),
                "ahead": "ClusterDNS" if better else "CoreDNS",
            }
        )

    for what, key in QPS_VS_COREDNS:
        rows = {x["server"]: x for x in medians(r["scenarios"].get(key, []))}
        if "clusterdns" in rows and "coredns" in rows:
            if key == "1-cluster-cache-A":  # beside the -workers 0 row (scale_report.vs_rows)
                what = f"{what[:-1]}, -workers {r.get('workers', 'auto')})"
            add(what + " (QPS)", rows["clusterdns"]["qps"], rows["coredns"]["qps"], "QPS", True)
    ours, theirs = r["startup"].get("api_one_process"), r["startup"].get("coredns_api")
    if ours and theirs:
        for what, field, unit in STARTUP_VS_COREDNS:
            add(what, ours.get(field), theirs.get(field), unit, False)
    from bench import scale_report  # the default deployment's QPS, and issue 14's memory

    for what, ours, theirs, unit, higher in scale_report.vs_rows(r):
        add(what, ours, theirs, unit, higher)
    return out


def medians(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per server, the run with the median QPS (of several taken in turns), with `runs`."""
    out: list[dict[str, Any]] = []
    for server in dict.fromkeys(x["server"] for x in rows):
        runs = sorted((x for x in rows if x["server"] == server), key=lambda x: x["qps"])
        out.append({**runs[(len(runs) - 1) // 2], "runs": len(runs)})
    return out


def verdicts(r: dict[str, Any], t: dict[str, float]) -> list[str]:
    sc = r["scenarios"]

    def qps(key: str, server: str) -> float | None:
        rows = medians(sc.get(key, []))
        return next((x["qps"] for x in rows if x["server"] == server), None)

    out = []
    s1, peer = qps("1-cluster-cache-A", "clusterdns"), qps("1-cluster-cache-A", "dnsmasq")
    if s1 and peer:
        out.append(
            _v(
                f"scenario 1 >= {t['s1_vs_dnsmasq']:.1f}x dnsmasq (A queries, medians): "
                f"{s1 / peer:.2f}x",
                s1 / peer >= t["s1_vs_dnsmasq"],
            )
        )
    half = next((p for p in r["curve"].get("clusterdns", []) if p["pct"] == 50), None)
    if half and half["p99_ms"] is not None:
        out.append(
            _v(
                f"scenario 1 p99 at 50% of max < {t['s1_p99_ms_at_50pct']} ms: "
                f"{half['p99_ms']:.2f} ms",
                half["p99_ms"] < t["s1_p99_ms_at_50pct"],
            )
        )
    s2 = qps("2-cluster-nocache", "clusterdns")
    if s2:
        out.append(_v(f"scenario 2 >= {t['s2_qps']:.0f} QPS: {s2:.0f}", s2 >= t["s2_qps"]))
    big = r["cluster"]["endpoints"] >= 100_000
    for size, limit in (("10k/100k", t["rss_10k_100k_mb"]), ("1k/10k", t["rss_1k_10k_mb"])):
        got = startups(r, size)
        if got:
            worst = max(s["rss_mb"] for _, s in got)
            cells = ", ".join(f"{s['rss_mb']:.0f} MB ({name})" for name, s in got)
            out.append(
                _v(f"RSS after sync, {size}, one process <= {limit} MB: {cells}", worst <= limit)
            )
    if big:
        for name, s in startups(r, "10k/100k"):
            out.append(
                _v(
                    f"ready with 100k endpoints < {t['ready_100k_s']} s: {s['ready_s']:.2f} s "
                    f"({name})",
                    s["ready_s"] < t["ready_100k_s"],
                )
            )
    w = r.get("watch", {}).get("api")
    if w and w.get("p99_ms") is not None:
        out.append(
            _v(
                f"watch event -> answer p99 < {t['watch_p99_ms']} ms: {w['p99_ms']:.1f} ms",
                w["p99_ms"] < t["watch_p99_ms"],
            )
        )
    from bench import scale_report  # issue 14's, against CoreDNS

    return out + scale_report.verdicts(r)


def startups(r: dict[str, Any], size: str) -> list[tuple[str, dict[str, Any]]]:
    """One-process start-ups of a cluster size ("10k/100k" or "1k/10k"), by data source."""
    st = r["startup"]
    big = r["cluster"]["endpoints"] >= 100_000
    if size == "10k/100k" and not big:
        return []
    keys = {"manifests": "manifests_one_process", "API": "api_one_process"}
    if size == "1k/10k" and big:
        keys = {"manifests": "manifests_1k_10k_one_process", "API": "api_1k_10k_one_process"}
    return [(name, st[k]) for name, k in keys.items() if k in st]


def _v(text: str, ok: bool) -> str:
    return f"[{'met' if ok else 'MISSED'}] {text}"  # scale_report adds "[not measured]"


def chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    styles = {"clusterdns": "tab:blue", "dnsmasq": "tab:gray", "coredns": "tab:orange"}
    for name, points in r["curve"].items():
        xs = [p["qps"] for p in points if p["p50_ms"] is not None]
        color = styles.get(name, "tab:green")
        ax.plot(
            xs,
            [p["p50_ms"] for p in points if p["p50_ms"] is not None],
            "o-",
            color=color,
            label=f"{name} p50",
        )
        ax.plot(
            xs,
            [p["p99_ms"] for p in points if p["p50_ms"] is not None],
            "s--",
            color=color,
            label=f"{name} p99",
        )
    ax.set_yscale("log")
    ax.set_xlabel("answered queries per second (25/50/75/100 % of the maximum)")
    ax.set_ylabel("latency (ms, log scale)")
    c = r["cluster"]
    ax.set_title(
        f"Scenario 1 (A queries): cluster names, cache on ({c['services']} services, "
        f"{c['endpoints']} endpoints)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
