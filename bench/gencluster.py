"""Generate a large Kubernetes cluster as manifest files, and the dnsperf query files for it.

    python bench/gencluster.py OUT [--services 10000] [--endpoints 100000] [--namespaces 1000]
                                   [--headless 0.2] [--query-services 1000] [--seed 1]
                                   [--pods N]

Writes OUT/cluster/*.json (Namespaces, Services and EndpointSlices as `kind: List` documents, one
file per 100 namespaces: JSON, because the manifest reader parses it far faster than YAML),
OUT/hosts (the same names for dnsmasq, the peer), OUT/queries-*.txt (dnsperf input),
OUT/external-hosts (the upstream's names) and OUT/cluster.json (what was generated).

With `--pods N`, OUT/pods-N/*.json holds N Pods (Running, one IPv4 pod IP each, spread over the
namespaces) apart from the cluster, so one cluster is measured with and without them (the
memory `pods verified` costs).

Services are ClusterIP (one IPv4 cluster IP, ports http/80 and dns-tcp/53) or, for a fraction
`--headless`, headless (clusterIP None) whose endpoints have hostnames, as a StatefulSet's do.
Endpoints are spread over the services (every service has at least one), at most 100 to a
slice, as the EndpointSlice controller cuts them. Addresses are unique: cluster IPs from
10.96.0.0/12, pod IPs from 10.128.0.0/9.

Query files (names are sampled from the first `--query-services` services, so the working set
stays within a default-sized cache, as in the CoreDNS reference runs):

* queries-cluster.txt: A 50 %, AAAA 25 % (NODATA: the services are IPv4 only), SRV 25 %;
* queries-cluster-a.txt: A only, for the peer comparison (dnsmasq serves A from its hosts file);
* queries-ndots.txt: what a pod in `ns-0000` (ndots:5, search path `ns-0000.svc.cluster.local
  svc.cluster.local cluster.local`) asks for `SVC.NS.svc.cluster.local`: the three search-path
  expansions (NXDOMAIN) then the name itself (the hit), in that order;
* queries-external.txt: names under `bench.example` (answered by the local upstream).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
from pathlib import Path
from typing import Any

ZONE = "cluster.local"
SEARCH_NS = "ns-0000"
EXTERNAL_ZONE = "bench.example"
EXTERNAL_NAMES = 1000
SLICE_MAX = 100
NS_PER_FILE = 100
CLUSTER_NET = ipaddress.ip_network("10.96.0.0/12")
POD_NET = ipaddress.ip_network("10.128.0.0/9")

Obj = dict[str, Any]


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(ns: str, name: str, cluster_ip: str | None) -> Obj:
    spec: Obj = {
        "type": "ClusterIP",
        "selector": {"app": name},
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        ],
    }
    if cluster_ip is None:
        spec["clusterIP"] = "None"
        spec["clusterIPs"] = ["None"]
    else:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": spec,
    }


def endpoint_slice(ns: str, svc: str, index: int, ips: list[str], hostnames: bool) -> Obj:
    endpoints = []
    for i, ip in enumerate(ips):
        ep: Obj = {
            "addresses": [ip],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": f"node-{i % 50}",
            "targetRef": {"kind": "Pod", "name": f"{svc}-{index}-{i}", "namespace": ns},
        }
        if hostnames:
            ep["hostname"] = f"{svc}-{index * SLICE_MAX + i}"
        endpoints.append(ep)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-{index:05d}",
            "namespace": ns,
            "labels": {
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ],
    }


def pod(ns: str, name: str, ip: str, node: int) -> Obj:
    """A Running Pod with the fields a controller-made one has (labels, owner, a container),
    so that what a server keeps of it, not the JSON, decides its memory."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": name.rsplit("-", 1)[0], "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": name.rsplit("-", 1)[0], "uid": f"rs-{name}",
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "nodeName": f"node-{node}",
            "containers": [{"name": "app", "image": "registry.example/app:1.0",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
        },
        "status": {
            "phase": "Running",
            "hostIP": f"192.168.{node // 250}.{node % 250 + 1}",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }  # fmt: skip


def write_pods(out: Path, pods: int, namespaces: int) -> Path:
    """OUT/pods-N/: `pods` Pods, pod i in namespace i mod `namespaces`, IPs from POD_NET (the
    endpoints' addresses first: pods back endpoints), 10,000 to a file."""
    d = out / f"pods-{pods}"
    d.mkdir(parents=True, exist_ok=True)
    base = int(POD_NET.network_address) + 1
    for f, start in enumerate(range(0, pods, 10_000)):
        items = [
            pod(f"ns-{i % namespaces:04d}", f"pod-{i // namespaces:05d}-{i % 100:02d}",
                str(ipaddress.IPv4Address(base + i)), i % 50)
            for i in range(start, min(pods, start + 10_000))
        ]  # fmt: skip
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        (d / f"{f:03d}.json").write_text(json.dumps(doc, separators=(",", ":")))
    return d


def plan(services: int, endpoints: int, namespaces: int, headless: float, seed: int) -> list[Obj]:
    """One dict per service: namespace, name, headless?, cluster IP, endpoint IPs."""
    if services < 1 or namespaces < 1 or endpoints < services:
        raise SystemExit("need services >= 1, namespaces >= 1 and endpoints >= services")
    rng = random.Random(seed)
    counts = [1] * services  # every service gets one endpoint, the rest is spread at random
    for _ in range(endpoints - services):
        counts[rng.randrange(services)] += 1
    pod = int(POD_NET.network_address) + 1
    out: list[Obj] = []
    for i in range(services):
        is_headless = rng.random() < headless
        ips = [str(ipaddress.IPv4Address(pod + k)) for k in range(counts[i])]
        pod += counts[i]
        out.append(
            {
                "ns": f"ns-{i % namespaces:04d}",
                "name": f"svc-{i:05d}",
                "headless": is_headless,
                "ip": None
                if is_headless
                else str(ipaddress.IPv4Address(int(CLUSTER_NET.network_address) + 10 + i)),
                "ips": ips,
            }
        )
    return out


def write_cluster(out: Path, services: list[Obj], namespaces: int) -> None:
    d = out / "cluster"
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.json"):
        old.unlink()
    by_file: dict[int, list[Obj]] = {}
    for n in range(namespaces):
        by_file.setdefault(n // NS_PER_FILE, []).append(namespace(f"ns-{n:04d}"))
    for s in services:
        items = by_file.setdefault(int(s["ns"][3:]) // NS_PER_FILE, [])
        items.append(service(s["ns"], s["name"], s["ip"]))
        ips: list[str] = s["ips"]
        for k in range(0, len(ips), SLICE_MAX):
            items.append(
                endpoint_slice(s["ns"], s["name"], k // SLICE_MAX, ips[k : k + SLICE_MAX],
                               s["headless"])
            )  # fmt: skip
    for n, items in sorted(by_file.items()):
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        (d / f"{n:03d}.json").write_text(json.dumps(doc, separators=(",", ":")))


def fqdn(s: Obj) -> str:
    return f"{s['name']}.{s['ns']}.svc.{ZONE}"


def write_queries(out: Path, services: list[Obj], sample: int, seed: int) -> None:
    rng = random.Random(seed + 1)
    pool = services[: max(1, min(sample, len(services)))]
    cluster: list[str] = []
    only_a: list[str] = []
    hosts: list[str] = []
    for s in pool:
        name = fqdn(s)
        cluster += [f"{name} A", f"{name} A", f"{name} AAAA", f"_http._tcp.{name} SRV"]
        only_a.append(f"{name} A")
        if s["ip"]:
            hosts.append(f"{s['ip']} {name}")
            continue
        for k, ip in enumerate(s["ips"]):  # headless: the endpoints, by hostname too
            hosts.append(f"{ip} {name} {s['name']}-{k}.{name}")
    rng.shuffle(cluster)
    rng.shuffle(only_a)
    (out / "queries-cluster.txt").write_text("\n".join(cluster) + "\n")
    (out / "queries-cluster-a.txt").write_text("\n".join(only_a) + "\n")
    (out / "hosts").write_text("\n".join(hosts) + "\n")
    ndots: list[str] = []
    search = [f"{SEARCH_NS}.svc.{ZONE}", f"svc.{ZONE}", ZONE]
    for s in pool:
        name = fqdn(s)  # four dots: fewer than ndots:5, so the search path comes first
        ndots += [f"{name}.{suffix} A" for suffix in search] + [f"{name} A"]
    (out / "queries-ndots.txt").write_text("\n".join(ndots) + "\n")
    ext = [f"host-{i}.{EXTERNAL_ZONE} A" for i in range(EXTERNAL_NAMES)]
    rng.shuffle(ext)
    (out / "queries-external.txt").write_text("\n".join(ext) + "\n")
    ext_hosts = [f"192.0.2.{1 + i % 250} host-{i}.{EXTERNAL_ZONE}" for i in range(EXTERNAL_NAMES)]
    (out / "external-hosts").write_text("\n".join(ext_hosts) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--endpoints", type=int, default=100_000)
    p.add_argument("--namespaces", type=int, default=1_000)
    p.add_argument("--headless", type=float, default=0.2, help="fraction of headless services")
    p.add_argument("--query-services", type=int, default=1_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pods", type=int, default=0, help="also write OUT/pods-N/ with N Pods")
    a = p.parse_args(argv)
    if a.pods and (a.out / "cluster.json").exists():  # the cluster is there: only the pods
        write_pods(a.out, a.pods, a.namespaces)
        return 0
    services = plan(a.services, a.endpoints, a.namespaces, a.headless, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    write_cluster(a.out, services, a.namespaces)
    write_queries(a.out, services, a.query_services, a.seed)
    meta = {
        "services": a.services,
        "endpoints": a.endpoints,
        "namespaces": a.namespaces,
        "headless_services": sum(1 for s in services if s["headless"]),
        "query_services": min(a.query_services, a.services),
        "seed": a.seed,
    }
    if a.pods:
        write_pods(a.out, a.pods, a.namespaces)
    (a.out / "cluster.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
