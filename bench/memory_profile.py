"""Where the kubernetes plugin's memory goes: a generated cluster loaded into a Store.

    python bench/memory_profile.py [--services 10000] [--endpoints 100000] [--namespaces 1000]
                                   [--pods N] [--out DIR]

Generates the cluster with bench/gencluster.py (kept under --out), reads it as `manifests` does
and puts it into a Store, under tracemalloc: it prints the load's peak and the bytes retained
after it, then the retained bytes split per object kind (each object counted once, by the
first owner a walk from the Store meets: records, their tuples, their strings, the indexes)
and per endpoint. `--pods N` adds N pods (`pods verified` data, built as the API hands them)
and prints the bytes per pod. The numbers are Python's own allocations (sys.getsizeof with
the GC header), not RSS: the interpreter, its modules and the heap's slack come on top.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.gencluster import main as gencluster  # noqa: E402
from clusterdns.plugins.kubernetes.manifests import load  # noqa: E402
from clusterdns.plugins.kubernetes.records import Pod, to_pod  # noqa: E402
from clusterdns.plugins.kubernetes.source import SourceOptions  # noqa: E402
from clusterdns.plugins.kubernetes.store import KINDS, Store  # noqa: E402

KIB = 1024


class Tally:
    """Bytes per category; an object already counted (by id) is not counted again."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bytes: dict[str, int] = defaultdict(int)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, cat: str, obj: object) -> bool:
        if id(obj) in self.seen:
            return False
        self.seen.add(id(obj))
        self.bytes[cat] += sys.getsizeof(obj)
        self.count[cat] += 1
        return True

    def deep(self, cat: str, obj: object) -> None:
        """obj and what it holds (tuples, records' fields), all under `cat` unless a string."""
        if isinstance(obj, str):
            self.add(cat if cat.startswith("str") else f"str: {cat}", obj)
            return
        if isinstance(obj, (int, bool, float)) or obj is None:
            return
        if not self.add(cat, obj):
            return
        if isinstance(obj, (tuple, list)):
            for x in obj:
                self.deep(cat, x)
        elif hasattr(obj, "__slots__"):
            for name in type(obj).__slots__:
                self.deep(cat, getattr(obj, name, None))


def walk(store: Store) -> Tally:
    """Attribute the Store's objects: strings of each field, records, tuples, indexes."""
    t = Tally()
    for svc in store.services.values():
        for ip in svc.cluster_ips:
            t.deep("str: ip", ip)
        t.deep("str: name/namespace", svc.name)
        t.deep("str: name/namespace", svc.namespace)
        t.deep("Service records (+ports, labels)", svc)
    for ep in store.endpoints.values():
        for a in ep.addresses:
            t.deep("str: ip", a.ip)
            t.deep("str: endpoint hostname", a.hostname)
            t.deep("str: endpoint node name", a.node_name)
            t.deep("str: endpoint target (pod name)", a.target)
            t.deep("Address records", a)
        t.deep("str: name/namespace", ep.namespace)
        t.deep("str: name/namespace", ep.service)
        t.deep("EndpointSlice records (+ports)", ep.addresses)
        t.deep("EndpointSlice records (+ports)", ep)
    for pod in store.pods.values():
        for ip in pod.ips:
            t.deep("str: ip", ip)
        t.deep("str: name/namespace", pod.namespace)
        t.deep("Pod records (+name, version)", pod)
    for ns in store.namespaces.values():
        t.deep("Namespace records", ns)
    index: dict[str, Any] = {
        "services": store.services,
        "endpoints": store.endpoints,
        "pods": store.pods,
        "namespaces": store.namespaces,
        "services_by_ip": store.services_by_ip,
        "endpoints_by_service": store.endpoints_by_service,
        "endpoints_by_ip": store.endpoints_by_ip,
        "pods_by_ip": store.pods_by_ip,
    }
    for name, table in index.items():
        cat = f"index: {name}"
        t.add(cat, table)
        for k, v in table.items():
            t.deep(cat, k)
            if isinstance(v, (list, tuple, dict)):
                t.add(cat, v)
                inner = v.items() if isinstance(v, dict) else enumerate(v)
                for k2, v2 in inner:
                    if isinstance(k2, tuple):
                        t.deep(cat, k2)
                    if isinstance(v2, tuple):
                        t.add(cat, v2)
    return t


def make_pods(n: int) -> list[dict[str, Any]]:
    """Pods as the API hands them (the fields to_pod reads, plus typical noise)."""
    out = []
    for i in range(n):
        ip = f"10.{64 + i // 65536}.{i // 256 % 256}.{i % 256}"
        out.append(
            {
                "metadata": {
                    "name": f"app-{i // 10:05d}-7d4b9c8f6d-{i % 10:05d}",
                    "namespace": f"ns-{i % 1000:04d}",
                    "resourceVersion": str(1_000_000 + i),
                },
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--endpoints", type=int, default=100_000)
    p.add_argument("--namespaces", type=int, default=1_000)
    p.add_argument("--pods", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/clusterdns-memory-profile"))
    a = p.parse_args(argv)
    d = a.out / f"cluster-{a.services}-{a.endpoints}-{a.namespaces}"
    if not (d / "cluster.json").exists():
        gencluster([str(d), "--services", str(a.services), "--endpoints", str(a.endpoints),
                    "--namespaces", str(a.namespaces)])  # fmt: skip
    kinds = frozenset({"Service", "Endpoints", "Namespace"} | ({"Pod"} if a.pods else set()))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    loaded = load([str(d / "cluster")], SourceOptions(kinds))
    store = Store()
    for kind in KINDS:
        if kind in kinds and kind != "Pod":
            store.replace(kind, list(loaded.records[kind].values()))
    del loaded
    took = time.perf_counter() - t0
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    pod_bytes = 0
    if a.pods:
        texts = [json.dumps(o) for o in make_pods(a.pods)]  # as a list page holds them
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        pods: list[Pod] = [to_pod(json.loads(t)) for t in texts]
        store.replace("Pod", list(pods))
        del pods
        gc.collect()
        pod_bytes = tracemalloc.get_traced_memory()[0] - before
        del texts
    tracemalloc.stop()
    n_ep = sum(len(e.addresses) for e in store.endpoints.values())
    sizes = (len(store.services), len(store.endpoints), n_ep, len(store.namespaces))
    print("cluster: {} services, {} slices, {} endpoints, {} namespaces".format(*sizes))
    print(f"load: {took:.2f} s, tracemalloc peak {(peak - base) / 2**20:.1f} MiB, "
          f"retained {(held - base) / 2**20:.1f} MiB")  # fmt: skip
    t = walk(store)
    total = sum(t.bytes.values())
    print(f"\n{'what':44s} {'objects':>9s} {'KiB':>9s} {'B/endpoint':>11s}")
    for cat, b in sorted(t.bytes.items(), key=lambda kv: -kv[1]):
        per = f"{b / n_ep:11.1f}" if n_ep else ""
        print(f"{cat:44s} {t.count[cat]:9d} {b / KIB:9.0f} {per}")
    print(f"{'total (walked)':44s} {'':9s} {total / KIB:9.0f} {total / max(n_ep, 1):11.1f}")
    if a.pods:
        print(f"\npods: {pod_bytes / a.pods:.0f} bytes per pod (record, strings, indexes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
