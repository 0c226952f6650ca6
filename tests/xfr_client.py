"""Zone transfer helpers for tests: read a transfer's messages over TCP, catch NOTIFYs."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.opcode
import dns.rdatatype
import dns.rrset

from tests.harness import HOST


def transfer(port: int, q: dns.message.Message, timeout: float = 5.0) -> list[dns.message.Message]:
    """The messages a server sends for transfer query `q`, read until the transfer is done:
    an error rcode, a lone SOA (IXFR: up to date), or the closing SOA."""
    out: list[dns.message.Message] = []
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        wire = q.to_wire()
        s.sendall(len(wire).to_bytes(2, "big") + wire)
        buf = b""
        soas = 0
        while True:
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                chunk = s.recv(65535)
                if not chunk:
                    return out
                buf += chunk
            n = int.from_bytes(buf[:2], "big")
            m = dns.message.from_wire(buf[2 : 2 + n], one_rr_per_rrset=True)
            buf = buf[2 + n :]
            out.append(m)
            if m.rcode() != 0:
                return out
            records = [rr for rrset in m.answer for rr in rrset]
            soas += sum(1 for rrset in m.answer if rrset.rdtype == dns.rdatatype.SOA)
            if len(out) == 1 and len(records) == 1 and soas == 1:
                return out
            if soas >= 2:
                return out


def records(msgs: list[dns.message.Message]) -> list[str]:
    """Every answer record of the messages as a text line, in order."""
    return [line for m in msgs for rrset in m.answer for line in rrset.to_text().splitlines()]


def ixfr(zone: str, serial: int) -> dns.message.Message:
    q = dns.message.make_query(zone, "IXFR")
    q.authority = [dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {serial} 0 0 0 0")]
    return q


class NotifyCatcher:
    """A UDP listener that answers NOTIFY with NOERROR and remembers the zones."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.zones: list[str] = []
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done:
            try:
                data, addr = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            m = dns.message.from_wire(data)
            if m.opcode() != dns.opcode.NOTIFY:
                continue
            r = dns.message.make_response(m)
            self.sock.sendto(r.to_wire(), addr)
            with self.cond:
                self.zones.append(m.question[0].name.to_text())
                self.cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until `count` NOTIFYs came; return the zones they were for."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.zones) >= count, timeout)
            assert len(self.zones) >= count, f"{len(self.zones)} NOTIFYs, want {count}"
            return list(self.zones)

    def close(self) -> None:
        self.done = True
        self.thread.join(2)
        self.sock.close()


@contextmanager
def notify_catcher() -> Iterator[NotifyCatcher]:
    c = NotifyCatcher()
    try:
        yield c
    finally:
        c.close()
