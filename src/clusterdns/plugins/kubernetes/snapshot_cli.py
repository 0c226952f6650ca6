"""`clusterdns snapshot inspect FILE`: what a kubernetes snapshot file holds, without a server.

Prints the file's age, sizes, zones, the options it was written for and its record counts
(with each kind's resourceVersions); exit 1 with the reason when the file cannot be used
(the same checks the server makes, bar the Corefile comparison).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from clusterdns.plugins.kubernetes import snapshot
from clusterdns.plugins.kubernetes.snapshot import SnapshotError, human_duration


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="clusterdns snapshot",
        description="Look into a snapshot file written by the kubernetes plugin's 'snapshot'.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="print a snapshot's age, sizes, zones and contents")
    ins.add_argument("file")
    a = p.parse_args(argv)
    try:
        snap = snapshot.read(a.file)
    except SnapshotError as e:
        print(f"{a.file}: {e}", file=sys.stderr)
        return 1
    ident = snap.identity
    written = datetime.fromtimestamp(snap.written, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"file: {a.file}")
    print(f"format: {snapshot.FORMAT_VERSION}, written by {snap.generator or '?'}")
    print(f"written: {written}")
    print(f"age: {human_duration(time.time() - snap.written)}")
    print(f"size: {snap.size} bytes ({snap.body_bytes} bytes uncompressed)")
    print(f"zones: {' '.join(ident.get('zones') or []) or '(none)'}")
    print(f"api: {ident.get('api') or '(unknown)'}")
    print(f"labels: {ident.get('labels') or '(none)'}")
    print(f"namespaces: {' '.join(ident.get('namespaces') or []) or '(all)'}")
    names = {"Service": "services", "Endpoints": "endpointslices", "Namespace": "namespaces",
             "Pod": "pods"}  # fmt: skip
    for kind in snapshot.KINDS:
        if kind in snap.counts:
            versions = snap.versions.get(kind) or {}
            rv = ", ".join(f"{ns or '*'}={v}" for ns, v in sorted(versions.items()) if v)
            extra = f" (resourceVersion {rv})" if rv else ""
            print(f"{names[kind]}: {snap.counts[kind]}{extra}")
    return 0
