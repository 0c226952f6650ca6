"""The snapshot file: the store's records, kept on disk to be served when the API is away.

Layout (all integers big-endian)::

    magic "CDNSSNAP" | u16 format version | u32 header length | u32 body length
    | header: JSON (UTF-8)
    | body: zlib-compressed JSON lines
    | SHA-256 of everything before it (32 bytes)

The header says when the snapshot was written, by which server, what it holds (counts, sizes,
the resourceVersion of each kind's streams) and for what (`identity`: zones, kinds, `labels`,
`namespaces`, API server — what changes the records a server stores). Each body line is one
chunk `[KIND, [ROW, …]]` of at most CHUNK records, a ROW being the record's fields as a JSON
array (see `_rows` / `_records`). JSON and zlib cannot execute anything when read, unlike a
pickle; the checksum catches a truncated or damaged file before anything is decoded.

Chunks keep the writer's thread from holding the GIL for long stretches: each chunk is one
short json.dumps, and zlib and file I/O release the GIL, so the event loop keeps answering
queries while a snapshot is serialized (docs/kubernetes.md, docs/performance.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clusterdns import __version__
from clusterdns.plugins.kubernetes.records import (
    Address,
    Endpoints,
    Namespace,
    Pod,
    Port,
    Record,
    Service,
    shared_ports,
)

MAGIC = b"CDNSSNAP"
FORMAT_VERSION = 1
PREFIX = struct.Struct(">8sHII")
DIGEST = 32
CHUNK = 1000
#: zlib level 1: ~3x faster than the default for ~20 % more bytes (docs/performance.md).
LEVEL = 1
#: A snapshot bigger than this is not read (a 10k-service/100k-endpoint cluster is ~2 MB).
MAX_BYTES = 1 << 30
KINDS = ("Namespace", "Service", "Endpoints", "Pod")
#: The identity fields, in the order a mismatch is reported.
#: "pod_names" is only written when true (endpoints then keep their pod names, records.py), so
#: the snapshots of every other configuration stay as they were.
IDENTITY_FIELDS = ("zones", "kinds", "labels", "namespaces", "api", "pod_names")


class SnapshotError(Exception):
    """The file cannot be used; the message says why (without the file's name)."""


@dataclass(slots=True)
class Snapshot:
    written: float  # time.time() when the data was taken
    identity: dict[str, Any]
    counts: dict[str, int]
    versions: dict[str, dict[str, str]]  # kind -> namespace ("" cluster-wide) -> resourceVersion
    generator: str = ""
    size: int = 0  # bytes of the file
    body_bytes: int = 0  # uncompressed body
    tables: dict[str, list[Record]] = field(default_factory=dict)


# ---- rows ------------------------------------------------------------------------------------


def _ports(ports: tuple[Port, ...]) -> list[Any]:
    return [[p.name, p.protocol, p.port] for p in ports]


def _labels(labels: tuple[tuple[str, str], ...]) -> list[str]:
    return [x for kv in labels for x in kv]


def _row(r: Record) -> list[Any]:
    """A record as a JSON array: its fields in order, nested records as arrays too."""
    if isinstance(r, Service):
        return [r.name, r.namespace, r.type, list(r.cluster_ips), r.headless, r.external_name,
                _ports(r.ports), r.publish_not_ready, _labels(r.labels), r.version]  # fmt: skip
    if isinstance(r, Endpoints):
        return [r.name, r.namespace, r.service,
                [[a.ip, a.hostname, a.node_name, a.target, a.ready] for a in r.addresses],
                _ports(r.ports), r.version]  # fmt: skip
    if isinstance(r, Pod):
        return [r.name, r.namespace, list(r.ips), r.deleting, r.version]
    if not isinstance(r, Namespace):  # multicluster kinds are not kept in snapshots
        raise TypeError(f"no snapshot row for {type(r).__name__}")
    return [r.name, _labels(r.labels), r.version]


def _pairs(flat: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _records(kind: str, rows: list[list[Any]]) -> list[Record]:
    """Rows back to records, equal (==) to the ones written."""
    cache: dict[tuple[str, str, int], Port] = {}

    def ports(raw: list[Any]) -> tuple[Port, ...]:
        out = []
        for name, proto, num in raw:
            key = (str(name), str(proto), int(num))
            p = cache.get(key)
            if p is None:
                p = cache[key] = Port(*key)
            out.append(p)
        return shared_ports(tuple(out))

    out: list[Record] = []
    if kind == "Service":
        for name, ns, typ, ips, headless, ext, pts, pnr, labels, ver in rows:
            out.append(Service(name, sys.intern(ns), typ, tuple(ips), bool(headless), ext,
                               ports(pts), bool(pnr), _pairs(labels), ver))  # fmt: skip
    elif kind == "Endpoints":
        for name, ns, svc, addrs, pts, ver in rows:
            ads = tuple(Address(ip, host, sys.intern(node), target, bool(ready))
                        for ip, host, node, target, ready in addrs)  # fmt: skip
            out.append(Endpoints(name, sys.intern(ns), svc, ads, ports(pts), ver))
    elif kind == "Pod":
        for name, ns, ips, deleting, ver in rows:
            out.append(Pod(name, sys.intern(ns), tuple(ips), bool(deleting), ver))
    elif kind == "Namespace":
        for name, labels, ver in rows:
            out.append(Namespace(name, _pairs(labels), ver))
    else:
        raise SnapshotError(f"corrupt: unknown kind {kind!r}")
    return out


# ---- encoding --------------------------------------------------------------------------------


class Encoder:
    """Encodes snapshots, remembering each record's JSON between writes.

    Records are immutable and a store replaces, never mutates, them: a record object seen in
    the previous write has the same JSON now. So a write re-encodes only the records that
    changed since the last one; the rest is joining strings and compressing (zlib releases
    the GIL). One Encoder is used by one thread at a time.
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Record, str]] = {}

    def encode(
        self,
        tables: dict[str, list[Record]],
        written: float,
        identity: dict[str, Any],
        versions: dict[str, dict[str, str]],
    ) -> bytes:
        """The whole file for `tables` (kind -> records). Meant to run in a thread."""
        old, new = self._cache, {}
        comp = zlib.compressobj(LEVEL)
        parts: list[bytes] = []
        raw = 0
        for kind in KINDS:
            records = tables.get(kind)
            if records is None:
                continue
            for i in range(0, max(len(records), 1), CHUNK):
                frags = []
                for rec in records[i : i + CHUNK]:
                    hit = old.get(id(rec))
                    if hit is not None and hit[0] is rec:
                        frag = hit[1]
                    else:
                        frag = json.dumps(_row(rec), separators=(",", ":"))
                    new[id(rec)] = (rec, frag)
                    frags.append(frag)
                data = f'["{kind}",[{",".join(frags)}]]\n'.encode()
                raw += len(data)
                parts.append(comp.compress(data))
        parts.append(comp.flush())
        self._cache = new
        return _file(b"".join(parts), raw, written, identity, tables, versions)


def encode(
    tables: dict[str, list[Record]],
    written: float,
    identity: dict[str, Any],
    versions: dict[str, dict[str, str]],
) -> bytes:
    """The whole file for `tables`, from scratch."""
    return Encoder().encode(tables, written, identity, versions)


def _file(
    body: bytes,
    raw: int,
    written: float,
    identity: dict[str, Any],
    tables: dict[str, list[Record]],
    versions: dict[str, dict[str, str]],
) -> bytes:
    header = {
        "written": written,
        "generator": f"clusterdns/{__version__}",
        "identity": identity,
        "counts": {k: len(v) for k, v in tables.items()},
        "versions": versions,
        "body_bytes": raw,
    }
    head = json.dumps(header, sort_keys=True).encode()
    out = PREFIX.pack(MAGIC, FORMAT_VERSION, len(head), len(body)) + head + body
    return out + hashlib.sha256(out).digest()


def decode(data: bytes, records: bool = True) -> Snapshot:
    """Check and parse a whole file; raises SnapshotError saying what is wrong with it."""
    if len(data) < PREFIX.size:
        raise SnapshotError(f"truncated: {len(data)} bytes, not even a header")
    magic, version, head_len, body_len = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotError("not a ClusterDNS snapshot (no CDNSSNAP signature)")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"format version {version}, this server reads version {FORMAT_VERSION}")
    want = PREFIX.size + head_len + body_len + DIGEST
    if len(data) != want:
        what = "truncated" if len(data) < want else "corrupt"
        raise SnapshotError(f"{what}: {len(data)} bytes, its header says {want}")
    end = want - DIGEST
    if hashlib.sha256(data[:end]).digest() != data[end:]:
        raise SnapshotError("corrupt: checksum mismatch")
    try:
        header = json.loads(data[PREFIX.size : PREFIX.size + head_len])
        snap = Snapshot(
            written=float(header["written"]),
            identity=dict(header["identity"]),
            counts={str(k): int(v) for k, v in header["counts"].items()},
            versions={str(k): dict(v) for k, v in header["versions"].items()},
            generator=str(header.get("generator", "")),
            size=len(data),
            body_bytes=int(header.get("body_bytes", 0)),
        )
        if records:
            body = zlib.decompress(data[PREFIX.size + head_len : end])
            for kind in snap.counts:
                snap.tables[kind] = []
            for line in body.splitlines():
                kind, rows = json.loads(line)
                snap.tables.setdefault(kind, []).extend(_records(kind, rows))
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, zlib.error) as e:
        raise SnapshotError(f"corrupt: undecodable content ({type(e).__name__}: {e})") from None
    if records and {k: len(v) for k, v in snap.tables.items()} != snap.counts:
        raise SnapshotError("corrupt: record counts differ from the header's")
    return snap


# ---- files -----------------------------------------------------------------------------------


def read(path: str, records: bool = True) -> Snapshot:
    """Read and decode `path`. Never blocks on a FIFO or device (those are refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SnapshotError("it does not exist (none written yet)") from None
    except OSError as e:
        raise SnapshotError(f"cannot open it: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotError("not a regular file")
        if st.st_size > MAX_BYTES:
            raise SnapshotError(f"{st.st_size} bytes, more than the {MAX_BYTES} allowed")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as e:
        raise SnapshotError(f"cannot read it: {e.strerror}") from None
    finally:
        os.close(fd)
    return decode(b"".join(chunks), records)


def temp_path(path: str) -> str:
    return path + ".tmp"


def write(path: str, data: bytes, opened: Callable[[], None] | None = None) -> None:
    """Replace `path` atomically: write a temporary file beside it, fsync, rename, fsync the
    directory (created if missing). A reader sees the old file or the new one, never a part."""
    tmp = temp_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        if opened is not None:
            opened()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# ---- checks ----------------------------------------------------------------------------------


def mismatch(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """Why a snapshot written for `stored` does not fit `current` ("" when it does)."""
    for key in IDENTITY_FIELDS:
        a, b = stored.get(key), current.get(key)
        if a != b:
            return f"written for {key} {_show(a)}, this server has {_show(b)}"
    return ""


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if value else "(none)"
    return str(value) if value else "(none)"


def human_duration(seconds: float) -> str:
    """Go's Duration.String, rounded to the second: 1h2m3s, 4m0s, 12s."""
    s = int(max(0.0, seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def summary(counts: dict[str, int]) -> Iterator[str]:
    names = {"Service": "services", "Endpoints": "endpoint slices", "Namespace": "namespaces",
             "Pod": "pods"}  # fmt: skip
    for kind in names:
        if kind in counts:
            yield f"{counts[kind]} {names[kind]}"
