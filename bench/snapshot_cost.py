"""Cost of the kubernetes plugin's snapshot file at bench/gencluster.py's size (10k/100k).

    python bench/gencluster.py OUT && python bench/snapshot_cost.py OUT/cluster

Converts the generated objects to records as the sources do, then times, in this process:
taking the view (on the event loop in the server), encoding (the writer thread's CPU),
writing the file atomically (with fsync), and reading + decoding it back. The numbers are in
docs/performance.md ("Snapshot").
"""

from __future__ import annotations

import json
import sys
import tempfile
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


def main() -> None:
    tables = load(Path(sys.argv[1]))
    n_eps = sum(len(e.addresses) for e in tables["Endpoints"])  # type: ignore[union-attr]
    print(f"{len(tables['Service'])} services, {len(tables['Endpoints'])} slices, {n_eps} endpoints")
    ident = {"zones": ["cluster.local."], "kinds": sorted(tables), "labels": "",
             "namespaces": [], "api": "10.96.0.1:443"}  # fmt: skip
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/snapshot"
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            view = {k: list(v) for k, v in tables.items()}
            t1, c1 = time.perf_counter(), time.process_time()
            data = snapshot.encode(view, time.time(), ident, {})
            t2, c2 = time.perf_counter(), time.process_time()
            snapshot.write(path, data)
            t3, c3 = time.perf_counter(), time.process_time()
            snap = snapshot.read(path)
            t4, c4 = time.perf_counter(), time.process_time()
            for name, v in (("view", t1 - t0), ("encode wall", t2 - t1), ("encode cpu", c2 - c1),
                            ("write wall", t3 - t2), ("write cpu", c3 - c2),
                            ("load wall", t4 - t3), ("load cpu", c4 - c3)):  # fmt: skip
                best[name] = min(best.get(name, 1e9), v)
        assert snap.counts == {k: len(v) for k, v in tables.items()}
    print(f"file {len(data)} bytes, body {snap.body_bytes} bytes uncompressed")
    for name, v in best.items():
        print(f"{name:12s} {v * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
