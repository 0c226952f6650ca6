"""What the benchmark runs: dnsperf (load and a latency probe), dnsmasq, ClusterDNS processes.

Nothing here decides what is measured; bench/run.py does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import psutil

from tests.harness import free_port  # noqa: F401  (the bench's servers take ports alike)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: dnsperf's load: 16 clients (source ports, so SO_REUSEPORT spreads them), 200 in flight (more
#: overflows the servers' default socket buffers, dnsmasq's too, and only adds lost queries).
CLIENTS, IN_FLIGHT, TIMEOUT = 16, 200, 2
#: The latency probe: a second dnsperf at a low fixed rate, printing each query's latency
#: (the loaded one cannot: printing halves what it can send).
PROBE_QPS = 500


def need_tools() -> None:
    missing = [t for t in ("dnsperf", "dnsmasq") if shutil.which(t) is None]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)}: run `make bench` (it installs them with apt-get) "
            "or `apt-get install -y dnsperf dnsmasq`"
        )


# ---- dnsperf --------------------------------------------------------------------------------


@dataclass
class Perf:
    """One dnsperf run (and the probe that ran beside it)."""

    qps: float = 0.0
    sent: int = 0
    completed: int = 0
    lost: int = 0
    avg_ms: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    rcodes: dict[str, int] = field(default_factory=dict)
    offered_qps: float | None = None  # -Q, when the load was limited
    server_cpu_s: float | None = None
    peak_rss_mb: float | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _dnsperf_cmd(port: int, data: Path, seconds: float, qps: float | None) -> list[str]:
    cmd = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(data), "-l", f"{seconds:g}",
           "-c", str(CLIENTS), "-q", str(IN_FLIGHT), "-t", str(TIMEOUT)]  # fmt: skip
    if qps:
        cmd += ["-Q", str(int(qps))]
    return cmd


def parse_dnsperf(text: str) -> Perf:
    p = Perf()

    def num(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+)", text)
        return float(m.group(1)) if m else 0.0

    p.sent = int(num("Queries sent"))
    p.completed = int(num("Queries completed"))
    p.lost = int(num("Queries lost"))
    p.qps = num("Queries per second")
    p.avg_ms = num(r"Average Latency \(s\)") * 1000
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for code, n in re.findall(r"([A-Z]+) (\d+)", m.group(1)):
            p.rcodes[code] = int(n)
    return p


def percentiles(lines: str) -> tuple[float | None, float | None]:
    """p50 and p99 (ms) of dnsperf -v's lines: `> RCODE NAME TYPE SECONDS`. A query that
    timed out (`> T NAME TYPE`) counts as the slowest."""
    lat: list[float] = []
    for x in lines.splitlines():
        if x.startswith("> "):
            last = x.split()[-1]
            lat.append(float(last) if last[0].isdigit() else float(TIMEOUT))
    lat.sort()
    if len(lat) < 10:
        return None, None
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


def dnsperf(
    port: int, data: Path, seconds: float, qps: float | None = None, probe: bool = True,
    pids: list[int] | None = None,
) -> Perf:  # fmt: skip
    """Load the server at `port` for `seconds`; with `probe`, measure p50/p99 beside it; with
    `pids`, the CPU seconds those processes (and their children) spent meanwhile."""
    procs = Procs(pids or [])
    cpu0 = procs.cpu()
    load = subprocess.Popen(_dnsperf_cmd(port, data, seconds, qps), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    prober = None
    # To a file, not a pipe: a prober blocked on a full pipe would time its own stall.
    probe_out = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
    if probe:
        cmd = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(data), "-l", f"{seconds:g}",
               "-c", "1", "-q", "20", "-Q", str(PROBE_QPS), "-t", str(TIMEOUT), "-v"]  # fmt: skip
        prober = subprocess.Popen(cmd, stdout=probe_out, stderr=subprocess.DEVNULL, text=True)
    out, _ = load.communicate()
    p = parse_dnsperf(out)
    if prober is not None:
        prober.wait()
        probe_out.seek(0)
        p.p50_ms, p.p99_ms = percentiles(probe_out.read())
    probe_out.close()
    if pids:
        p.server_cpu_s = round(procs.cpu() - cpu0, 2)
        p.peak_rss_mb = procs.peak_rss_mb()
    p.offered_qps = qps
    return p


# ---- processes ------------------------------------------------------------------------------


class Procs:
    """A server's processes: the ones given and their children (worker processes)."""

    def __init__(self, pids: list[int]) -> None:
        self.procs: list[psutil.Process] = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                self.procs += [p, *p.children(recursive=True)]

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return round(total / 2**20, 1)

    def pss_mb(self) -> float:
        """Proportional set size: shared pages (libraries) split between the processes."""
        total = 0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
        return round(total / 2**20, 1)

    def peak_rss_mb(self) -> float:
        total = 0
        for p in self.procs:
            with contextlib.suppress(OSError, psutil.Error):
                status = Path(f"/proc/{p.pid}/status").read_text()
                m = re.search(r"VmHWM:\s+(\d+) kB", status)
                total += int(m.group(1)) * 1024 if m else 0
        return round(total / 2**20, 1)


@dataclass(frozen=True)
class Probe:
    """A cluster name and the addresses of its correct answer: "answering" means those."""

    name: str
    want: frozenset[str]

    def __str__(self) -> str:
        return self.name


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float | None = None
    answer_s: float | None = None  # exec to the first (correct, given a Probe) answer to `probe`

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        kids = Procs(self.pids).procs
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # measured already: no lameduck to sit out
            self.proc.wait()
        for k in kids:
            with contextlib.suppress(psutil.Error):
                k.wait(5)


