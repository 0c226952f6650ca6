"""The kubernetes plugin's `snapshot` option: last-known state across restarts (issue 13).

End to end through the test API server: sync and write, stop, restart with the API down (the
snapshot's answers, readiness, metrics), the API's return (changes served, no NXDOMAIN for
names that still exist), a snapshot file that is not usable (the server behaves as without
one), and a writer stuck on its file (a FIFO) while answers keep flowing. The bad-file cases
run in-process against SnapshotKeeper.restore, which logs what the server logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.flags
import dns.rcode
import pytest

from clusterdns.plugins.kubernetes import snapshot
from clusterdns.plugins.kubernetes.api import ApiSource
from clusterdns.plugins.kubernetes.records import Record, to_namespace, to_service
from clusterdns.plugins.kubernetes.snapshot_config import SnapshotSettings
from clusterdns.plugins.kubernetes.snapshot_runtime import SnapshotKeeper
from clusterdns.plugins.kubernetes.source import ApiSettings, SourceOptions
from clusterdns.plugins.kubernetes.store import Store
from tests.harness import DEMO_WEB, Server, run_cli, setup_error, validate_block
from tests.k8s_apiserver import ApiServer, endpoint_slice, namespace, service
from tests.test_k8s_api import ZONE, a_records, corefile, metric, wait_answer

QUERIES = [
    (f"web.default.svc.{ZONE}.", "A"),
    (f"h.default.svc.{ZONE}.", "A"),
    (f"db-0.h.default.svc.{ZONE}.", "A"),
    (f"_http._tcp.web.default.svc.{ZONE}.", "SRV"),
    (f"old.default.svc.{ZONE}.", "A"),
    (f"nope.default.svc.{ZONE}.", "A"),
    (f"{ZONE}.", "SOA"),
]


def answers(srv: Server) -> list[tuple[str, str, list[str]]]:
    """rcode, flags and answer records of QUERIES (the SOA serial left out: it is a time)."""
    out = []
    for name, rdtype in QUERIES:
        r = srv.query(name, rdtype)
        rrs = sorted(str(rr) for rr in r.answer) if rdtype != "SOA" else [str(len(r.answer))]
        out.append((dns.rcode.to_text(r.rcode()), dns.flags.to_text(r.flags), rrs))
    return out


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def readable(path: Path) -> snapshot.Snapshot | None:
    try:
        return snapshot.read(str(path))
    except snapshot.SnapshotError:
        return None


def fill(api: ApiServer) -> None:
    api.apply(namespace("default"), service("web", cluster_ip="10.40.0.1"))
    api.apply(service("old", cluster_ip="10.40.0.2"), service("h", cluster_ip=None))
    api.apply(
        endpoint_slice(
            "h-1", service_name="h", endpoints=[("10.41.0.1", True, "db-0"), ("10.41.0.2", True)]
        )
    )


def test_restart_with_the_api_down_serves_the_snapshot(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    snap = tmp_path / "state" / "snapshot"  # the directory is created by the first write
    with ApiServer() as api:
        fill(api)
        conf = corefile(api.url, f"snapshot {snap} 200ms\nstartup_timeout 1s")
        first = server_factory(conf, tmp=tmp_path)
        wait_answer(first, f"web.default.svc.{ZONE}.", ["10.40.0.1"])
        wait_for(lambda: (s := readable(snap)) and s.counts.get("Endpoints") == 1, what="write")
        before = answers(first)
        assert first.stop() == 0
        api.down()
        try:
            second = server_factory(conf, tmp=tmp_path)
            line = second.wait_output(
                r"\[WARNING\] plugin/kubernetes: Kubernetes API not reachable within 1s: serving "
                rf"snapshot {re.escape(str(snap))} written \S+Z \(\d+s ago\): 3 services, "
                r"1 endpoint slices, 1 namespaces"
            )
            assert line
            assert answers(second) == before  # the same answers as before the restart
            assert second.http("P1", "/ready")[0] == 200  # ready: see docs/kubernetes.md
            age = metric(second, "clusterdns_kubernetes_snapshot_age_seconds")
            assert age > 0
            assert metric(second, "clusterdns_kubernetes_staleness_seconds") >= age
            # while the API is away, the cluster changes
            api.gap(
                apply=[
                    service("new", cluster_ip="10.40.0.3"),
                    service("web", cluster_ip="10.40.0.9"),
                ],
                delete=[("Service", "default", "old")],
            )
            bad: list[str] = []
            stop = threading.Event()

            def hammer() -> None:  # names that exist before and after: never NXDOMAIN
                while not stop.is_set():
                    for name in ("web", "h"):
                        rcode, ips = a_records(second, f"{name}.default.svc.{ZONE}.")
                        if rcode != dns.rcode.NOERROR or not ips:
                            bad.append(f"{name}: {dns.rcode.to_text(rcode)} {ips}")

            t = threading.Thread(target=hammer)
            t.start()
        finally:
            api.up()
        try:
            wait_answer(second, f"new.default.svc.{ZONE}.", ["10.40.0.3"], 10)
            wait_answer(second, f"web.default.svc.{ZONE}.", ["10.40.0.9"])
            time.sleep(0.3)
        finally:
            stop.set()
            t.join()
        assert not bad, bad[:5]
        assert a_records(second, f"old.default.svc.{ZONE}.")[0] == dns.rcode.NXDOMAIN
        assert "fresh lists from the API replaced the snapshot's data" in second.output
        assert metric(second, "clusterdns_kubernetes_snapshot_age_seconds") == 0
        # the fresh state is written again (and the snapshot's own data never was)
        wait_for(lambda: (s := readable(snap)) and s.counts.get("Service") == 3, what="rewrite")
        data = snapshot.read(str(snap))
        names = sorted(r.name for r in data.tables["Service"])
        assert names == ["h", "new", "web"]
        # `clusterdns snapshot inspect` shows what the file holds
        res = run_cli("snapshot", "inspect", str(snap))
        assert res.returncode == 0, res.stderr
        assert f"zones: {ZONE}." in res.stdout and "services: 3" in res.stdout
        assert re.search(r"age: \d+s", res.stdout)


def test_unusable_snapshot_is_ignored_and_the_server_behaves_as_without(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    snap = tmp_path / "snapshot"
    snap.write_bytes(_flip(good(IDENTITY), 100))
    with ApiServer() as api:
        fill(api)
        api.down()
        try:
            srv = server_factory(corefile(api.url, f"snapshot {snap}\nstartup_timeout 300ms"))
            srv.wait_output(
                rf"\[WARNING\] plugin/kubernetes: ignoring snapshot {re.escape(str(snap))}: "
                r"corrupt: .*; waiting for the Kubernetes API"
            )
            # as today: not ready, SERVFAIL until the first sync
            assert srv.http("P1", "/ready")[0] == 503
            assert a_records(srv, f"web.default.svc.{ZONE}.")[0] == dns.rcode.SERVFAIL
        finally:
            api.up()
        wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.40.0.1"])


# ---- bad files, in-process -------------------------------------------------------------------

IDENTITY = {
    "zones": [f"{ZONE}."],
    "kinds": ["Endpoints", "Namespace", "Service"],
    "labels": "",
    "namespaces": [],
    "api": "",
}


def tables() -> dict[str, list[Record]]:
    return {
        "Service": [to_service(service("web", cluster_ip="10.40.0.1"))],
        "Endpoints": [],
        "Namespace": [to_namespace(namespace("default"))],
    }


def good(identity: dict[str, Any], written: float | None = None) -> bytes:
    return snapshot.encode(tables(), written or time.time(), identity, {"Service": {"": "7"}})


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


CASES: list[tuple[str, Callable[[Path, dict[str, Any]], None], str]] = [
    ("missing", lambda p, i: None, "it does not exist (none written yet)"),
    ("empty", lambda p, i: p.write_bytes(b""), "truncated: 0 bytes, not even a header"),
    ("truncated", lambda p, i: p.write_bytes(good(i)[:-40]), "truncated: "),
    ("corrupt", lambda p, i: p.write_bytes(_flip(good(i), 60)), "corrupt: checksum mismatch"),
    ("foreign file", lambda p, i: p.write_bytes(b"apiVersion: v1\nkind: List\n" * 10),
     "not a ClusterDNS snapshot"),
    ("foreign version",
     lambda p, i: p.write_bytes(good(i)[:8] + struct.pack(">H", 9) + good(i)[10:]),
     "format version 9, this server reads version 1"),
    ("foreign zones", lambda p, i: p.write_bytes(good({**i, "zones": ["example.org."]})),
     f"written for zones example.org., this server has {ZONE}."),
    ("foreign cluster", lambda p, i: p.write_bytes(good({**i, "api": "10.0.0.1:443"})),
     "written for api 10.0.0.1:443, this server has 127.0.0.1:"),
    ("other options", lambda p, i: p.write_bytes(good({**i, "labels": "dns=on"})),
     "written for labels dns=on, this server has (none)"),
    ("too old", lambda p, i: p.write_bytes(good(i, time.time() - 25 * 3600)),
     "too old: written 25h0m"),
    ("fifo", lambda p, i: os.mkfifo(p), "not a regular file"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_snapshot_files_are_ignored_with_a_warning(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path, dict[str, Any]], None],
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "snapshot"
    with ApiServer() as api:
        api.down()

        async def main() -> None:
            store = Store()
            src = ApiSource(ApiSettings(endpoint=api.url), store, SourceOptions(frozenset(IDENTITY["kinds"])))  # fmt: skip
            await src.start()
            identity = {**IDENTITY, "api": src.host}
            make(path, identity)
            keeper = SnapshotKeeper(SnapshotSettings(str(path)), store, src, identity)
            try:
                assert await keeper.restore(0.5) is False
                assert not store.services and not src.synced() and keeper.age() == 0
                # the same file, valid, is served: the case is what made it unusable
                if reason.startswith("it does not exist"):
                    path.write_bytes(good(identity))
                    assert await keeper.restore(0.5) is True
                    assert store.service("default", "web") is not None and src.synced()
                    assert keeper.age() >= 0
            finally:
                await keeper.stop()
                await src.stop()

        asyncio.run(main())
    warned = [r.getMessage() for r in caplog.records if "ignoring snapshot" in r.getMessage()]
    assert len(warned) == 1 and f"ignoring snapshot {path}: {reason}" in warned[0], warned


def test_roundtrip_keeps_every_field() -> None:
    recs = tables()
    recs["Service"].append(
        to_service(service("x", "ns", cluster_ip=["10.1.0.1", "fd00::1"], labels={"a": "b"}))
    )
    snap = snapshot.decode(snapshot.encode(recs, 1.0, IDENTITY, {"Service": {"": "12"}}))
    assert snap.tables == recs and snap.versions == {"Service": {"": "12"}}
    assert snap.counts == {"Service": 2, "Endpoints": 0, "Namespace": 1}


def test_snapshot_option_errors(tmp_path: Path) -> None:
    head = f"kubernetes {ZONE} {{\n"
    setup_error(tmp_path, head + "snapshot\n}\n", 3, "'snapshot' takes FILE [INTERVAL]")
    setup_error(tmp_path, head + "snapshot f 10\n}\n", 3, "invalid snapshot interval '10'")
    setup_error(
        tmp_path, head + "snapshot f 0s\n}\n", 3, "snapshot interval must be greater than 0"
    )
    setup_error(tmp_path, head + "snapshot f {\nmax_age\n}\n}\n", 4, "'max_age' takes one DURATION")
    setup_error(
        tmp_path, head + "snapshot f {\nkeep 1h\n}\n}\n", 4, "unknown snapshot option 'keep'"
    )
    setup_error(tmp_path, head + f"snapshot {tmp_path}\n}}\n", 3, "is a directory")
    code, err, _ = validate_block(tmp_path, head + "snapshot s 5s {\nmax_age 1h30m\n}\n}\n")
    assert code == 0 and "snapshot" not in err, err


def test_inspect_a_bad_file_says_why(tmp_path: Path) -> None:
    (tmp_path / "s").write_bytes(b"nothing")
    res = run_cli("snapshot", "inspect", str(tmp_path / "s"))
    assert res.returncode == 1
    assert f"{tmp_path / 's'}: truncated: 7 bytes, not even a header" in res.stderr


def test_snapshot_is_ignored_with_manifests(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(DEMO_WEB)
    code, err, conf = validate_block(
        tmp_path, f"kubernetes {ZONE} {{\nmanifests m.yaml\nsnapshot s\n}}\n"
    )
    assert code == 0, err
    assert f"{conf}:4 - kubernetes: 'snapshot' is ignored with 'manifests'" in err


# ---- the writer never blocks serving -----------------------------------------------------------


def test_a_stuck_snapshot_write_does_not_hold_answers(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The temporary file is a FIFO: the writer's open() blocks until someone reads it, as on a
    filesystem that hangs. Answers and changes keep flowing meanwhile."""
    snap = tmp_path / "snapshot"
    fifo = Path(snapshot.temp_path(str(snap)))
    os.mkfifo(fifo)
    with ApiServer() as api:
        fill(api)
        srv = server_factory(corefile(api.url, f"snapshot {snap} 100ms"))
        wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.40.0.1"])
        time.sleep(0.5)  # the writer is due by now, and stuck in open()
        for i in range(3):  # changes are served while it is stuck
            api.apply(service(f"n{i}", cluster_ip=f"10.40.1.{i + 1}"))
            wait_answer(srv, f"n{i}.default.svc.{ZONE}.", [f"10.40.1.{i + 1}"], 3)
        for _ in range(50):
            assert a_records(srv, f"web.default.svc.{ZONE}.") == (dns.rcode.NOERROR, ["10.40.0.1"])
        assert not snap.exists()  # nothing was renamed: the write is still held
        # reading the FIFO releases the writer: what it sends is a whole snapshot
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        os.close(fd)
        held = snapshot.decode(b"".join(chunks))
        assert held.counts["Service"] >= 3
        fifo.unlink()  # the filesystem is back: the next write lands
        api.apply(service("last", cluster_ip="10.40.2.1"))
        wait_for(
            lambda: (s := readable(snap)) and any(r.name == "last" for r in s.tables["Service"]),
            what="a write after the stuck one",
        )
        assert srv.stop() == 0


def test_stopping_with_a_stuck_write_does_not_hang(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    snap = tmp_path / "snapshot"
    os.mkfifo(snapshot.temp_path(str(snap)))
    with ApiServer() as api:
        fill(api)
        srv = server_factory(corefile(api.url, f"snapshot {snap} 100ms"))
        wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.40.0.1"])
        time.sleep(0.5)
        assert srv.stop() == 0  # within FINAL_WAIT, not killed after the harness's 15 s
