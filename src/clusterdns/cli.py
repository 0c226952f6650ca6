"""`clusterdns`: CoreDNS's command line (single-dash flags), exit codes and signals.

Exit 0 on a clean stop, 1 on a configuration or bind error (message on stderr).
SIGTERM/SIGINT stop gracefully (lameduck honoured); SIGUSR1 reloads the Corefile now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import signal
import sys

from clusterdns import SERVER_NAME, __version__, logsetup, registry
from clusterdns import config as config_mod
from clusterdns.errors import ConfigErrors
from clusterdns.runtime import Runtime

log = logging.getLogger("clusterdns")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="clusterdns",
        description="ClusterDNS, a CoreDNS-compatible cluster DNS server.",
        prefix_chars="-",
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
    a = _args(argv)
    if a.version:
        print(f"{SERVER_NAME}-{__version__}")
        print(f"{sys.platform}/{platform.machine()}, python{platform.python_version()}")
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
        for lst in rt.listeners.values():
            print(f"{lst.addr.transport}://{lst.addr.host or ''}:{lst.local[1]}", flush=True)
        print(f"{SERVER_NAME}-{__version__}", flush=True)
        print(f"{sys.platform}/{platform.machine()}, python{platform.python_version()}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, rt.request_reload)
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(rt.stopping.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    fatal = rt.exit_code != 0  # a plugin (loop) stopped the server: exit now, no lameduck
    if not fatal:
        log.info("SIGTERM: Shutting down servers then terminating")
    await rt.stop(lameduck=not fatal)
    return rt.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
