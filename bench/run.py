"""`make bench`: ClusterDNS under dnsperf, beside the reference CoreDNS 1.14.7 and dnsmasq.

    python bench/run.py [--quick] [--coredns PATH] [--services N --endpoints N --namespaces N]
                        [--seconds S] [--workers N|auto] [--out DIR] [--scale-only|--no-scale]

The peer is CoreDNS 1.14.7: `--coredns PATH`, or else the reference tests/coredns_ref.py
unpacks from ../shared/tools. CoreDNS has no `manifests`, so it reads the same generated cluster
from the test API server (tests/k8s_apiserver.py, in this process, loaded with the same objects)
through `endpoint http://127.0.0.1:PORT`, with kubeadm's Corefile otherwise unchanged. Without a
CoreDNS binary the peer is dnsmasq alone, as it was (and the run says so). dnsmasq is measured
beside both either way: it is the fastest plain server at hand, and the local upstream.

Scenarios (after a warm-up pass, for a fixed time each):
  1. cluster names (A/AAAA/SRV) with kubeadm's default Corefile (cache 30): cache hits;
     and A queries only, beside the peer: dnsmasq answering the same names from a hosts file
     (dnsmasq's SRV records, srv-host lines, are searched one by one: it would lose);
  2. the same without the cache plugin: every answer from the kubernetes plugin;
  3. the ndots:5 pattern: three search-path expansions (NXDOMAIN) then the name; peer: dnsmasq;
  4. external names forwarded to a local upstream (dnsmasq) with cache on and off; peer:
     dnsmasq forwarding to the same upstream (with and without its cache).
CoreDNS runs every scenario (with SRV too: its cluster answers are not a hosts file).
Scenario 1 is also run with one process (`-workers 0`); its A-only head-to-head is run three
times in turns (ClusterDNS, one process, CoreDNS, dnsmasq) and summed up by medians; and it
gives a latency-vs-load curve (25/50/75/100 % of that median) for ClusterDNS and the peers.
Also measured: time from exec to ready and to the first answer, RSS after sync (manifests and
the test API server; CoreDNS from the API server), and how long a change of the cluster takes
to be answered. Every ratio against CoreDNS is in the results' `vs_coredns`.

Then issue 14's part (bench/scale.py; `--scale-only` runs it alone, in ~2 minutes once its
clusters exist): RSS after sync, exec to ready and to answering at 1k/10k, 10k/100k and 30k/300k
for ClusterDNS (API and manifests) and CoreDNS, one process each; the RSS peak of a forced full
relist at 10k/100k; the memory per pod with `pods verified` (bench/results/scale.json).

Results: bench/results/<full|quick>.json, a PNG chart beside it, and a table on stdout.
Quick mode (`make bench QUICK=1`): 1,000 services / 10,000 endpoints, 4-second runs, one
head-to-head, no 1k/10k start-up of its own (the cluster is that size already), a smaller
scale part (1k/10k and 3k/30k, 3,000 pods).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib, watch
from bench.gencluster import main as gencluster
from bench.report import TARGETS, against_coredns
from bench.scale import Scale

BENCH = Path(__file__).resolve().parent
KUBEADM = """\
.:{port} {{
    bind 127.0.0.1
    errors
    health 127.0.0.1:{health} {{
       lameduck 5s
    }}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       {source}
       pods {pods}
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus 127.0.0.1:{metrics}
    forward . 127.0.0.1:{upstream} {{
       max_concurrent 1000
    }}
    {cache}
    loop
    reload
    loadbalance
}}
"""
CACHE_TTL = 30  # kubeadm's `cache 30` (and the kubernetes plugin's `ttl 30`)


def kubeadm(
    port: int, ready: int, upstream: int, source: str, cache: bool, pods: str = "insecure"
) -> str:
    """kubeadm's default Corefile on loopback ports; `source` is the kubernetes block's
    `manifests DIR` (ClusterDNS) or `endpoint URL` (CoreDNS, which has no `manifests`);
    `pods verified` for the bench's pods measurement."""
    return KUBEADM.format(
        port=port,
        health=lib.free_port(),
        ready=ready,
        metrics=lib.free_port(),
        upstream=upstream,
        source=source,
        cache="cache 30" if cache else "",
        pods=pods,
    )


