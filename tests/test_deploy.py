"""`clusterdns manifests` and deploy/: typed-model validation and the issue's requirements.

Every document is loaded into kubernetes_asyncio's typed models (the client library's own
deserializer, whose constructors reject missing required fields) and serialized back: the
round trip must give the document unchanged, so a misspelled or misplaced field, which the
deserializer would silently drop, fails the test.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT, run_cli
from tests.k8s_apiserver import ApiServer, kubeconfig, service

Obj = dict[str, Any]
DEPLOY = ROOT / "deploy"
MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
    "ConfigMap": "V1ConfigMap",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
}


class _Response:
    """What ApiClient.deserialize reads: a response whose `data` is the JSON body."""

    def __init__(self, obj: Obj) -> None:
        self.data = json.dumps(obj)


def typed_round_trip(docs: list[Obj]) -> list[Any]:
    """Each document as its typed model; asserts that nothing was lost on the way."""
    from kubernetes_asyncio.client import ApiClient

    async def run() -> list[Any]:
        async with ApiClient() as api:
            models = []
            for doc in docs:
                model = api.deserialize(_Response(doc), MODELS[doc["kind"]])
                assert api.sanitize_for_serialization(model) == doc, doc["kind"]
                models.append(model)
            return models

    return asyncio.run(run())


def manifests(*args: str) -> tuple[str, dict[str, Obj]]:
    r = run_cli("manifests", *args)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d is not None]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs) == len(MODELS), [d["kind"] for d in docs]
    return r.stdout, by_kind


@pytest.fixture(scope="module")
def default() -> dict[str, Obj]:
    return manifests("--cluster-ip", "10.96.0.10", "--cluster-domain", "cluster.local")[1]


def test_every_document_is_a_valid_typed_object(default: dict[str, Obj]) -> None:
    models = typed_round_trip(list(default.values()))
    assert {type(m).__name__ for m in models} == set(MODELS.values())


def test_a_missing_required_field_is_caught_by_the_models() -> None:
    """The check above can fail: the models reject a container without a name."""
    broken = {"kind": "Deployment", "apiVersion": "apps/v1",
              "spec": {"selector": {}, "template": {"spec": {"containers": [{"image": "x"}]}}}}  # fmt: skip
    with pytest.raises(ValueError, match="name"):
        typed_round_trip([broken])
    misspelled = {"kind": "Service", "apiVersion": "v1", "spec": {"clusterIp": "10.0.0.1"}}
    with pytest.raises(AssertionError):
        typed_round_trip([misspelled])


def test_rbac_is_list_and_watch_on_exactly_what_the_plugin_reads(default: dict[str, Obj]) -> None:
    rules = default["ClusterRole"]["rules"]
    granted = {(g, r): sorted(rule["verbs"]) for rule in rules for g in rule["apiGroups"]
               for r in rule["resources"]}  # fmt: skip
    assert granted == {
        ("", "endpoints"): ["list", "watch"],
        ("", "services"): ["list", "watch"],
        ("", "pods"): ["list", "watch"],
        ("", "namespaces"): ["list", "watch"],
        ("discovery.k8s.io", "endpointslices"): ["list", "watch"],
    }
    assert all(set(rule) == {"apiGroups", "resources", "verbs"} for rule in rules)
    binding = default["ClusterRoleBinding"]
    sa = default["ServiceAccount"]["metadata"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": default["ClusterRole"]["metadata"]["name"]}  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"],
                                    "namespace": sa["namespace"]}]  # fmt: skip
    pod = default["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["name"]


def test_deployment_as_the_issue_asks(default: dict[str, Obj]) -> None:
    dep = default["Deployment"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["k8s-app"] == "kube-dns"
    assert dep["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert spec["replicas"] == 2
    sel = spec["selector"]["matchLabels"]
    assert sel.items() <= labels.items() and sel["k8s-app"] == "kube-dns"
    assert pod["dnsPolicy"] == "Default"
    assert pod["priorityClassName"] == "system-cluster-critical"
    (c,) = pod["containers"]
    assert c["image"] == "clusterdns/clusterdns:0.1.0"
    # One worker process (the default deployment's cached-name rate, docs/performance.md).
    assert c["args"] == ["-conf", "/etc/coredns/Corefile", "-workers", "1"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181, "scheme": "HTTP"}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "70Mi"},
                              "limits": {"memory": "170Mi"}}  # fmt: skip
    ports = {(p["containerPort"], p["protocol"]) for p in c["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (9153, "TCP"), (8080, "TCP"), (8181, "TCP")} <= ports
    # Replicas spread over nodes; the term selects this Deployment's own pods.
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == sel
    # Non-root, read-only, and port 53 bindable without root.
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert {"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"} in psc["sysctls"]
    # The ConfigMap is mounted where CoreDNS's is.
    mount, snap_mount = c["volumeMounts"]
    vol, snap_vol = pod["volumes"]
    assert mount["mountPath"] == "/etc/coredns" and mount["name"] == vol["name"]
    assert vol["configMap"]["name"] == default["ConfigMap"]["metadata"]["name"]
    assert vol["configMap"]["items"] == [{"key": "Corefile", "path": "Corefile"}]
    # The kubernetes plugin's snapshot goes to a writable emptyDir the Corefile names.
    assert snap_vol == {"name": snap_mount["name"], "emptyDir": {}}
    assert snap_mount["mountPath"] == "/var/lib/clusterdns" and "readOnly" not in snap_mount
    assert "snapshot /var/lib/clusterdns/snapshot\n" in default["ConfigMap"]["data"]["Corefile"]


def test_service_and_disruption_budget(default: dict[str, Obj]) -> None:
    svc = default["Service"]
    assert svc["metadata"]["name"] == "kube-dns"
    assert svc["metadata"]["namespace"] == "kube-system"
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    ports = {(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]}
    assert ports == {("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    pod_labels = default["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    pdb = default["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == default["Deployment"]["spec"]["selector"]["matchLabels"]
    )


def test_configmap_corefile_passes_validate(default: dict[str, Obj], tmp_path: Path) -> None:
    text = default["ConfigMap"]["data"]["Corefile"]
    assert re.search(r"^\s+kubernetes cluster\.local in-addr\.arpa ip6\.arpa \{$", text, re.M)
    assert "manifests" not in text  # the real thing: the API, in-cluster
    for plugin in ("health", "ready", "prometheus :9153", "forward . /etc/resolv.conf", "loop"):
        assert f"    {plugin}" in text
    conf = tmp_path / "Corefile"
    conf.write_text(text)
    r = run_cli("-conf", str(conf), "-validate")
    assert r.returncode == 0, r.stderr
    assert "valid (1 server blocks)" in r.stdout


def test_deploy_directory_is_the_generator_output() -> None:
    """deploy/clusterdns.yaml is exactly what its header's command prints (regenerate it)."""
    text = (DEPLOY / "clusterdns.yaml").read_text()
    m = re.match(r"# ClusterDNS [^:]+: clusterdns manifests (.*)\n", text)
    assert m, text[:200]
    out, docs = manifests(*shlex.split(m.group(1)))
    assert text == out
    assert docs["Service"]["spec"]["clusterIP"] == "10.96.0.10"
    typed_round_trip(list(docs.values()))


