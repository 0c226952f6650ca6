"""Where the kubernetes plugin's records come from: the API watch or manifest files.

Both sources fill a Store with the same compact records, so everything after them —
answers, readiness, metrics — is the same whichever is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from clusterdns.plugins.kubernetes.store import Store


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What to fetch. Kinds are record kinds: Service, Endpoints, Pod, Namespace,
    ServiceImport, MultiClusterEndpoints."""

    kinds: frozenset[str]
    #: `labels` option: Kubernetes label selector applied to Services and EndpointSlices
    #: (server-side for the API, locally for manifests). Empty: everything.
    label_selector: str = ""
    #: `namespaces` option: only these namespaces are fetched/kept. Empty: all.
    namespaces: tuple[str, ...] = ()
    #: `multicluster`: the label selector of ServiceImports (CoreDNS passes the
    #: `namespace_labels` selector there). Empty: every import.
    import_selector: str = ""


@dataclass(slots=True)
class ApiSettings:
    """How to reach the API server (endpoint/tls/kubeconfig options; all empty: in-cluster)."""

    endpoint: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    kubeconfig: str = ""
    context: str = ""
    qps: float = 0.0  # 0: no client-side limit
    burst: int = 0
    max_inflight: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    #: The Corefile line that chose the connection (kubeconfig/endpoint, else `kubernetes`),
    #: named by errors raised when connecting.
    file: str = ""
    line: int = 0


class Source(Protocol):
    """A running feed into the store."""

    store: Store

    async def start(self) -> None:
        """Begin fetching in the background; returns at once."""

    async def stop(self) -> None:
        """Stop fetching and release connections, files and tasks."""

    def synced(self) -> bool:
        """True once every needed kind had its first complete list."""
