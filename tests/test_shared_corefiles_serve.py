"""The real-world Corefiles in ../shared/corefiles serve, not only validate.

Each is run as it is, except what a test must change to run beside anything else on this
machine: listeners move to free loopback ports (`bind 127.0.0.1` is added to each block, `:53`
keys and HTTP addresses become free ports) and each `kubernetes` block reads the test API server
(`endpoint`, as ../shared/tools/README.md does for CoreDNS). Then a cluster name, a name of the
Corefile's own plugins and a name outside are asked.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import free_port, serve
from tests.k8s_apiserver import ApiServer, endpoint_slice, namespace, service
from tests.upstreams import Upstream, serve_ip

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corefiles"
HTTP = {"health": "@P1@", "ready": "@P2@", "prometheus": "@P3@"}


def adapt(text: str, api: str, upstream: str) -> str:
    """The Corefile with its listeners on free loopback ports, the test API server and a
    scripted upstream in place of the deployment's resolvers."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        word = stripped.split()[0] if stripped else ""
        if word in HTTP and not stripped.startswith("#"):
            rest = stripped[len(word) :].strip()
            if rest and not rest.startswith("{"):
                rest = rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
            line = f"{line[: len(line) - len(line.lstrip())]}{word} 127.0.0.1:{HTTP[word]} {rest}"
        elif word == "kubernetes":
            opened = stripped.endswith("{")
            head = stripped.removesuffix("{").rstrip()
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}{head} {{\n{indent}    endpoint {api}" + (
                "" if opened else f"\n{indent}}}"
            )
        elif word in ("forward", "proxy") and len(stripped.split()) > 2:
            indent = line[: len(line) - len(line.lstrip())]
            tail = " {" if stripped.endswith("{") else ""
            line = f"{indent}{word} {stripped.split()[1]} {upstream}{tail}"
        elif word in ("endpoint", "bind"):
            continue  # the deployment's own addresses: replaced by loopback ones
        elif stripped.endswith("{") and not line.startswith((" ", "\t")) and word != "import":
            key = re.sub(r":53\b", ":@PORT@", stripped.removesuffix("{").rstrip())
            if not key.startswith("("):
                line = f"{key} {{\n    bind 127.0.0.1"
        out.append(line)
    return "\n".join(out) + "\n"


def corefiles() -> list[Path]:
    return sorted(SHARED.glob("*.Corefile"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with Upstream(serve_ip("192.0.2.1")) as up:
        yield up.addr


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    srv = ApiServer().start()
    srv.load(
        [
            namespace("default"),
            namespace("kube-system"),
            service("kubernetes", "default", "10.96.0.1", (("https", "TCP", 443),)),
            endpoint_slice("kubernetes", "default", "kubernetes", [("10.0.0.5", True)]),
        ]
    )
    yield srv
    srv.stop()


@pytest.mark.skipif(not corefiles(), reason="../shared/corefiles is not beside this checkout")
@pytest.mark.parametrize("path", corefiles(), ids=lambda p: p.name)
def test_shared_corefile_serves(path: Path, api: ApiServer, upstream: str, tmp_path: Path) -> None:
    text = path.read_text()
    # The port for keys that name none; env the Corefiles use.
    # Imported server blocks get the same treatment, in a copy of the folder, on a port each.
    shared = tmp_path / "shared"
    shutil.copytree(SHARED, shared)
    for imported in shared.rglob("*.server"):
        fixed = adapt(imported.read_text(), api.url, upstream).replace("@PORT@", str(free_port()))
        imported.write_text(fixed)
    env = {
        "SHARED_COREFILES": str(shared),
        "CLUSTER_DNS_UPSTREAM": "127.0.0.1",
        "CLUSTER_DOMAIN": "cluster.local",
        "DNS_TTL": "30",
        "DNS_PORT": "@PORT@",
    }
    corefile = adapt(text, api.url, upstream)
    # Keys without a port take -dns.port, which the harness cannot fill: give them one.
    corefile = re.sub(
        r"^(?!import\b)([^\s#(][^\s{]*?)(\s*\{)",
        lambda m: m.group(0) if ":" in m.group(1) else f"{m.group(1)}:@PORT@{m.group(2)}",
        corefile,
        flags=re.M,
    )
    corefile = corefile.replace("{$DNS_PORT}", "@PORT@")
    with serve(corefile, tmp_path, env={k: v for k, v in env.items() if "@" not in v}) as srv:
        assert "Traceback" not in srv.output
        r = srv.query("www.example.com.", "A", timeout=5)  # outside: forwarded (or refused)
        assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.REFUSED), srv.output
        if "kubernetes cluster.local" in text:
            r = srv.query("kubernetes.default.svc.cluster.local.", "A", timeout=5)
            assert r.rcode() == dns.rcode.NOERROR, srv.output
            assert [rd.to_text() for rr in r.answer for rd in rr] == ["10.96.0.1"]
            r = srv.query("nope.default.svc.cluster.local.", "A", timeout=5)
            # NXDOMAIN, unless the Corefile lets the cluster zone fall through to forward.
            through = re.search(r"fallthrough[^\n]*cluster\.local", text) is not None
            assert r.rcode() == (dns.rcode.NOERROR if through else dns.rcode.NXDOMAIN)
        assert "Traceback" not in srv.output
