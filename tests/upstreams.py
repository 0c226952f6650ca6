"""Scripted upstream DNS servers for forward's tests: UDP, TCP and DNS-over-TLS on loopback.

An `Upstream` runs in background threads and answers each query with what its `handler`
returns: a list of replies (Messages or raw bytes, sent in order - so a test can send forged
replies before the real one), or None to stay silent. Every query is recorded in `queries`
as (proto, qname, qtype). `make_cert(dir)` makes a self-signed certificate for 127.0.0.1 /
"dot.test" with the openssl CLI, for the DoT upstream.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset

HOST = "127.0.0.1"
Reply = dns.message.Message | bytes
Handler = Callable[[dns.message.Message, str], list[Reply] | None]


def answer(q: dns.message.Message, ip: str = "10.0.0.1", ttl: int = 60) -> dns.message.Message:
    """A NOERROR reply to `q` with one A record `ip` (only for A queries)."""
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA
    if q.question[0].rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text(q.question[0].name, ttl, "IN", "A", ip))
    return r


def rcode_reply(q: dns.message.Message, rcode: int) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    return r


def serve_ip(ip: str) -> Handler:
    """A handler answering every query with `ip`."""
    return lambda q, proto: [answer(q, ip)]


def silent(q: dns.message.Message, proto: str) -> list[Reply] | None:
    return None


def _wire(r: Reply) -> bytes:
    return r if isinstance(r, bytes) else r.to_wire()


class Upstream:
    """A DNS server on 127.0.0.1:`port` (0: any free port) with UDP, TCP and optional TLS."""

    def __init__(
        self,
        handler: Handler | None = None,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        delay: float = 0.0,
        host: str = HOST,
        close_tcp: bool = False,
    ) -> None:
        self.handler: Handler = handler or serve_ip("10.0.0.1")
        self.delay = delay
        self.close_tcp = close_tcp  # close each TCP connection after one reply
        self.messages: list[dns.message.Message] = []
        self.tls = tls
        self.queries: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.host = host
        self._tcp.bind((host, port))
        self.port = self._tcp.getsockname()[1]
        self._udp: socket.socket | None = None
        if tls is None:
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.bind((host, self.port))
        self._tcp.listen(16)
        self._tcp.settimeout(0.05)
        self._conns: list[socket.socket] = []

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> Upstream:
        self._spawn(self._accept_loop)
        if self._udp is not None:
            self._udp.settimeout(0.05)
            self._spawn(self._udp_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in [self._tcp, self._udp, *self._conns]:
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def names(self, proto: str | None = None) -> list[str]:
        """Query names seen, optionally for one protocol; NS queries (forward's health
        checks) are left out."""
        with self._lock:
            return [n for p, n, t in self.queries if t != "NS" and (proto is None or p == proto)]

    def health_checks(self, domain: str = ".") -> list[dns.message.Message]:
        """The health check queries (`domain` NS) received."""
        with self._lock:
            return [
                m for m in self.messages
                if m.question[0].name.to_text().lower() == domain
                and m.question[0].rdtype == dns.rdatatype.NS
            ]  # fmt: skip

    # ---- serving --------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _replies(self, data: bytes, proto: str) -> list[bytes]:
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return []
        qq = q.question[0]
        with self._lock:
            self.queries.append(
                (proto, qq.name.to_text().lower(), dns.rdatatype.to_text(qq.rdtype))
            )
            self.messages.append(q)
        if self.delay and qq.rdtype != dns.rdatatype.NS:
            time.sleep(self.delay)
        return [_wire(r) for r in self.handler(q, proto) or []]

    def _udp_loop(self) -> None:
        assert self._udp is not None
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            self._spawn(self._udp_answer, data, peer)

    def _udp_answer(self, data: bytes, peer: tuple[str, int]) -> None:
        assert self._udp is not None
        for wire in self._replies(data, "udp"):
            with contextlib.suppress(OSError):
                self._udp.sendto(wire, peer)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            self._spawn(self._tcp_conn, conn)

    def _tcp_conn(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self._conns.append(conn)
            except (ssl.SSLError, OSError):
                return
        proto = "tls" if self.tls is not None else "tcp"
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65535)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                n = struct.unpack("!H", buf[:2])[0]
                data, buf = buf[2 : 2 + n], buf[2 + n :]
                for wire in self._replies(data, proto):
                    with contextlib.suppress(OSError):
                        conn.sendall(struct.pack("!H", len(wire)) + wire)
                if self.close_tcp:
                    with contextlib.suppress(OSError):
                        conn.close()
                    return


@contextlib.contextmanager
def running(*ups: Upstream) -> Iterator[tuple[Upstream, ...]]:
    for u in ups:
        u.start()
    try:
        yield ups
    finally:
        for u in ups:
            u.stop()


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for dot.test and 127.0.0.1: (cert, key) paths."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=dot.test",
         "-addext", "subjectAltName=DNS:dot.test,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
