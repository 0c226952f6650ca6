"""Run the real server as a child process on loopback and query it with dnspython.

`serve(corefile)` replaces `@PORT@` with a free port for the DNS listener and `@P1@`, `@P2@`…
with further free ports (HTTP endpoints, second listeners), starts `python -m clusterdns`,
waits until it answers, and stops it (SIGTERM) on exit. `Case` rows are checked with
`check(server, cases)` — the table tests CoreDNS's plugin folders use.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


#: Ports below the kernel's ephemeral range (32768+ here), a block per pytest-xdist worker, so
#: no other worker and no client socket can be handed the port between our check and the
#: server's bind. Never the fixed ports `make run` uses (1053, 8080, 8181, 9153).
_WORKER = int("0" + "".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "") if c.isdigit()))
_BLOCK = 20000 + (_WORKER % 6) * 2000
_handed: set[int] = set()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now, not handed out before."""
    for _ in range(500):
        port = random.randrange(_BLOCK, _BLOCK + 2000)
        if port in _handed:
            continue
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((HOST, port))
            u.bind((HOST, port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        _handed.add(port)
        if len(_handed) > 1500:
            _handed.clear()
        return port
    raise RuntimeError("no free port")


class Server:
    """A running `clusterdns` process; its stdout+stderr are collected in `output`."""

    def __init__(self, proc: subprocess.Popen[str], port: int, ports: dict[str, int], conf: Path):
        self.proc = proc
        self.port = port
        self.ports = ports
        self.conf = conf
        self._out: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._out.append(line)

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._out)

    def wait_output(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the server's output matches `pattern` (a regex); return the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output)
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"output never matched {pattern!r}; output was:\n{self.output}")

    def query(
        self,
        name: str,
        rdtype: str | int = "A",
        rdclass: str | int = "IN",
        proto: str = "udp",
        port: int | None = None,
        timeout: float = 3.0,
        **make: object,
    ) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, rdclass, **make)  # type: ignore[arg-type]
        return self.send(q, proto, port, timeout)

    def send(
        self, q: dns.message.Message, proto: str = "udp", port: int | None = None,
        timeout: float = 3.0,
    ) -> dns.message.Message:  # fmt: skip
        p = port or self.port
        if proto == "tcp":
            return dns.query.tcp(q, HOST, port=p, timeout=timeout)
        return dns.query.udp(q, HOST, port=p, timeout=timeout, ignore_trailing=True)

    def http(self, port_name: str, path: str) -> tuple[int, str]:
        url = f"http://{HOST}:{self.ports[port_name]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self, port_name: str = "P1") -> str:
        status, body = self.http(port_name, "/metrics")
        assert status == 200, body
        return body

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, a graceful stop; SIGQUIT (at once) when the Corefile has a `lameduck`,
        which would only make the test wait (tests of lameduck send their own signals)."""
        if self.proc.poll() is None:
            try:
                waits = "lameduck" in self.conf.read_text()
            except OSError:
                waits = False
            self.proc.send_signal(signal.SIGQUIT if waits else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(2)
        return self.proc.returncode


def _fill(text: str) -> tuple[str, int, dict[str, int]]:
    ports: dict[str, int] = {}
    port = free_port()
    text = text.replace("@PORT@", str(port))
    for name in sorted(set(re.findall(r"@(P\d+)@", text))):
        ports[name] = free_port()
        text = text.replace(f"@{name}@", str(ports[name]))
    return text, port, ports


def start(
    corefile: str,
    tmp: Path,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    wait: bool = True,
    files: Mapping[str, str] | None = None,
) -> Server:
    """Write the Corefile (and extra `files`) into `tmp` and start the server there.

    If a port was taken after all (another program on this machine), it is tried again with
    new ports, up to three times."""
    for attempt in range(3):
        srv = _start(corefile, tmp, env, args, files)
        if not wait:
            return srv
        try:
            _wait_ready(srv)
            return srv
        except AssertionError:
            if attempt == 2 or "Address already in use" not in srv.output:
                raise
    raise AssertionError("unreachable")


def _start(
    corefile: str,
    tmp: Path,
    env: Mapping[str, str] | None,
    args: tuple[str, ...],
    files: Mapping[str, str] | None,
) -> Server:
    text, port, ports = _fill(corefile)
    conf = tmp / "Corefile"
    conf.write_text(text)
    for name, content in (files or {}).items():
        (tmp / name).write_text(content)
    full_env = dict(os.environ)
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdns", "-conf", str(conf), *args],
        cwd=tmp,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Server(proc, port, ports, conf)


def _wait_ready(srv: Server, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    probe = dns.message.make_query("probe.invalid.", "A")
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            srv._reader.join(2)
            raise AssertionError(f"server exited {srv.proc.returncode}:\n{srv.output}")
        try:
            dns.query.udp(probe, HOST, port=srv.port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
    srv.stop()
    raise AssertionError(f"server did not answer on {srv.port}:\n{srv.output}")


@contextlib.contextmanager
def serve(corefile: str, tmp: Path, **kw: object) -> Iterator[Server]:
    srv = start(corefile, tmp, **kw)  # type: ignore[arg-type]
    try:
        yield srv
    finally:
        srv.stop()


def run_cli(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:  # fmt: skip
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "clusterdns", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# ---- table tests ---------------------------------------------------------------------------


@dataclass
class Case:
    """One query and the answer expected, sections as zone-file lines (compared as sets).

    `answer=None` means "do not check"; `[]` means "must be empty". Record text is compared
    after dnspython's canonical rendering, so `a.example. 3600 IN A 1.2.3.4` matches exactly.
    """

    qname: str
    qtype: str = "A"
    rcode: int = dns.rcode.NOERROR
    answer: list[str] | None = field(default_factory=list)
    ns: list[str] | None = None
    extra: list[str] | None = None
    qclass: str = "IN"
    proto: str = "udp"
    flags: set[str] = field(default_factory=set)  # flags that must be set, e.g. {"AA"}
    no_flags: set[str] = field(default_factory=set)


def rrs(section: list[dns.rrset.RRset]) -> list[str]:
    """Each record of a section as one canonical zone-file line, sorted."""
    out: list[str] = []
    for rrset in section:
        for line in rrset.to_text().splitlines():
            out.append(" ".join(line.split()))
    return sorted(out)


def _norm(lines: list[str]) -> list[str]:
    return sorted(" ".join(line.split()) for line in lines)


def check(srv: Server, cases: list[Case]) -> None:
    for c in cases:
        r = srv.query(c.qname, c.qtype, c.qclass, proto=c.proto)
        where = f"{c.qname} {c.qtype} ({c.proto})"
        assert r.rcode() == c.rcode, (
            f"{where}: rcode {dns.rcode.to_text(r.rcode())}, want {dns.rcode.to_text(c.rcode)}"
        )
        if c.answer is not None:
            assert rrs(r.answer) == _norm(c.answer), f"{where}: answer {rrs(r.answer)}"
        if c.ns is not None:
            assert rrs(r.authority) == _norm(c.ns), f"{where}: authority {rrs(r.authority)}"
        if c.extra is not None:
            assert rrs(r.additional) == _norm(c.extra), f"{where}: additional {rrs(r.additional)}"
        for f in c.flags:
            assert r.flags & dns.flags.from_text(f), f"{where}: flag {f} not set"
        for f in c.no_flags:
            assert not r.flags & dns.flags.from_text(f), f"{where}: flag {f} set"


# ---- raw exchanges ------------------------------------------------------------------------


def exchange(srv: Server, q: dns.message.Message, proto: str = "udp") -> tuple[bytes, int]:
    """Send `q` and return the response's exact wire bytes and the client port we used."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(3)
        s.bind((HOST, 0))
        wire = q.to_wire()
        if proto == "udp":
            s.sendto(wire, (HOST, srv.port))
            return s.recvfrom(65535)[0], s.getsockname()[1]
        s.connect((HOST, srv.port))
        s.sendall(len(wire).to_bytes(2, "big") + wire)
        buf = b""
        while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
            chunk = s.recv(65535)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return buf[2:], s.getsockname()[1]


