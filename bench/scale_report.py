"""Issue 14's numbers against CoreDNS, computed from a run's results: the memory-per-endpoint
slope, the relist peak, the memory per pod, exec-to-answering, and the targets met or missed.

Pure functions of the results JSON (bench/scale.py measures; tests/test_bench.py checks these
computations on given inputs), so the printed table and docs/performance.md say the same.
"""

from __future__ import annotations

from typing import Any

#: Issue 14's targets, against CoreDNS 1.14.7 on the same cluster.
TARGETS_VS_COREDNS = {
    "forward_nocache": 1.0,  # uncached forwarding, QPS ratio (the aim is 1.5)
    "forward_nocache_aim": 1.5,
    "cluster_cache_default": 1.5,  # cached cluster names, -workers 0, QPS ratio
    "rss_10k_100k": 0.75,  # RSS after sync, ratio, API and manifests modes
    "rss_1k_10k_mb": 70.0,
    "relist_peak": 1.25,  # peak / steady RSS during a full relist
    "answer_10k_100k": 1.0,  # exec to the first answer, ratio
    "pod_memory": 0.25,  # memory per pod with `pods verified`, ratio
}
#: The servers of the scale curve: key → label.
SERVERS = {
    "clusterdns-api": "ClusterDNS (API)",
    "clusterdns-manifests": "ClusterDNS (manifests)",
    "coredns-api": "CoreDNS (API)",
}
BIG = 100_000  # the 10k/100k size, by endpoints
SMALL = 10_000


def size(endpoints: int) -> str:
    """`10k/100k`: services/endpoints as the issue names sizes (services are a tenth)."""
    return f"{endpoints // 10_000:g}k/{endpoints // 1000:g}k"


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line through the points: (slope, intercept)."""
    n = len(xs)
    if n < 2:
        raise ValueError("a line needs two points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        raise ValueError("a line needs two different x")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def slopes(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per server, RSS after sync against endpoints: MB per 1,000 endpoints (and the
    intercept, the MB of a server with an empty cluster by the line)."""
    out: dict[str, dict[str, float]] = {}
    for server in SERVERS:
        pts = [(x["endpoints"] / 1000, x["rss_mb"]) for x in rows if x["server"] == server]
        if len({p[0] for p in pts}) >= 2:
            slope, icpt = fit([p[0] for p in pts], [p[1] for p in pts])
            out[server] = {"mb_per_1k_endpoints": round(slope, 3), "intercept_mb": round(icpt, 1)}
    return out


