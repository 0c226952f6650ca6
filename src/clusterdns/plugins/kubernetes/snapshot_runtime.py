"""Keeping the last-known state across restarts: the `snapshot` option at run time.

Writing: every INTERVAL the keeper looks whether the store changed since the last write; if it
did (and the data is a complete, fresh sync — never a partial list, never the snapshot it
was itself started from), it takes a view of the records on the event loop (lists of the
immutable records: under a millisecond for 20k objects) and hands it to a daemon thread that
encodes it (snapshot.py; records unchanged since the last write reuse their JSON) and
replaces the file atomically. No query waits for a write: the
loop only takes the view; one write is in flight at a time, and a write that hangs (a stuck
filesystem) delays only the next writes. Stopping the server makes a last write if the data
changed since the previous one, and waits for it at most FINAL_WAIT.

Restoring: when the API has not answered within `startup_timeout`, the kinds not synced yet
are filled from the file — if it exists, is intact, was written for the same zones, options
and API server, and is not older than `max_age`; otherwise a warning names the file and the
reason, and the server goes on as without the option. The restored data counts as synced,
so the server is ready and answers NXDOMAIN for what it does not hold (docs/kubernetes.md
says why), and `clusterdns_kubernetes_snapshot_age_seconds` says how old it is. The API's
first lists replace all of it in one step (ApiSource._first_list).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from clusterdns.plugins.kubernetes import snapshot
from clusterdns.plugins.kubernetes.records import Record
from clusterdns.plugins.kubernetes.snapshot import SnapshotError, human_duration
from clusterdns.plugins.kubernetes.snapshot_config import SnapshotSettings
from clusterdns.plugins.kubernetes.store import Store

if TYPE_CHECKING:
    from clusterdns.plugins.kubernetes.api import ApiSource

log = logging.getLogger("clusterdns.plugins.kubernetes")

#: How long stopping the server waits for the last write.
FINAL_WAIT = 5.0
#: Write failures are logged at most this often.
WARN_EVERY = 60.0


def view(store: Store, kinds: list[str]) -> dict[str, list[Record]]:
    """The store's records as lists: an immutable view, since records are frozen."""
    tables: dict[str, list[Record]] = {}
    for kind in kinds:
        if kind == "Service":
            tables[kind] = list(store.services.values())
        elif kind == "Endpoints":
            tables[kind] = list(store.endpoints.values())
        elif kind == "Pod":
            tables[kind] = list(store.pods.values())
        else:
            tables[kind] = list(store.namespaces.values())
    return tables