def test_options_change_what_they_should(tmp_path: Path) -> None:
    _, d = manifests("--cluster-ip", "10.0.0.10", "--cluster-domain", "Corp.Internal.",
                     "--replicas", "3", "--image", "registry.local/dns:1", "--namespace", "dns")  # fmt: skip
    assert d["Deployment"]["spec"]["replicas"] == 3
    assert d["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.local/dns:1"
    )
    assert d["Service"]["spec"]["clusterIP"] == "10.0.0.10"
    assert "kubernetes corp.internal in-addr.arpa ip6.arpa {" in d["ConfigMap"]["data"]["Corefile"]
    assert {doc["metadata"].get("namespace") for doc in d.values()} == {"dns", None}
    assert d["ClusterRoleBinding"]["subjects"][0]["namespace"] == "dns"
    typed_round_trip(list(d.values()))


def test_service_cidr_gives_reverse_zones_and_the_kubeadm_ip() -> None:
    _, d = manifests("--service-cidr", "10.96.0.0/12")
    assert d["Service"]["spec"]["clusterIP"] == "10.96.0.10"
    assert "kubernetes cluster.local 10.96.0.0/12 {" in d["ConfigMap"]["data"]["Corefile"]
    _, d = manifests("--service-cidr", "fd00:10:96::/108", "--cluster-ip", "fd00:10:96::a")
    assert d["Service"]["spec"]["clusterIP"] == "fd00:10:96::a"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "the DNS Service's IP is needed"),
        (("--cluster-ip", "10.0.0.300"), "is not an IP address"),
        (("--service-cidr", "10.96.0.0/12", "--cluster-ip", "10.0.0.10"), "outside --service-cidr"),
        (
            (
                "--service-cidr",
                "10.96/x",
            ),
            "is not a CIDR",
        ),
        (("--cluster-ip", "10.0.0.10", "--replicas", "0"), "--replicas must be at least 1"),
        (("--cluster-ip", "10.0.0.10", "--cluster-domain", "bad_domain"), "not a domain name"),
        (("--cluster-ip", "10.0.0.10", "--from-cluster"), "not both"),
    ],
)
def test_bad_options_are_errors(args: tuple[str, ...], error: str) -> None:
    r = run_cli("manifests", *args)
    assert r.returncode == 1
    assert error in r.stderr
    assert r.stdout == ""


