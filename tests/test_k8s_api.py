"""ApiSource against the test API server, through the real client library (kubernetes_asyncio).

The first part runs ApiSource in-process against a Store (list/watch semantics, 410, outages,
tokens, TLS, limits, metrics); the second runs the real server with a kubernetes block and
checks answers, readiness and metrics end to end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import dns.rcode
import pytest
from prometheus_client import REGISTRY

from clusterdns.plugins.kubernetes import api_client
from clusterdns.plugins.kubernetes.api import ApiSource
from clusterdns.plugins.kubernetes.api_config import SA_DIR_ENV, ApiConfigError
from clusterdns.plugins.kubernetes.source import ApiSettings, SourceOptions
from clusterdns.plugins.kubernetes.store import Store
from tests.harness import Case, Server, check
from tests.k8s_apiserver import (
    ApiServer,
    endpoint_slice,
    kubeconfig,
    make_certs,
    namespace,
    pod,
    service,
)

BASIC = frozenset({"Service", "Endpoints"})


@pytest.fixture
def api() -> Iterator[ApiServer]:
    srv = ApiServer().start()
    yield srv
    srv.stop()


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> float:
    """Poll `cond` on the running loop; return how long it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def off_loop(fn: Callable[[], Any]) -> Any:
    """Run a blocking server hook without stalling the client's event loop."""
    return await asyncio.to_thread(fn)


def run_source(
    settings: ApiSettings,
    options: SourceOptions,
    body: Callable[[ApiSource, Store], Awaitable[None]],
) -> None:
    async def main() -> None:
        store = Store()
        src = ApiSource(settings, store, options)
        await src.start()
        try:
            await body(src, store)
        finally:
            await src.stop()

    asyncio.run(main())


def sample(name: str) -> float:
    """The sum of every sample named `name` in this process's registry."""
    return labeled(name)


def labeled(name: str, **labels: str) -> float:
    """The sum of the samples named `name` that carry all of `labels`."""
    return sum(
        s.value
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# ---- list and watch ---------------------------------------------------------------------------


def test_paginated_list_then_watch(api: ApiServer) -> None:
    api.load(service(f"s{i}", cluster_ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(1203))
    api.apply(endpoint_slice("s0-x", service_name="s0", endpoints=[("10.2.0.1", True)]))

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced, what="first sync")
        assert len(store.services) == 1203
        assert store.service_endpoints("default", "s0")[0].addresses[0].ip == "10.2.0.1"
        lists = api.requests("services", watch=False)
        assert [r.query.get("limit") for r in lists] == ["500", "500", "500"]
        assert "continue" not in lists[0].query and all("continue" in r.query for r in lists[1:])
        await until(lambda: api.watch_count("services") == 1, what="watch")
        watches = api.requests("services", watch=True)
        assert watches[0].query["allowWatchBookmarks"] == "True"  # Go's ParseBool takes it
        assert 300 <= int(watches[0].query["timeoutSeconds"]) <= 600
        # a new service is served within a second
        api.apply(service("new", cluster_ip="10.9.9.9"))
        took = await until(lambda: store.service("default", "new") is not None, 1.0, "new service")
        assert took < 1.0
        api.delete("Service", "default", "s1")
        await until(lambda: store.service("default", "s1") is None, 1.0, "deletion")

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)


def test_list_resource_version_is_the_watch_start(api: ApiServer) -> None:
    api.apply(service("a"))
    rv = api.apply(service("b"))

    async def body(src: ApiSource, store: Store) -> None:
        await until(lambda: api.watch_count("services") == 1, what="watch")
        assert api.requests("services", watch=True)[0].query["resourceVersion"] == str(rv)

    run_source(ApiSettings(endpoint=api.url), SourceOptions(frozenset({"Service"})), body)


def test_endpoint_not_ready_then_ready(api: ApiServer) -> None:
    api.apply(service("h", cluster_ip=None))
    api.apply(
        endpoint_slice("h-1", service_name="h", endpoints=[("10.3.0.1", True), ("10.3.0.2", True)])
    )

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)

        def ready() -> list[str]:
            return sorted(
                a.ip
                for e in store.service_endpoints("default", "h")
                for a in e.addresses
                if a.ready
            )

        assert ready() == ["10.3.0.1", "10.3.0.2"]
        api.apply(
            endpoint_slice(
                "h-1", service_name="h", endpoints=[("10.3.0.1", True), ("10.3.0.2", False)]
            )
        )
        await until(lambda: ready() == ["10.3.0.1"], 1.0, "not-ready endpoint")

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)


