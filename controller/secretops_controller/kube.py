"""The only module that talks to the Kubernetes API (besides kopf's own watching).

A small async client over aiohttp, authenticated with the same ``kopf.ConnectionInfo`` that the
operator's ``@kopf.on.login`` handler returns: a kubeconfig (``--kubeconfig`` or ``KUBECONFIG``)
or, in a Pod, the service account. There is no test-only path: tests give it the emulator's
kubeconfig. A 401 re-reads the credentials once (rotated service-account tokens).

Errors are :class:`ApiError` with the HTTP status (0: the API server could not be reached);
:attr:`ApiError.transient` says whether a retry may help, and :func:`retrying` is the one retry
loop the handlers use.

In namespaced mode a :class:`Scope` refuses, before anything is sent, a request for a namespace
the controller does not watch (a ClusterSecretStore or a store naming another namespace's Secret
or service account): a 403 ``ApiError`` like the API server's, so a tenant's object cannot make
the controller reach outside its namespaces even where RBAC would allow it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urlencode

import aiohttp
import kopf

if TYPE_CHECKING:
    from secretops_controller.config import Config

T = TypeVar("T")
log = logging.getLogger(__name__)
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
SEALED_GROUP_VERSION = "secretops.dev/v1alpha1"


class ApiError(Exception):
    """A failed API request: ``status`` (0 for a connection failure), ``reason`` and message."""

    def __init__(self, status: int, reason: str, message: str, method: str, path: str,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # the server's Retry-After (429, 503), in seconds

    @property
    def transient(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


async def retrying(config: Config, call: Callable[[], Awaitable[T]],
                   what: str | None = None) -> T:
    """``call()``, again after ``config.retry_delay`` (at least the server's Retry-After) when
    it fails with a transient :class:`ApiError`, at most ``--max-retries`` times; then the last
    error is raised, as is a permanent one at once. ``what`` logs each retry as a warning."""
    attempt = 0
    while True:
        try:
            return await call()
        except ApiError as e:
            if not e.transient or attempt >= config.max_retries:
                raise
            if what:
                log.warning("%s failed, retrying: %s", what, e)
            await asyncio.sleep(config.retry_delay(attempt, e))
            attempt += 1


def _seconds(header: str | None) -> float | None:
    """A Retry-After in seconds (the API server sends delta-seconds), capped at 5 minutes."""
    try:
        return min(max(float(header), 0.0), 300.0) if header else None
    except ValueError:
        return None


def login(kubeconfig: str | None = None) -> kopf.ConnectionInfo:
    """Credentials from ``kubeconfig`` (else ``KUBECONFIG``), else the Pod's service account."""
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's kubeconfig login reads the variable
    settings = kopf.OperatorSettings()
    info = None
    if os.environ.get("KUBECONFIG"):
        info = kopf.login_with_kubeconfig(settings=settings)
    else:
        info = kopf.login_with_service_account(settings=settings)
    if info is None:
        raise kopf.LoginError("no kubeconfig (--kubeconfig, KUBECONFIG) and no service account")
    return info


def secrets(namespace: str, name: str | None = None) -> str:
    return resource_path("/api/v1", namespace, "secrets", name)


def configmaps(namespace: str, name: str | None = None) -> str:
    return resource_path("/api/v1", namespace, "configmaps", name)


def sealedsecrets(namespace: str, name: str | None = None) -> str:
    return resource_path(f"/apis/{SEALED_GROUP_VERSION}", namespace, "sealedsecrets", name)


def resource_path(prefix: str, namespace: str, plural: str, name: str | None) -> str:
    """The API path of a namespaced resource, or of its collection when ``name`` is None."""
    base = f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{base}/{quote(name, safe='')}" if name else base


def path_namespace(path: str) -> str | None:
    """The namespace an API path names (``/api/v1/namespaces/NS/...``,
    ``/apis/G/V/namespaces/NS/...``, the namespace object itself), else None."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    at = 2 if parts[:1] == ["api"] else 3
    if len(parts) > at + 1 and parts[at] == "namespaces":
        return unquote(parts[at + 1])
    return None


@dataclass(frozen=True)
class Scope:
    """What a namespaced controller may call: paths in ``namespaces``, the paths in
    ``exact`` (discovery), and the cluster-scoped resources under one of ``cluster``."""

    namespaces: frozenset[str]
    exact: frozenset[str] = frozenset()
    cluster: tuple[str, ...] = ()

    def allows(self, path: str) -> bool:
        ns = path_namespace(path)
        if ns is not None:
            return ns in self.namespaces
        bare = path.split("?", 1)[0].rstrip("/")
        return bare in self.exact or any(bare == p or bare.startswith(p + "/")
                                         for p in self.cluster)


class Kube:
    """An async Kubernetes API client; :meth:`start` inside the event loop, :meth:`close`."""

    def __init__(self, credentials: Callable[[], kopf.ConnectionInfo],
                 timeout: float = 30.0, scope: Scope | None = None) -> None:
        self._credentials = credentials
        self._timeout = timeout
        self.scope = scope
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._info = self._credentials()
        ssl = self._info.as_ssl_context() if self._info.server.startswith("https") else False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl, limit=0),
            timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = JSON,
                      params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The decoded JSON answer; :class:`ApiError` for any status >= 400."""
        if self.scope is not None and not self.scope.allows(path):
            where = path_namespace(path)
            raise ApiError(403, "Forbidden", (
                f"namespace {where} is not one the controller watches (--watch-namespace)"
                if where is not None else "a cluster-wide request in namespaced mode"),
                method, path)
        for attempt in range(2):
            status, answer, retry_after = await self._send(method, path, body, content_type,
                                                           params)
            if status == 401 and attempt == 0:
                await self.close()
                await self.start()  # re-read rotated credentials once
                continue
            break
        if status >= 400:
            reason = str(answer.get("reason") or "Error")
            message = str(answer.get("message") or "")
            raise ApiError(status, reason, message, method, path, retry_after)
        return answer

    async def _send(self, method: str, path: str, body: Any, content_type: str,
                    params: Mapping[str, str] | None
                    ) -> tuple[int, dict[str, Any], float | None]:
        if self._session is None or self._info is None:
            await self.start()
        assert self._session is not None and self._info is not None
        url = self._info.server.rstrip("/") + path
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": JSON, **self._info.as_http_headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _seconds(resp.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ApiError(0, "Unreachable", type(e).__name__, method, path) from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"message": raw[:200].decode("utf-8", "replace")}
        return status, answer if isinstance(answer, dict) else {}, retry_after

    # ---- the calls the controller makes ----------------------------------------------------
    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        return list((await self.request("GET", path, params=params)).get("items") or [])

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, obj)

    async def replace(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, obj)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, patch, content_type=MERGE_PATCH)

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except ApiError as e:
            if e.status != 404:
                raise
