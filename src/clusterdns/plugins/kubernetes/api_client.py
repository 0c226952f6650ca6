"""Requests to the API server through kubernetes_asyncio, with limits, metrics and raw JSON.

The generated API methods build the URLs, query strings, authentication and TLS; they are
called with `_preload_content=False`, which hands back the aiohttp response untouched, so list
pages and watch lines are decoded to plain dicts (records.py converts dicts) and never into
the library's model objects, which cost 3.5 times the CPU (docs/decisions/k8s-client.md).
The library comes through k8s_client.py, which loads only the modules used here (not the ~770
generated model modules the package's `__init__` imports: ~29 MiB less RSS).

Every request is counted in CoreDNS's rest_client metrics. `apiserver_qps`/`apiserver_burst`
make a token bucket that every request (list page or watch) waits for; `apiserver_max_inflight`
bounds concurrent list requests (watches stay open for minutes, so they are not counted).

A list page is read object by object (ListPage), each converted and dropped before the next is
decoded. What it frees goes to the heap; glibc keeps the heap they
freed (~2 MiB after a 1k-service/10k-endpoint sync, ~4 MiB at 10k/100k), so a second after a
list ends the heap's free pages go back to the OS with malloc_trim (a no-op without glibc).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from clusterdns import __version__
from clusterdns.heap import TRIM_HEAP
from clusterdns.plugins.kubernetes.api_config import Connection
from clusterdns.plugins.kubernetes.api_metrics import (
    RATE_LIMITER_DURATION,
    REQUEST_DURATION,
    REQUESTS,
)
from clusterdns.plugins.kubernetes.jsonitems import JsonObject
from clusterdns.plugins.kubernetes.k8s_client import (
    ApiClient,
    CoreV1Api,
    CustomObjectsApi,
    DiscoveryV1Api,
)
from clusterdns.plugins.kubernetes.source import ApiSettings

PAGE_SIZE = 500
#: A watch that delivers nothing (no event, no bookmark) for this long is taken for dead.
WATCH_IDLE_TIMEOUT = 120.0
LIST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=60)
WATCH_TIMEOUT = aiohttp.ClientTimeout(
    total=None, connect=10, sock_connect=10, sock_read=WATCH_IDLE_TIMEOUT
)
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5)
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
#: Seconds from the end of a list to the heap trim (by then its pages are converted and freed).
TRIM_DELAY = 1.0


class ApiError(Exception):
    """The API answered with an error status (or an ERROR watch event)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}".strip())


class Gone(ApiError):
    """410: the resourceVersion (or continue token) is too old; a fresh list is needed."""


class Unreachable(Exception):
    """No answer: connection refused or reset, timeout, TLS failure."""

    def __init__(self, err: BaseException) -> None:
        super().__init__(str(err) or type(err).__name__)


def api_error(code: int, body: bytes | dict[str, Any]) -> ApiError:
    """An ApiError from a Status object (or whatever the body holds)."""
    status: Any = body
    message = ""
    if isinstance(body, bytes):
        try:
            status = json.loads(body)
        except ValueError:
            message = body[:200].decode(errors="replace")
    if isinstance(status, dict):
        message = str(status.get("message") or status.get("reason") or "")
        code = int(status.get("code") or code)
    return (Gone if code == 410 else ApiError)(code, message)


class TokenBucket:
    """client-go's token-bucket rate limiter: `qps` tokens a second, at most `burst` saved."""

    def __init__(self, qps: float, burst: int) -> None:
        self.rate = qps
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class ListPage:
    """A list response read member by member (jsonitems.py): `items()` yields each object as
    it is decoded, so a 500-slice page never exists as one tree of dicts; `head` has the other
    members (metadata: continue, resourceVersion) once the items are read."""

    def __init__(self, text: str, done: Callable[[], None]) -> None:
        self._doc = JsonObject(text)
        self._done = done

    @property
    def head(self) -> dict[str, Any]:
        return self._doc.head

    def items(self) -> Iterator[dict[str, Any]]:
        try:
            for item in self._doc.items():
                if isinstance(item, dict):
                    yield item
        except ValueError as e:
            raise ApiError(200, f"undecodable list response: {e}") from None
        self._doc.text = ""  # the page's text is not needed any more
        if not (self.head.get("metadata") or {}).get("continue"):
            self._done()