def find_coredns(given: Path | None) -> Path | None:
    """The CoreDNS to compare with: `given` (which must exist), else the reference that
    tests/coredns_ref.py unpacks from ../shared/tools (None when there is none)."""
    if given is not None:
        if not given.is_file():
            raise SystemExit(f"--coredns {given}: no such file")
        return given.resolve()
    from tests import coredns_ref

    return coredns_ref.binary()


class Bench:
    settle_s = 1.0  # after ready, before RSS is read (tests make it short)

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.work = a.out / "work"
        self.upstream_port = lib.free_port()
        self.coredns_exe: Path | None = a.coredns
        self.probe: lib.Probe | None = None  # a cluster name and its A records: "answering"
        self.results: dict[str, Any] = {
            "scenarios": {},
            "curve": {},
            "startup": {},
            "peer": "coredns" if a.coredns else "dnsmasq",
        }

    def cluster(self, services: int, endpoints: int, namespaces: int) -> Path:
        d = self.a.out / f"cluster-{services}-{endpoints}-{namespaces}"
        meta = d / "cluster.json"
        if not meta.exists():
            gencluster(
                [
                    str(d),
                    "--services",
                    str(services),
                    "--endpoints",
                    str(endpoints),
                    "--namespaces",
                    str(namespaces),
                ]
            )
        return d

    def corefile(self, source: str, cache: bool, pods: str = "insecure") -> tuple[str, int, int]:
        port, ready = lib.free_port(), lib.free_port()
        return kubeadm(port, ready, self.upstream_port, source, cache, pods), port, ready

    def clusterdns(
        self,
        name: str,
        source: str,
        cache: bool = True,
        workers: str | None = None,
        pods: str = "insecure",
    ) -> lib.Server:
        text, port, ready = self.corefile(source, cache, pods)
        w = workers or self.a.workers
        return lib.start_clusterdns(name, text, self.work, ready, port, w, probe=self.probe)

    def coredns(
        self, name: str, api_url: str, cache: bool = True, pods: str = "insecure"
    ) -> lib.Server:
        """The reference CoreDNS on the same Corefile, its cluster from the test API server."""
        assert self.coredns_exe is not None
        text, port, ready = self.corefile(f"endpoint {api_url}", cache, pods)
        exe = self.coredns_exe
        return lib.start_coredns(name, exe, text, self.work, ready, port, probe=self.probe)

    def dnsmasq(self, name: str, args: list[str]) -> lib.Server:
        return lib.start_dnsmasq(name, self.work, lib.free_port(), args)

    def run(
        self, srv: lib.Server, data: Path, seconds: float | None = None, spread: float = 0.0
    ) -> lib.Perf:
        lib.warm(srv.port, data, spread)
        return lib.dnsperf(srv.port, data, seconds or self.a.seconds, pids=srv.pids)

    def record(self, key: str, server: str, perf: lib.Perf, **extra: Any) -> None:
        """One run's row; a scenario run several times is summed up by its median."""
        row = {"server": server, **perf.row(), **extra}
        self.results["scenarios"].setdefault(key, []).append(row)
        print(
            f"  {key:24s} {server:22s} {perf.qps:9.0f} qps  avg {perf.avg_ms:6.2f} ms  "
            f"p50 {_ms(perf.p50_ms)}  p99 {_ms(perf.p99_ms)}  lost {perf.lost}",
            flush=True,
        )

    # ---- the scenarios --------------------------------------------------------------------------

    def scenarios(self, d: Path) -> None:
        manifests = f"manifests {d / 'cluster'}"
        peer_args = [
            f"--addn-hosts={d / 'hosts'}",
            "--local=/cluster.local/",
            "--local-ttl=30",
            "--cache-size=10000",
        ]
        cluster_q, a_q, ndots_q, ext_q = (
            d / f"queries-{n}.txt" for n in ("cluster", "cluster-a", "ndots", "external")
        )
        ttl = CACHE_TTL
        one = "clusterdns -workers 0"
        with contextlib.ExitStack() as stack:
            api_url = self.api_server(stack, d) if self.coredns_exe else ""
            s1 = stack.enter_context(lib.running(self.clusterdns("s1", manifests)))
            ours = [("clusterdns", s1)]
            self.results["startup"]["manifests"] = self.startup(s1)
            s0 = stack.enter_context(
                lib.running(self.clusterdns("s1-single", manifests, workers="0"))
            )
            self.results["startup"]["manifests_one_process"] = self.startup(s0)
            ours.append((one, s0))
            # CoreDNS (when there is one) is measured and warmed exactly as ClusterDNS is.
            cd = []
            if self.coredns_exe:
                cd = [("coredns", stack.enter_context(lib.running(self.coredns("cd1", api_url))))]
                self.results["startup"]["coredns_api_cache"] = self.startup(cd[0][1])
            peer = stack.enter_context(lib.running(self.dnsmasq("peer", peer_args)))
            lib.warm_all([s.port for _, s in [*ours, *cd]], cluster_q, spread=ttl)
            for name, s in [*ours, *cd]:
                self.record("1-cluster-cache", name, self.measure(s, cluster_q))
            # Head to head, taken in turns (the machine's noise hits all alike): medians count.
            turns = [*ours, *cd, ("dnsmasq", peer)]
            lib.warm_all([s.port for _, s in turns], a_q)
            for rep in range(self.a.reps):
                for name, s in turns:
                    self.record("1-cluster-cache-A", name, self.measure(s, a_q), rep=rep)
            for name, s in [("clusterdns", s1), *cd, ("dnsmasq", peer)]:
                self.curve(name, s, a_q)
            spread = 0.0 if self.a.quick else ttl  # quick: the NXDOMAINs expire together
            lib.warm_all([s1.port, *(s.port for _, s in cd)], ndots_q, spread=spread)
            lib.warm_all([peer.port], ndots_q)
            for name, s in [("clusterdns", s1), *cd, ("dnsmasq", peer)]:
                self.record("3-ndots", name, self.measure(s, ndots_q))
            for name, s in [("clusterdns", s1), *cd]:
                self.record("4-external-cache", name, self.run(s, ext_q))
            with lib.running(self.clusterdns("s2", manifests, cache=False)) as s2:
                self.record("2-cluster-nocache", "clusterdns", self.run(s2, cluster_q))
                self.record("4-external-nocache", "clusterdns", self.run(s2, ext_q))
            # The relay runs in the main process only: one process is its best case.
            single = self.clusterdns("s2-single", manifests, cache=False, workers="0")
            with lib.running(single) as s:
                self.record("4-external-nocache", one, self.run(s, ext_q))
            if self.coredns_exe:
                with lib.running(self.coredns("cd2", api_url, cache=False)) as c2:
                    # CoreDNS's start-up beside ClusterDNS's `api_one_process`: same Corefile.
                    self.results["startup"]["coredns_api"] = self.startup(c2)
                    self.record("2-cluster-nocache", "coredns", self.run(c2, cluster_q))
                    self.record("4-external-nocache", "coredns", self.run(c2, ext_q))
        fwd = [f"--server={lib.HOST}#{self.upstream_port}"]
        with lib.running(self.dnsmasq("peer-fwd", [*fwd, "--cache-size=10000"])) as peer:
            self.record("4-external-cache", "dnsmasq", self.run(peer, ext_q))
        with lib.running(self.dnsmasq("peer-fwd-nocache", [*fwd, "--cache-size=0"])) as peer:
            self.record("4-external-nocache", "dnsmasq", self.run(peer, ext_q))

    def api_server(self, stack: contextlib.ExitStack, d: Path) -> str:
        """The test API server holding the generated cluster (CoreDNS's source); its URL."""
        from tests.k8s_apiserver import ApiServer

        api = ApiServer(history=100_000).start()
        stack.callback(api.stop)
        api.load(list(watch.objects(d / "cluster")))
        return api.url

    def measure(self, srv: lib.Server, data: Path) -> lib.Perf:
        return lib.dnsperf(srv.port, data, self.a.seconds, pids=srv.pids)

    def startup(self, srv: lib.Server) -> dict[str, Any]:
        time.sleep(self.settle_s)  # worker processes start as the server becomes ready
        procs = lib.Procs(srv.pids)
        return {
            "ready_s": srv.ready_s,
            "answer_s": srv.answer_s,
            "rss_mb": procs.rss_mb(),
            "pss_mb": procs.pss_mb(),
            "processes": len(procs.procs),
        }

    def curve(self, name: str, srv: lib.Server, data: Path) -> None:
        rows = self.results["scenarios"]["1-cluster-cache-A"]
        top = statistics.median(r["qps"] for r in rows if r["server"] == name)
        points = []
        for pct in (25, 50, 75, 100):
            p = lib.dnsperf(
                srv.port, data, self.a.curve_seconds, qps=top * pct / 100, pids=srv.pids
            )
            points.append({"pct": pct, **p.row()})
            print(
                f"  curve {name:12s} {pct:3d}%  offered {top * pct / 100:9.0f}  got "
                f"{p.qps:9.0f}  p50 {_ms(p.p50_ms)}  p99 {_ms(p.p99_ms)}",
                flush=True,
            )
        self.results["curve"][name] = points

    # ---- start-up, memory, changes ------------------------------------------------------------

    def startup_small(self) -> None:
        d = self.cluster(1000, 10_000, 100)
        big, self.probe = self.probe, probe(d)  # "answering" is a name of this cluster
        try:
            for workers, key in (
                ("0", "manifests_1k_10k_one_process"),
                (None, "manifests_1k_10k"),
            ):
                with lib.running(
                    self.clusterdns("small", f"manifests {d / 'cluster'}", workers=workers)
                ) as s:
                    self.results["startup"][key] = self.startup(s)
            self.api(d, 0, "api_1k_10k_one_process")
        finally:
            self.probe = big

    def api(self, d: Path, changes: int, key: str = "api_one_process") -> None:
        """Start-up through the test API server, one process (the default, as deployed)."""
        from tests.k8s_apiserver import ApiServer

        api = ApiServer(history=100_000).start()
        try:
            objs = list(watch.objects(d / "cluster"))
            api.load(objs)
            services = [
                o for o in objs if o["kind"] == "Service" and o["spec"]["clusterIP"] != "None"
            ]
            source = f"endpoint {api.url}"
            with lib.running(self.clusterdns("api", source, cache=False, workers="0")) as s:
                self.results["startup"][key] = self.startup(s)
                if changes:
                    self.results["watch"] = {
                        "api": watch.api_changes(api, s.port, services, changes)
                    }
        finally:
            api.stop()
        if not changes:
            return
        with lib.running(self.clusterdns("mf", f"manifests {d / 'cluster'}", cache=False)) as s:
            self.results["watch"]["manifests"] = watch.manifest_changes(d / "cluster", s.port, 3)


