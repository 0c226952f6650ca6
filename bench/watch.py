"""Start-up and change measurements: time to ready, RSS after sync, watch event → answer.

The cluster is served either from the generated manifests or from the test API server
(tests/k8s_apiserver.py, run in this process) loaded with the same objects; a change is a
Service whose cluster IP moves, and its latency is the time from the change until an A query
(asked back to back) gets the new address.
"""

from __future__ import annotations

import json
import socket
import statistics
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.lib import HOST, ROOT

sys.path.insert(0, str(ROOT))


def objects(cluster: Path) -> Iterator[dict[str, Any]]:
    for f in sorted(cluster.glob("*.json")):
        yield from json.loads(f.read_text())["items"]


def a_query(name: str, qid: int) -> bytes:
    wire = b"".join(bytes([len(x)]) + x.encode() for x in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + b"\0\x01\0\x01"


def first_a(resp: bytes) -> str | None:
    """The address of the first A record of a plain answer (enough for our own queries)."""
    if len(resp) < 12 or int.from_bytes(resp[6:8], "big") == 0:
        return None
    i = 12
    while resp[i]:
        i += resp[i] + 1
    i += 5
    while i < len(resp):
        if resp[i] >= 0xC0:
            i += 2
        else:
            while resp[i]:
                i += resp[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", resp, i)
        i += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(resp[i : i + 4])
        i += rdlen
    return None


def wait_answer(port: int, name: str, want: str, timeout: float) -> float | None:
    """Seconds until `name` resolves to `want`, asking back to back; None on timeout."""
    t0 = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        qid = 0
        while time.monotonic() - t0 < timeout:
            qid = (qid + 1) & 0xFFFF
            s.sendto(a_query(name, qid), (HOST, port))
            try:
                resp = s.recv(4096)
                while resp[:2] != qid.to_bytes(2, "big"):  # a late answer to an earlier one
                    resp = s.recv(4096)
            except OSError:
                continue
            if first_a(resp) == want:
                return time.monotonic() - t0
    return None


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ms = sorted(x * 1000 for x in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"n": len(ms), "p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(ms[-1], 2)}  # fmt: skip


def api_changes(api: Any, port: int, services: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Move the cluster IP of `n` services, one at a time, timing each until it is served.

    A first change is not counted: right after the initial list, the client's rate limiter
    (apiserver_qps/burst) may hold the watch requests back for a moment; it is reported as
    `first_ms`.
    """
    samples: list[float] = []
    misses = 0
    first: float | None = None
    for i in range(-1, n):
        svc = json.loads(json.dumps(services[(i + 1) % len(services)]))
        new_ip = f"10.111.{((i + 1) // 250) % 250}.{(i + 1) % 250 + 1}"
        svc["spec"]["clusterIP"] = new_ip
        svc["spec"]["clusterIPs"] = [new_ip]
        name = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
        t0 = time.monotonic()
        api.apply(svc)
        waited = wait_answer(port, name, new_ip, 10.0)
        if i < 0:
            first = None if waited is None else round((time.monotonic() - t0) * 1000, 2)
        elif waited is None:
            misses += 1
        else:
            samples.append(time.monotonic() - t0)
    return {**summary(samples), "missed": misses, "first_ms": first}


def manifest_changes(cluster: Path, port: int, n: int) -> dict[str, Any]:
    """The same through a manifest file (re-read on change: every file, by design)."""
    f = cluster / "zz-bench-change.json"
    samples: list[float] = []
    for i in range(n):
        ip = f"10.111.255.{i + 1}"
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "bench-change", "namespace": "ns-0000"},
               "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80}]}}  # fmt: skip
        t0 = time.monotonic()
        f.write_text(json.dumps(svc))
        if wait_answer(port, "bench-change.ns-0000.svc.cluster.local", ip, 30.0) is not None:
            samples.append(time.monotonic() - t0)
        time.sleep(0.6)  # past the 0.5 s poll, so the next change is seen as one
    f.unlink(missing_ok=True)
    return summary(samples)