def test_namespaces_are_listed_and_watched_one_by_one(api: ApiServer) -> None:
    api.apply(namespace("a"), namespace("b"), namespace("c"))
    for ns in "abc":
        api.apply(service("web", ns), endpoint_slice("web-1", ns, "web", [("10.4.0.1", True)]))
        api.apply(pod("p", ns, "10.5.0.1"), pod("done", ns, "10.5.0.2", phase="Succeeded"))
    opts = SourceOptions(
        frozenset({"Service", "Endpoints", "Pod", "Namespace"}), namespaces=("a", "b")
    )

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)
        assert sorted(store.services) == [("a", "web"), ("b", "web")]
        assert sorted(store.endpoints) == [("a", "web-1"), ("b", "web-1")]
        assert sorted(store.pods) == [("a", "p"), ("b", "p")]  # finished pods are not listed
        assert sorted(store.namespaces) == ["a", "b"]
        paths = {r.path for r in api.requests()}
        assert "/api/v1/namespaces/a/services" in paths and "/api/v1/namespaces/b/pods" in paths
        assert "/apis/discovery.k8s.io/v1/namespaces/b/endpointslices" in paths
        assert "/api/v1/services" not in paths and "/api/v1/namespaces/c/services" not in paths
        assert "/api/v1/namespaces" in paths  # namespaces are cluster-scoped
        pods = api.requests("pods")
        assert all(
            r.query["fieldSelector"]
            == "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
            for r in pods
        )
        await until(lambda: api.watch_count() == 7, what="2 watches per namespaced kind + 1")
        api.apply(service("late", "c"), service("late", "a"))
        await until(lambda: store.service("a", "late") is not None)
        assert store.service("c", "late") is None
        api.apply(namespace("c", {"x": "y"}))
        api.apply(namespace("a", {"x": "y"}))
        await until(lambda: dict(store.namespaces["a"].labels) == {"x": "y"})
        assert "c" not in store.namespaces

    run_source(ApiSettings(endpoint=api.url), opts, body)


def test_label_selector_goes_to_the_server(api: ApiServer) -> None:
    api.apply(service("in", labels={"dns": "yes"}), service("out", labels={"dns": "no"}))
    api.apply(
        endpoint_slice(
            "in-1", service_name="in", labels={"dns": "yes"}, endpoints=[("10.6.0.1", True)]
        )
    )
    api.apply(
        endpoint_slice(
            "out-1", service_name="out", labels={"dns": "no"}, endpoints=[("10.6.0.2", True)]
        )
    )
    opts = SourceOptions(BASIC, label_selector="dns in (yes, maybe)")

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)
        assert list(store.services) == [("default", "in")]
        assert list(store.endpoints) == [("default", "in-1")]
        assert {r.query.get("labelSelector") for r in api.requests("services")} == {
            "dns in (yes, maybe)"
        }
        # a service leaving the selector arrives as DELETED
        api.apply(service("in", labels={"dns": "gone"}))
        await until(lambda: not store.services, 1.0)

    run_source(ApiSettings(endpoint=api.url), opts, body)


def test_bad_objects_are_skipped(api: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    api.apply(service("good", cluster_ip="10.7.0.1"), service("bad", cluster_ip="not-an-ip"))
    before = labeled("clusterdns_kubernetes_skipped_objects_total", kind="Service")

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)
        assert list(store.services) == [("default", "good")]
        api.apply(service("good", cluster_ip="also-bad"))  # a MODIFIED that cannot be used
        await until(lambda: not store.services, 1.0, "stale record removed")
        api.apply(service("good", cluster_ip="10.7.0.2"))
        await until(lambda: bool(store.services), 1.0)

    run_source(ApiSettings(endpoint=api.url), SourceOptions(frozenset({"Service"})), body)
    assert "plugin/kubernetes: skipping Service default/bad:" in caplog.text
    assert labeled("clusterdns_kubernetes_skipped_objects_total", kind="Service") == before + 2


# ---- 410 Gone, outages, bookmarks -------------------------------------------------------------


