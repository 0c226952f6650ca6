"""kubernetes_asyncio is loaded piecemeal (k8s_client.py): the API path never imports the
~770 generated model modules, yet the library still works for every caller.

Each check runs in a fresh interpreter, since what matters is what one process imports: the
real server (kubeconfig with a bearer token, against tests/k8s_apiserver.py, answering from
the API), a script that uses the library the other ways it can be used (models, ApiException,
package-level names, `clusterdns deploy --from-cluster`'s reader), and the fallbacks to the
ordinary import. Last, the heap trim after a list (api_client.py), the other half of the
API path's memory saving.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterdns import heap
from clusterdns.plugins.kubernetes import api_client
from clusterdns.plugins.kubernetes.api_config import connect
from clusterdns.plugins.kubernetes.source import ApiSettings
from tests.harness import Case, check, serve
from tests.k8s_apiserver import ApiServer, endpoint_slice, kubeconfig, namespace, service

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t0ken-lazy"
MODELS = "kubernetes_asyncio.client.models."
WEB = "web.default.svc.cluster.local."
#: The modules of the API path (client core, two API groups, config loaders): 18 with 36.1.
MOST_MODULES = 30

#: Written where the server runs: at exit, what the process imported, for the test to read.
SITECUSTOMIZE = """\
import atexit, json, os, sys

def _report():
    kc = sys.modules.get("clusterdns.plugins.kubernetes.k8s_client")
    mods = [m for m in sys.modules if m.split(".")[0] == "kubernetes_asyncio"]
    with open(os.environ["K8S_IMPORT_REPORT"], "w") as f:
        json.dump({"lazy": getattr(kc, "LAZY", None), "modules": mods}, f)

atexit.register(_report)
"""


@pytest.fixture
def api() -> Iterator[ApiServer]:
    srv = ApiServer(token=TOKEN).start()
    srv.apply(
        namespace("default"),
        namespace("kube-system"),
        service("web", cluster_ip="10.30.0.1"),
        service("kube-dns", ns="kube-system", cluster_ip="10.96.0.10"),
        endpoint_slice("web-1", service_name="web", endpoints=[("10.31.0.1", True)]),
    )
    yield srv
    srv.stop()


def run_python(code: str, *args: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter; it prints one JSON object last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def models(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(MODELS)]


def test_server_in_api_mode_loads_no_models(api: ApiServer, tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(kubeconfig(api.url, token=TOKEN))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    report = tmp_path / "report.json"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "K8S_IMPORT_REPORT": str(report),
    }
    corefile = f"""\
.:@PORT@ {{
    bind 127.0.0.1
    kubernetes cluster.local {{
        kubeconfig {tmp_path / "kubeconfig"} test
    }}
}}
"""
    with serve(corefile, tmp_path, env=env) as srv:
        check(
            srv,
            [
                Case(WEB, answer=[f"{WEB} 5 IN A 10.30.0.1"], flags={"AA"}, proto=proto)
                for proto in ("udp", "tcp")
            ],
        )
        # the answers came through the library, authenticated
        seen = api.requests("services", watch=False)
        assert seen and all(r.auth == f"Bearer {TOKEN}" for r in seen)
        assert srv.stop() == 0
    got = json.loads(report.read_text())
    assert got["lazy"] is True
    assert models(got["modules"]) == []
    assert "kubernetes_asyncio.client.api.apps_v1_api" not in got["modules"]
    assert "kubernetes_asyncio.client.api.core_v1_api" in got["modules"]
    assert len(got["modules"]) <= MOST_MODULES, got["modules"]


LIBRARY_USES = """
import asyncio, json, sys

from clusterdns.plugins.kubernetes import k8s_client
from clusterdns.plugins.kubernetes.api_client import Requester
from clusterdns.plugins.kubernetes.api_config import connect
from clusterdns.plugins.kubernetes.source import ApiSettings

url, kubeconfig_path, token = sys.argv[1:]
out = {"lazy": k8s_client.LAZY}


def count():
    return sum(m.startswith("kubernetes_asyncio.client.models.") for m in sys.modules)


async def main():
    # our own path: raw pages, no models
    conn = await connect(ApiSettings(kubeconfig=kubeconfig_path))
    req = Requester(conn, ApiSettings())
    page = await req.list_items("Service", "")
    items = list(page.items())
    await req.close()
    out["raw_names"] = sorted(i["metadata"]["name"] for i in items)
    out["models_after_raw"] = count()

    # the package's names, as `from kubernetes_asyncio import client` users see them
    from kubernetes_asyncio import client
    out["same_classes"] = (
        client.ApiClient is k8s_client.ApiClient and client.CoreV1Api is k8s_client.CoreV1Api
        and client.Configuration is k8s_client.Configuration
    )
    # models: the library's default (deserializing) call, and its ApiException
    conf = client.Configuration(host=url, api_key={"BearerToken": "Bearer " + token})
    async with client.ApiClient(conf) as api:
        svc = await client.CoreV1Api(api).list_namespaced_service("default")
        out["model"] = [type(svc).__name__, svc.items[0].spec.cluster_ip]
        try:
            await client.CoreV1Api(api).read_namespace("nope")
        except client.ApiException as e:
            out["api_exception"] = e.status
    out["models_after_deserialize"] = count()

    # `clusterdns deploy --from-cluster` reads the DNS Service's IP with models
    from clusterdns.deploy import cluster_ip_from_cluster
    out["deploy"] = await cluster_ip_from_cluster(kubeconfig_path, None, "kube-system")

    # a name only the package __init__ defines runs the real __init__
    import kubernetes_asyncio
    out["version"] = kubernetes_asyncio.__version__
    out["pod_model"] = client.V1Pod.__name__