class SnapshotKeeper:
    """Writes one plugin instance's store to its snapshot file, and restores it at start."""

    def __init__(
        self,
        settings: SnapshotSettings,
        store: Store,
        source: ApiSource,
        identity: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.path = settings.path
        self.store = store
        self.source = source
        self.identity = identity
        #: The kinds kept; `multicluster`'s ServiceImports and slices are not (they stay
        #: unsynced until the API delivers them).
        self.kinds = [k for k in identity["kinds"] if k in snapshot.KINDS]
        #: When the snapshot being served was written (0: none is served).
        self.written = 0.0
        self._generation = -1  # the store generation last written
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._last_warn = 0.0
        self._encoder = snapshot.Encoder()  # used by one write (thread) at a time
        self.writes = 0
        track(self)

    # ---- restoring -----------------------------------------------------------------------

    async def restore(self, waited: float) -> bool:
        """Serve the snapshot for the kinds the API has not delivered yet; True if it is."""
        missing = [k for k in self.kinds if k not in self.store.synced]
        if not missing:
            return False
        try:
            snap = await asyncio.to_thread(snapshot.read, self.path)
            why = snapshot.mismatch(snap.identity, self.identity)
            if why:
                raise SnapshotError(why)
            age = max(0.0, time.time() - snap.written)
            if age > self.settings.max_age:
                raise SnapshotError(
                    f"too old: written {human_duration(age)} ago, "
                    f"max_age is {human_duration(self.settings.max_age)}"
                )
        except SnapshotError as e:
            log.warning(
                "plugin/kubernetes: ignoring snapshot %s: %s; waiting for the Kubernetes API",
                self.path,
                e,
            )
            return False
        if all(k in self.store.synced for k in missing):  # the API answered meanwhile
            return False
        self.store.restore({k: snap.tables.get(k, []) for k in missing})
        self.written = snap.written
        self.source.restored_at(snap.written)
        stamp = datetime.fromtimestamp(snap.written, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        log.warning(
            "plugin/kubernetes: Kubernetes API not reachable within %s: serving snapshot %s "
            "written %s (%s ago): %s",
            human_duration(waited) if waited >= 1 else f"{waited * 1000:.0f}ms",
            self.path,
            stamp,
            human_duration(age),
            ", ".join(snapshot.summary(snap.counts)),
        )
        return True

    def age(self) -> float:
        """Seconds since the served snapshot was written; 0 when live data is served."""
        if not self.written or not self.store.restored:
            return 0.0
        return max(0.0, time.time() - self.written)

    # ---- writing -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        untrack(self)
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + FINAL_WAIT
        while self._busy() and time.monotonic() < deadline:  # a write under way (or stuck)
            await asyncio.sleep(0.05)
        if self._busy():
            return  # stuck: leave it (a daemon thread does not keep the process alive)
        if self._due():
            try:
                await asyncio.wait_for(self._write(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning(
                    "plugin/kubernetes: snapshot %s: last write still running after %.0fs, "
                    "not waiting for it",
                    self.path,
                    FINAL_WAIT,
                )

    def _busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _due(self) -> bool:
        st = self.store
        return self.source.synced() and not st.restored and st.generation != self._generation

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            if self._due() and not self._busy():
                await self._write()

    async def _write(self) -> None:
        """Take the view here, encode and write it in a daemon thread, wait for it."""
        generation = self.store.generation
        tables = view(self.store, self.kinds)
        versions = self.source.versions()
        taken = time.time()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, float, float]] = loop.create_future()
        path, identity, encoder = self.path, self.identity, self._encoder

        def work() -> None:
            result: tuple[int, float, float] | None = None
            error: BaseException | None = None
            try:
                t0, c0 = time.monotonic(), time.thread_time()
                data = encoder.encode(tables, taken, identity, versions)
                cpu = time.thread_time() - c0
                snapshot.write(path, data)
                result = (len(data), cpu, time.monotonic() - t0)
            except Exception as e:
                error = e

            def settle() -> None:
                if done.done():
                    return
                if error is not None:
                    done.set_exception(error)
                else:
                    assert result is not None
                    done.set_result(result)

            with contextlib.suppress(RuntimeError):  # the loop is gone (server stopped)
                loop.call_soon_threadsafe(settle)

        self._thread = threading.Thread(target=work, name="clusterdns-snapshot", daemon=True)
        self._thread.start()
        try:
            size, cpu, took = await done
        except Exception as e:  # OSError mostly; anything else must not end the writer
            now = time.monotonic()
            if now - self._last_warn >= WARN_EVERY:
                self._last_warn = now
                log.warning("plugin/kubernetes: cannot write snapshot %s: %s", self.path, e)
            return
        self._generation = generation
        self.writes += 1
        log.debug(
            "plugin/kubernetes: snapshot %s written: %d bytes, %.3fs CPU, %.3fs",
            self.path,
            size,
            cpu,
            took,
        )


# ---- metrics ---------------------------------------------------------------------------------

_KEEPERS: weakref.WeakSet[SnapshotKeeper] = weakref.WeakSet()
_LOCK = threading.Lock()


def track(keeper: SnapshotKeeper) -> None:
    with _LOCK:
        _KEEPERS.add(keeper)


def untrack(keeper: SnapshotKeeper) -> None:
    with _LOCK:
        _KEEPERS.discard(keeper)


class _AgeCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        with _LOCK:
            keepers = list(_KEEPERS)
        age = GaugeMetricFamily(
            "clusterdns_kubernetes_snapshot_age_seconds",
            "Age of the snapshot whose data is served while the Kubernetes API has not "
            "answered since the start; 0 when live data is served.",
        )
        age.add_metric([], max((k.age() for k in keepers), default=0.0))
        yield age


REGISTRY.register(_AgeCollector())
