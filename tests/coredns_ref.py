"""The reference CoreDNS 1.14.7 (../shared/tools) for differential tests: same question, both servers.

`binary()` unpacks the reference once per machine (into $CLUSTERDNS_COREDNS_DIR or /tmp) and
returns its path, or None when the shared tools are not there; tests then skip with `REASON`.
`serve_coredns(corefile, tmp)` runs it like harness.serve runs ClusterDNS: `@PORT@`, `@P1@`…
become free ports, and it is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT, Server, _fill, _wait_ready, rrs

TOOLS = ROOT.parent / "shared" / "tools"
REASON = "the reference CoreDNS binary (../shared/tools/coredns-1.14.7.xz) is not available"


def binary() -> Path | None:
    """The reference CoreDNS binary, unpacked on first use; None if it cannot be had."""
    env = os.environ.get("COREDNS")
    if env:
        return Path(env) if Path(env).exists() else None
    target = Path(os.environ.get("CLUSTERDNS_COREDNS_DIR", "/tmp/clusterdns-ref")) / "coredns"
    if target.exists():
        return target
    script = TOOLS / "install-coredns.sh"
    if not script.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}")
    r = subprocess.run([str(script), str(tmp)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not tmp.exists():
        return None
    os.replace(tmp, target)  # atomic: parallel test workers may race here
    return target


def require() -> Path:
    """The binary, or skip the calling test with the reason."""
    b = binary()
    if b is None:
        pytest.skip(REASON)
    return b


@contextlib.contextmanager
def serve_coredns(corefile: str, tmp: Path) -> Iterator[Server]:
    """Run the reference CoreDNS on a Corefile (ports filled as harness.serve does)."""
    exe = require()
    text, port, ports = _fill(corefile)
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "Corefile.coredns"
    conf.write_text(text)
    proc = subprocess.Popen(
        [str(exe), "-conf", str(conf)],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    srv = Server(proc, port, ports, conf)
    try:
        _wait_ready(srv)
        yield srv
    finally:
        srv.stop()


Answer = tuple[str, str, int, list[str], list[str], list[str]]


def comparable(srv: Server, questions: list[tuple[str, str]], port: int) -> list[Answer]:
    """Each question's rcode and sections as both servers must agree on them: SOA serials
    (times) left out of the authority, additional owners lower-cased (ours show the query's
    case, miekg's the record's)."""
    out: list[Answer] = []
    for name, qtype in questions:
        r = srv.query(name, qtype, port=port)
        auth = [" ".join(x.split()[:6]) for x in rrs(r.authority)]
        extra = [x.lower() for x in rrs(r.additional)]
        out.append((name, qtype, r.rcode(), rrs(r.answer), auth, extra))
    return out


def same_as_coredns(
    ours: Server, corefile: str, tmp: Path, questions: list[tuple[str, str]],
    ports: tuple[str, ...] = ("PORT",),
) -> None:  # fmt: skip
    """The reference CoreDNS, on the same Corefile, answers `questions` as `ours` does on each
    of `ports` (`PORT` or a `P1`… name); skips without the binary."""
    with serve_coredns(corefile, tmp) as ref:
        for name in ports:
            mine = comparable(ours, questions, ours.port if name == "PORT" else ours.ports[name])
            theirs = comparable(ref, questions, ref.port if name == "PORT" else ref.ports[name])
            assert mine == theirs, name
