"""`clusterdns`: CoreDNS's command line (single-dash flags), start banner, exit codes, signals.

Exit 0 on a clean stop, 1 on a configuration or bind error (message on stderr).

The banner is CoreDNS's (core/dnsserver/onstartup.go, coremain.showVersion): per listening
address, each zone sorted as `ZONE:PORT`, with ` on IP` when bound to one address (and
CoreDNS's warning for a zone outside RFC 1035's preferred syntax), then the reload plugin's
SHA512 line, then `ClusterDNS-VERSION` and `OS/ARCH, pythonX.Y.Z`. `-quiet` drops it.

Signals as caddy's TrapSignals, with its log lines: SIGTERM stops gracefully (lameduck
honoured); SIGINT too, and a second SIGINT during the stop quits at once (exit 2); SIGQUIT
quits at once (exit 0); SIGUSR1 reloads the Corefile now; SIGHUP is ignored; SIGUSR2
(caddy's binary upgrade) is logged and refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import re
import signal
import sys

from clusterdns import SERVER_NAME, __version__, logsetup, registry
from clusterdns import config as config_mod
from clusterdns.errors import ConfigErrors
from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")


COMMANDS = """commands (before any flag):
  clusterdns query [-conf Corefile] [--trace] NAME [TYPE]
                        resolve a name through the Corefile in-process and print the
                        answer like dig (see `clusterdns query -h`)
  clusterdns manifests --cluster-ip IP [--cluster-domain DOMAIN] ...
                        print the Kubernetes manifests to deploy ClusterDNS
                        (see `clusterdns manifests -h`)
"""

#: Go's GOARCH names for what platform.machine() says, as CoreDNS prints them.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


def version_lines() -> str:
    """coremain's versionString and releaseString, with ClusterDNS's name and runtime."""
    arch = GOARCH.get(platform.machine(), platform.machine())
    return (
        f"{SERVER_NAME}-{__version__}\n{sys.platform}/{arch}, python{platform.python_version()}\n"
    )


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="clusterdns",
        description="ClusterDNS, a CoreDNS-compatible cluster DNS server.",
        prefix_chars="-",
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-conf", "--conf", default="", help="Corefile to load (default ./Corefile)")
    p.add_argument("-dns.port", "--dns.port", "-p", dest="port", type=int, default=53,
                   help="default port for server blocks without one")  # fmt: skip
    p.add_argument("-plugins", "--plugins", action="store_true", help="list installed plugins")
    p.add_argument("-version", "--version", action="store_true", help="show version")
    p.add_argument("-quiet", "--quiet", action="store_true", help="quiet mode (no start banner)")
    p.add_argument("-workers", "--workers", default="0", type=_workers, metavar="N|auto",
                   help="extra processes answering UDP from the fast path (auto: one per "
                        "CPU beyond the first; see docs/performance.md)")  # fmt: skip
    p.add_argument("-validate", "--validate", action="store_true",
                   help="parse the Corefile and build every plugin, then exit")  # fmt: skip
    return p.parse_args(argv)


def _workers(text: str) -> int:
    from clusterdns.server.workers import worker_count

    try:
        return worker_count(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid worker count: {text!r}") from None


def _raise_nofile() -> None:
    """Raise the soft open-files limit to the hard one, as Go (so CoreDNS) does at start:
    each TCP connection is a file descriptor, and the common soft limit of 1,024 would
    cut the listener's own bound on connections short."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _corefile_path(arg: str) -> str | None:
    if arg:
        return arg
    return "Corefile" if os.path.exists("Corefile") else None


