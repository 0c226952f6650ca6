"""kubernetes plugin setup: every option parsed, every error worded as CoreDNS words it.

Errors are checked through `python -m clusterdns -conf F -validate` (exit 1, `F:LINE - …`):
one Corefile holds one broken server block per case, and all errors come back in one run.
Values are checked in-process on the Settings that setup builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterdns.corefile.keys import parse_key
from clusterdns.corefile.parser import parse_corefile_text
from clusterdns.errors import ConfigError
from clusterdns.plugin import SetupContext
from clusterdns.plugins.kubernetes.setup import Settings, parse
from tests.harness import free_port, run_cli

ARGS = "wrong argument count or unexpected line ending after"

#: (lines inside `kubernetes {…}` — or, with a leading "!", the directive line itself —,
#:  the expected error after "F:LINE - ", the line of the block that carries it (0-based)).
ERRORS: list[tuple[list[str], str, int]] = [
    (["foo"], "kubernetes: unknown property 'foo'", 0),
    (["resyncperiod 5m"], "kubernetes: unknown property 'resyncperiod'", 0),
    (["transfer to *"], "kubernetes: unknown property 'transfer'", 0),
    (["pods bogus"], "kubernetes: wrong value for pods: bogus,  must be one of: disabled, verified, insecure", 0),
    (["pods"], f"kubernetes: {ARGS} 'pods'", 0),
    (["pods verified insecure"], f"kubernetes: {ARGS} 'pods'", 0),
    (["ttl abc"], 'kubernetes: strconv.Atoi: parsing "abc": invalid syntax', 0),
    (["ttl 3601"], "kubernetes: ttl must be in range [0, 3600]: 3601", 0),
    (["ttl -1"], "kubernetes: ttl must be in range [0, 3600]: -1", 0),
    (["ttl"], f"kubernetes: {ARGS} 'ttl'", 0),
    (["namespaces"], f"kubernetes: {ARGS} 'namespaces'", 0),
    (["namespaces a", "namespace_labels team=x"], "kubernetes: namespaces and namespace_labels cannot both be set", 1),
    (["labels a!=b"], "kubernetes: unable to parse label selector value: 'a!=b': couldn't parse the selector string \"a!=b\": \"!=\" is not a valid label selector operator", 0),
    (["labels"], f"kubernetes: {ARGS} 'labels'", 0),
    (["namespace_labels bad key"], "kubernetes: unable to parse namespace_label selector value: 'bad key': couldn't parse the selector string \"bad key\"", 0),
    (["tls a b"], f"kubernetes: {ARGS} 'tls'", 0),
    (["kubeconfig a b c"], f"kubernetes: {ARGS} 'kubeconfig'", 0),
    (["kubeconfig"], f"kubernetes: {ARGS} 'kubeconfig'", 0),
    (["endpoint"], f"kubernetes: {ARGS} 'endpoint'", 0),
    (["noendpoints x"], f"kubernetes: {ARGS} 'noendpoints'", 0),
    (["endpoint_pod_names x"], f"kubernetes: {ARGS} 'endpoint_pod_names'", 0),
    (["ignore foo"], "kubernetes: unable to parse ignore value: 'foo'", 0),
    (["startup_timeout abc"], 'kubernetes: failed to parse startup_timeout: abc, time: invalid duration "abc"', 0),
    (["startup_timeout 5"], 'kubernetes: failed to parse startup_timeout: 5, time: missing unit in duration "5"', 0),
    (["startup_timeout -1s"], "kubernetes: failed to parse startup_timeout: -1s, must not be negative", 0),
    (["startup_timeout"], f"kubernetes: {ARGS} 'startup_timeout'", 0),
    (["apiserver_qps x"], 'kubernetes: invalid apiserver_qps "x": strconv.ParseFloat: parsing "x": invalid syntax', 0),
    (["apiserver_qps -1"], "kubernetes: apiserver_qps must be >= 0", 0),
    (["apiserver_qps 1 2"], f"kubernetes: {ARGS} 'apiserver_qps'", 0),
    (["apiserver_burst 1.5"], 'kubernetes: invalid apiserver_burst "1.5": strconv.Atoi: parsing "1.5": invalid syntax', 0),
    (["apiserver_burst -2"], "kubernetes: apiserver_burst must be >= 0", 0),
    (["apiserver_max_inflight -3"], "kubernetes: apiserver_max_inflight must be >= 0", 0),
    (["apiserver_max_inflight"], f"kubernetes: {ARGS} 'apiserver_max_inflight'", 0),
    (["manifests"], f"kubernetes: {ARGS} 'manifests'", 0),
    (["zonal", "noendpoints"], "kubernetes: zonal requires the endpoint cache; remove noendpoints", 1),
    (["multicluster clusterset.local"], "kubernetes: is not authoritative for the multicluster zone clusterset.local. (authoritative zones: [e35.test.])", 0),
    (["namespaces a {", "}"], "kubernetes: unexpected block after 'namespaces'", 0),
    (["!kubernetes 10.0.0.0/8 fd00::/8"], "kubernetes: non-reverse zone name must be used", -1),
    (["!kubernetes 10.0.0.0/33"], "invalid zone '10.0.0.0/33'", -1),
]  # fmt: skip


def _corefile(cases: list[tuple[list[str], str, int]]) -> tuple[str, list[tuple[int, str]]]:
    """One server block per case; returns the text and the (line, message) expected."""
    lines: list[str] = []
    expected: list[tuple[int, str]] = []
    for i, (body, message, at) in enumerate(cases):
        lines.append(f"e{i}.test:1053 {{")
        if body[0].startswith("!"):
            lines.append("    " + body[0][1:])
            expected.append((len(lines), message))
        else:
            lines.append("    kubernetes {")
            start = len(lines) + 1
            lines.extend("        " + b for b in body)
            lines.append("    }")
            expected.append((start + at, message))
        lines.append("}")
    return "\n".join(lines) + "\n", expected


def test_every_error_names_file_and_line(tmp_path: Path) -> None:
    text, expected = _corefile(ERRORS)
    conf = tmp_path / "Corefile"
    conf.write_text(text)
    r = run_cli("-conf", str(conf), "-validate", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stderr.splitlines()
    for line, message in expected:
        want = f"{conf}:{line} - {message}"
        assert any(o.startswith(f"Error: {want}") for o in out), f"missing {want!r} in:\n{r.stderr}"
    assert len([o for o in out if o.startswith("Error:")]) == len(expected), r.stderr


def test_once_per_server_block(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text("cluster.local:1053 {\n    kubernetes\n    kubernetes\n}\n")
    r = run_cli("-conf", str(conf), "-validate", cwd=tmp_path)
    assert r.returncode == 1
    assert (
        f"{conf}:3 - plugin/kubernetes: this plugin can only be used once per server block"
        in r.stderr
    )


def test_warnings_but_valid(tmp_path: Path) -> None:
    conf = tmp_path / "Corefile"
    conf.write_text(
        "cluster.local:1053 {\n"
        "    kubernetes {\n"
        "        upstream 10.0.0.10\n"  # 3
        "        endpoint https://a:6443 https://b:6443\n"  # 4
        "        ttl 5 6\n"  # 5
        "        ignore\n"  # 6
        "        manifests missing-dir\n"  # 7
        "    }\n"
        "}\n"
    )
    r = run_cli("-conf", str(conf), "-validate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for line, text in [
        (3, "kubernetes: 'upstream' is deprecated and ignored"),
        (4, "kubernetes: Multiple endpoints have been deprecated, only the first specified "
            "endpoint 'https://a:6443' is used"),
        (5, "kubernetes: ignoring extra arguments to 'ttl': 6"),
        (6, "kubernetes: 'ignore' without a value does nothing"),
        (7, f"kubernetes: manifests path does not exist (yet): {tmp_path / 'missing-dir'}"),
        (4, "kubernetes: 'endpoint' is ignored: objects come from 'manifests'"),
    ]:  # fmt: skip
        assert f"Warning: {conf}:{line} - {text}" in r.stderr, r.stderr


# ---- values, in-process ---------------------------------------------------------------------


def settings(text: str, keys: str = "cluster.local") -> Settings:
    sb = parse_corefile_text(f"{keys} {{\n{text}\n}}\n", "/etc/coredns/Corefile")[0]
    zone_keys = [z for k in sb.keys for z in parse_key(k, 53)]
    ctx = SetupContext(file=sb.file, keys=zone_keys)
    return parse(sb.directives, ctx)


def test_defaults() -> None:
    s = settings("kubernetes")
    assert s.zones == ["cluster.local."] and s.primary_zone == "cluster.local."
    assert (s.ttl, s.pod_mode, s.startup_timeout) == (5, "disabled", 5.0)
    assert not (s.noendpoints or s.endpoint_pod_names or s.ignore_empty_service or s.fall.enabled)
    assert s.namespaces == frozenset() and s.namespace_labels is None and s.labels == ""
    assert s.manifests == [] and s.api.endpoint == "" and s.api.kubeconfig == ""


def test_zones_from_block_and_cidrs() -> None:
    s = settings("kubernetes", keys="10.0.0.0/23 Cluster.Local")
    assert s.zones == ["0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa.", "cluster.local."]
    assert s.primary_zone == "cluster.local."
    s = settings("kubernetes cluster.local in-addr.arpa ip6.arpa fd00::/120", keys=".")
    assert s.zones[:3] == ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]
    assert s.zones[3] == "0." * 28 + "d.f.ip6.arpa."  # 30 nibbles: f d 0 0, then 26 zeros
    # As CoreDNS's dnsutil.IsReverse, in-addr.arpa itself is not a reverse zone.
    assert (
        settings("kubernetes in-addr.arpa cluster.local", keys=".").primary_zone == "in-addr.arpa."
    )


def test_every_option() -> None:
    s = settings(
        """kubernetes cluster.local in-addr.arpa {
            endpoint https://k8s:6443
            tls cert.pem key.pem ca.pem
            kubeconfig /kube/config prod
            namespace_labels  team in (a, b) , env
            labels app=web,tier notin (db)
            pods verified
            endpoint_pod_names
            ttl 30
            noendpoints
            fallthrough in-addr.arpa
            ignore empty_service
            startup_timeout 1m30s
            apiserver_qps 12.5
            apiserver_burst 20
            apiserver_max_inflight 7
            manifests cluster /abs/more.yaml
        }"""
    )
    api = s.api
    assert (api.endpoint, api.tls_cert, api.tls_key, api.tls_ca) == (
        "https://k8s:6443",
        "cert.pem",
        "key.pem",
        "ca.pem",
    )
    assert (api.kubeconfig, api.context, api.qps, api.burst, api.max_inflight) == (
        "/kube/config",
        "prod",
        12.5,
        20,
        7,
    )
    assert s.namespace_labels is not None and str(s.namespace_labels) == "env,team in (a,b)"
    assert s.namespace_labels.matches({"team": "a", "env": "x"}) and not s.namespace_labels.matches(
        {"team": "a"}
    )
    assert s.labels == "app=web,tier notin (db)"
    assert (s.pod_mode, s.endpoint_pod_names, s.ttl, s.noendpoints, s.ignore_empty_service) == (
        "verified",
        True,
        30,
        True,
        True,
    )
    assert s.fall.enabled and s.fall.zones == ("in-addr.arpa.",)
    assert s.startup_timeout == 90.0
    assert s.manifests == ["/etc/coredns/cluster", "/abs/more.yaml"]


def test_namespaces_accumulate_and_kubeconfig_without_context() -> None:
    s = settings("kubernetes {\n namespaces a b\n namespaces c\n kubeconfig ~/.kube/config\n}")
    assert s.namespaces == frozenset({"a", "b", "c"})
    assert (s.api.kubeconfig, s.api.context) == ("~/.kube/config", "")


def test_fallthrough_everywhere_and_ttl_bounds() -> None:
    s = settings("kubernetes {\n fallthrough\n ttl 0\n}")
    assert s.fall.enabled and s.fall.zones == () and s.ttl == 0
    assert settings("kubernetes {\n ttl 3600\n}").ttl == 3600


@pytest.mark.parametrize("mode", ["disabled", "insecure", "verified"])
def test_pod_modes(mode: str) -> None:
    assert settings(f"kubernetes {{\n pods {mode}\n}}").pod_mode == mode


def test_error_carries_file_and_line() -> None:
    with pytest.raises(ConfigError) as e:
        settings("kubernetes {\n\n  ttl 9999\n}")
    assert (
        str(e.value) == "/etc/coredns/Corefile:4 - kubernetes: ttl must be in range [0, 3600]: 9999"
    )


def test_no_cluster_at_start_names_the_line_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-cluster (no endpoint, kubeconfig or manifests) outside a cluster: the server does not
    start, and says where and what to write instead; a missing kubeconfig names its line."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    conf = tmp_path / "Corefile"
    conf.write_text(f".:{free_port()} {{\n    bind 127.0.0.1\n    kubernetes cluster.local\n}}\n")
    r = run_cli("-conf", str(conf))
    assert r.returncode == 1
    assert (
        f"{conf}:3 - kubernetes: unable to load in-cluster configuration, "
        "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined; outside a cluster, "
        "give 'kubeconfig FILE' to reach a remote one, or 'manifests DIR' to serve objects from "
        "files without any cluster"
    ) in r.stderr
    conf.write_text(
        f".:{free_port()} {{\n    bind 127.0.0.1\n    kubernetes {{\n        endpoint http://x\n"
        f"        kubeconfig {tmp_path / 'kc'}\n    }}\n}}\n"
    )
    r = run_cli("-conf", str(conf))
    assert r.returncode == 1
    assert f"{conf}:5 - kubernetes: kubeconfig '{tmp_path / 'kc'}' does not exist" in r.stderr