def metric(text: str, sample: str, /, **labels: str) -> float | None:
    """In /metrics `text`, the value of sample `sample` whose labels are exactly `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


def validate_block(tmp: Path, body: str) -> tuple[int, str, Path]:
    """`-validate` a Corefile `.:1053 { BODY }` written in `tmp`: (exit code, stderr, its path)."""
    conf = tmp / "Corefile"
    conf.write_text(".:1053 {\n" + body + "}\n")
    r = run_cli("-conf", str(conf), "-validate")
    return r.returncode, r.stderr, conf


def setup_error(tmp: Path, body: str, line: int, message: str) -> None:
    """`-validate` of `.:1053 { BODY }` fails naming `Corefile:LINE - …MESSAGE…`."""
    code, err, conf = validate_block(tmp, body)
    assert code == 1
    assert f"{conf}:{line} - " in err and message in err, err


#: A manifest (the kubernetes plugin's `manifests` file) with namespace `demo` and the
#: ClusterIP service `web.demo` (10.96.0.50, port http/80).
DEMO_WEB = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  clusterIP: 10.96.0.50
  ports:
  - name: http
    port: 80
"""


def fast_like_chain(
    corefile: str,
    tmp: Path,
    questions: list[tuple[str, str]],
    files: Mapping[str, str] | None = None,
    proto: str = "udp",
) -> int:
    """Ask the same questions of the server with and without the fast path: answers identical.

    The Corefile must have `prometheus 127.0.0.1:@P1@` in the block answering the questions.
    Each question is asked three times of the fast server (the chain answers, the answer is
    kept, the last one may be replayed) and once of a server with CLUSTERDNS_FASTPATH=off; the
    bytes must agree but for the ID. Returns how many answers the fast path gave, so a plugin
    declaring Replay.ALWAYS can assert that its answers really are replayed.
    """
    fast_tmp, slow_tmp = tmp / "fast", tmp / "slow"
    fast_tmp.mkdir(exist_ok=True)
    slow_tmp.mkdir(exist_ok=True)
    with (
        serve(corefile, fast_tmp, files=files) as fast,
        serve(corefile, slow_tmp, files=files, env={"CLUSTERDNS_FASTPATH": "off"}) as slow,
    ):
        for name, rdtype in questions:
            q = dns.message.make_query(name, rdtype)
            got = [exchange(fast, q, proto)[0] for _ in range(3)]
            want = exchange(slow, q, proto)[0]
            for g in got:
                assert g[2:] == want[2:], f"{name} {rdtype}: fast path and chain differ"
        from prometheus_client.parser import text_string_to_metric_families

        return int(
            sum(
                s.value
                for family in text_string_to_metric_families(fast.metrics())
                for s in family.samples
                if s.name == "clusterdns_fastpath_answers_total"
            )
        )
