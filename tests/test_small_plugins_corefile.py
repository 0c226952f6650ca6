"""../shared/corefiles/small-plugins.Corefile serves: each of its small plugins shows in answers.

The file is served as written but for the port, the address (loopback), and a manifests file
for the kubernetes plugin (no API server here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.rcode
import pytest

from tests.harness import DEMO_WEB, Server, serve
from tests.refdiff import query
from tests.test_shared_corefiles import SHARED

FILE = SHARED / "small-plugins.Corefile"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not FILE.exists():
        pytest.skip(f"{FILE} is not there")
    text = FILE.read_text()
    assert ".:53 {" in text and "pods insecure" in text
    text = text.replace(".:53 {", ".:@PORT@ {\n    bind 127.0.0.1", 1)
    text = text.replace("pods insecure", "pods insecure\n        manifests k8s.yaml", 1)
    tmp = tmp_path_factory.mktemp("small-plugins")
    with serve(text, tmp, files={"k8s.yaml": DEMO_WEB}) as s:
        yield s


def test_serves_its_plugins(srv: Server) -> None:
    # kubernetes answers, header sets RA, minimal leaves the answer alone, nsid identifies us.
    r = srv.send(query("web.demo.svc.cluster.local.", nsid=True))
    assert [rd.to_text() for rd in r.answer[0]] == ["10.96.0.50"]
    assert r.flags & dns.flags.RA and r.flags & dns.flags.AA
    assert [o.otype for o in r.options] == [dns.edns.NSID]
    # local answers localhost; acl blocks ANY with its extended error.
    r = srv.send(query("localhost."))
    assert [rd.to_text() for rd in r.answer[0]] == ["127.0.0.1"]
    r = srv.send(query("web.demo.svc.cluster.local.", "ANY"))
    assert r.rcode() == dns.rcode.REFUSED
    assert [o.code for o in r.options if isinstance(o, dns.edns.EDEOption)] == [15]


def test_dns64_is_only_for_ipv6_clients(srv: Server) -> None:
    # We ask from 127.0.0.1: no synthesis, kubernetes's NODATA (with its SOA) stands.
    r = srv.send(query("web.demo.svc.cluster.local.", "AAAA"))
    assert r.rcode() == dns.rcode.NOERROR and r.answer == [] and r.authority


def test_validates(tmp_path: Path) -> None:
    from tests.harness import run_cli
    from tests.test_shared_corefiles import ENV

    r = run_cli("-conf", str(FILE), "-validate", env=ENV)
    assert r.returncode == 0, r.stderr