class CheckedStore(Store):
    """A Store that checks an invariant after every write (what a query could observe)."""

    invariant: Callable[[Store], None] = staticmethod(lambda s: None)
    writes: int = 0

    def upsert(self, rec: Any) -> None:
        super().upsert(rec)
        self._check()

    def delete(self, kind: str, key: Any) -> None:
        super().delete(kind, key)
        self._check()

    def replace(self, kind: str, records: list[Any]) -> None:
        super().replace(kind, records)
        self._check()

    def _check(self) -> None:
        self.writes += 1
        if "Service" in self.synced and "Endpoints" in self.synced:
            type(self).invariant(self)


@pytest.mark.parametrize("gone", ["event", "http"])
def test_expired_watch_relists_without_a_gap(gone: str) -> None:
    def stays(store: Store) -> None:
        # "keep" exists before and after the relist: every state a query can see has it,
        # with its endpoint, and nothing is ever half-listed.
        assert store.service("default", "keep") is not None
        assert [a.ip for e in store.service_endpoints("default", "keep") for a in e.addresses] == [
            "10.8.0.1"
        ]
        assert len(store.services) in (601, 602)

    CheckedStore.invariant = staticmethod(stays)
    with ApiServer(gone=gone) as api:
        api.load(service(f"x{i}", cluster_ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(599))
        api.apply(service("keep", cluster_ip="10.8.0.100"), service("old", cluster_ip="10.8.0.101"))
        api.apply(endpoint_slice("keep-1", service_name="keep", endpoints=[("10.8.0.1", True)]))
        relists = labeled("clusterdns_kubernetes_relists_total", kind="Service")

        async def main() -> None:
            store = CheckedStore()
            src = ApiSource(ApiSettings(endpoint=api.url), store, SourceOptions(BASIC))
            await src.start()
            try:
                await until(lambda: api.watch_count() == 2, what="watches")
                lists = len(api.requests("services", watch=False))
                await off_loop(lambda: api.gap(apply=[service("new", cluster_ip="10.8.0.102")],
                                               delete=[("Service", "default", "old")]))  # fmt: skip
                await until(lambda: store.service("default", "new") is not None, 5, "relist")
                assert store.service("default", "old") is None
                assert len(api.requests("services", watch=False)) == lists + 2  # 2 pages
                assert store.writes >= 3
            finally:
                await src.stop()

        asyncio.run(main())
        assert labeled("clusterdns_kubernetes_relists_total", kind="Service") == relists + 1
    CheckedStore.invariant = staticmethod(lambda s: None)


def test_expired_continue_token_restarts_the_list(api: ApiServer) -> None:
    api.load(service(f"s{i}", cluster_ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(1100))
    api.fail_next(1, 410, match=lambda r: "continue" in r.query)

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)
        assert len(store.services) == 1100
        lists = [r.query.get("continue", "") != "" for r in api.requests("services", watch=False)]
        assert lists == [False, True, False, True, True]

    run_source(ApiSettings(endpoint=api.url), SourceOptions(frozenset({"Service"})), body)


def test_api_outage_keeps_last_known_state(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api.apply(service("web", cluster_ip="10.10.0.1"))
    host = api.url.split("//")[1]

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)
        await until(lambda: api.watch_count() == 2)
        # The server has both watches; the client marks each live once its response starts.
        await until(lambda: src.staleness() == 0.0, 5, "both watches live")
        errors = labeled("coredns_kubernetes_rest_client_requests_total", code="<error>", host=host)
        await off_loop(api.down)
        await until(lambda: src.staleness() > 0.5, 5, "staleness to grow")
        assert store.service("default", "web") is not None  # still served
        assert sample("clusterdns_kubernetes_staleness_seconds") > 0.5
        assert (
            labeled("coredns_kubernetes_rest_client_requests_total", code="<error>", host=host)
            > errors
        )
        assert re.search(
            r"plugin/kubernetes: API unreachable for \d+s, serving last-known state", caplog.text
        )
        # changes made while the API was away (and the history lost) arrive after it returns
        await off_loop(lambda: api.gap(apply=[service("later", cluster_ip="10.10.0.2")],
                                       delete=[("Service", "default", "web")]))  # fmt: skip
        assert store.service("default", "web") is not None
        await off_loop(api.up)
        await until(lambda: store.service("default", "later") is not None, 5, "resync")
        assert store.service("default", "web") is None
        await until(lambda: src.staleness() == 0.0, 5, "staleness back to 0")
        assert "plugin/kubernetes: API reachable again after" in caplog.text

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)
    assert "plugin/kubernetes: API unreachable for" in caplog.text
    assert "serving last-known state" in caplog.text


