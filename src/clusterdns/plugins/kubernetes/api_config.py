"""How to reach the API server: kubeconfig, `endpoint` (+ `tls`), or in-cluster, as CoreDNS.

The order is CoreDNS's: a `kubeconfig` wins; else an `endpoint` URL (with the `tls` client
certificate, key and CA when given); else the in-cluster service account — the API at
https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, trusted through its ca.crt, with the
bearer token in its token file.

Bearer tokens read from files (in-cluster, or a kubeconfig user's `tokenFile`) are projected
tokens that the kubelet rotates (by swapping a symlink). The file is stat()ed before every
request and re-read when it changed, and re-read at once after a 401, so a rotated token is
used from the next request on — sooner than client-go's one-minute cache, never later.

`CLUSTERDNS_SERVICEACCOUNT_DIR` overrides the service account directory
(/var/run/secrets/kubernetes.io/serviceaccount), for tests and unusual mounts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from clusterdns.errors import ConfigError
from clusterdns.plugins.kubernetes.k8s_client import ConfigException, Configuration, kube_config
from clusterdns.plugins.kubernetes.source import ApiSettings

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_DIR_ENV = "CLUSTERDNS_SERVICEACCOUNT_DIR"


class ApiConfigError(ConfigError):
    """The API connection cannot be configured (missing file, variable, context…)."""


class TokenFile:
    """A bearer token kept in a file that may be replaced at any time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sig: tuple[int, int, int, int] | None = None
        self.token = ""
        self.reads = 0

    def current(self, force: bool = False) -> str:
        """The token, re-read if the file changed since the last read (or when forced)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return self.token  # keep the last good token while the file is being swapped
        sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if force or sig != self._sig:
            try:
                text = Path(self.path).read_text().strip()
            except OSError:
                return self.token
            if text:
                self.token = text
                self._sig = sig
                self.reads += 1
        return self.token


@dataclass
class Connection:
    """A ready client Configuration plus what the source needs to know about it."""

    configuration: Configuration
    token_file: TokenFile | None
    host: str  # host[:port] of the API, the `host` label of the rest_client metrics
    how: str  # "kubeconfig", "endpoint" or "in-cluster", for logs

    def refresh_token(self, force: bool = False) -> None:
        """Put the token file's current content into the configuration."""
        if self.token_file is not None:
            tok = self.token_file.current(force)
            if tok:
                self.configuration.api_key["BearerToken"] = f"Bearer {tok}"


def _sa_dir() -> Path:
    return Path(os.environ.get(SA_DIR_ENV) or SA_DIR)


def _check_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise ApiConfigError(f"kubernetes: {what} '{path}' does not exist")


def _kubeconfig_user(path: str, context: str) -> tuple[dict[str, Any], str]:
    """The kubeconfig's user entry for `context` (or the current context) and the file's dir."""
    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except OSError as e:
        raise ApiConfigError(f"kubernetes: cannot read kubeconfig '{path}': {e}") from None
    except yaml.YAMLError as e:
        raise ApiConfigError(f"kubernetes: kubeconfig '{path}' is not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ApiConfigError(f"kubernetes: kubeconfig '{path}' is not a mapping")
    name = context or doc.get("current-context") or ""
    ctx = next((c for c in doc.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise ApiConfigError(f"kubernetes: context '{name}' not found in kubeconfig '{path}'")
    user_name = (ctx.get("context") or {}).get("user")
    user = next((u for u in doc.get("users") or [] if u.get("name") == user_name), None)
    return (user or {}).get("user") or {}, os.path.dirname(os.path.abspath(path))


#: The way out when there is no cluster to be in.
OUTSIDE = (
    "; outside a cluster, give 'kubeconfig FILE' to reach a remote one, or 'manifests DIR' to "
    "serve objects from files without any cluster"
)


def _located(e: ApiConfigError, settings: ApiSettings) -> ApiConfigError:
    """The error at the Corefile line that chose the connection (FILE:LINE - …)."""
    if e.file or not settings.file:
        return e
    return ApiConfigError(e.message, settings.file, settings.line)


def validate(settings: ApiSettings) -> None:
    """Cheap checks a setup can run (files exist, context exists); raises ApiConfigError."""
    try:
        _validate(settings)
    except ApiConfigError as e:
        raise _located(e, settings) from None


def _validate(settings: ApiSettings) -> None:
    if settings.kubeconfig:
        _check_file(settings.kubeconfig, "kubeconfig")
        _kubeconfig_user(settings.kubeconfig, settings.context)
    elif settings.endpoint:
        parts = urlsplit(settings.endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiConfigError(f"kubernetes: invalid endpoint URL '{settings.endpoint}'")
        for path, what in (
            (settings.tls_cert, "tls certificate"),
            (settings.tls_key, "tls key"),
            (settings.tls_ca, "tls CA certificate"),
        ):
            if path:
                _check_file(path, what)
    else:
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise ApiConfigError(
                "kubernetes: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST "
                "and KUBERNETES_SERVICE_PORT must be defined" + OUTSIDE
            )
        sa = _sa_dir()
        _check_file(str(sa / "token"), "service account token file")
        _check_file(str(sa / "ca.crt"), "service account CA file")


async def connect(settings: ApiSettings) -> Connection:
    """Build the client Configuration for `settings`; raises ApiConfigError when impossible."""
    try:
        return await _connect(settings)
    except ApiConfigError as e:
        raise _located(e, settings) from None


async def _connect(settings: ApiSettings) -> Connection:
    _validate(settings)
    conf = Configuration()
    token_file: TokenFile | None = None
    if settings.kubeconfig:
        how = "kubeconfig"
        try:
            await kube_config.load_kube_config(
                config_file=settings.kubeconfig,
                context=settings.context or None,
                client_configuration=conf,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, KeyError, TypeError) as e:
            raise ApiConfigError(
                f"kubernetes: cannot use kubeconfig '{settings.kubeconfig}': {e}"
            ) from None
        user, base = _kubeconfig_user(settings.kubeconfig, settings.context)
        if user.get("tokenFile") and not user.get("token"):
            token_file = TokenFile(os.path.join(base, str(user["tokenFile"])))
    elif settings.endpoint:
        how = "endpoint"
        conf.host = settings.endpoint.rstrip("/")
        if settings.tls_ca:
            conf.ssl_ca_cert = settings.tls_ca
        if settings.tls_cert:
            conf.cert_file = settings.tls_cert
        if settings.tls_key:
            conf.key_file = settings.tls_key
    else:
        how = "in-cluster"
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ["KUBERNETES_SERVICE_PORT"]
        if ":" in host:
            host = f"[{host}]"
        conf.host = f"https://{host}:{port}"
        sa = _sa_dir()
        conf.ssl_ca_cert = str(sa / "ca.crt")
        token_file = TokenFile(str(sa / "token"))
    conn = Connection(conf, token_file, urlsplit(str(conf.host)).netloc, how)
    if token_file is not None:
        conn.refresh_token()
        if not token_file.token:
            raise ApiConfigError(f"kubernetes: token file '{token_file.path}' is empty")
        # kubernetes_asyncio calls this hook before every request it authenticates.
        conf.refresh_api_key_hook = lambda _conf: conn.refresh_token()
    return conn