def main(argv: list[str] | None = None) -> int:
    rest = sys.argv[1:] if argv is None else argv
    if rest and rest[0] == "manifests":  # subcommands come before CoreDNS's flags
        from clusterdns.deploy import main as manifests_main

        return manifests_main(rest[1:])
    if rest and rest[0] == "query":
        from clusterdns.query import main as query_main

        return query_main(rest[1:])
    if rest and rest[0] == "snapshot":  # the kubernetes plugin's snapshot files
        from clusterdns.plugins.kubernetes.snapshot_cli import main as snapshot_main

        return snapshot_main(rest[1:])
    a = _args(argv)
    if a.version:
        print(version_lines(), end="")
        return 0
    if a.plugins:
        print("Server types:\n  dns\n\nOther plugins:")
        for name in registry.available():
            print(f"  dns.{name}")
        return 0
    path = _corefile_path(a.conf)
    try:
        cfg = config_mod.load(path, a.port)
    except ConfigErrors as e:
        for err in e.errors:
            print(f"Error: {err}", file=sys.stderr)
        return 1
    if a.validate:
        for w in cfg.warnings:
            print(f"Warning: {w}", file=sys.stderr)
        print(f"{cfg.path}: valid ({len(cfg.blocks)} server blocks)")
        return 0
    logsetup.setup()
    _raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        return asyncio.run(_serve(cfg, a.port, a.quiet, a.workers))
    except KeyboardInterrupt:
        return 0


_RFC1035 = re.compile(r"^(([A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?)\.)+$")


def _zone_syntax_ok(zone: str) -> bool:
    """CoreDNS's checkZoneSyntax: RFC 1035's preferred syntax; the root and reverse zones pass."""
    if zone == "." or zone.endswith((".in-addr.arpa.", ".ip6.arpa.")):
        return True
    return _RFC1035.match(zone) is not None


def startup_zones(rt: Runtime) -> str:
    """CoreDNS's startUpZones for every listening address, in the Corefile's order."""
    out: list[str] = []
    for addr, lst in rt.listeners.items():
        prefix = "" if addr.transport == "dns" else f"{addr.transport}://"
        port = lst.local[1]
        for zone in sorted(lst.router.zones):
            if not _zone_syntax_ok(zone):
                out.append(f'Warning: Domain "{zone}" does not follow RFC1035 preferred syntax')
            where = f" on {addr.host}" if addr.host else ""
            out.append(f"{prefix}{zone}:{port}{where}")
    return "".join(line + "\n" for line in out)


def log_running(rt: Runtime) -> None:
    """What the plugins say once their configuration serves (the reload plugin's SHA512)."""
    for p in rt.config.plugins():
        p.running(rt)


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


async def _serve(cfg: config_mod.Config, port: int, quiet: bool, workers: int = 0) -> int:
    rt = Runtime(cfg, port, workers)
    try:
        await rt.start()
    except OSError as e:
        print(f"Error: listen: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a plugin could not start (e.g. no API server configuration)
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if not quiet:
        print(startup_zones(rt), end="", flush=True)
    log_running(rt)
    if not quiet:
        print(version_lines(), end="", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:  # caddy: a second SIGINT while shutting down quits at once
            log.info("SIGINT: Force quit")
            _flush_and_exit(2)
        log.info("SIGINT: Shutting down")
        stop.set()

    def on_sigterm() -> None:
        if not stop.is_set():
            log.info("SIGTERM: Shutting down servers then terminating")
        stop.set()

    def on_sigquit() -> None:
        log.info("SIGQUIT: Quitting process immediately")
        _flush_and_exit(0)

    def on_sigusr1() -> None:
        log.info("SIGUSR1: Reloading")
        rt.request_reload("SIGUSR1")

    def on_sigusr2() -> None:
        log.info("SIGUSR2: Upgrading")
        log.error("SIGUSR2: upgrading: not supported by %s (restart the process)", SERVER_NAME)

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    loop.add_signal_handler(signal.SIGQUIT, on_sigquit)
    loop.add_signal_handler(signal.SIGUSR1, on_sigusr1)
    loop.add_signal_handler(signal.SIGUSR2, on_sigusr2)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # caddy ignores it
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(rt.stopping.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    fatal = rt.exit_code != 0  # a plugin (loop) stopped the server: exit now, no lameduck
    await rt.stop(lameduck=not fatal)
    return rt.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
