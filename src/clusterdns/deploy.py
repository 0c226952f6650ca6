"""`clusterdns manifests`: the whole Kubernetes deployment as YAML, what deploy.sh did with sed.

    clusterdns manifests [--cluster-ip IP | --from-cluster [--kubeconfig FILE] [--context C]]
                         [--cluster-domain DOMAIN] [--service-cidr CIDR]... [--replicas N]
                         [--image IMAGE] [--corefile FILE] [--namespace NS]

Prints, as one multi-document YAML stream for `kubectl apply -f -`: the ServiceAccount, a
ClusterRole with only list/watch on what the kubernetes plugin reads, its binding, the
ConfigMap holding the Corefile, the Deployment, the `kube-dns` Service at the fixed ClusterIP
that kubelet's `clusterDNS` names, and a PodDisruptionBudget. The objects themselves are
built in clusterdns.deploy_objects.

The cluster IP comes from `--cluster-ip`, or from the existing `kube-dns` Service read through
the Kubernetes client library (`--from-cluster`, as deploy.sh read it with kubectl), or is the
tenth address of the first `--service-cidr` (kubeadm's rule). `--service-cidr` also narrows the
kubernetes plugin's reverse zones to those CIDRs (deploy.sh's `-r`) and must contain the IP.
The Corefile — kubeadm's default, or `--corefile FILE` — is checked as `-validate` checks it
before anything is printed, so a broken one never reaches the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import shlex
import sys
from typing import Any

import yaml

from clusterdns import __version__
from clusterdns import config as config_mod
from clusterdns.corefile.parser import parse_corefile_text
from clusterdns.deploy_objects import SNAPSHOT_DIR, Options, objects
from clusterdns.errors import ConfigError, ConfigErrors

DEFAULT_IMAGE = f"clusterdns/clusterdns:{__version__}"
DNS_SERVICE = "kube-dns"


class DeployError(Exception):
    pass


# ---- the Corefile ---------------------------------------------------------------------------


def default_corefile(domain: str, reverse: list[str]) -> str:
    """kubeadm's Corefile: the cluster zone and reverse zones, forwarding everything else;
    plus ClusterDNS's `snapshot` in the emptyDir the Deployment mounts."""
    zones = " ".join([domain, *(reverse or ["in-addr.arpa", "ip6.arpa"])])
    return f""".:53 {{
    errors
    health {{
       lameduck 5s
    }}
    ready
    kubernetes {zones} {{
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
       snapshot {SNAPSHOT_DIR}/snapshot
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
       max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


def check_corefile(
    text: str, name: str, base_dir: str, rules: list[dict[str, Any]] | None = None
) -> list[str]:
    """Parse and set up the Corefile as `-validate` does; warnings for the probes' plugins.

    Raises DeployError with every `FILE:LINE - message`. `import` is resolved from
    `base_dir`, although in the pod only the ConfigMap's own Corefile exists. The extra
    RBAC rules its plugins ask for (a plugin's `rbac_rules()`, e.g. the kubernetes plugin's
    ServiceImports with `multicluster`) are appended to `rules`, each once.
    """
    try:
        cfg = config_mod.build(parse_corefile_text(text, name, base_dir), name, text)
    except ConfigErrors as e:
        raise DeployError("\n".join(str(err) for err in e.errors)) from None
    except ConfigError as e:
        raise DeployError(str(e)) from None
    found = {p.name for p in cfg.plugins()}
    for p in cfg.plugins():
        asked = getattr(p, "rbac_rules", None)
        for rule in asked() if callable(asked) else ():
            if rules is not None and rule not in rules:
                rules.append(rule)
    warnings = []
    for plugin, probe in (("health", "liveness"), ("ready", "readiness")):
        if plugin not in found:
            warnings.append(f"{name}: no '{plugin}' plugin, the {probe} probe will fail")
    return warnings


# ---- addresses ------------------------------------------------------------------------------


def _networks(cidrs: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError:
            raise DeployError(f"--service-cidr: {c!r} is not a CIDR") from None
    return out


def resolve_cluster_ip(a: argparse.Namespace) -> str:
    nets = _networks(a.service_cidr)
    if a.from_cluster:
        if a.cluster_ip:
            raise DeployError("give --cluster-ip or --from-cluster, not both")
        ip_text = asyncio.run(cluster_ip_from_cluster(a.kubeconfig, a.context, a.namespace))
    elif a.cluster_ip:
        ip_text = a.cluster_ip
    elif nets:
        ip_text = str(nets[0].network_address + 10)  # kubeadm: the 10th address of the range
    else:
        raise DeployError(
            "the DNS Service's IP is needed: --cluster-ip IP, --from-cluster, "
            "or --service-cidr CIDR (its 10th address)"
        )
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        raise DeployError(f"cluster IP {ip_text!r} is not an IP address") from None
    if nets and not any(ip in n for n in nets):
        raise DeployError(f"cluster IP {ip} is outside --service-cidr {' '.join(a.service_cidr)}")
    return str(ip)


def _kubeconfig_exists(kubeconfig: str | None) -> None:
    """Say a missing kubeconfig is missing (the client library calls it "invalid")."""
    env = os.environ.get("KUBECONFIG", "")
    if kubeconfig:
        paths, source = [kubeconfig], "given with --kubeconfig"
    elif env:
        paths, source = [p for p in env.split(os.pathsep) if p], "from $KUBECONFIG"
    else:
        paths, source = [os.path.expanduser("~/.kube/config")], "the default"
    if any(os.path.exists(p) for p in paths):
        return
    raise DeployError(
        f"--from-cluster: kubeconfig {' / '.join(paths)} ({source}) does not exist; "
        "give --kubeconfig FILE, or the Service IP with --cluster-ip IP"
    )


async def cluster_ip_from_cluster(kubeconfig: str | None, context: str | None, ns: str) -> str:
    """The `kube-dns` Service's clusterIP, read with kubeconfig credentials (deploy.sh's
    `kubectl get service kube-dns -o jsonpath={.spec.clusterIP}`)."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException
    from kubernetes_asyncio.config import ConfigException, new_client_from_config

    where = f"Service {ns}/{DNS_SERVICE}"
    _kubeconfig_exists(kubeconfig)
    try:
        api = await new_client_from_config(
            config_file=kubeconfig, context=context, persist_config=False
        )
    except (ConfigException, OSError) as e:
        raise DeployError(f"--from-cluster: cannot load kubeconfig: {e}") from None
    async with api:
        try:
            found = await client.CoreV1Api(api).list_namespaced_service(
                ns, field_selector=f"metadata.name={DNS_SERVICE}", _request_timeout=30
            )
        except ApiException as e:
            raise DeployError(f"--from-cluster: reading {where}: {e.status} {e.reason}") from None
        except (OSError, TimeoutError) as e:
            raise DeployError(f"--from-cluster: reading {where}: {e}") from None
    if not found.items:
        raise DeployError(f"--from-cluster: there is no {where}; give --cluster-ip")
    ip = found.items[0].spec.cluster_ip if found.items[0].spec else None
    if not ip or ip == "None":
        raise DeployError(f"--from-cluster: {where} has no clusterIP (headless)")
    return str(ip)


