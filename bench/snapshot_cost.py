"""Cost of the kubernetes plugin's snapshot file at bench/gencluster.py's size (10k/100k).

    python bench/gencluster.py OUT && python bench/snapshot_cost.py OUT/cluster

Converts the generated objects to records as the sources do, then times, in this process:
taking the view (on the event loop in the server), encoding from scratch (the first write),
encoding again after 1 % of the EndpointSlices changed (a later write: unchanged records'
JSON is reused), writing the file atomically (with fsync), and reading + decoding it back.
The numbers are in docs/performance.md ("Snapshot").
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from clusterdns.plugins.kubernetes import snapshot
from clusterdns.plugins.kubernetes.records import (
    Record,
    to_endpoint_slice,
    to_namespace,
    to_service,
)


def load(d: Path) -> dict[str, list[Record]]:
    tables: dict[str, list[Record]] = {"Service": [], "Endpoints": [], "Namespace": []}
    conv = {"Service": to_service, "EndpointSlice": to_endpoint_slice, "Namespace": to_namespace}
    kinds = {"Service": "Service", "EndpointSlice": "Endpoints", "Namespace": "Namespace"}
    for f in sorted(d.glob("*.json")):
        for obj in json.loads(f.read_text())["items"]:
            tables[kinds[obj["kind"]]].append(conv[obj["kind"]](obj))
    return tables


def loop_stall(tables: dict[str, list[Record]], ident: dict[str, object]) -> float:
    """The longest gap between 1 ms ticks of an event loop while a thread encodes a snapshot
    from scratch (what a query arriving then could wait, through the GIL)."""

    async def run() -> float:
        done = threading.Event()

        def work() -> None:
            snapshot.encode({k: list(v) for k, v in tables.items()}, time.time(), ident, {})
            done.set()

        threading.Thread(target=work, daemon=True).start()
        worst, last = 0.0, time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now
        return worst

    return asyncio.run(run())


def main() -> None:
    tables = load(Path(sys.argv[1]))
    n_eps = sum(len(e.addresses) for e in tables["Endpoints"])  # type: ignore[union-attr]
    print(
        f"{len(tables['Service'])} services, {len(tables['Endpoints'])} slices, {n_eps} endpoints"
    )
    ident = {"zones": ["cluster.local."], "kinds": sorted(tables), "labels": "",
             "namespaces": [], "api": "10.96.0.1:443"}  # fmt: skip
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/snapshot"
        for _ in range(5):
            t0 = time.perf_counter()
            view = {k: list(v) for k, v in tables.items()}
            t1, c1 = time.perf_counter(), time.process_time()
            enc = snapshot.Encoder()
            data = enc.encode(view, time.time(), ident, {})
            t2, c2 = time.perf_counter(), time.process_time()
            eps = view["Endpoints"]
            for i in range(0, len(eps), 100):
                eps[i] = dataclasses.replace(eps[i], version="changed")  # type: ignore[arg-type]
            c5 = time.process_time()
            enc.encode(view, time.time(), ident, {})
            c6 = time.process_time()
            best["encode again cpu"] = min(best.get("encode again cpu", 1e9), c6 - c5)
            snapshot.write(path, data)
            t3, c3 = time.perf_counter(), time.process_time()
            snap = snapshot.read(path)
            t4, c4 = time.perf_counter(), time.process_time()
            for name, v in (("view", t1 - t0), ("encode wall", t2 - t1), ("encode cpu", c2 - c1),
                            ("write wall", t3 - t2), ("write cpu", c3 - c2),
                            ("load wall", t4 - t3), ("load cpu", c4 - c3)):  # fmt: skip
                best[name] = min(best.get(name, 1e9), v)
        assert snap.counts == {k: len(v) for k, v in tables.items()}
    print(f"longest event-loop stall during a write: {loop_stall(tables, ident) * 1000:.1f} ms")
    print(f"file {len(data)} bytes, body {snap.body_bytes} bytes uncompressed")
    for name, v in best.items():
        print(f"{name:12s} {v * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