def start_clusterdns(
    name: str, corefile: str, work: Path, ready_port: int, port: int, workers: str,
    env: dict[str, str] | None = None, ready_timeout: float = 120.0,
    probe: str | Probe | None = None,
) -> Server:  # fmt: skip
    """Start ClusterDNS and wait for /ready; `ready_s` is the time from exec to ready (and
    `answer_s` to the first answer for the name `probe`)."""
    cmd = [sys.executable, "-m", "clusterdns", "-workers", workers]
    return _start(name, cmd, corefile, work, ready_port, port, env, ready_timeout, probe)


def start_coredns(
    name: str, exe: Path, corefile: str, work: Path, ready_port: int, port: int,
    ready_timeout: float = 120.0, probe: str | Probe | None = None,
) -> Server:  # fmt: skip
    """Start the reference CoreDNS as ClusterDNS is started: same Corefile, same waits."""
    return _start(name, [str(exe)], corefile, work, ready_port, port, None, ready_timeout, probe)


def _start(
    name: str, cmd: list[str], corefile: str, work: Path, ready_port: int, port: int,
    env: dict[str, str] | None, ready_timeout: float, probe: str | Probe | None,
) -> Server:  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    conf = work / f"Corefile.{name}"
    conf.write_text(corefile)
    log = work / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "-conf", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                env=full_env, cwd=work)  # fmt: skip
    srv = Server(name, proc, port, log)
    try:
        srv.ready_s, srv.answer_s = wait_ready(ready_port, port, probe, proc, ready_timeout)
    except RuntimeError:
        srv.stop()
        raise RuntimeError(f"{name}: {log.read_text()[-2000:]}") from None
    return srv


def wait_ready(
    ready_port: int, port: int, probe: str | Probe | None, proc: subprocess.Popen[bytes],
    timeout: float,
) -> tuple[float, float | None]:  # fmt: skip
    """Seconds from now (just after exec) until /ready says 200, and until an A query for
    `probe` gets records (a Probe's addresses, exactly): both are polled in turn, so neither
    waits for the other."""
    t0 = time.monotonic()
    ready: float | None = None
    answer: float | None = None
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        if ready is None and _http_ok(f"http://{HOST}:{ready_port}/ready"):
            ready = round(time.monotonic() - t0, 3)
        if probe is not None and answer is None and _has_answer(port, probe):
            answer = round(time.monotonic() - t0, 3)
        if ready is not None and (probe is None or answer is not None):
            return ready, answer
        time.sleep(0.01)
    raise RuntimeError(f"not ready (and answering {probe}) after {timeout}s")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _has_answer(port: int, probe: str | Probe) -> bool:
    q = dns.message.make_query(str(probe), "A")
    try:
        # A headless Service's addresses may not fit 512 bytes: TCP then, for all of them.
        resp, _ = dns.query.udp_with_fallback(q, HOST, timeout=0.2, port=port)
    except (OSError, dns.exception.DNSException):
        return False
    if resp.rcode() != dns.rcode.NOERROR or not resp.answer:
        return False
    got = {rr.to_text() for rrset in resp.answer for rr in rrset if rrset.rdtype == 1}
    return not isinstance(probe, Probe) or got == probe.want


def start_dnsmasq(name: str, work: Path, port: int, args: list[str]) -> Server:
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"{name}.log"
    cmd = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
           f"--listen-address={HOST}", "--bind-interfaces", f"--port={port}",
           "--user=root" if os.geteuid() == 0 else "--user=", "--pid-file=",
           f"--log-facility={log}", *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    srv = Server(name, proc, port, log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # answering anything (REFUSED too) means it is up
        if proc.poll() is not None:
            raise RuntimeError(f"dnsmasq {name} exited: {log.read_text()[-2000:]}")
        if _answers(port):
            return srv
        time.sleep(0.05)
    srv.stop()
    raise RuntimeError(f"dnsmasq {name} does not answer")


def _answers(port: int) -> bool:
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(q, (HOST, port))
            return s.recv(512)[:2] == q[:2]
        except OSError:
            return False


@contextlib.contextmanager
def running(srv: Server) -> Iterator[Server]:
    try:
        yield srv
    finally:
        srv.stop()


def warm_all(ports: list[int], data: Path, spread: float = 0.0) -> None:
    """`warm` several servers at once (the spread pass takes a whole TTL)."""
    with concurrent.futures.ThreadPoolExecutor(len(ports)) as pool:
        list(pool.map(lambda p: warm(p, data, spread), ports))


def warm(port: int, data: Path, spread: float = 0.0) -> None:
    """Ask every query of `data` before measuring.

    With `spread`, the first pass is paced over that many seconds (the cache's TTL): entries
    are then stored, and expire, spread over time as in a server that has been running for a
    while, instead of all together — a wave of expiries is what a restart brings, not what a
    server lives with. Then two quick passes (the worker processes' entries).
    """
    base = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(data), "-c", str(CLIENTS),
            "-t", str(TIMEOUT)]  # fmt: skip
    if spread > 0:
        n = sum(1 for line in data.read_text().splitlines() if line.strip())
        rate = str(max(1, int(n / spread)))
        subprocess.run(
            [*base, "-n", "1", "-q", "20", "-Q", rate],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    subprocess.run(
        [*base, "-n", "2", "-q", "100"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
