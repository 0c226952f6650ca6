"""Recovery after an API outage (issue 11): stalled streams retry as soon as the API is back.

ApiSource runs in-process against the test API server. Its streams' backoff is made long
(10-20 s for every failure) so that, without the recovery, a change made during the outage
could not be served before the next backoff ends: the 5 s bound checked here (the issue's
target) is then met only because the first successful request wakes every stream.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from clusterdns.plugins.kubernetes.api import ApiSource
from clusterdns.plugins.kubernetes.api_client import ApiError, Unreachable
from clusterdns.plugins.kubernetes.recovery import Recovery, is_outage
from clusterdns.plugins.kubernetes.source import ApiSettings, SourceOptions
from clusterdns.plugins.kubernetes.store import Store
from tests.k8s_apiserver import ApiServer, endpoint_slice, namespace, service
from tests.test_k8s_api import off_loop, until

KINDS = frozenset({"Service", "Endpoints", "Namespace"})


class SlowBackoffSource(ApiSource):
    """Every failure pauses its stream 10-20 s: longer than the whole test's outage."""

    BACKOFF_BASE = 20.0
    BACKOFF_CAP = 20.0


def test_change_made_during_an_outage_is_served_within_5s_of_the_return(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with ApiServer() as api:
        api.apply(namespace("default"), service("web", cluster_ip="10.30.0.1"))
        api.apply(service("gone", cluster_ip="10.30.0.9"))
        api.apply(endpoint_slice("web-1", service_name="web", endpoints=[("10.30.1.1", True)]))

        async def main() -> None:
            store = Store()
            src = SlowBackoffSource(ApiSettings(endpoint=api.url), store, SourceOptions(KINDS))
            await src.start()
            try:
                await until(src.synced, what="first sync")
                await until(lambda: api.watch_count() == 3, what="watches")
                await until(lambda: src.staleness() == 0.0, 5, "watches live")
                await off_loop(api.down)
                # every stream has failed and is paused in its (long) backoff
                await until(lambda: src.staleness() > 0.0, 5, "the outage to be noticed")
                await asyncio.sleep(1.0)
                assert store.service("default", "web") is not None  # last-known state served
                # changes the watches cannot see: a relist is needed to learn them
                await off_loop(lambda: api.gap(
                    apply=[service("new", cluster_ip="10.30.0.2"),
                           endpoint_slice("web-1", service_name="web",
                                          endpoints=[("10.30.1.2", True)])],
                    delete=[("Service", "default", "gone")],
                ))  # fmt: skip
                wakes = src.recovery.wakes
                await off_loop(api.up)
                returned = time.monotonic()
                await until(lambda: store.service("default", "new") is not None, 10, "change")
                served = time.monotonic() - returned
                assert served < 5.0, f"served {served:.1f}s after the API returned"
                ips = [a.ip for e in store.service_endpoints("default", "web") for a in e.addresses]
                await until(
                    lambda: (
                        [
                            a.ip
                            for e in store.service_endpoints("default", "web")
                            for a in e.addresses
                        ]
                        == ["10.30.1.2"]
                    ),
                    5,
                    f"endpoints relisted (had {ips})",
                )
                assert store.service("default", "gone") is None
                await until(lambda: src.staleness() == 0.0, 5, "every watch reopened")
                assert src.recovery.wakes == wakes + 1
                # one probe request found the API back (GET /api/v1), not each stream
                assert any(r.path.rstrip("/") == "/api/v1" for r in api.requests())
            finally:
                await src.stop()

        asyncio.run(main())
    assert "plugin/kubernetes: API reachable again after" in caplog.text


def test_a_stream_that_keeps_failing_is_not_woken_twice_in_a_row() -> None:
    """A woken stream whose retry fails sleeps its next backoff in full, so a kind that keeps
    failing (403 on one kind while the others work) is not retried at every success."""

    async def main() -> None:
        rec = Recovery(lambda: asyncio.sleep(0, False), lambda: None)
        paused = asyncio.create_task(rec.pause(30.0, wakeable=True))
        await asyncio.sleep(0.01)
        rec.back()
        assert await asyncio.wait_for(paused, 2.0) is True  # woken: retried early
        full = asyncio.create_task(rec.pause(0.3, wakeable=False))
        await asyncio.sleep(0.01)
        rec.back()
        assert await full is False  # the retry failed: the next pause runs in full
        await rec.stop()

    asyncio.run(main())


def test_which_failures_start_the_probe() -> None:
    assert is_outage(Unreachable(ConnectionRefusedError("refused")))
    assert is_outage(ApiError(503, "unavailable")) and is_outage(ApiError(429, "slow down"))
    assert not is_outage(ApiError(403, "forbidden")) and not is_outage(ApiError(404, ""))
