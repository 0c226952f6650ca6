"""The running server: listeners, HTTP endpoints and plugins of the current config.

A reload builds the new config completely, starts its plugins and binds its new addresses
before swapping routes; listeners present in both configs stay open, so no query is dropped.
If anything fails on the way, the old config keeps serving.

The fast path (clusterdns.server.fastpath) is set up here: served chains are built with its
policy wrapper, a reload voids every pre-rendered answer at the moment the routes swap, a timer
folds the fast answers' batched metrics in every second, and `workers` extra processes
(clusterdns.server.workers) share the UDP sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from clusterdns import metrics
from clusterdns.config import Block, Config, ListenAddr, build_chain
from clusterdns.errors import ConfigErrors
from clusterdns.plugin import Plugin
from clusterdns.server import fastpath
from clusterdns.server.dispatch import Router
from clusterdns.server.http import HttpRegistry
from clusterdns.server.listener import Listener

if TYPE_CHECKING:
    from clusterdns.server.workers import WorkerPool

log = logging.getLogger("clusterdns")
FLUSH_EVERY = 1.0  # seconds between folds of the fast path's metrics (scrapes fold at once)


class Runtime:
    def __init__(self, config: Config, default_port: int = 53, workers: int = 0) -> None:
        self.config = config
        self.default_port = default_port
        self.fast = fastpath.enabled()
        #: Worker processes only answer from the fast path: without it they would not help.
        self.workers = workers if self.fast else 0
        self.pool: WorkerPool | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.http = HttpRegistry()
        self.listeners: dict[ListenAddr, Listener] = {}
        self.stopping = asyncio.Event()
        self.shutting_down = False
        self.exit_code = 0  # a plugin that stops the server (loop) sets 1
        self._reload_lock = asyncio.Lock()
        self.starting = config  # the config whose plugins are being started
        self._tasks: set[asyncio.Task[bool]] = set()

    def plugins(self) -> list[Plugin]:
        return self.config.plugins()

    def _listener(self, addr: ListenAddr, zones: dict[str, Block]) -> Listener:
        return Listener(addr, Router(addr, zones, fast=self.fast), reuseport=self.workers > 0)

    def _prepare(self, cfg: Config) -> None:
        """Serve `cfg` with the fast path's policy wrapped around each plugin's handler."""
        if self.fast:
            for b in cfg.blocks:
                b.chain = build_chain(b.plugins, fastpath.wrap)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await fastpath.flush()
            except Exception:
                log.exception("fast path: folding metrics failed")

    async def start(self) -> None:
        """Start plugins and bind every address; on failure undo and raise."""
        self._prepare(self.config)
        try:
            await self._start_plugins(self.config)
        except BaseException:
            await self.http.close()
            raise
        try:
            for addr, zones in self.config.routes.items():
                lst = self._listener(addr, zones)
                await lst.start()
                self.listeners[addr] = lst
        except OSError:
            await self._close_listeners(list(self.listeners))
            await self._stop_plugins(self.config)
            await self.http.close()
            raise
        self._set_enabled(self.config)
        for w in self.config.warnings:
            log.warning("%s", w)
        for addr, lst in self.listeners.items():
            log.debug("%s listening on %s:%d", addr.label, lst.local[0] or "*", lst.local[1])
        if self.fast:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        if self.workers > 0:
            from clusterdns.server.workers import WorkerPool

            self.pool = WorkerPool(self, self.workers)
            await self.pool.start()

    async def _start_plugins(self, cfg: Config) -> None:
        started: list[Plugin] = []
        self.starting = cfg
        try:
            for p in cfg.plugins():
                await p.start(self)
                started.append(p)
        except BaseException:
            for p in reversed(started):
                await p.stop()
            raise

    async def _stop_plugins(self, cfg: Config) -> None:
        for p in reversed(cfg.plugins()):
            try:
                await p.stop()
            except Exception:
                log.exception("stopping plugin/%s failed", p.name)

    async def _close_listeners(self, addrs: list[ListenAddr]) -> None:
        for a in addrs:
            lst = self.listeners.pop(a, None)
            if lst is not None:
                await lst.stop()

    def _set_enabled(self, cfg: Config) -> None:
        metrics.PLUGIN_ENABLED.clear()
        for addr, zones in cfg.routes.items():
            for zone, block in zones.items():
                for p in block.plugins:
                    if not p.handler:  # CoreDNS lists the plugins in the query chain only
                        continue
                    metrics.PLUGIN_ENABLED.labels(addr.label, zone, "", p.name).set(1)

    async def reload(self, new: Config) -> bool:
        """Swap to `new`; False (old config still serving) if it cannot start."""
        async with self._reload_lock:
            self._prepare(new)
            try:
                await self._start_plugins(new)
            except Exception as e:
                log.error("reload: starting the new configuration failed: %s", e)
                return False
            added: dict[ListenAddr, Listener] = {}
            try:
                for addr, zones in new.routes.items():
                    if addr not in self.listeners:
                        lst = self._listener(addr, zones)
                        await lst.start()
                        added[addr] = lst
            except OSError as e:
                for lst in added.values():
                    await lst.stop()
                await self._stop_plugins(new)
                log.error("reload: cannot listen: %s", e)
                return False
            for addr, zones in new.routes.items():
                if addr in self.listeners:
                    self.listeners[addr].router.zones = zones
            if self.fast:  # in the same step as the swap: no answer of the old config after it
                fastpath.new_epoch()
                for lst in self.listeners.values():
                    if lst.router.fast is not None:
                        lst.router.fast.clear()
            gone = [a for a in self.listeners if a not in new.routes]
            self.listeners.update(added)
            old, self.config = self.config, new
            if self.pool is not None:
                await self.pool.sync()
            await self._close_listeners(gone)
            await self._stop_plugins(old)
            self._set_enabled(new)
            for w in new.warnings:
                log.warning("%s", w)
            return True

    def request_reload(self, trigger: str) -> None:
        """Reload from the Corefile in a task of its own (the caller may be stopped by it).

        `trigger` starts the error line of a failure: who asked, in CoreDNS's words
        ("plugin/reload: Corefile changed but reload failed", "SIGUSR1").
        """
        task = asyncio.get_running_loop().create_task(self.reload_file(trigger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload_file(self, trigger: str) -> bool:
        """Re-read the Corefile the server was started with and apply it if valid.

        Logged as caddy's restart: `Reloading`, then what the new plugins say when `running`
        (the reload plugin's SHA512 line) and `Reloading complete`; or `Restart failed: …` and
        the trigger's error line, the old configuration still serving.
        """
        from clusterdns import config as config_mod

        try:
            path = None if self.config.path == "<default>" else self.config.path
            new = config_mod.load(path, self.default_port)
        except ConfigErrors as e:
            errors = [str(err) for err in e.errors]
        else:
            if new.digest == self.config.digest:
                return True
            log.info("Reloading")
            errors = []
            if await self.reload(new):
                for p in new.plugins():
                    p.running(self)
                log.info("Reloading complete")
                return True
            errors = ["the new configuration could not start (see above)"]
        for err in errors:
            log.error("Restart failed: %s", err)
        log.error("%s: %s", trigger, errors[0])
        metrics.RELOAD_FAILED.inc()
        return False

    async def stop(self, lameduck: bool = True) -> None:
        """Graceful stop: lameduck (plugins' shutdown hooks), then close everything."""
        self.shutting_down = True
        for t in list(self._tasks):
            t.cancel()
        if lameduck:
            await asyncio.gather(*(p.shutdown() for p in self.plugins()), return_exceptions=True)
        if self.pool is not None:
            await self.pool.stop()
            self.pool = None
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._close_listeners(list(self.listeners))
        await self._stop_plugins(self.config)
        await self.http.close()
