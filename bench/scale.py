"""Issue 14's memory and start-up measurements, ClusterDNS beside CoreDNS on the same cluster.

Every server runs as deployed (one process, `-workers 0`; kubeadm's Corefile) and reads one
generated cluster (bench/gencluster.py) from the test API server (tests/k8s_apiserver.py, in
this process); ClusterDNS also from the manifests. Measured:

* the scale curve: exec to /ready, exec to the first answer for a cluster name, and RSS after
  sync at 1k/10k, 10k/100k and 30k/300k (services/endpoints), and the MB-per-1k-endpoints slope;
* a full relist at 10k/100k: the API server ends every watch and forgets its history (what a
  restarted API server does: the client's resourceVersion is gone, 410, it lists again), with
  one Service changed meanwhile; the server's RSS is sampled every 20 ms (VmRSS) and its
  VmHWM, reset just before (/proc/PID/clear_refs), catches a peak between samples;
* `pods verified`: RSS after sync with 0, 10k and 30k Pods (1k/10k cluster), the KB per pod.

These are memory and time-to-ready numbers: tolerant of a busy machine, not of swapping.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import lib, scale_report, watch
from bench.gencluster import write_pods

if TYPE_CHECKING:
    from bench.run import Bench
    from tests.k8s_apiserver import ApiServer

#: (services, endpoints, namespaces): the scale curve's clusters (services in proportion).
SIZES = [(1_000, 10_000, 100), (10_000, 100_000, 1_000), (30_000, 300_000, 3_000)]
QUICK_SIZES = [(1_000, 10_000, 100), (3_000, 30_000, 300)]
RELIST_AT = 100_000  # endpoints (QUICK: the largest quick size)
PODS = (10_000, 30_000)
QUICK_PODS = (3_000,)
SAMPLE_S = 0.02
PAUSE_S = 1.0  # the relist's pauses: before the steady RSS, over it, after dropping watches
TAIL_S = 3.0  # sampling goes on this long after the relist (what it leaves is freed, or kept)


def status_kb(pid: int, field: str) -> int | None:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status, in kB (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_hwm(pid: int) -> bool:
    """Set VmHWM back to the current RSS (Linux ≥ 4.0), so it holds the peak from now on."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler(threading.Thread):
    """VmRSS every `SAMPLE_S` until stopped. It shares the GIL with the in-process API server,
    so a sample can come late while a big list is encoded: VmHWM is the backstop."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.kb: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            kb = status_kb(self.pid, "VmRSS")
            if kb is not None:
                self.kb.append(kb)
            self.done.wait(SAMPLE_S)

    def stop(self) -> list[int]:
        self.done.set()
        self.join(5)
        return self.kb


def steady_mb(pid: int, seconds: float = 1.0) -> float:
    """The mean RSS over `seconds` (after sync, before anything happens)."""
    kb = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        kb.append(status_kb(pid, "VmRSS") or 0)
        time.sleep(SAMPLE_S * 5)
    return round(sum(kb) / len(kb) / 1024, 1)


@contextlib.contextmanager
def api_with(d: Path, extra: Sequence[Path] = ()) -> Iterator[ApiServer]:
    """The test API server holding the cluster of `d` (and the objects of `extra` dirs)."""
    from tests.k8s_apiserver import ApiServer

    api = ApiServer(history=1000).start()
    try:
        api.load(watch.objects(d / "cluster"))
        for e in extra:
            api.load(watch.objects(e))
        yield api
    finally:
        api.stop()


class Scale:
    def __init__(
        self,
        b: Bench,
        quick: bool,
        sizes: list[tuple[int, int, int]] | None = None,
        pods: tuple[int, ...] | None = None,
    ) -> None:
        self.b = b
        self.quick = quick
        self.sizes = sizes or (QUICK_SIZES if quick else SIZES)
        self.relist_at = RELIST_AT if self.sizes == SIZES else self.sizes[-1][1]
        self.pods = pods or (QUICK_PODS if quick else PODS)
        self.has_coredns = b.coredns_exe is not None
        self.out: dict[str, Any] = {"sizes": [], "relist": {}, "pods": []}

    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        load0 = os.getloadavg()[0]
        for services, endpoints, namespaces in self.sizes:
            self.size(services, endpoints, namespaces)
        self.pods_verified()
        self.out["summary"] = scale_report.summarize(self.out)
        self.out.update(
            took_s=round(time.monotonic() - t0, 1),
            load_avg=[round(load0, 2), round(os.getloadavg()[0], 2)],
            cpus=os.cpu_count(),
            date=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            quick=self.quick,
        )
        return self.out

    def servers(self, api: ApiServer, d: Path, pods: str = "insecure") -> Iterator[tuple[str, Any]]:
        """(key, a started function) of each server for this cluster."""
        b = self.b
        yield "clusterdns-api", lambda: b.clusterdns("sc-api", f"endpoint {api.url}", workers="0",
                                                     pods=pods)  # fmt: skip
        if pods == "insecure":
            yield (
                "clusterdns-manifests",
                lambda: b.clusterdns("sc-mf", f"manifests {d / 'cluster'}", workers="0"),
            )
        if self.has_coredns:
            yield "coredns-api", lambda: b.coredns("sc-cd", api.url, pods=pods)

    def size(self, services: int, endpoints: int, namespaces: int) -> None:
        from bench.run import probe

        d = self.b.cluster(services, endpoints, namespaces)
        self.b.probe = probe(d)
        t0 = time.monotonic()
        with api_with(d) as api:
            print(f"scale {services}/{endpoints}: API server loaded in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)  # fmt: skip
            for key, start in self.servers(api, d):
                with lib.running(start()) as srv:
                    row = {"server": key, "services": services, "endpoints": endpoints,
                           **self.b.startup(srv)}  # fmt: skip
                    self.out["sizes"].append(row)
                    print(f"  {key:22s} ready {row['ready_s']} s, answering {row['answer_s']} s,"
                          f" RSS {row['rss_mb']} MB", flush=True)  # fmt: skip
            if endpoints == self.relist_at:
                self.relists(api, d)

    def relists(self, api: ApiServer, d: Path) -> None:
        """The relist, on servers without `cache` (a cached old answer would hide the new one
        for 30 s; the cache holds nothing else here, so the memory is the kubernetes plugin's)."""
        b = self.b
        servers: list[tuple[str, Callable[[], lib.Server]]] = [
            ("clusterdns-api",
             lambda: b.clusterdns("rl-api", f"endpoint {api.url}", cache=False, workers="0"))
        ]  # fmt: skip
        if self.has_coredns:
            servers.append(("coredns-api", lambda: b.coredns("rl-cd", api.url, cache=False)))
        for key, start in servers:
            with lib.running(start()) as srv:
                self.out["relist"][key] = x = relist(api, srv, d)
                brief = {k: v for k, v in x.items() if k != "timeline_mb"}
                print(f"  {key:22s} relist: {brief}", flush=True)

    def pods_verified(self) -> None:
        """RSS after sync with `pods verified`, with no Pods and with each count of them."""
        from bench.run import probe

        services, endpoints, namespaces = self.sizes[0]
        d = self.b.cluster(services, endpoints, namespaces)
        self.b.probe = probe(d)
        for n in (0, *self.pods):
            extra = [] if n == 0 else [d / f"pods-{n}"]
            if n and not (d / f"pods-{n}").exists():
                write_pods(d, n, namespaces)
            with api_with(d, extra) as api:
                for key, start in self.servers(api, d, pods="verified"):
                    with lib.running(start()) as srv:
                        st = self.b.startup(srv)
                        self.out["pods"].append({"server": key, "pods": n, "services": services,
                                                 "endpoints": endpoints, **st})  # fmt: skip
                        print(f"  pods verified {key:16s} {n:6d} pods: RSS {st['rss_mb']} MB",
                              flush=True)  # fmt: skip


_moves = itertools.count(1)


def relist(api: ApiServer, srv: lib.Server, d: Path) -> dict[str, Any]:
    """Force a full relist (watches end, history expires, a Service's IP moves meanwhile) and
    follow the server's RSS until it has answered the change, watches again and settled."""
    pid = srv.proc.pid
    time.sleep(PAUSE_S)
    steady = steady_mb(pid, PAUSE_S)
    svc = next(
        o for o in watch.objects(d / "cluster")
        if o["kind"] == "Service" and o["spec"]["clusterIP"] != "None"
    )  # fmt: skip
    svc = json.loads(json.dumps(svc))
    ip = f"10.111.254.{next(_moves)}"  # a new address each time: servers share the API server
    svc["spec"]["clusterIP"] = svc["spec"]["clusterIPs"][0] = ip
    name = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    api.drop_watches()  # the watches of servers stopped before (never written to since) too
    end = time.monotonic() + 10  # this server watches again, from where it was: no relist yet
    while api.watch_count() == 0 and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(PAUSE_S)
    watches = api.watch_count()
    hwm_ok = reset_hwm(pid)
    sampler = Sampler(pid)
    sampler.start()
    t0 = time.monotonic()
    api.gap(apply=[svc])
    answered = watch.wait_answer(srv.port, name, ip, 120.0)
    while api.watch_count() < watches and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    rewatch = time.monotonic() - t0
    time.sleep(TAIL_S)
    kb = sampler.stop()
    hwm = status_kb(pid, "VmHWM") if hwm_ok else None
    return {
        "endpoints": json.loads((d / "cluster.json").read_text())["endpoints"],
        "steady_mb": steady,
        "peak_sampled_mb": round(max(kb) / 1024, 1),
        "hwm_mb": round(hwm / 1024, 1) if hwm else None,
        "after_mb": round(kb[-1] / 1024, 1),
        "answer_s": None if answered is None else round(answered, 3),
        "rewatch_s": round(rewatch, 3),
        "watches": watches,
        "samples": len(kb),
        # Every fifth sample (~0.1 s apart, from the relist's start): where the peak falls.
        "timeline_mb": [round(x / 1024, 1) for x in kb[::5]],
    }
