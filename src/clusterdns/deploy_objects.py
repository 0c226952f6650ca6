"""The Kubernetes objects `clusterdns manifests` prints, as plain JSON-shaped dicts.

They follow CoreDNS's deployment seed (coredns.yaml.sed) and kubeadm's CoreDNS addon, so the
usual tooling keeps working — the `k8s-app: kube-dns` label, the `kube-dns` Service at the
IP kubelet's `clusterDNS` names, the Corefile mounted at /etc/coredns, /health on 8080 and
/ready on 8181, metrics on 9153 — with these choices:

* the ClusterRole grants list and watch, nothing else, on endpoints, services, pods,
  namespaces and discovery.k8s.io endpointslices — plus multicluster.x-k8s.io serviceimports
  when the Corefile's kubernetes plugin uses `multicluster`;
* the Service selects `k8s-app: kube-dns` only (as kubeadm's does), so during a migration
  CoreDNS's pods and ours serve side by side behind the same IP; the Deployment and the
  PodDisruptionBudget select our own pods only (`app.kubernetes.io/name: clusterdns` too),
  so they never adopt or count CoreDNS's;
* replicas spread over nodes by *preferred* anti-affinity: a one-node cluster still runs them;
* `dnsPolicy: Default`: the pods resolve through the node's resolv.conf, never through
  themselves (the loop the `loop` plugin reports);
* an `emptyDir` at /var/lib/clusterdns holds the kubernetes plugin's `snapshot` file (the
  default Corefile names it): a container restart finds it and serves it if the API is not
  reachable then; docs/kubernetes.md has a hostPath variant that also survives the pod;
* non-root (uid 65532, as the image's USER), read-only root filesystem, no privilege
  escalation, every capability dropped but NET_BIND_SERVICE, and the namespaced sysctl
  `net.ipv4.ip_unprivileged_port_start=53`, so port 53 binds on any container runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAME = "clusterdns"
UID = 65532
CONFIG_DIR = "/etc/coredns"
#: Where the kubernetes plugin's snapshot lives (an emptyDir: writable, unlike the root).
SNAPSHOT_DIR = "/var/lib/clusterdns"
APP_LABELS = {"k8s-app": "kube-dns", "app.kubernetes.io/name": NAME}
#: The core-group resources and endpointslices the kubernetes plugin may list and watch.
CORE_RESOURCES = ["endpoints", "services", "pods", "namespaces"]
VERBS = ["list", "watch"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Options:
    namespace: str
    cluster_ip: str
    replicas: int
    image: str
    corefile: str
    #: RBAC rules the Corefile's plugins need beyond the defaults (deploy.check_corefile).
    extra_rules: tuple[Obj, ...] = ()


def _meta(name: str, ns: str | None, labels: dict[str, str] | None = None) -> Obj:
    m: Obj = {"name": name}
    if ns is not None:
        m["namespace"] = ns
    if labels:
        m["labels"] = dict(labels)
    return m


def rbac(o: Options) -> list[Obj]:
    labels = {"app.kubernetes.io/name": NAME}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(NAME, o.namespace, labels),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(NAME, None, labels),
            "rules": [
                {"apiGroups": [""], "resources": list(CORE_RESOURCES), "verbs": list(VERBS)},
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": list(VERBS),
                },
                *(dict(r) for r in o.extra_rules),
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(NAME, None, labels),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": o.namespace}],
        },
    ]


def config_map(o: Options) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(NAME, o.namespace, {"app.kubernetes.io/name": NAME}),
        "data": {"Corefile": o.corefile},
    }


def _probe(path: str, port: int, **extra: int) -> Obj:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, **extra}


#: Worker processes in the generated Deployment (clusterdns.server.workers).
WORKERS = 1


def container(o: Options) -> Obj:
    return {
        "name": NAME,
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        # One worker process: cached cluster names ~1.4-1.5x CoreDNS's rate instead of ~1.1x,
        # for ~13 MB more (docs/performance.md). Not `auto`: without a CPU limit that is one
        # process per node CPU beyond the first, which would outgrow the memory limit.
        "args": ["-conf", f"{CONFIG_DIR}/Corefile", "-workers", str(WORKERS)],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
            {"name": "liveness-probe", "containerPort": 8080, "protocol": "TCP"},
            {"name": "readiness-probe", "containerPort": 8181, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "70Mi"},
            "limits": {"memory": "170Mi"},
        },
        "volumeMounts": [
            {"name": "config-volume", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "snapshot", "mountPath": SNAPSHOT_DIR},
        ],
        "livenessProbe": _probe(
            "/health",
            8080,
            initialDelaySeconds=60,
            timeoutSeconds=5,
            successThreshold=1,
            failureThreshold=5,
        ),
        "readinessProbe": _probe("/ready", 8181, periodSeconds=10, timeoutSeconds=1),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }


def deployment(o: Options) -> Obj:
    labels = dict(APP_LABELS)
    spec: Obj = {
        "priorityClassName": "system-cluster-critical",
        "serviceAccountName": NAME,
        "dnsPolicy": "Default",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": dict(labels)},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}],
        },
        "containers": [container(o)],
        "volumes": [
            {
                "name": "config-volume",
                "configMap": {"name": NAME, "items": [{"key": "Corefile", "path": "Corefile"}]},
            },
            {"name": "snapshot", "emptyDir": {}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, o.namespace, {**labels, "kubernetes.io/name": "ClusterDNS"}),
        "spec": {
            "replicas": o.replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
        },
    }


def service(o: Options) -> Obj:
    labels = {
        "k8s-app": "kube-dns",
        "kubernetes.io/cluster-service": "true",
        "kubernetes.io/name": "ClusterDNS",
        "app.kubernetes.io/name": NAME,
    }
    meta = _meta("kube-dns", o.namespace, labels)
    meta["annotations"] = {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": {"k8s-app": "kube-dns"},
            "clusterIP": o.cluster_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }


def disruption_budget(o: Options) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(NAME, o.namespace, {"app.kubernetes.io/name": NAME}),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(APP_LABELS)}},
    }


def objects(o: Options) -> list[Obj]:
    """Everything, in the order `kubectl apply` needs (the account before its users)."""
    return [*rbac(o), config_map(o), deployment(o), service(o), disruption_budget(o)]