# ---- YAML -----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the order built, and multi-line strings (the Corefile) as `|`."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(docs: list[dict[str, Any]], header: str = "") -> str:
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=100)
    return header + body


# ---- the command ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clusterdns manifests",
        description="Print the Kubernetes manifests that deploy ClusterDNS as the cluster DNS.",
    )
    ip = p.add_argument_group("the DNS Service's IP (kubelet's clusterDNS)")
    ip.add_argument("--cluster-ip", default="", metavar="IP")
    ip.add_argument(
        "--from-cluster",
        action="store_true",
        help="read it from the existing kube-dns Service (kubeconfig)",
    )
    ip.add_argument(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="for --from-cluster (default $KUBECONFIG or ~/.kube/config)",
    )
    ip.add_argument("--context", default=None, help="kubeconfig context for --from-cluster")
    p.add_argument(
        "--cluster-domain",
        default="cluster.local",
        metavar="DOMAIN",
        help="kubelet's clusterDomain (default cluster.local)",
    )
    p.add_argument(
        "--service-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="the Service range: reverse zones, and a check of the IP (repeatable)",
    )
    p.add_argument("--replicas", type=int, default=2, metavar="N")
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument(
        "--corefile",
        default="",
        metavar="FILE",
        help="the Corefile to deploy (default: kubeadm's, for --cluster-domain)",
    )
    p.add_argument("--namespace", default="kube-system", metavar="NS")
    return p


def _domain(text: str) -> str:
    d = text.strip().rstrip(".").lower()
    labels = d.split(".")
    if (
        not d
        or any(not lb or len(lb) > 63 for lb in labels)
        or not all(c.isalnum() or c == "-" for c in d.replace(".", ""))
    ):
        raise DeployError(f"--cluster-domain: {text!r} is not a domain name")
    return d


def build(a: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """The documents and any warnings, or DeployError."""
    if a.replicas < 1:
        raise DeployError("--replicas must be at least 1")
    domain = _domain(a.cluster_domain)
    cluster_ip = resolve_cluster_ip(a)
    if a.corefile:
        try:
            with open(a.corefile, encoding="utf-8") as f:
                corefile = f.read()
        except OSError as e:
            raise DeployError(f"--corefile: cannot read {a.corefile}: {e.strerror}") from None
        name, base = a.corefile, os.path.dirname(os.path.abspath(a.corefile))
    else:
        reverse = [str(n) for n in _networks(a.service_cidr)]
        corefile, name, base = default_corefile(domain, reverse), "Corefile", os.getcwd()
    rules: list[dict[str, Any]] = []
    warnings = check_corefile(corefile, name, base, rules)
    opts = Options(
        namespace=a.namespace,
        cluster_ip=cluster_ip,
        replicas=a.replicas,
        image=a.image,
        corefile=corefile,
        extra_rules=tuple(rules),
    )
    return objects(opts), warnings


def main(argv: list[str]) -> int:
    a = _parser().parse_args(argv)
    try:
        docs, warnings = build(a)
    except DeployError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"Warning: {w}", file=sys.stderr)
    header = (
        f"# ClusterDNS {__version__}: clusterdns manifests {shlex.join(argv)}\n"
        "# Apply with `kubectl apply -f`; regenerate rather than edit.\n"
    )
    sys.stdout.write(dump(docs, header))
    return 0