def probe_name(d: Path) -> str:
    """The first name of the A queries: a Service with a cluster IP."""
    return (d / "queries-cluster-a.txt").read_text().split(maxsplit=1)[0]


def probe(d: Path) -> lib.Probe:
    """`probe_name` and its addresses from the generated hosts file (a headless Service's
    are its endpoints'): the answer that counts as the first correct one."""
    name = probe_name(d).lower().rstrip(".")
    want = set()
    for line in (d / "hosts").read_text().splitlines():
        ip, *names = line.split()
        if name in (n.lower() for n in names[:1]):
            want.add(ip)
    return lib.Probe(name, frozenset(want))


def _ms(v: float | None) -> str:
    return f"{v:6.2f} ms" if v is not None else "   -   "


def versions(coredns: Path | None) -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[-1 if "dnsperf" in cmd[0] else 0]
        except OSError:
            return "?"

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "dnsperf": first_line(["dnsperf", "-h"]),
        "dnsmasq": first_line(["dnsmasq", "--version"]),
        **({"coredns": first_line([str(coredns), "-version"])} if coredns else {}),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def write_scale(s: dict[str, Any], quick: bool, vers: dict[str, str]) -> Path:
    """The scale part on its own: bench/results/scale.json (quick-scale.json, which git
    ignores, for a quick run), from which docs/performance.md's scale tables are written."""
    path = BENCH / "results" / ("quick-scale.json" if quick else "scale.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"scale": s, "versions": vers}, indent=1) + "\n")
    return path


def scale_only(a: argparse.Namespace) -> int:
    """`--scale-only`: bench/scale.py's part alone (a few minutes; no dnsperf)."""
    from bench import mdreport, scale_report

    b = Bench(a)
    s = Scale(b, a.quick).run()
    path = write_scale(s, a.quick, versions(a.coredns))
    if not a.quick:
        mdreport.main([])
    print("\n".join(scale_report.lines(s)))
    print("\ntargets of issue 14 (against CoreDNS):")
    print("\n".join(f"  {x}" for x in scale_report.verdicts({"scale": s})))
    print(f"results: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--coredns", type=Path, help="the CoreDNS binary to compare with")
    p.add_argument("--services", type=int)
    p.add_argument("--endpoints", type=int)
    p.add_argument("--namespaces", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--workers", default="1", help="as the generated manifests (default 1)")
    p.add_argument("--reps", type=int, help="head-to-head runs, taken in turns (median)")
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument(
        "--scale-only",
        action="store_true",
        help="only the scale curve, relist peak and pods verified (bench/scale.py)",
    )
    p.add_argument("--no-scale", action="store_true", help="leave out bench/scale.py's part")
    a = p.parse_args(argv)
    quick = a.quick
    a.services = a.services or (1_000 if quick else 10_000)
    a.endpoints = a.endpoints or (10_000 if quick else 100_000)
    a.namespaces = a.namespaces or (100 if quick else 1_000)
    a.seconds = a.seconds or (4.0 if quick else 30.0)
    a.curve_seconds = 3.0 if quick else 15.0
    a.reps = a.reps or (1 if quick else 3)
    lib.need_tools()
    a.coredns = find_coredns(a.coredns)
    if a.coredns is None:
        print(
            "no CoreDNS binary (--coredns PATH, or ../shared/tools/coredns-1.14.7.xz): "
            "comparing with dnsmasq only",
            flush=True,
        )
    else:
        print(f"peer: {a.coredns}", flush=True)
    if a.scale_only:
        return scale_only(a)
    t0 = time.monotonic()
    b = Bench(a)
    d = b.cluster(a.services, a.endpoints, a.namespaces)
    b.probe = probe(d)
    up = lib.start_dnsmasq(
        "upstream",
        b.work,
        b.upstream_port,
        [f"--addn-hosts={d / 'external-hosts'}", "--local=/bench.example/", "--local-ttl=300"],
    )
    try:
        b.scenarios(d)
        (a.out / "partial.json").write_text(
            json.dumps(b.results, indent=1) + "\n"
        )  # if later fails
        if not quick:
            b.startup_small()
        b.api(d, 20 if quick else 100)
    finally:
        up.stop()
    if not a.no_scale:
        b.results["scale"] = Scale(b, quick).run()
    mode = "quick" if quick else "full"
    b.results.update(
        mode=mode,
        seconds=a.seconds,
        workers=a.workers,
        cluster=json.loads((d / "cluster.json").read_text()),
        dnsperf={"clients": lib.CLIENTS, "in_flight": lib.IN_FLIGHT, "probe_qps": lib.PROBE_QPS},
        versions=versions(a.coredns),
        took_s=round(time.monotonic() - t0, 1),
        date=time.strftime("%Y-%m-%d %H:%M:%S %z"),
    )
    b.results["vs_coredns"] = against_coredns(b.results)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / f"{mode}.json").write_text(json.dumps(b.results, indent=1) + "\n")
    if "scale" in b.results:
        write_scale(b.results["scale"], quick, b.results["versions"])
    from bench.report import chart, table

    if not quick:
        from bench import mdreport

        mdreport.main([str(results / "full.json")])
    chart(b.results, results / f"{mode}-latency.png")
    print(table(b.results, TARGETS))
    print(f"results: {results / f'{mode}.json'}, chart: {results / f'{mode}-latency.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