def test_not_synced_while_the_api_is_down_at_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with ApiServer() as api:
        api.apply(service("web"))
        api.down()

        async def body(src: ApiSource, store: Store) -> None:
            await asyncio.sleep(0.5)
            assert not src.synced() and not store.services
            await off_loop(api.up)
            await until(src.synced, 5, "sync after the API came up")

        run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)
    assert (
        "plugin/kubernetes: API unreachable for" in caplog.text and "not synced yet" in caplog.text
    )


def test_server_errors_back_off_and_retry(api: ApiServer) -> None:
    api.apply(service("web"))
    api.fail_next(2, 500, match=lambda r: r.resource == "services")

    async def body(src: ApiSource, store: Store) -> None:
        took = await until(src.synced, 10)
        assert took > 0.3  # two failures, backing off 0.125-0.25 s then 0.25-0.5 s
        codes = [r.status for r in api.requests("services")][:3]
        assert codes == [500, 500, 200]

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)


def test_bookmarks_move_the_resource_version_on(api: ApiServer) -> None:
    api.apply(service("web"))

    async def body(src: ApiSource, store: Store) -> None:
        await until(lambda: api.watch_count() == 2)
        lists = len(api.requests(watch=False))
        # events for another kind advance the server's resourceVersion past the services watch
        api.apply(endpoint_slice("e1", service_name="web", endpoints=[("10.11.0.1", True)]))
        await until(lambda: bool(store.endpoints))
        before = labeled(
            "clusterdns_kubernetes_watch_events_total", kind="Service", type="BOOKMARK"
        )
        rv = await off_loop(api.bookmark)
        await until(
            lambda: (
                labeled("clusterdns_kubernetes_watch_events_total", kind="Service", type="BOOKMARK")
                > before
            )
        )
        await off_loop(api.gap)  # history gone: only a watch from the bookmark's rv survives
        await until(lambda: api.watch_count() == 2, what="watches reopened")
        assert len(api.requests(watch=False)) == lists  # no relist
        assert api.requests("services", watch=True)[-1].query["resourceVersion"] == str(rv)
        # without a bookmark, the services watch is behind and must relist
        api.apply(endpoint_slice("e2", service_name="web", endpoints=[("10.11.0.2", True)]))
        await until(lambda: len(store.endpoints) == 2)
        await off_loop(api.gap)
        await until(lambda: len(api.requests("services", watch=False)) == 2, what="relist")

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)


def test_a_silent_watch_is_reopened_quietly(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(api_client, "WATCH_TIMEOUT", aiohttp.ClientTimeout(sock_read=0.3))
    api.apply(service("web"))

    async def body(src: ApiSource, store: Store) -> None:
        await until(lambda: len(api.requests("services", watch=True)) >= 3, 5, "reopened watches")
        rvs = {r.query["resourceVersion"] for r in api.requests("services", watch=True)}
        assert len(rvs) == 1  # always from the list's resourceVersion: nothing was missed
        assert len(api.requests("services", watch=False)) == 1  # no relist
        api.apply(service("new"))
        await until(lambda: store.service("default", "new") is not None, 1.0)

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)
    assert "unreachable" not in caplog.text and "API error" not in caplog.text


# ---- credentials and TLS ----------------------------------------------------------------------