def per_pod(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Memory per pod (KB, the slope of RSS against pods, which is (RSS with N pods - RSS
    without) / N for two points) per server, and ClusterDNS's against CoreDNS's."""
    out: dict[str, Any] = {}
    for server in ("clusterdns-api", "coredns-api"):
        pts = [(x["pods"], x["rss_mb"]) for x in rows if x["server"] == server]
        if len({p[0] for p in pts}) >= 2:
            slope, _ = fit([p[0] for p in pts], [p[1] for p in pts])
            out[server] = round(slope * 1024, 3)
    ours, theirs = out.get("clusterdns-api"), out.get("coredns-api")
    if ours is not None and theirs:
        out["ratio"] = round(ours / theirs, 3)
    return out


def at(rows: list[dict[str, Any]], server: str, endpoints: int) -> dict[str, Any] | None:
    return next((x for x in rows if x["server"] == server and x["endpoints"] == endpoints), None)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def summarize(scale: dict[str, Any]) -> dict[str, Any]:
    """The computed part of `scale` (slopes, ratios at 10k/100k, pods, relist ratios)."""
    rows = scale.get("sizes", [])
    out: dict[str, Any] = {"slope": slopes(rows)}
    cd = at(rows, "coredns-api", BIG)
    for server in ("clusterdns-api", "clusterdns-manifests"):
        ours = at(rows, server, BIG)
        if ours and cd:
            out[f"{server}_vs_coredns_10k_100k"] = {
                "rss": ratio(ours["rss_mb"], cd["rss_mb"]),
                "ready": ratio(ours["ready_s"], cd["ready_s"]),
                "answer": ratio(ours.get("answer_s"), cd.get("answer_s")),
            }
    if scale.get("pods"):
        out["pods"] = per_pod(scale["pods"])
    return out


def relist_ratio(x: dict[str, Any]) -> float:
    """Peak RSS during the relist (the most of the 20 ms samples and VmHWM) / steady RSS."""
    return float(round(max(x["peak_sampled_mb"], x.get("hwm_mb") or 0) / x["steady_mb"], 3))


# ---- against CoreDNS: table rows and the targets ----------------------------------------------


def _median_qps(r: dict[str, Any], key: str, server: str) -> float | None:
    from bench.report import medians

    rows = medians(r.get("scenarios", {}).get(key, []))
    return next((x["qps"] for x in rows if x["server"] == server), None)


def vs_rows(r: dict[str, Any]) -> list[tuple[str, Any, Any, str, bool]]:
    """(what, ClusterDNS, CoreDNS, unit, higher is better) for bench.report.against_coredns:
    the default deployment's QPS and the scale measurements."""
    out: list[tuple[str, Any, Any, str, bool]] = []
    one = _median_qps(r, "1-cluster-cache-A", "clusterdns -workers 0")
    cd = _median_qps(r, "1-cluster-cache-A", "coredns")
    out.append(("1 · cluster names A, cache, -workers 0 (one process) (QPS)", one, cd,
                "QPS", True))  # fmt: skip
    s = r.get("scale")
    if not s:
        return out
    rows = s.get("sizes", [])
    theirs = at(rows, "coredns-api", BIG)
    for server, label in (("clusterdns-api", "API"), ("clusterdns-manifests", "manifests")):
        ours = at(rows, server, BIG)
        if ours and theirs:
            out.append((f"10k/100k RSS after sync ({label})", ours["rss_mb"], theirs["rss_mb"],
                        "MB", False))  # fmt: skip
            out.append((f"10k/100k exec to the first answer ({label})", ours.get("answer_s"),
                        theirs.get("answer_s"), "s", False))  # fmt: skip
    sl = slopes(rows)
    if "clusterdns-api" in sl and "coredns-api" in sl:
        ours_mb, theirs_mb = (
            sl[k]["mb_per_1k_endpoints"] for k in ("clusterdns-api", "coredns-api")
        )
        out.append(("RSS per 1k endpoints (API, fitted)", ours_mb, theirs_mb, "MB", False))
    rl = s.get("relist", {})
    if "clusterdns-api" in rl and "coredns-api" in rl:
        where = size(rl["clusterdns-api"].get("endpoints", BIG))
        out.append((f"{where} relist peak / steady RSS", relist_ratio(rl["clusterdns-api"]),
                    relist_ratio(rl["coredns-api"]), "x", False))  # fmt: skip
    pp = per_pod(s.get("pods", []))
    if "clusterdns-api" in pp and "coredns-api" in pp:
        out.append(("pods verified: memory per pod", pp["clusterdns-api"], pp["coredns-api"],
                    "KB", False))  # fmt: skip
    return out


def verdicts(r: dict[str, Any], t: dict[str, float] = TARGETS_VS_COREDNS) -> list[str]:
    """Issue 14's targets, each met, MISSED, or not measured (the run lacked its part)."""
    out: list[str] = []

    def v(text: str, ok: bool | None) -> None:
        out.append(f"[{'not measured' if ok is None else 'met' if ok else 'MISSED'}] {text}")

    fwd = ratio(_median_qps(r, "4-external-nocache", "clusterdns"),
                _median_qps(r, "4-external-nocache", "coredns"))  # fmt: skip
    what = (
        f"uncached forwarding >= {t['forward_nocache']:.1f}x CoreDNS "
        f"(aim {t['forward_nocache_aim']:.1f}x)"
    )
    v(f"{what}: {fwd:.2f}x" if fwd else f"{what}: needs a full run against CoreDNS",
      None if fwd is None else fwd >= t["forward_nocache"])  # fmt: skip
    # The default deployment is the generated manifests' `-workers 1` (the bench's workers).
    dep = ratio(_median_qps(r, "1-cluster-cache-A", "clusterdns"),
                _median_qps(r, "1-cluster-cache-A", "coredns"))  # fmt: skip
    one = ratio(_median_qps(r, "1-cluster-cache-A", "clusterdns -workers 0"),
                _median_qps(r, "1-cluster-cache-A", "coredns"))  # fmt: skip
    what = (
        f"cached cluster names >= {t['cluster_cache_default']:.1f}x CoreDNS in the default "
        f"deployment (the generated manifests' -workers 1; this run: -workers "
        f"{r.get('workers', '1')})"
    )
    alone = f"; one process {one:.2f}x" if one else ""
    v(f"{what}: {dep:.2f}x{alone}" if dep else f"{what}: needs a full run against CoreDNS",
      None if dep is None else dep >= t["cluster_cache_default"])  # fmt: skip
    s = r.get("scale") or {}
    rows = s.get("sizes", [])
    cd = at(rows, "coredns-api", BIG)
    for server, label in (("clusterdns-api", "API"), ("clusterdns-manifests", "manifests")):
        ours = at(rows, server, BIG)
        what = f"RSS after sync at 10k/100k <= {t['rss_10k_100k']:.2f}x CoreDNS ({label})"
        if ours and cd:
            x = ours["rss_mb"] / cd["rss_mb"]
            v(f"{what}: {ours['rss_mb']:.0f} / {cd['rss_mb']:.0f} MB = {x:.2f}x",
              x <= t["rss_10k_100k"])  # fmt: skip
        else:
            v(f"{what}: needs the 10k/100k scale run (--scale-only)", None)
    small = [(SERVERS[k], at(rows, k, SMALL)) for k in ("clusterdns-api", "clusterdns-manifests")]
    got = [(label, x) for label, x in small if x]
    what = f"RSS after sync at 1k/10k <= {t['rss_1k_10k_mb']:.0f} MB"
    if got:
        cells = ", ".join(f"{x['rss_mb']:.0f} MB {label}" for label, x in got)
        v(f"{what}: {cells}", max(x["rss_mb"] for _, x in got) <= t["rss_1k_10k_mb"])
    else:
        v(f"{what}: needs the scale run", None)
    rl = s.get("relist", {})
    where = (
        size(rl["clusterdns-api"].get("endpoints", BIG)) if "clusterdns-api" in rl else "10k/100k"
    )
    what = f"relist peak < {t['relist_peak']:.2f}x steady RSS ({where}, API)"
    if "clusterdns-api" in rl:
        x = relist_ratio(rl["clusterdns-api"])
        theirs = f"; CoreDNS {relist_ratio(rl['coredns-api']):.2f}x" if "coredns-api" in rl else ""
        v(f"{what}: ClusterDNS {x:.2f}x{theirs}", x < t["relist_peak"])
    else:
        v(f"{what}: needs the scale run", None)
    ours = at(rows, "clusterdns-api", BIG)
    what = "exec to answering at 10k/100k <= CoreDNS (API)"
    if ours and cd and ours.get("answer_s") and cd.get("answer_s"):
        x = ours["answer_s"] / cd["answer_s"]
        v(f"{what}: {ours['answer_s']:.2f} s / {cd['answer_s']:.2f} s = {x:.2f}x",
          x <= t["answer_10k_100k"])  # fmt: skip
    else:
        v(f"{what}: needs the 10k/100k scale run against CoreDNS", None)
    pp = per_pod(s.get("pods", []))
    what = f"pods verified: memory per pod <= {t['pod_memory']:.2f}x CoreDNS's"
    if "ratio" in pp:
        v(f"{what}: {pp['clusterdns-api']:.2f} / {pp['coredns-api']:.2f} KB = {pp['ratio']:.2f}x",
          pp["ratio"] <= t["pod_memory"])  # fmt: skip
    else:
        v(f"{what}: needs the scale run against CoreDNS", None)
    return out


# ---- the printed table's lines and docs/performance.md's tables --------------------------------


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def lines(s: dict[str, Any]) -> list[str]:
    """The scale part of the printed table."""
    out = ["", "scale (one process, after sync):"]
    for x in s.get("sizes", []):
        out.append(
            f"  {SERVERS.get(x['server'], x['server']):24s} {x['services']:>6d} svc "
            f"{x['endpoints']:>7d} ep  ready {_f(x['ready_s'])} s  answering "
            f"{_f(x.get('answer_s'))} s  RSS {_f(x['rss_mb'], '{:.0f}')} MB"
        )
    for server, f in slopes(s.get("sizes", [])).items():
        out.append(f"  slope {SERVERS[server]}: {f['mb_per_1k_endpoints']:.2f} MB per 1k endpoints")
    for server, x in s.get("relist", {}).items():
        out.append(
            f"  relist {SERVERS.get(server, server)}: steady {x['steady_mb']:.0f} MB, peak "
            f"{x['peak_sampled_mb']:.0f} MB sampled / {_f(x.get('hwm_mb'), '{:.0f}')} MB VmHWM "
            f"= {relist_ratio(x):.2f}x, answering the change in {_f(x.get('answer_s'))} s"
        )
    for x in s.get("pods", []):
        out.append(
            f"  pods verified {SERVERS.get(x['server'], x['server'])}: {x['pods']} pods, RSS "
            f"{x['rss_mb']:.0f} MB"
        )
    pp = per_pod(s.get("pods", []))
    if pp:
        cells = ", ".join(f"{SERVERS[k]} {v:.2f} KB" for k, v in pp.items() if k in SERVERS)
        out.append(f"  per pod: {cells}" + (f" (ratio {pp['ratio']:.2f})" if "ratio" in pp else ""))
    return out


def _table(head: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["--:"] * (len(head) - 1)
    return "\n".join("| " + " | ".join(c) + " |" for c in [head, align, *rows]) + "\n"


def md_scale(s: dict[str, Any]) -> str:
    rows = []
    for x in s.get("sizes", []):
        cd = at(s["sizes"], "coredns-api", x["endpoints"]) or {}
        vs = [ratio(x.get(k), cd.get(k)) for k in ("answer_s", "rss_mb")]
        rows.append(
            [SERVERS.get(x["server"], x["server"]), f"{x['services']:,} / {x['endpoints']:,}",
             _f(x["ready_s"]), _f(x.get("answer_s")), _f(x["rss_mb"], "{:.0f}"),
             *(_f(v, "{:.2f}x") for v in vs)]
        )  # fmt: skip
    head = ["server", "services / endpoints", "ready s", "answering s", "RSS MB"]
    out = _table([*head, "answering vs CoreDNS", "RSS vs CoreDNS"], rows)
    fits = [
        [SERVERS[k], f"{f['mb_per_1k_endpoints']:.2f}", f"{f['intercept_mb']:.0f}"]
        for k, f in slopes(s.get("sizes", [])).items()
    ]
    return out + "\n" + _table(["server", "MB per 1k endpoints (fit)", "intercept MB"], fits)


def md_relist(s: dict[str, Any]) -> str:
    rows = [
        [SERVERS.get(k, k), _f(x["steady_mb"], "{:.0f}"), _f(x["peak_sampled_mb"], "{:.0f}"),
         _f(x.get("hwm_mb"), "{:.0f}"), f"{relist_ratio(x):.2f}x", _f(x.get("after_mb"), "{:.0f}"),
         _f(x.get("answer_s")), str(x.get("samples", "-"))]
        for k, x in s.get("relist", {}).items()
    ]  # fmt: skip
    head = ["server", "steady MB", "peak MB (20 ms samples)", "peak MB (VmHWM)", "peak / steady"]
    return _table([*head, "after MB", "change answered s", "samples"], rows)


def md_pods(s: dict[str, Any]) -> str:
    rows = [
        [SERVERS.get(x["server"], x["server"]), f"{x['pods']:,}", _f(x["ready_s"]),
         _f(x["rss_mb"], "{:.0f}")]
        for x in s.get("pods", [])
    ]  # fmt: skip
    out = _table(["server", "pods", "ready s", "RSS MB"], rows)
    pp = per_pod(s.get("pods", []))
    per = [[SERVERS[k], f"{v:.2f}"] for k, v in pp.items() if k in SERVERS]
    if "ratio" in pp:
        per.append(["ClusterDNS / CoreDNS", f"{pp['ratio']:.2f}x"])
    return out + "\n" + _table(["server", "KB per pod (fit)"], per)


def md_sections(s: dict[str, Any]) -> dict[str, str]:
    return {"scale": md_scale(s), "relist": md_relist(s), "pods": md_pods(s)}