def test_custom_corefile_is_used_and_validated(tmp_path: Path) -> None:
    good = tmp_path / "Corefile"
    good.write_text(".:53 {\n    health\n    ready\n    whoami\n}\n")
    _, d = manifests("--cluster-ip", "10.0.0.10", "--corefile", str(good))
    assert d["ConfigMap"]["data"]["Corefile"] == good.read_text()
    bad = tmp_path / "Bad"
    bad.write_text(".:53 {\n    whoami\n    cache 30 {\n        nonsense 1\n    }\n}\n")
    r = run_cli("manifests", "--cluster-ip", "10.0.0.10", "--corefile", str(bad))
    assert r.returncode == 1 and r.stdout == ""
    assert f"{bad}:4 - " in r.stderr
    probes = tmp_path / "NoProbes"
    probes.write_text(".:53 {\n    whoami\n}\n")
    r = run_cli("manifests", "--cluster-ip", "10.0.0.10", "--corefile", str(probes))
    assert r.returncode == 0
    assert "no 'health' plugin, the liveness probe will fail" in r.stderr
    assert "no 'ready' plugin, the readiness probe will fail" in r.stderr


# ---- --from-cluster against the test API server --------------------------------------------


def test_from_cluster_reads_the_kube_dns_service(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    with ApiServer(token="secret") as api:
        api.apply(service("kube-dns", "kube-system", cluster_ip="10.100.0.10"),
                  service("kube-dns", "other", cluster_ip="10.1.1.1"))  # fmt: skip
        kc.write_text(kubeconfig(api.url, token="secret"))
        _, d = manifests("--from-cluster", "--kubeconfig", str(kc))
        assert d["Service"]["spec"]["clusterIP"] == "10.100.0.10"
        seen = [s for s in api.requests("services") if not s.watch]
        assert seen and all(s.auth == "Bearer secret" for s in seen)
        assert seen[-1].path == "/api/v1/namespaces/kube-system/services"
        assert seen[-1].query.get("fieldSelector") == "metadata.name=kube-dns"
        # wrong credentials, a missing Service, a missing context: clear errors, no output
        kc.write_text(kubeconfig(api.url, token="wrong"))
        r = run_cli("manifests", "--from-cluster", "--kubeconfig", str(kc))
        assert r.returncode == 1 and r.stdout == ""
        assert "reading Service kube-system/kube-dns: 401" in r.stderr
        kc.write_text(kubeconfig(api.url, token="secret"))
        r = run_cli("manifests", "--from-cluster", "--kubeconfig", str(kc), "--namespace", "nope")
        assert r.returncode == 1 and "there is no Service nope/kube-dns" in r.stderr
        r = run_cli("manifests", "--from-cluster", "--kubeconfig", str(kc), "--context", "x")
        assert r.returncode == 1 and "cannot load kubeconfig" in r.stderr


def test_from_cluster_without_a_kubeconfig_says_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    r = run_cli("manifests", "--from-cluster")
    assert r.returncode == 1 and r.stdout == ""
    assert (
        f"--from-cluster: kubeconfig {tmp_path}/.kube/config (the default) does not exist; "
        "give --kubeconfig FILE, or the Service IP with --cluster-ip IP"
    ) in r.stderr
    assert "invalid" not in r.stderr.lower()
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    r = run_cli("manifests", "--from-cluster")
    assert f"kubeconfig {tmp_path}/a / {tmp_path}/b (from $KUBECONFIG) does not exist" in r.stderr
    r = run_cli("manifests", "--from-cluster", "--kubeconfig", str(tmp_path / "kc"))
    assert f"kubeconfig {tmp_path}/kc (given with --kubeconfig) does not exist" in r.stderr


# ---- Grafana dashboard and Prometheus alert rules --------------------------------------------

DASHBOARD = DEPLOY / "grafana" / "clusterdns.json"
ALERTS = DEPLOY / "prometheus" / "clusterdns-alerts.yaml"
METRIC = re.compile(r"\b((?:coredns|clusterdns|process|python)_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
#: Series Prometheus itself adds to every target, and the labels it puts on every series.
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"instance", "job"}


def _dashboard() -> Obj:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def _alert_rules() -> list[Obj]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def _expressions() -> list[str]:
    dash = _dashboard()
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    out += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    out += [r["expr"] for r in _alert_rules()]
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Metric names a server with prometheus, forward, cache and kubernetes (manifests, and
    API mode) exports — histograms as _bucket/_sum/_count — each with the labels seen."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.harness import free_port, serve
    from tests.upstreams import Upstream

    tmp = tmp_path_factory.mktemp("metrics")
    (tmp / "cluster").symlink_to(ROOT / "examples" / "cluster")
    dead = free_port()
    with Upstream() as up, ApiServer() as api:
        api.apply(service("web", "default", cluster_ip="10.0.0.5"))
        corefile = f"""
.:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    errors
    cache 30
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests cluster
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . {up.addr}
}}
api.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    kubernetes api.test {{
        endpoint {api.url}
    }}
}}
dead.test:@PORT@ {{
    bind 127.0.0.1
    prometheus 127.0.0.1:@P1@
    forward . 127.0.0.1:{dead} {{
        max_fails 1
        health_check 50ms
        max_connect_attempts 1
    }}
}}
"""
        with serve(corefile, tmp) as srv:
            for name in ("web.demo.svc.cluster.local", "web.demo.svc.cluster.local",
                         "www.example.com", "nope.demo.svc.cluster.local",
                         "web.default.svc.api.test", "x.dead.test"):  # fmt: skip
                srv.query(name, "A")
            text = ""
            for _ in range(100):  # the failing health checks run in the background
                text = srv.metrics("P1")
                if "coredns_proxy_healthcheck_failures_total{" in text:
                    break
                time.sleep(0.05)
    names: dict[str, set[str]] = {}
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",),
                "summary": ("_sum", "_count")}  # fmt: skip
    for fam in text_string_to_metric_families(text):
        for suffix in suffixes.get(fam.type, ("",)):
            names.setdefault(fam.name + suffix, set())
        for s in fam.samples:
            names.setdefault(s.name, set()).update(s.labels)
    return names