def rotate(path: Path, token: str) -> None:
    """Replace a token file the way the kubelet does: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)


def test_kubeconfig_token_file_is_reread_when_rotated(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t1\n")
    kc = tmp_path / "kubeconfig"
    with ApiServer(token="t1") as api:
        api.apply(service("web"))
        kc.write_text(kubeconfig("http://127.0.0.1:1", token_file="token",
                                 context="other", extra_contexts={"test-api": api.url}))  # fmt: skip

        async def body(src: ApiSource, store: Store) -> None:
            await until(lambda: api.watch_count() == 2)
            assert {r.auth for r in api.requests()} == {"Bearer t1"}
            # rotated: file first, then the server stops accepting the old token
            rotate(token, "t2")
            api.token = "t2"
            await off_loop(api.drop_watches)
            await until(lambda: api.watch_count() == 2)
            assert not [r for r in api.requests() if r.status not in (0, 200)]  # 0: still streaming
            assert api.requests()[-1].auth == "Bearer t2"
            # server first: 401s until the new file appears, then back to normal
            api.token = "t3"
            await off_loop(api.drop_watches)
            await until(lambda: any(r.status == 401 for r in api.requests()), what="a 401")
            rotate(token, "t3")
            await until(lambda: api.watch_count() == 2, 10, "watches with the new token")
            api.apply(service("after-rotation"))
            await until(lambda: store.service("default", "after-rotation") is not None)

        run_source(ApiSettings(kubeconfig=str(kc), context="test-api"), SourceOptions(BASIC), body)


needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is not installed"
)


@needs_openssl
def test_in_cluster_config_with_tls_and_rotating_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = make_certs(tmp_path / "pki")
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "ca.crt").write_bytes(certs.ca.read_bytes())
    (sa / "token").write_text("sa-1")
    with ApiServer(token="sa-1", ssl_context=certs.server_context()) as api:
        api.apply(service("web"))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
        monkeypatch.setenv(SA_DIR_ENV, str(sa))

        async def body(src: ApiSource, store: Store) -> None:
            await until(lambda: api.watch_count() == 2)
            rotate(sa / "token", "sa-2")
            api.token = "sa-2"
            await off_loop(api.drop_watches)
            await until(lambda: api.watch_count() == 2)
            assert api.requests()[-1].auth == "Bearer sa-2"
            assert not [r for r in api.requests() if r.status not in (0, 200)]  # 0: still streaming

        run_source(ApiSettings(), SourceOptions(BASIC), body)


@needs_openssl
def test_endpoint_with_tls_client_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    with ApiServer(ssl_context=certs.server_context(require_client_cert=True)) as api:
        api.apply(service("web"))
        good = ApiSettings(endpoint=api.url, tls_cert=str(certs.client_cert),
                           tls_key=str(certs.client_key), tls_ca=str(certs.ca))  # fmt: skip

        async def ok(src: ApiSource, store: Store) -> None:
            await until(src.synced)

        run_source(good, SourceOptions(BASIC), ok)

        async def refused(src: ApiSource, store: Store) -> None:
            await asyncio.sleep(0.5)
            assert not src.synced()

        # no client certificate: the handshake fails; a wrong CA: the server is not trusted
        run_source(
            ApiSettings(endpoint=api.url, tls_ca=str(certs.ca)), SourceOptions(BASIC), refused
        )
        run_source(ApiSettings(endpoint=api.url, tls_cert=str(certs.client_cert),
                               tls_key=str(certs.client_key), tls_ca=str(certs.client_cert)),
                   SourceOptions(BASIC), refused)  # fmt: skip


def test_configuration_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kc = tmp_path / "kubeconfig"
    kc.write_text(kubeconfig("http://127.0.0.1:1"))
    cases = [
        (ApiSettings(), "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined"),
        (ApiSettings(kubeconfig=str(tmp_path / "missing")), "kubeconfig '"),
        (ApiSettings(kubeconfig=str(kc), context="nope"), "context 'nope' not found"),
        (ApiSettings(endpoint="ftp://x"), "invalid endpoint URL 'ftp://x'"),
        (
            ApiSettings(endpoint="https://x", tls_cert="/missing.crt"),
            "tls certificate '/missing.crt' does not exist",
        ),
    ]
    for settings, message in cases:

        async def start(settings: ApiSettings = settings) -> None:
            await ApiSource(settings, Store(), SourceOptions(BASIC)).start()

        with pytest.raises(ApiConfigError, match=re.escape(message)):
            asyncio.run(start())


# ---- limits and metrics -----------------------------------------------------------------------


def test_qps_and_burst_limit_requests(api: ApiServer) -> None:
    api.load(service(f"s{i}", cluster_ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(2000))
    host = api.url.split("//")[1]
    waits = labeled(
        "coredns_kubernetes_rest_client_rate_limiter_duration_seconds_count", verb="GET", host=host
    )

    async def body(src: ApiSource, store: Store) -> None:
        took = await until(src.synced, 10)
        assert took >= 0.25  # 4 pages at 10/s after a burst of 1
        await until(lambda: api.watch_count() == 1)

    settings = ApiSettings(endpoint=api.url, qps=10, burst=1)
    run_source(settings, SourceOptions(frozenset({"Service"})), body)
    assert (
        labeled(
            "coredns_kubernetes_rest_client_rate_limiter_duration_seconds_count",
            verb="GET",
            host=host,
        )
        == waits + 5
    )


@pytest.mark.parametrize("limit", [1, 0])
def test_max_inflight_bounds_concurrent_lists(api: ApiServer, limit: int) -> None:
    for ns in "abcd":
        api.apply(
            namespace(ns),
            service("web", ns),
            endpoint_slice("web-1", ns, "web"),
            pod("p", ns, "10.12.0.1"),
        )
    api.list_delay = 0.05
    opts = SourceOptions(
        frozenset({"Service", "Endpoints", "Pod", "Namespace"}), namespaces=tuple("abcd")
    )

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced, 10)

    run_source(ApiSettings(endpoint=api.url, max_inflight=limit), opts, body)
    if limit:
        assert api.max_inflight == 1
    else:
        assert api.max_inflight >= 3  # one list per kind at a time, kinds in parallel


def test_rest_client_and_object_metrics(api: ApiServer) -> None:
    api.apply(service("a"), service("b", cluster_ip="10.0.0.2"))
    api.apply(endpoint_slice("a-1", service_name="a", endpoints=[("10.13.0.1", True)]))
    host = api.url.split("//")[1]

    async def body(src: ApiSource, store: Store) -> None:
        await until(src.synced)
        await until(lambda: api.watch_count() == 2)
        # The watches' responses are counted when their headers reach the client, a moment
        # after the server saw the requests.
        await until(
            lambda: (
                labeled(
                    "coredns_kubernetes_rest_client_requests_total",
                    code="200",
                    method="GET",
                    host=host,
                )
                == 4
            ),
            what="4 requests counted",
        )
        assert (
            labeled(
                "coredns_kubernetes_rest_client_request_duration_seconds_count",
                verb="GET",
                host=host,
            )
            == 2
        )
        assert labeled("clusterdns_kubernetes_objects", kind="Service") >= 2
        assert labeled("clusterdns_kubernetes_objects", kind="Endpoints") >= 1
        api.fail_next(1, 503)
        await off_loop(api.drop_watches)
        await until(
            lambda: (
                labeled(
                    "coredns_kubernetes_rest_client_requests_total",
                    code="503",
                    method="GET",
                    host=host,
                )
                == 1
            )
        )
        api.apply(service("c", cluster_ip="10.0.0.3"))
        await until(
            lambda: (
                labeled("clusterdns_kubernetes_watch_events_total", kind="Service", type="ADDED")
                >= 1
            )
        )

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)


def test_dns_programming_latency_for_headless_services(api: ApiServer) -> None:
    api.apply(service("h", cluster_ip=None), service("c", cluster_ip="10.0.0.9"))
    before = labeled(
        "coredns_kubernetes_dns_programming_duration_seconds_count",
        service_kind="headless_with_selector",
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3)) + ".123456789Z"

    def annotated(name: str, svc: str) -> dict[str, Any]:
        obj = endpoint_slice(name, service_name=svc, endpoints=[("10.14.0.1", True)])
        obj["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": stamp}
        return obj

    async def body(src: ApiSource, store: Store) -> None:
        await until(lambda: api.watch_count() == 2)
        api.apply(annotated("h-1", "h"), annotated("c-1", "c"))
        await until(lambda: len(store.endpoints) == 2)

    run_source(ApiSettings(endpoint=api.url), SourceOptions(BASIC), body)
    name = "coredns_kubernetes_dns_programming_duration_seconds"
    assert (
        labeled(f"{name}_count", service_kind="headless_with_selector") == before + 1
    )  # not the ClusterIP one
    assert labeled(f"{name}_bucket", service_kind="headless_with_selector", le="2.048") == before


# ---- end to end: the real server ----------------------------------------------------------------

ZONE = "cluster.local"


def corefile(api_url: str, extra: str = "", ready: bool = True) -> str:
    lines = [".:@PORT@ {", "    bind 127.0.0.1", "    prometheus 127.0.0.1:@P2@"]
    if ready:
        lines.append("    ready 127.0.0.1:@P1@")
    lines += [f"    kubernetes {ZONE} {{", f"        endpoint {api_url}"]
    lines += [f"        {x}" for x in extra.splitlines() if x.strip()]
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def a_records(srv: Server, name: str, proto: str = "udp") -> tuple[int, list[str]]:
    r = srv.query(name, "A", proto=proto)
    return r.rcode(), sorted(rr.address for rrset in r.answer for rr in rrset)


def wait_answer(srv: Server, name: str, want: list[str], timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while True:
        rcode, ips = a_records(srv, name)
        if rcode == dns.rcode.NOERROR and ips == sorted(want):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{name}: {dns.rcode.to_text(rcode)} {ips}, want {want}")
        time.sleep(0.02)


def metric(srv: Server, name: str, **labels: str) -> float:
    total, found = 0.0, False
    for line in srv.metrics("P2").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
                found = True
    assert found, f"no {name} {labels} in metrics"
    return total


def wait_metric(srv: Server, name: str, want: float, timeout: float = 3.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while (got := metric(srv, name, **labels)) != want:
        assert time.monotonic() < deadline, f"{name}{labels} = {got}, want {want}"
        time.sleep(0.05)


def test_e2e_answers_follow_the_api(server_factory: Callable[..., Server], api: ApiServer) -> None:
    api.apply(namespace("default"), service("web", cluster_ip="10.20.0.1"))
    api.apply(service("h", cluster_ip=None), service("keep", cluster_ip="10.20.0.9"))
    api.apply(
        endpoint_slice(
            "h-1", service_name="h", endpoints=[("10.21.0.1", True), ("10.21.0.2", True)]
        )
    )
    srv = server_factory(corefile(api.url))
    host = api.url.split("//")[1]
    check(
        srv,
        [
            Case(
                f"web.default.svc.{ZONE}.",
                answer=[f"web.default.svc.{ZONE}. 5 IN A 10.20.0.1"],
                flags={"AA"},
            )
        ],
    )
    # a new service answers within a second
    api.apply(service("new", cluster_ip="10.20.0.2"))
    assert wait_answer(srv, f"new.default.svc.{ZONE}.", ["10.20.0.2"], 1.0) < 1.0
    # an endpoint that becomes not ready leaves the headless answer
    wait_answer(srv, f"h.default.svc.{ZONE}.", ["10.21.0.1", "10.21.0.2"])
    api.apply(
        endpoint_slice(
            "h-1", service_name="h", endpoints=[("10.21.0.1", True), ("10.21.0.2", False)]
        )
    )
    wait_answer(srv, f"h.default.svc.{ZONE}.", ["10.21.0.1"], 1.0)
    # deleted → NXDOMAIN
    api.delete("Service", "default", "web")
    deadline = time.monotonic() + 2
    while a_records(srv, f"web.default.svc.{ZONE}.")[0] != dns.rcode.NXDOMAIN:
        assert time.monotonic() < deadline, "deleted service still answered"
        time.sleep(0.02)
    # watch expired (410): relist; queries during it see the old or the new state, never a gap
    bad: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            for proto in ("udp", "tcp"):
                rcode, ips = a_records(srv, f"keep.default.svc.{ZONE}.", proto)
                if rcode != dns.rcode.NOERROR or ips != ["10.20.0.9"]:
                    bad.append(f"{dns.rcode.to_text(rcode)} {ips}")

    t = threading.Thread(target=hammer)
    t.start()
    try:
        time.sleep(0.2)
        lists = len(api.requests("services", watch=False))
        api.gap(
            apply=[service("after-gap", cluster_ip="10.20.0.3")],
            delete=[("Service", "default", "new")],
        )
        wait_answer(srv, f"after-gap.default.svc.{ZONE}.", ["10.20.0.3"])
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert not bad, bad[:5]
    assert len(api.requests("services", watch=False)) == lists + 1
    assert a_records(srv, f"new.default.svc.{ZONE}.")[0] == dns.rcode.NXDOMAIN
    # CoreDNS's rest client metrics and ours, with their labels
    assert (
        metric(
            srv,
            "coredns_kubernetes_rest_client_requests_total",
            code="200",
            method="GET",
            host=host,
        )
        >= 6
    )
    assert (
        metric(
            srv,
            "coredns_kubernetes_rest_client_request_duration_seconds_count",
            verb="GET",
            host=host,
        )
        >= 3
    )
    assert metric(srv, "clusterdns_kubernetes_relists_total", kind="Service") == 1
    assert metric(srv, "clusterdns_kubernetes_objects", kind="Service") == 3  # h, keep, after-gap
    assert (
        metric(srv, "clusterdns_kubernetes_watch_events_total", kind="Endpoints", type="MODIFIED")
        == 1
    )
    wait_metric(srv, "clusterdns_kubernetes_staleness_seconds", 0.0)  # every watch reopened


def test_e2e_api_outage_serves_last_known_state(
    server_factory: Callable[..., Server], api: ApiServer
) -> None:
    api.apply(namespace("default"), service("web", cluster_ip="10.22.0.1"))
    srv = server_factory(corefile(api.url))
    wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.22.0.1"])
    api.down()
    try:
        srv.wait_output(
            r"\[WARNING\] plugin/kubernetes: API unreachable for \d+s, serving last-known state"
        )
        t0 = time.monotonic()
        stale = []
        while time.monotonic() - t0 < 1.0:  # answers keep coming, staleness grows
            check(srv, [Case(f"web.default.svc.{ZONE}.", answer=[f"web.default.svc.{ZONE}. 5 IN A 10.22.0.1"]),
                        Case(f"web.default.svc.{ZONE}.", proto="tcp", answer=[f"web.default.svc.{ZONE}. 5 IN A 10.22.0.1"])])  # fmt: skip
            stale.append(metric(srv, "clusterdns_kubernetes_staleness_seconds"))
            time.sleep(0.1)
        assert stale[-1] > 0.8 and stale == sorted(stale)
        assert (
            metric(
                srv, "coredns_kubernetes_rest_client_requests_total", code="<error>", method="GET"
            )
            >= 1
        )
        api.gap(
            apply=[service("web", cluster_ip="10.22.0.2"), service("new", cluster_ip="10.22.0.3")]
        )
    finally:
        api.up()
    wait_answer(srv, f"new.default.svc.{ZONE}.", ["10.22.0.3"], 5)
    wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.22.0.2"])
    srv.wait_output(r"\[INFO\] plugin/kubernetes: API reachable again after \d+s, resyncing")
    wait_metric(srv, "clusterdns_kubernetes_staleness_seconds", 0.0)


def test_e2e_not_ready_until_synced(server_factory: Callable[..., Server], api: ApiServer) -> None:
    api.apply(namespace("default"), service("web", cluster_ip="10.23.0.1"))
    api.down()
    try:
        srv = server_factory(corefile(api.url, "startup_timeout 500ms"))
        srv.wait_output(r"plugin/kubernetes: starting server with unsynced Kubernetes API")
        status, _ = srv.http("P1", "/ready")
        assert status == 503
    finally:
        api.up()
    deadline = time.monotonic() + 5
    while srv.http("P1", "/ready")[0] != 200:
        assert time.monotonic() < deadline, "never ready after the API came up"
        time.sleep(0.05)
    wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.23.0.1"])


def test_e2e_kubeconfig_token_rotation(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("one")
    with ApiServer(token="one") as api:
        api.apply(namespace("default"), service("web", cluster_ip="10.24.0.1"))
        (tmp_path / "kubeconfig").write_text(kubeconfig(api.url, token_file="token"))
        text = corefile(api.url).replace(
            f"endpoint {api.url}", f"kubeconfig {tmp_path / 'kubeconfig'} test"
        )
        srv = server_factory(text)
        wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.24.0.1"])
        rotate(tmp_path / "token", "two")
        api.token = "two"
        api.drop_watches()
        api.apply(service("web", cluster_ip="10.24.0.2"))
        wait_answer(srv, f"web.default.svc.{ZONE}.", ["10.24.0.2"])
        assert api.requests()[-1].auth == "Bearer two"


def test_e2e_namespaces_and_labels(server_factory: Callable[..., Server], api: ApiServer) -> None:
    api.apply(namespace("a"), namespace("b"))
    api.apply(service("web", "a", cluster_ip="10.25.0.1", labels={"dns": "on"}),
              service("web", "b", cluster_ip="10.25.0.2", labels={"dns": "on"}),
              service("off", "a", cluster_ip="10.25.0.3"))  # fmt: skip
    srv = server_factory(corefile(api.url, "namespaces a\nlabels dns=on"))
    wait_answer(srv, f"web.a.svc.{ZONE}.", ["10.25.0.1"])
    check(srv, [Case(f"web.b.svc.{ZONE}.", rcode=dns.rcode.NXDOMAIN, answer=[]),
                Case(f"off.a.svc.{ZONE}.", rcode=dns.rcode.NXDOMAIN, answer=[])])  # fmt: skip
    paths = {r.path for r in api.requests("services")}
    assert paths == {"/api/v1/namespaces/a/services"}
    assert {r.query.get("labelSelector") for r in api.requests("services")} == {"dns=on"}