asyncio.run(main())
print(json.dumps(out))
"""


def test_lazy_library_still_serves_every_caller(api: ApiServer, tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(kubeconfig(api.url, token=TOKEN))
    got = run_python(LIBRARY_USES, api.url, str(kc), TOKEN)
    assert got["lazy"] is True
    assert got["raw_names"] == ["kube-dns", "web"]
    assert got["models_after_raw"] == 0
    assert got["same_classes"] is True
    assert got["model"] == ["V1ServiceList", "10.30.0.1"]
    assert got["api_exception"] == 404
    # only the models that list needed, not all of them
    assert 0 < got["models_after_deserialize"] < 40
    assert got["deploy"] == "10.96.0.10"
    assert got["version"].split(".")[0].isdigit()
    assert got["pod_model"] == "V1Pod"


FALLBACK = """
import importlib.abc, json, sys

if sys.argv[1] == "already-imported":
    import kubernetes_asyncio.client
elif sys.argv[1] == "lazy-path-fails":

    class Once(importlib.abc.MetaPathFinder):
        \"\"\"Fail the first import of one submodule the lazy path loads.\"\"\"
        failed = False

        def find_spec(self, name, path=None, target=None):
            if name == "kubernetes_asyncio.client.api.discovery_v1_api" and not self.failed:
                Once.failed = True
                raise ImportError("simulated")
            return None

    sys.meta_path.insert(0, Once())

from clusterdns.plugins.kubernetes import k8s_client
import kubernetes_asyncio.client as client

print(json.dumps({
    "lazy": k8s_client.LAZY,
    "marked": getattr(sys.modules["kubernetes_asyncio"], "__clusterdns_lazy__", False),
    "same": client.DiscoveryV1Api is k8s_client.DiscoveryV1Api
    and client.ApiClient is k8s_client.ApiClient,
    "models": sum(m.startswith("kubernetes_asyncio.client.models.") for m in sys.modules),
}))
"""


@pytest.mark.parametrize("case", ["already-imported", "lazy-path-fails"])
def test_falls_back_to_the_ordinary_import(case: str) -> None:
    got = run_python(FALLBACK, case)
    assert got["lazy"] is False
    assert got["marked"] is False  # no lazy module left behind
    assert got["same"] is True
    assert got["models"] > 500  # the library as shipped: everything imported


async def _page(req: api_client.Requester, kind: str, **params: Any) -> dict[str, Any]:
    """One list page read whole (reading its items to the end is what ends a list)."""
    page = await req.list_items(kind, "", **params)
    items = list(page.items())  # first: the members after `items` are read with them
    return {**page.head, "items": items}


def test_heap_is_trimmed_once_after_lists_end(monkeypatch: pytest.MonkeyPatch) -> None:
    if platform.libc_ver()[0] == "glibc":
        assert heap.TRIM_HEAP is not None and heap.TRIM_HEAP() in (0, 1)
    calls: list[float] = []
    monkeypatch.setattr(api_client, "TRIM_HEAP", lambda: calls.append(1.0))
    monkeypatch.setattr(api_client, "TRIM_DELAY", 0.05)

    async def main(api: ApiServer) -> None:
        conn = await connect(ApiSettings(endpoint=api.url))
        req = api_client.Requester(conn, ApiSettings())
        try:
            cont, pages = "", 0
            while True:  # three pages: no trim between them, one after the last
                page = await _page(req, "Service", **({"_continue": cont} if cont else {}))
                pages += 1
                cont = page["metadata"].get("continue") or ""
                await asyncio.sleep(0.1)
                if not cont:
                    break
                assert calls == [], f"trimmed after page {pages} of a list"
            assert (pages, len(calls)) == (3, 1)
            # lists ending together: one trim
            await asyncio.gather(_page(req, "Namespace"), _page(req, "Endpoints"))
            await asyncio.sleep(0.1)
            assert len(calls) == 2
        finally:
            await req.close()

    with ApiServer() as api:
        api.load(
            service(f"s{i}", cluster_ip=f"10.40.{i // 250}.{i % 250 + 1}") for i in range(1203)
        )
        asyncio.run(main(api))