def test_dashboard_and_alerts_use_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    used: set[str] = set()
    for expr in _expressions():
        used |= set(METRIC.findall(expr))
        for metric, matchers in SELECTOR.findall(expr):
            assert metric in exported or metric in PROMETHEUS_OWN, f"{metric} in {expr!r}"
            labels = set(LABEL.findall(matchers)) - TARGET_LABELS
            if exported.get(metric):  # label names are known once a sample was seen
                assert labels <= exported[metric], f"{metric}{{{matchers}}}: labels {labels}"
    unknown = sorted(used - set(exported))
    assert not unknown, f"not exported: {unknown}"
    # what the issue asks the alerts and the dashboard to cover
    for needed in ("coredns_dns_responses_total", "coredns_dns_request_duration_seconds_bucket",
                   "clusterdns_kubernetes_staleness_seconds",
                   "coredns_proxy_healthcheck_failures_total", "coredns_cache_hits_total"):  # fmt: skip
        assert needed in used
    # the check above is not vacuous: the scrape has the labelled series the exprs filter on
    assert {"rcode", "plugin", "zone"} <= exported["coredns_dns_responses_total"]
    assert "to" in exported["coredns_proxy_healthcheck_failures_total"]
    assert "code" in exported["coredns_kubernetes_rest_client_requests_total"]


def test_dashboard_is_well_formed() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"] == "ClusterDNS"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            assert set(re.findall(r"\$(\w+)", t["expr"])) <= variables | {"__rate_interval"}


def test_alert_rules_are_well_formed() -> None:
    rules = _alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
        assert re.fullmatch(r"\d+[smh]", r.get("for", "0s")), r["alert"]
    joined = " ".join(r["expr"] for r in rules)
    for covered in ('rcode="SERVFAIL"', "coredns_dns_request_duration_seconds_bucket",
                    "clusterdns_kubernetes_staleness_seconds", "coredns_forward_healthcheck_broken_total"):  # fmt: skip
        assert covered in joined
