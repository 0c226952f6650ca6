"""Benchmark: list N EndpointSlices (limit 500) through each candidate Kubernetes client.

Not a test (pytest does not collect it). Needs kubernetes_asyncio, lightkube and kr8s installed
in the interpreter that runs it; the results are in docs/decisions/k8s-client.md:

    python -m tests.k8s_client_bench --slices 100000

Each variant runs in a fresh child process against the test API server (itself a separate
process), pages through all slices with limit 500, converts every item to a compact record
(records.to_endpoint_slice) and keeps only the records, as the DNS server does. It reports wall
time, the peak RSS growth during the list, and the RSS growth that remains afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = 500


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def records_only(url: str) -> list[Any]:
    """No HTTP at all: the same dicts decoded from JSON and converted (the floor)."""
    sys.path.insert(0, str(ROOT))
    from clusterdns.plugins.kubernetes.records import to_endpoint_slice
    from tests.k8s_apiserver import bench_slice

    out: list[Any] = []
    n = int(os.environ["BENCH_SLICES"])
    for start in range(0, n, PAGE):
        page = json.dumps([bench_slice(i) for i in range(start, min(n, start + PAGE))])
        t0 = time.process_time()
        out.extend(to_endpoint_slice(o) for o in json.loads(page))
        global EXCLUDED_CPU
        EXCLUDED_CPU -= time.process_time() - t0  # only decode+convert counts
    return out


EXCLUDED_CPU = 0.0
IMPORTS = {
    "records only": ["clusterdns.plugins.kubernetes.records", "tests.k8s_apiserver"],
    "kubernetes_asyncio": ["kubernetes_asyncio.client", "kubernetes_asyncio.config"],
    "lightkube": ["lightkube", "lightkube.resources.discovery_v1", "lightkube.config.kubeconfig"],
    "kr8s": ["kr8s.asyncio"],
}


async def k8s_asyncio(url: str, raw: bool) -> list[Any]:
    from kubernetes_asyncio import client

    from clusterdns.plugins.kubernetes.records import to_endpoint_slice

    conf = client.Configuration(host=url)
    out: list[Any] = []
    async with client.ApiClient(conf) as api_client:
        api = client.DiscoveryV1Api(api_client)
        cont = None
        while True:
            kw: dict[str, Any] = {"limit": PAGE}
            if cont:
                kw["_continue"] = cont
            if raw:
                resp = await api.list_endpoint_slice_for_all_namespaces(
                    _preload_content=False, **kw
                )
                body = json.loads(await resp.read())
                out.extend(to_endpoint_slice(o) for o in body["items"])
                cont = body["metadata"].get("continue")
            else:
                lst = await api.list_endpoint_slice_for_all_namespaces(**kw)
                for item in lst.items:
                    out.append(to_endpoint_slice(api_client.sanitize_for_serialization(item)))
                cont = lst.metadata._continue
            if not cont:
                return out


async def lightkube_models(url: str) -> list[Any]:
    import lightkube
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.resources.discovery_v1 import EndpointSlice

    from clusterdns.plugins.kubernetes.records import to_endpoint_slice

    config = KubeConfig.from_file(os.environ["BENCH_KUBECONFIG"])
    cl = lightkube.AsyncClient(config=config)
    out = [
        to_endpoint_slice(o.to_dict())
        async for o in cl.list(EndpointSlice, namespace=lightkube.ALL_NS, chunk_size=PAGE)
    ]
    await cl.close()
    return out


async def kr8s_variant(url: str, raw: bool) -> list[Any]:
    import kr8s.asyncio

    from clusterdns.plugins.kubernetes.records import to_endpoint_slice

    kc = Path(os.environ["BENCH_KUBECONFIG"])
    api = await kr8s.asyncio.api(kubeconfig=str(kc))
    out = []
    async for o in api.async_get("endpointslices", namespace=kr8s.ALL, raw=raw):
        out.append(to_endpoint_slice(o if raw else o.raw))
    return out


VARIANTS: dict[str, Callable[[str], Awaitable[list[Any]]]] = {
    "records only (json.loads + convert, no HTTP)": records_only,
    "kubernetes_asyncio raw (_preload_content=False)": lambda u: k8s_asyncio(u, True),
    "kubernetes_asyncio models": lambda u: k8s_asyncio(u, False),
    "lightkube models": lightkube_models,
    "kr8s raw (limit fixed at 100)": lambda u: kr8s_variant(u, True),
    "kr8s APIObject (limit fixed at 100)": lambda u: kr8s_variant(u, False),
}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(variant: str, url: str) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT))
    import aiohttp  # noqa: F401  (the server has it loaded anyway)
    import dns.message  # noqa: F401
    import prometheus_client  # noqa: F401

    before_import = rss_kib()
    lib = next(k for k in IMPORTS if variant.startswith(k))
    for mod in [*IMPORTS[lib], "clusterdns.plugins.kubernetes.records"]:
        __import__(mod)
    gc.collect()
    base = rss_kib()
    t0, c0 = time.perf_counter(), cpu()
    records = asyncio.run(VARIANTS[variant](url))
    elapsed, used = time.perf_counter() - t0, cpu() - c0 + EXCLUDED_CPU
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.collect()
    kept = rss_kib()
    print(json.dumps({"n": len(records), "seconds": elapsed, "cpu": used,
                      "import_mib": (base - before_import) / 1024,
                      "peak_mib": (peak - base) / 1024, "kept_mib": (kept - base) / 1024}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=100_000)
    ap.add_argument("--variant")
    ap.add_argument("--url")
    args = ap.parse_args()
    if args.variant:
        child(args.variant, args.url)
        return
    srv = subprocess.Popen(
        [sys.executable, "-m", "tests.k8s_apiserver", "--slices", str(args.slices)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert srv.stdout is not None
        url = srv.stdout.readline().split()[1]
        kc = Path(f"/tmp/bench-kubeconfig-{os.getpid()}.json")
        sys.path.insert(0, str(ROOT))
        from tests.k8s_apiserver import kubeconfig

        kc.write_text(kubeconfig(url))
        env = dict(os.environ, BENCH_KUBECONFIG=str(kc), BENCH_SLICES=str(args.slices))
        print(f"{args.slices} EndpointSlices, page size {PAGE}\n")
        print(f"| {'variant':50} | wall s | client CPU s | import MiB | peak MiB | kept MiB |")
        print(f"|{'-' * 52}|--------|--------------|------------|----------|----------|")
        for name in VARIANTS:
            out = subprocess.run(
                [sys.executable, "-m", "tests.k8s_client_bench", "--variant", name, "--url", url],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode != 0:
                print(f"| {name:50} | failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["n"] == args.slices, r
            print(
                f"| {name:50} | {r['seconds']:6.1f} | {r['cpu']:12.1f} | {r['import_mib']:10.0f} "
                f"| {r['peak_mib']:8.0f} | {r['kept_mib']:8.0f} |"
            )
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()
