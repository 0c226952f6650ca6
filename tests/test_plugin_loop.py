"""loop: a server forwarding to itself exits 1 with CoreDNS's message plus the upstream that
loops and the Kubernetes fix; a healthy setup sends its probe once and keeps serving."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import dns.rcode
import pytest

from tests.harness import Server, free_port, start
from tests.upstreams import Upstream, serve_ip


def _exit(srv: Server, timeout: float = 15) -> int:
    try:
        return srv.proc.wait(timeout)
    finally:
        srv.stop()


@pytest.mark.parametrize("zone", [".", "example.test."])
def test_forwarding_to_itself_is_fatal(tmp_path: Path, zone: str) -> None:
    port = free_port()
    corefile = f"""
{zone}:{port} {{
    bind 127.0.0.1
    loop
    forward . 127.0.0.1:{port}
}}
"""
    t = time.monotonic()
    srv = start(corefile, tmp_path, wait=False)
    assert _exit(srv) == 1, srv.output
    assert time.monotonic() - t < 15
    out = srv.output
    m = re.search(
        r"\[FATAL\] plugin/loop: Loop \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:(\d+)\) detected for "
        r'zone "([^"]+)", see https://coredns\.io/plugins/loop#troubleshooting\. '
        r'Query: "HINFO (\d+)\.(\d+)\.([^"]*)"',
        out,
    )
    assert m, out
    assert int(m.group(1)) == port and m.group(2) == zone
    assert m.group(5) == ("" if zone == "." else zone)
    # Ours on top of CoreDNS's words: which upstream loops, and the usual fix.
    assert f"The upstream that loops is 127.0.0.1:{port} (forward in this server block)" in out
    assert "dnsPolicy: Default" in out and "127.0.0.53" in out
    assert out.count("[FATAL]") == 1


def test_proxy_loop_names_the_upstream(tmp_path: Path) -> None:
    port = free_port()
    srv = start(f".:{port} {{\n bind 127.0.0.1\n loop\n proxy . 127.0.0.1:{port}\n}}\n",
                tmp_path, wait=False)  # fmt: skip
    assert _exit(srv) == 1, srv.output
    assert f"The upstream that loops is 127.0.0.1:{port} (proxy in this server block)" in srv.output


def test_no_loop_keeps_serving(server_factory: Callable[..., Server]) -> None:
    up = Upstream(serve_ip("10.0.0.1")).start()
    try:
        srv = server_factory(f"""
example.test:@PORT@ {{
    bind 127.0.0.1
    loop
    forward . {up.addr}
}}
""")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not up.names():
            time.sleep(0.05)
        probes = [n for n in up.names() if re.fullmatch(r"\d+\.\d+\.example\.test\.", n)]
        assert len(probes) == 1, up.names()
        # The probe got its answer; the plugin turns itself off and the server keeps serving,
        # the same HINFO name included.
        time.sleep(2.5)
        for _ in range(4):
            assert srv.query(probes[0], "HINFO").rcode() == dns.rcode.NOERROR
        assert srv.proc.poll() is None
        assert "[FATAL]" not in srv.output
    finally:
        up.stop()
