"""The only module that talks to the Kubernetes API.

A small async client over aiohttp, authenticated with the same ``kopf.ConnectionInfo`` that the
operator's ``@kopf.on.login`` handler returns: a kubeconfig (``--kubeconfig`` or ``KUBECONFIG``)
or, in a Pod, the service account. There is no test-only path: tests give it the emulator's
kubeconfig. A 401 re-reads the credentials once (rotated service-account tokens). Every other
module calls the API through :class:`Kube`; import-linter keeps it so (pyproject.toml).

:meth:`Kube.watch` is the one LIST+WATCH loop (kopf watches nothing: see :mod:`.informer`):
a paged LIST, then WATCH from its resourceVersion with bookmarks; a dropped or ended watch
resumes from the last resourceVersion seen, only a ``410 Expired`` (as a status or as an
``ERROR`` event) relists; ``timeoutSeconds`` is sent as an integer (a real apiserver refuses
``300.0`` with 400).

Errors are :class:`ApiError` with the HTTP status (0: the API server could not be reached);
:attr:`ApiError.transient` says whether a retry may help, and :func:`retrying` is the one retry
loop the handlers use.

In namespaced mode a :class:`Scope` refuses, before anything is sent, a request for a namespace
the controller does not watch (a ClusterSecretStore or a store naming another namespace's Secret
or service account): a 403 ``ApiError`` like the API server's, so a tenant's object cannot make
the controller reach outside its namespaces even where RBAC would allow it.

With ``--shards``, :attr:`Kube.write_guard` refuses (403 ``ShardNotHeld``, before anything is
sent) a write to a namespace whose shard this replica does not hold: a handler still running
when its shard's Lease was lost cannot write over the new holder's work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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
# one watch event (a JSON line) above this is refused: an object is at most ~1.5 MiB in etcd
MAX_WATCH_LINE = 8 << 20
Items = list[dict[str, Any]]  # the items of a LIST (a name: ``Kube.list`` hides ``list``)


@dataclass(frozen=True)
class WatchEvent:
    """``type``: ``LISTED`` (from the list that starts each relist), ``ADDED``, ``MODIFIED``,
    ``DELETED`` or ``BOOKMARK`` (only a newer resourceVersion); ``object``: the object as the
    server sent it."""

    type: str
    object: dict[str, Any]


class Expired(Exception):
    """The watch's resourceVersion is older than the server keeps (410): list again."""


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
        # sharding (shardelect.write_guard): why a write is refused now, else None
        self.write_guard: Callable[[str, str], str | None] | None = None
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

    def _check_scope(self, method: str, path: str) -> None:
        if self.scope is not None and not self.scope.allows(path):
            where = path_namespace(path)
            raise ApiError(403, "Forbidden", (
                f"namespace {where} is not one the controller watches (--watch-namespace)"
                if where is not None else "a cluster-wide request in namespaced mode"),
                method, path)
        refused = self.write_guard(method, path) if self.write_guard is not None else None
        if refused is not None:
            raise ApiError(403, "ShardNotHeld", refused, method, path)

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = JSON,
                      params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The decoded JSON answer; :class:`ApiError` for any status >= 400."""
        self._check_scope(method, path)
        for attempt in range(2):
            status, answer, retry_after = await self._send(method, path, body, content_type,
                                                           params)
            if status == 401 and attempt == 0:
                await self.close()
                await self.start()  # re-read rotated credentials once
                continue
            break
        if status >= 400:
            raise _error(status, answer, method, path, retry_after)
        return answer

    async def _session_info(self) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        if self._session is None or self._info is None:
            await self.start()
        assert self._session is not None and self._info is not None
        return self._session, self._info

    async def _send(self, method: str, path: str, body: Any, content_type: str,
                    params: Mapping[str, str] | None
                    ) -> tuple[int, dict[str, Any], float | None]:
        session, info = await self._session_info()
        url = info.server.rstrip("/") + path
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": JSON, **info.as_http_headers()}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            # bytes: aiohttp takes them as they are (a str payload is re-encoded per request)
            data = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = _seconds(resp.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as e:
            raise ApiError(0, "Unreachable", type(e).__name__, method, path) from None
        return status, _decode(raw), retry_after

    # ---- watching ----------------------------------------------------------------------------
    async def watch(self, path: str, *, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int = 300,
                    retry_delay: float = 1.0, limit: int = 500,
                    max_delay: float | None = None,
                    on_listed: Callable[[], None] | None = None
                    ) -> AsyncIterator[WatchEvent]:
        """LIST ``path`` (``limit`` items a page), yield each item as ``LISTED``, then WATCH
        from the list's resourceVersion and yield ``ADDED``/``MODIFIED``/``DELETED`` events,
        forever — what a client-go reflector does.

        A watch the server ends at ``timeout_seconds`` (an integer, as the apiserver requires),
        an ``ERROR`` event, an error status or a dropped connection is opened again from the
        last resourceVersion seen (``BOOKMARK`` events, yielded too, move it on) — after
        ``retry_delay`` seconds for a failure (doubling while they fail in a row, up to
        ``max_delay``). Only ``410 Expired`` (an old resourceVersion or continue token) lists
        again, at once; a LIST that fails is tried again likewise. ``on_listed()`` is called
        once each (re)list has been yielded whole. The caller paces it: the next page is not
        read, nor the stream, until it asks for the next event. Cancel the iteration to
        stop."""
        selector = {k: v for k, v in (("labelSelector", label_selector),
                                      ("fieldSelector", field_selector)) if v}
        rv = ""
        failed = 0  # failures in a row
        while True:
            try:
                if not rv:
                    listed_rv = ""
                    async for page in self._pages(path, selector, limit):  # one snapshot
                        for item in page.get("items") or []:
                            yield WatchEvent("LISTED", item)
                        failed = 0
                        listed_rv = str((page.get("metadata") or {}).get("resourceVersion")
                                        or listed_rv)
                    rv = listed_rv or "0"
                    if on_listed is not None:
                        on_listed()
                params = {**selector, "watch": "true", "resourceVersion": rv,
                          "timeoutSeconds": str(int(timeout_seconds)),
                          "allowWatchBookmarks": "true"}
                async for kind, obj in self._stream(path, params, timeout_seconds):
                    failed = 0
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if kind in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                        yield WatchEvent(kind, obj)
                continue  # the server ended the watch: the next one from where it stopped
            except Expired:
                log.debug("watch %s: resourceVersion expired (relisting)", path)
                rv = ""
                continue
            except ApiError as e:
                if e.status == 410:  # a LIST's continue token expired
                    rv = ""
                    continue
                # refused (RBAC, a CRD not served): say so; an outage or a cut: quietly
                (log.debug if e.transient else log.warning)("watch %s: %s (retrying)", path, e)
            except ValueError as e:  # a malformed line: the stream is not to be trusted
                log.debug("watch %s: %s (resuming)", path, e)
            await asyncio.sleep(min(retry_delay * 2 ** min(failed, 16),
                                    max(max_delay or retry_delay, retry_delay)))
            failed += 1

    async def _stream(self, path: str, params: Mapping[str, str], timeout: int
                      ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """One watch request: its events as (type, object) until the server ends it."""
        self._check_scope("GET", path)
        for attempt in range(2):
            session, info = await self._session_info()
            url = info.server.rstrip("/") + path + "?" + urlencode(params)
            headers = {"Accept": JSON, **info.as_http_headers()}
            # no total limit: a watch lasts timeout seconds; a silent stream is cut after that
            limit = aiohttp.ClientTimeout(total=None, sock_read=timeout + 30)
            try:
                async with session.get(url, headers=headers, timeout=limit) as resp:
                    if resp.status == 401 and attempt == 0:
                        await resp.read()
                    elif resp.status >= 400:
                        answer = _decode(await resp.read())
                        if resp.status == 410:
                            raise Expired()
                        raise _error(resp.status, answer, "GET", path, None)
                    else:
                        async for line in _lines(resp.content):
                            ev = json.loads(line)
                            kind = str(ev.get("type"))
                            obj = ev.get("object") or {}
                            if kind == "ERROR":
                                if obj.get("code") == 410:
                                    raise Expired()
                                raise _error(int(obj.get("code") or 500), obj, "WATCH", path,
                                             None)
                            yield kind, obj
                        return
            except (TimeoutError, aiohttp.ClientError) as e:
                raise ApiError(0, "Unreachable", type(e).__name__, "WATCH", path) from None
            await self.close()
            await self.start()  # a 401: re-read rotated credentials once

    # ---- the calls the controller makes ----------------------------------------------------
    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None,
                   field_selector: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("labelSelector", label_selector),
                                    ("fieldSelector", field_selector)) if v}
        return list((await self.request("GET", path, params=params or None)).get("items")
                    or [])

    async def list_pages(self, path: str, label_selector: str | None = None,
                         limit: int = 500) -> AsyncIterator[Items]:
        """The items of a LIST, ``limit`` at a time (``continue`` tokens): a caller that keeps
        only what it needs of each page never holds the whole collection."""
        selector = {"labelSelector": label_selector} if label_selector else {}
        async for page in self._pages(path, selector, limit):
            yield list(page.get("items") or [])

    async def _pages(self, path: str, params: Mapping[str, str], limit: int
                     ) -> AsyncIterator[dict[str, Any]]:
        """The pages of a LIST, of one snapshot. Only the ``continue`` token says whether
        more remain: with a selector a page may hold fewer than ``limit`` items, even none."""
        query = {**params, "limit": str(limit)}
        while True:
            page = await self.request("GET", path, params=query)
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = str(token)

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, obj)

    async def replace(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, obj)

    async def merge_patch(self, path: str, patch: Mapping[str, Any],
                          field_manager: str | None = None) -> dict[str, Any]:
        """A JSON merge patch; ``field_manager`` names who owns the fields it sets
        (``managedFields``), else the API server derives it from the User-Agent."""
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request("PATCH", path, patch, content_type=MERGE_PATCH, params=params)

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except ApiError as e:
            if e.status != 404:
                raise


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"message": raw[:200].decode("utf-8", "replace")}
    return answer if isinstance(answer, dict) else {}


def _error(status: int, answer: Mapping[str, Any], method: str, path: str,
           retry_after: float | None) -> ApiError:
    return ApiError(status, str(answer.get("reason") or "Error"),
                    str(answer.get("message") or ""), method, path, retry_after)


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-empty lines of a watch stream, each at most :data:`MAX_WATCH_LINE` bytes
    (aiohttp's own line reader stops at 128 KiB: a large Secret is more)."""
    buffer = bytearray()
    async for chunk in stream.iter_any():
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(buffer[:end]).strip()
            del buffer[:end + 1]
            if line:
                yield line
        if len(buffer) > MAX_WATCH_LINE:
            raise ValueError(f"a watch event over {MAX_WATCH_LINE} bytes")
    if bytes(buffer).strip():
        yield bytes(buffer).strip()
