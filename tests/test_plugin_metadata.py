"""metadata: providers (kubernetes) publish values; log's {/label} shows them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import DEMO_WEB, Server, serve, setup_error

POD = """\
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: demo
status:
  phase: Running
  podIP: 127.0.0.1
  podIPs:
  - ip: 127.0.0.1
"""
FORMAT = (
    '"{name} ns={/kubernetes/client-namespace} pod={/kubernetes/client-pod-name} '
    "kind={/kubernetes/kind} svc={/kubernetes/service} in={/kubernetes/namespace} "
    "port={/kubernetes/port-name} proto={/kubernetes/protocol} ep={/kubernetes/endpoint} "
    'err={/kubernetes/parse-error} other={/other/label}"'
)
COREFILE = f"""
.:@PORT@ {{
    bind 127.0.0.1
    metadata
    log . {FORMAT}
    kubernetes cluster.local {{
        manifests k8s.yaml
        pods verified
    }}
}}
.:@P1@ {{
    bind 127.0.0.1
    metadata other.example.
    log . {FORMAT}
    kubernetes cluster.local {{
        manifests k8s.yaml
        pods verified
    }}
}}
.:@P2@ {{
    bind 127.0.0.1
    log . {FORMAT}
    kubernetes cluster.local {{
        manifests k8s.yaml
        pods verified
    }}
}}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    files = {"k8s.yaml": DEMO_WEB + POD}
    with serve(COREFILE, tmp_path_factory.mktemp("metadata"), files=files) as s:
        yield s


def line(srv: Server, name: str, port: str | None = None, rdtype: str = "A") -> str:
    srv.query(name, rdtype, port=srv.ports[port] if port else None)
    return srv.wait_output(r"(?m)^\[INFO\] " + re.escape(name) + " .*$").group(0)


def test_kubernetes_publishes_client_and_name(srv: Server) -> None:
    assert line(srv, "web.demo.svc.cluster.local.") == (
        "[INFO] web.demo.svc.cluster.local. ns=demo pod=client kind=svc svc=web in=demo "
        "port= proto= ep= err=- other=-"
    )
    assert line(srv, "_http._tcp.web.demo.svc.cluster.local.", rdtype="SRV").endswith(
        "kind=svc svc=web in=demo port=http proto=tcp ep= err=- other=-"
    )
    assert line(srv, "a.b.c.d.web.demo.svc.cluster.local.").endswith(
        "ns=demo pod=client kind=- svc=- in=- port=- proto=- ep=- err=invalid query name other=-"
    )


def test_names_outside_the_kubernetes_zones_get_only_the_client(srv: Server) -> None:
    assert line(srv, "example.org.").endswith(
        "example.org. ns=demo pod=client kind=- svc=- in=- port=- proto=- ep=- err=- other=-"
    )


@pytest.mark.parametrize("port", ["P1", "P2"])
def test_no_metadata_outside_its_zones_or_without_the_plugin(srv: Server, port: str) -> None:
    name = f"web{port.lower()}.demo.svc.cluster.local."
    assert line(srv, name, port).endswith(
        "ns=- pod=- kind=- svc=- in=- port=- proto=- ep=- err=- other=-"
    )


@pytest.mark.parametrize(
    ("body", "line_no", "message"),
    [
        ("  metadata\n  metadata\n", 3, "can only be used once"),
        ("  metadata {\n    x\n  }\n", 2, "unexpected block"),
    ],
)
def test_setup_errors(tmp_path: Path, body: str, line_no: int, message: str) -> None:
    setup_error(tmp_path, body, line_no, message)