class Backoff:
    """Exponential backoff with jitter: base·2ⁿ capped, each delay drawn in [d/2, d]."""

    def __init__(self, base: float = 0.25, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        d = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt += 1
        return d / 2 + random.random() * d / 2

    def reset(self) -> None:
        self.attempt = 0


#: record kind -> (API group attribute, cluster-wide list method, namespaced list method)
METHODS: dict[str, tuple[str, str, str]] = {
    "Service": ("core", "list_service_for_all_namespaces", "list_namespaced_service"),
    "Endpoints": (
        "discovery",
        "list_endpoint_slice_for_all_namespaces",
        "list_namespaced_endpoint_slice",
    ),
    "Pod": ("core", "list_pod_for_all_namespaces", "list_namespaced_pod"),
    "Namespace": ("core", "list_namespace", ""),
    "MultiClusterEndpoints": (
        "discovery",
        "list_endpoint_slice_for_all_namespaces",
        "list_namespaced_endpoint_slice",
    ),
    "ServiceImport": ("custom", "list_cluster_custom_object", "list_namespaced_custom_object"),
}
#: The custom resource behind the "custom" group: (group, version, plural).
SERVICE_IMPORTS = ("multicluster.x-k8s.io", "v1alpha1", "serviceimports")


class Requester:
    """The source's one ApiClient, and every request it makes."""

    def __init__(self, conn: Connection, settings: ApiSettings) -> None:
        self.conn = conn
        self.client = ApiClient(conn.configuration)
        self.client.user_agent = f"clusterdns/{__version__}"
        self.core = CoreV1Api(self.client)
        self.discovery = DiscoveryV1Api(self.client)
        self.custom = CustomObjectsApi(self.client)
        self.bucket = TokenBucket(settings.qps, settings.burst) if settings.qps > 0 else None
        self.inflight = (
            asyncio.Semaphore(settings.max_inflight) if settings.max_inflight > 0 else None
        )
        self.host = conn.host
        self._trim: asyncio.TimerHandle | None = None

    async def close(self) -> None:
        if self._trim is not None:
            self._trim.cancel()
        await self.client.close()

    def _list_done(self) -> None:
        """A list ended: trim the heap TRIM_DELAY later (once for lists ending together)."""
        heap_trim = TRIM_HEAP
        if heap_trim is None or self._trim is not None:
            return

        def trim() -> None:
            self._trim = None
            heap_trim()

        self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, trim)

    def _method(self, kind: str, namespace: str) -> Callable[..., Awaitable[Any]]:
        group, all_ns, per_ns = METHODS[kind]
        if group == "custom":
            g, v, plural = SERVICE_IMPORTS
            fn = getattr(self.custom, per_ns if namespace else all_ns)
            if namespace:
                return lambda **kw: fn(g, v, namespace, plural, **kw)
            return lambda **kw: fn(g, v, plural, **kw)
        api = self.core if group == "core" else self.discovery
        if namespace and per_ns:
            fn = getattr(api, per_ns)
            return lambda **kw: fn(namespace, **kw)
        return getattr(api, all_ns)  # type: ignore[no-any-return]

    async def _throttle(self) -> None:
        if self.bucket is not None:
            t0 = time.monotonic()
            await self.bucket.take()
            RATE_LIMITER_DURATION.labels("GET", self.host).observe(time.monotonic() - t0)

    async def _send(self, kind: str, namespace: str, **params: Any) -> aiohttp.ClientResponse:
        try:
            resp: aiohttp.ClientResponse = await self._method(kind, namespace)(
                _preload_content=False, **params
            )
        except NETWORK_ERRORS as e:
            REQUESTS.labels("<error>", "GET", self.host).inc()
            raise Unreachable(e) from e
        REQUESTS.labels(str(resp.status), "GET", self.host).inc()
        if resp.status == 401:
            self.conn.refresh_token(force=True)
        return resp

    async def list_items(self, kind: str, namespace: str, **params: Any) -> ListPage:
        """One page of a list, its objects decoded one at a time as `items()` yields them;
        raises ApiError/Gone/Unreachable (ApiError from `items()` for undecodable JSON)."""
        await self._throttle()
        if self.inflight is not None:
            async with self.inflight:
                return await self._list_page(kind, namespace, **params)
        return await self._list_page(kind, namespace, **params)

    async def _list_page(self, kind: str, namespace: str, **params: Any) -> ListPage:
        t0 = time.monotonic()
        resp = await self._send(
            kind, namespace, _request_timeout=LIST_TIMEOUT, limit=PAGE_SIZE, **params
        )
        try:
            body = await resp.read()
        except NETWORK_ERRORS as e:
            raise Unreachable(e) from e
        finally:
            resp.release()
        REQUEST_DURATION.labels("GET", self.host).observe(time.monotonic() - t0)
        if resp.status != 200:
            raise api_error(resp.status, body)
        try:
            text = body.decode()
        except UnicodeDecodeError as e:
            raise ApiError(resp.status, f"undecodable list response: {e}") from None
        del body
        return ListPage(text, self._list_done)

    async def probe(self) -> bool:
        """One cheap request, the core API's resource list (`GET /api/v1`, which every
        authenticated client may read): True if the API answered 200 (recovery.py)."""
        await self._throttle()
        try:
            resp: aiohttp.ClientResponse = await self.core.get_api_resources(  # type: ignore[assignment]
                _preload_content=False, _request_timeout=PROBE_TIMEOUT
            )
            await resp.read()
        except NETWORK_ERRORS:
            REQUESTS.labels("<error>", "GET", self.host).inc()
            return False
        resp.release()
        REQUESTS.labels(str(resp.status), "GET", self.host).inc()
        return int(resp.status) == 200

    @asynccontextmanager
    async def watch(
        self, kind: str, namespace: str, **params: Any
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Open a watch; yields an iterator of decoded events. Raises ApiError/Unreachable."""
        await self._throttle()
        resp = await self._send(
            kind, namespace, watch=True, allow_watch_bookmarks=True,
            _request_timeout=WATCH_TIMEOUT, **params,
        )  # fmt: skip
        try:
            if resp.status != 200:
                try:
                    body = await resp.read()
                except NETWORK_ERRORS as e:
                    raise Unreachable(e) from e
                raise api_error(resp.status, body)
            yield _events(resp)
        finally:
            resp.close()


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The watch stream's JSON lines as dicts, until the server ends the stream.

    A stream silent for WATCH_IDLE_TIMEOUT ends like a normal one: it is reopened from the last
    resourceVersion, and only if that fails is the API taken for unreachable (a quiet kind
    on a server that sends bookmarks rarely is not an outage).
    """
    try:
        while True:
            line = await resp.content.readline()
            if not line:
                return
            if line.strip():
                try:
                    event = json.loads(line)
                except ValueError as e:
                    raise ApiError(200, f"undecodable watch event: {e}") from None
                if isinstance(event, dict):
                    yield event
    except TimeoutError:
        return
    except NETWORK_ERRORS as e:
        raise Unreachable(e) from e
