"""`clusterdns query NAME [TYPE] [CLASS] -conf FILE [--trace]`: ask the Corefile, not a server.

The question goes through the configured server in-process, with no socket of our own: the
Corefile is loaded as the server loads it, the plugins that answer queries are started (the
kubernetes plugin loads its `manifests`, or connects to the API; forward opens its upstream
connections), and the query's wire bytes are handed to the listening address's `Router` —
the very code the UDP and TCP listeners call — so routing, EDNS, truncation and the plugins'
after-write hooks (log, prometheus) behave as on the wire. The answer is printed like dig.

Plugins that only run side services are not started: health, ready and prometheus (HTTP
listeners), reload (watches the Corefile), loop (probes its own listener).

`--trace` builds the chains with clusterdns.trace's tracing wrapper and prints, before the
answer, each plugin the query passed and whether it answered, passed on or fell through, with
the reasons plugins give through `req.note`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.reversename

from clusterdns import config as config_mod
from clusterdns import logsetup
from clusterdns.config import Config, ListenAddr
from clusterdns.errors import ConfigErrors
from clusterdns.plugin import Plugin
from clusterdns.runtime import Runtime
from clusterdns.server.dispatch import Router
from clusterdns.server.listener import Listener
from clusterdns.trace import Tracer

EDNS_PAYLOAD = 1232  # what dig advertises


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clusterdns query",
        description="Resolve a name through the Corefile's plugins in-process and print the "
        "answer like dig.",
    )
    p.add_argument(
        "words",
        nargs="*",
        metavar="NAME [TYPE] [CLASS]",
        help="the question (TYPE default A, CLASS default IN); @HOST picks the "
        "listening address when the Corefile binds several",
    )
    p.add_argument("-conf", "--conf", default="", help="Corefile (default ./Corefile)")
    p.add_argument(
        "-x", dest="reverse", default="", metavar="ADDR", help="reverse lookup: the PTR of ADDR"
    )
    p.add_argument(
        "-p",
        "--port",
        type=int,
        default=0,
        help="which listening port's server blocks answer (default: the only one, else 53)",
    )
    p.add_argument(
        "-dns.port",
        "--dns.port",
        dest="dns_port",
        type=int,
        default=53,
        help="default port for server blocks without one, as for the server",
    )
    p.add_argument(
        "--from",
        dest="source",
        default="127.0.0.1",
        metavar="IP[:PORT]",
        help="the client address plugins see (whoami, autopath, …)",
    )
    p.add_argument("--tcp", action="store_true", help="as if asked over TCP (no truncation)")
    p.add_argument("--dnssec", action="store_true", help="set the DO bit")
    p.add_argument("--short", action="store_true", help="print only the answers' data")
    p.add_argument(
        "--trace", action="store_true", help="print each plugin the query passed and what it did"
    )
    return p


def _question(
    a: argparse.Namespace,
) -> tuple[str, dns.rdatatype.RdataType, dns.rdataclass.RdataClass, str]:
    """(name, type, class, @host) from the positional words, dig-style."""
    host = ""
    words: list[str] = []
    for w in a.words:
        if w.startswith("@"):
            host = w[1:]
        else:
            words.append(w)
    rdtype, rdclass = dns.rdatatype.A, dns.rdataclass.IN
    if a.reverse:
        try:
            name = dns.reversename.from_address(a.reverse).to_text()
        except (dns.exception.SyntaxError, ValueError):
            raise UsageError(f"-x: {a.reverse!r} is not an IP address") from None
        rdtype = dns.rdatatype.PTR
    elif words:
        name = words.pop(0)
    else:
        raise UsageError("a NAME to look up is required")
    for w in words:
        try:
            rdclass = dns.rdataclass.from_text(w)
            continue
        except dns.rdataclass.UnknownRdataclass:
            pass
        try:
            rdtype = dns.rdatatype.from_text(w)
        except dns.rdatatype.UnknownRdatatype:
            raise UsageError(f"{w!r} is neither a record type nor a class") from None
    return name, rdtype, rdclass, host


def _listen_addr(cfg: Config, port: int, host: str, dns_port: int) -> ListenAddr:
    """The listening address the server would have received the question on."""
    ports = sorted({a.port for a in cfg.routes})
    if not port:
        port = ports[0] if len(ports) == 1 else dns_port
    cands = [a for a in cfg.routes if a.port == port and a.transport == "dns"]
    if not cands:
        listed = ", ".join(str(p) for p in ports)
        raise UsageError(f"no server block listens on port {port} (ports: {listed}); use -p")
    for want in ((host,) if host else ("", "127.0.0.1", "::1")) + ("",):
        for a in cands:
            if a.host == want:
                return a
    if host:
        raise UsageError(f"no server block on port {port} is bound to {host}")
    return cands[0]


def _source(text: str) -> tuple[str, int]:
    host, port = text, 53000
    if text.count(":") == 1 or text.startswith("["):
        host, _, p = text.rpartition(":")
        host = host.strip("[]")
        port = int(p) if p.isdigit() else -1
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--from: {text!r} is not IP or IP:PORT") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--from: {text!r} has a bad port")
    return host, port


def main(argv: list[str]) -> int:
    a = _parser().parse_args(argv)
    try:
        name, rdtype, rdclass, host = _question(a)
        source = _source(a.source)
    except UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    path = a.conf or ("Corefile" if os.path.exists("Corefile") else None)
    if path is None:
        print(
            "clusterdns query: no Corefile (no -conf, none in this directory): using the "
            "built-in default, whoami and log on every name",
            file=sys.stderr,
        )
    try:
        cfg = config_mod.load(path, a.dns_port)
    except ConfigErrors as e:
        for err in e.errors:
            print(f"Error: {err}", file=sys.stderr)
        return 1
    try:
        addr = _listen_addr(cfg, a.port, host, a.dns_port)
    except UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    tracer = Tracer() if a.trace else None
    if tracer is not None:
        for b in cfg.blocks:
            b.chain = config_mod.build_chain(b.plugins, tracer.wrap)
    logsetup.setup()
    for h in logging.getLogger().handlers:  # our stdout is the answer; logs go to stderr
        if isinstance(h, logging.StreamHandler):
            h.setStream(sys.stderr)
    logging.getLogger().setLevel(logging.INFO if a.trace else logging.WARNING)
    q = dns.message.make_query(
        name, rdtype, rdclass, use_edns=0, payload=EDNS_PAYLOAD, want_dnssec=a.dnssec
    )
    return asyncio.run(_run(cfg, addr, q, source, a, tracer))


async def _run(
    cfg: Config,
    addr: ListenAddr,
    q: dns.message.Message,
    source: tuple[str, int],
    a: argparse.Namespace,
    tracer: Tracer | None,
) -> int:
    rt = Runtime(cfg, a.dns_port)
    for la, zones in cfg.routes.items():
        # Never started (no socket): they only give nested lookups (kubernetes' upstream) the
        # router of their address, as the running server's listeners do.
        rt.listeners[la] = Listener(la, Router(la, zones))
    router = rt.listeners[addr].router
    started: list[Plugin] = []
    proto = "tcp" if a.tcp else "udp"
    try:
        try:
            for p in cfg.plugins():
                if not p.side_service:
                    await p.start(rt)
                    started.append(p)
        except Exception as e:
            print(f"Error: {e}", file=sys.stderr)
            return 1
        local = (addr.host or ("::1" if ":" in source[0] else "127.0.0.1"), addr.port)
        t0 = time.perf_counter()
        wire = await router.handle(q.to_wire(), source, local, proto)
        elapsed = time.perf_counter() - t0
    finally:
        for p in reversed(started):
            try:
                await p.stop()
            except Exception as e:  # pragma: no cover - reported, the answer still stands
                print(f"Warning: stopping plugin/{p.name}: {e}", file=sys.stderr)
        await rt.http.close()
    if tracer is not None:
        print("\n".join(_trace_header(router, q, addr, proto) + tracer.render()), end="\n\n")
    if wire is None:
        print(";; no reply: the server would stay silent", file=sys.stderr)
        return 9
    resp = dns.message.from_wire(wire, ignore_trailing=True)
    if a.short:
        for rrset in resp.answer:
            for rd in rrset:
                print(rd.to_text())
        return 0
    print(render(resp, q, cfg.path, addr, proto, elapsed, len(wire)))
    return 0


def _trace_header(
    router: Router, q: dns.message.Message, addr: ListenAddr, proto: str
) -> list[str]:
    question = q.question[0]
    qname = question.name.to_text().lower()
    qtype = dns.rdatatype.to_text(question.rdtype)
    head = f";; TRACE {qname} {qtype} on {addr.label} ({proto})"
    found = router.route(qname, int(question.rdtype))
    if found is None:
        return [head, ";;   no server block serves this name: REFUSED"]
    zone, block = found
    keys = " ".join(k.key or str(k) for k in block.keys)
    return [head, f";;   server block {keys} ({block.file}:{block.line}), zone {zone}"]


def render(
    resp: dns.message.Message,
    q: dns.message.Message,
    path: str,
    addr: ListenAddr,
    proto: str,
    elapsed: float,
    size: int,
) -> str:
    """dig's layout: header, flags and counts, the OPT pseudosection, then each section."""
    question = q.question[0]
    flags = dns.flags.to_text(resp.flags).lower()
    counts = [len(resp.question)] + [
        sum(len(r) for r in sec) for sec in (resp.answer, resp.authority, resp.additional)
    ]
    if resp.edns >= 0:
        counts[3] += 1  # dig counts the OPT record
    lines = [
        f"; <<>> clusterdns query <<>> {question.name} {dns.rdatatype.to_text(question.rdtype)}",
        f";; ->>HEADER<<- opcode: QUERY, status: {dns.rcode.to_text(resp.rcode())}, id: {resp.id}",
        f";; flags: {flags}; QUERY: {counts[0]}, ANSWER: {counts[1]}, "
        f"AUTHORITY: {counts[2]}, ADDITIONAL: {counts[3]}",
    ]
    if resp.edns >= 0:
        do = " do" if resp.ednsflags & dns.flags.DO else ""
        lines += [
            "",
            ";; OPT PSEUDOSECTION:",
            f"; EDNS: version: {resp.edns}, flags:{do}; udp: {resp.payload}",
        ]
    lines += ["", ";; QUESTION SECTION:"]
    for rrset in resp.question:
        cls = dns.rdataclass.to_text(rrset.rdclass)
        lines.append(f";{rrset.name}\t\t{cls}\t{dns.rdatatype.to_text(rrset.rdtype)}")
    for title, section in (
        ("ANSWER", resp.answer),
        ("AUTHORITY", resp.authority),
        ("ADDITIONAL", resp.additional),
    ):
        if not section:
            continue
        lines += ["", f";; {title} SECTION:"]
        for rrset in section:
            cls = dns.rdataclass.to_text(rrset.rdclass)
            typ = dns.rdatatype.to_text(rrset.rdtype)
            for rd in rrset:
                lines.append(f"{rrset.name}\t{rrset.ttl}\t{cls}\t{typ}\t{rd.to_text()}")
    lines += [
        "",
        f";; Query time: {elapsed * 1000:.0f} msec",
        f";; SERVER: {path} {addr.label} (in-process, {proto})",
        f";; MSG SIZE  rcvd: {size}",
    ]
    return "\n".join(lines)
