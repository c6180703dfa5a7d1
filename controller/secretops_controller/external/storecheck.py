"""Stores as the controller uses them: credentials read through the API, one provider per
store and credentials, validation (once per change and every ``refreshInterval``).

:class:`Stores` resolves a SecretStore or ClusterSecretStore (:func:`.stores.resolve`) with
what only the API can give: the Secrets its auth names (a 403 there is the store's
configuration, ``InvalidStoreConfiguration``, not an outage), a namespace's labels (for a
ClusterSecretStore's ``spec.conditions``, as watched) and service-account tokens (a
TokenRequest, asked from a provider's worker thread and run on the event loop). Providers are
kept per read identity (the fingerprint of :class:`~.scheduler.StoreKey`), so a scheduler entry
and a validation share one login, and so do stores with the same credentials.

A store's ``Ready`` condition comes from one cheap provider call (:func:`probe`): the
provider's :class:`~.provider.Checker` ability if it has one (Vault: the login, whose token is
reused), else a version lookup of a key that need not exist. Every store is validated again
after its ``spec.refreshInterval`` (default ``--store-refresh-interval``; 0: never) by one
timer for all; when a revalidation finds other credentials (a rotated token), the
ExternalSecrets that use the store are registered again (``on_new_credentials``). A namespace's
labels are as watched (:mod:`.namespaces`), not read per ExternalSecret.

An ExternalSecret's registration reads neither its store nor the store's credentials: it takes
the store as last watched (:meth:`Stores.seen`, a small copy per store; read once if not
watched yet, :meth:`Stores.get`) and the resolution last made from that version of the store
(:meth:`Stores.resolve_for`: the validation's, which reads the credentials every time).
Credentials rotated in their Secret between two validations are seen at the first read they
deny (:meth:`Stores.recheck`: read again once per credentials; changed, the store's
ExternalSecrets are registered again), as ESO, which reads them at every reconcile, sees them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from secretops_controller import kube
from secretops_controller.config import parse_duration
from secretops_controller.context import Context, KeyedLocks
from secretops_controller.external import status, stores
from secretops_controller.external.names import EsReason, StoreId, store_id, store_path
from secretops_controller.external.namespaces import Namespaces
from secretops_controller.external.provider import (
    Checker,
    ErrorKind,
    Observe,
    Provider,
    ProviderError,
    RemoteRef,
)
from secretops_controller.external.scheduler import StoreKey

log = logging.getLogger(__name__)
PROBE = RemoteRef("secretops-validation-probe")
TOKEN_EXPIRATION_SECONDS = 600  # a TokenRequest for a Vault login (the API server's minimum)
TOKEN_REQUEST_TIMEOUT = 5.0  # well under --renew-deadline: a login never waits long


def probe(provider: Provider) -> None:
    """One cheap call that proves connection and credentials (NotFound is fine)."""
    if isinstance(provider, Checker):  # Vault: the login (its token is reused later)
        provider.check()
        return
    result = provider.versions([PROBE]).get(PROBE)
    if isinstance(result, ProviderError) and result.kind != ErrorKind.NOT_FOUND:
        raise result


def _compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a registration reads of a store: kind, name, namespace, resourceVersion, spec."""
    meta = body.get("metadata") or {}
    return {"kind": body.get("kind"), "spec": copy.deepcopy(body.get("spec") or {}),
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "resourceVersion")}}


def _tokens_off(namespace: str, name: str, audiences: tuple[str, ...]) -> str:
    raise ProviderError(ErrorKind.DENIED, f"no TokenRequest for serviceaccount {namespace}/"
                                          f"{name}: token requests are off in this controller "
                                          "(--no-token-requests)")


class Stores:
    """Providers per store and credentials, store validation and its timer (leader only)."""

    def __init__(self, ctx: Context, observe: Observe,
                 on_new_credentials: Callable[[StoreId], Awaitable[None]]) -> None:
        self.ctx = ctx
        self.observe = observe
        self.on_new_credentials = on_new_credentials
        self.providers: dict[str, Provider] = {}  # read identity (fingerprint) -> provider
        self.due: dict[StoreId, float] = {}  # monotonic time of the next validation
        self.keys: dict[StoreId, StoreKey | None] = {}  # as last validated
        # store -> its kind, name, namespace, resourceVersion and spec, as last watched
        # (:meth:`seen`): an ExternalSecret's registration reads no store
        self.specs: dict[StoreId, dict[str, Any]] = {}
        # store -> (its resourceVersion, its resolution): the credentials read once per
        # validation (or first registration), not once per ExternalSecret
        self.resolved: dict[StoreId, tuple[str, stores.Resolved]] = {}
        # store -> the credentials (fingerprints) read again after a denial (:meth:`recheck`)
        self.rechecked: dict[StoreId, set[str]] = {}
        self._lock: KeyedLocks[StoreId] = KeyedLocks()
        self._wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None  # set while leading
        self.namespaces = Namespaces(ctx)  # their labels, as watched (ClusterSecretStores)

    def reset(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.due.clear()
        self.keys.clear()
        self.specs.clear()
        self.resolved.clear()
        self.rechecked.clear()
        self.namespaces.reset()
        self._lock = KeyedLocks()
        self._wake = asyncio.Event()
        self.loop = loop

    # ---- the stores as watched ---------------------------------------------------------------
    def seen(self, body: Mapping[str, Any]) -> None:
        """A store's watch event (not a deletion): what a registration needs of it, kept."""
        self.specs[store_id(body)] = _compact(body)

    def gone(self, sid: StoreId) -> None:
        """A store's deletion, watched: nothing of it is kept."""
        self.specs.pop(sid, None)
        self.resolved.pop(sid, None)
        self.rechecked.pop(sid, None)

    async def get(self, kind: str, ns: str, name: str) -> Mapping[str, Any] | None:
        """The store as last watched, else read (not watched yet: a cold start's
        ExternalSecrets listed before their store). A change not yet watched is registered
        again by the store's own event. What is read is not kept: only a watch keeps a store
        (a store read, then deleted before the store watch listed it, would otherwise serve
        for the whole term — deleting a store must revoke its use)."""
        sid = (kind, ns, name)
        cached = self.specs.get(sid)
        if cached is not None:
            return cached
        return await self.ctx.api.get(store_path(kind, ns, name))

    # ---- reading what a store refers to ------------------------------------------------------
    async def _get_secret(self, ns: str, name: str) -> Mapping[str, Any] | None:
        try:
            return await self.ctx.api.get(kube.secrets(ns, name))
        except kube.ApiError as e:
            if e.status != 403:
                raise
            # RBAC or the namespaced scope: the store's own configuration, not an outage
            raise stores.StoreError(EsReason.INVALID_STORE.value,
                                    f"Secret {ns}/{name}: forbidden: {e.message}") from None

    async def labels(self, ns: str) -> Mapping[str, str] | None:
        return await self.namespaces.labels(ns)

    async def resolve(self, store: Mapping[str, Any], es_ns: str | None) -> stores.Resolved:
        tokens = self._request_token if self.ctx.config.uses_token_requests else _tokens_off
        return await stores.resolve(store, es_ns, self._get_secret, request_token=tokens,
                                    own_token_file=self.ctx.config.service_account_token_file)

    async def resolve_for(self, store: Mapping[str, Any], es_ns: str) -> stores.Resolved:
        """:meth:`resolve` for an ExternalSecret: the store's last resolution when it was made
        from the same version of the store (its validation's, another ExternalSecret's), so the
        credentials are read once per validation, not per ExternalSecret. A ClusterSecretStore
        is resolved per namespace (its refs may name none) unless its validation succeeded
        (then no ref depends on the namespace)."""
        sid = store_id(store)
        version = str((store.get("metadata") or {}).get("resourceVersion"))
        async with self._lock(sid):
            hit = self.resolved.get(sid)
            if hit is not None and hit[0] == version:
                return hit[1]
            resolved = await self.resolve(store, es_ns)
            if sid[0] == stores.NAMESPACED_KIND:
                self.resolved[sid] = (version, resolved)
            return resolved

    async def recheck(self, sid: StoreId, key: StoreKey, es_ns: str) -> bool:
        """A read with the credentials of ``key`` was denied: the store's credentials read
        again, once per credentials until its next validation (a token rotated in its Secret,
        the old one revoked, is seen at the first denial, not at the next validation). True:
        they changed, and the ExternalSecrets that use the store were registered again."""
        done = self.rechecked.setdefault(sid, set())
        store = self.specs.get(sid)
        if key.fingerprint in done or store is None:
            return False
        done.add(key.fingerprint)
        resolved: stores.Resolved | None = None
        async with self._lock(sid):
            self.resolved.pop(sid, None)
            with contextlib.suppress(stores.StoreError):  # the registrations report it
                resolved = await self.resolve(store, es_ns)
                if sid[0] == stores.NAMESPACED_KIND:
                    version = str((store.get("metadata") or {}).get("resourceVersion"))
                    self.resolved[sid] = (version, resolved)
        if resolved is not None and resolved.key == key:
            return False  # the same credentials: denied indeed
        if resolved is not None and self.keys.get(sid) is not None:
            self.keys[sid] = resolved.key  # validated with none that depends on a namespace
        log.info("%s %s: credentials changed since they were read: ExternalSecrets registered "
                 "again", sid[0], "/".join(p for p in sid[1:] if p))
        await self.on_new_credentials(sid)
        return True

    def _request_token(self, ns: str, name: str, audiences: tuple[str, ...]) -> str:
        """A TokenRequest for a Vault login, from a provider's worker thread (never the loop's:
        it waits for the loop to run the request)."""
        if self.loop is None:
            raise ProviderError(ErrorKind.UNAVAILABLE, "the controller is not leading")
        future = asyncio.run_coroutine_threadsafe(self._token(ns, name, audiences), self.loop)
        try:
            return future.result(timeout=TOKEN_REQUEST_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ProviderError(ErrorKind.UNAVAILABLE, f"TokenRequest for serviceaccount {ns}/"
                                                       f"{name}: timed out") from None
        except concurrent.futures.CancelledError:
            raise ProviderError(ErrorKind.UNAVAILABLE, "the controller stopped leading") from None

    async def _token(self, ns: str, name: str, audiences: tuple[str, ...]) -> str:
        spec: dict[str, Any] = {"expirationSeconds": TOKEN_EXPIRATION_SECONDS}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            out = await self.ctx.api.create(
                f"/api/v1/namespaces/{quote(ns, safe='')}/serviceaccounts/"
                f"{quote(name, safe='')}/token", body)
        except kube.ApiError as e:
            if e.status == 403:  # a clear condition on the store, no retry storm
                raise ProviderError(ErrorKind.DENIED, (
                    f"TokenRequest for serviceaccount {ns}/{name} forbidden: {e.message} (the "
                    "controller's RBAC allows tokens only for the service accounts its install "
                    "names: docs/controller.md, 'Token requests')")) from None
            raise ProviderError(ErrorKind.UNAVAILABLE if e.transient else ErrorKind.DENIED,
                                f"TokenRequest for serviceaccount {ns}/{name}: {e.status} "
                                f"{e.reason}") from None
        token = (out.get("status") or {}).get("token")
        if not isinstance(token, str) or not token:
            raise ProviderError(ErrorKind.DENIED, f"TokenRequest for serviceaccount {ns}/{name}"
                                                  ": no token in the answer")
        return token

    def provider(self, resolved: stores.Resolved) -> Provider:
        """The provider for this read identity (made once, then shared by every store with
        the same one)."""
        p = self.providers.get(resolved.key.fingerprint)
        if p is None:
            p = self.providers[resolved.key.fingerprint] = resolved.make(self.observe)
        return p

    # ---- validation ------------------------------------------------------------------------
    async def validate(self, store: Mapping[str, Any]) -> tuple[bool | None, EsReason, str]:
        """The store's Ready condition: resolve and make one cheap provider call."""
        sid = store_id(store)
        try:
            async with self._lock(sid):  # a registration waiting for it takes its resolution
                self.resolved.pop(sid, None)
                self.rechecked.pop(sid, None)
                resolved = await self.resolve(store, None)
                version = str((store.get("metadata") or {}).get("resourceVersion"))
                self.resolved[sid] = (version, resolved)
        except stores.StoreError as e:
            self.keys[sid] = None
            reason = EsReason(e.reason)
            return (None if reason is EsReason.VALIDATION_UNKNOWN else False), reason, e.message
        self.keys[sid] = resolved.key
        try:
            await asyncio.to_thread(probe, self.provider(resolved))
        except ProviderError as e:
            if e.kind in (ErrorKind.DENIED, ErrorKind.INVALID):
                return False, EsReason.INVALID_PROVIDER, e.message
            return False, EsReason.VALIDATION_FAILED, e.message
        return True, EsReason.VALID, f"{resolved.provider_name}: connection and credentials valid"

    def schedule(self, body: Mapping[str, Any]) -> None:
        """Validate ``body`` again after its ``spec.refreshInterval`` (default
        ``--store-refresh-interval``; 0: never), as ESO requeues stores."""
        sid = store_id(body)
        text = (body.get("spec") or {}).get("refreshInterval")
        try:
            interval = (parse_duration(str(text)) if text
                        else self.ctx.config.store_refresh_interval)
        except ValueError:
            interval = self.ctx.config.store_refresh_interval
        if interval <= 0:
            self.due.pop(sid, None)
        else:
            self.due[sid] = time.monotonic() + interval
        self._wake.set()

    async def run(self) -> None:
        """The one timer of periodic validations (a task while leading)."""
        while True:
            now = time.monotonic()
            for sid in [s for s, due in self.due.items() if due <= now]:
                try:
                    await self.revalidate(sid)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # one store must not stop the others' validation
                    log.warning("%s %s: periodic validation failed: %s", sid[0],
                                "/".join(p for p in sid[1:] if p), e)
                    self.due[sid] = time.monotonic() + self.ctx.config.retry_max_delay
            nxt = min(self.due.values(), default=None)
            self._wake.clear()
            timeout = None if nxt is None else max(0.05, nxt - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def revalidate(self, sid: StoreId) -> None:
        """One periodic validation: the status written only if the condition changed; the
        ExternalSecrets registered again only if the credentials did (a rotated token)."""
        kind, ns, name = sid
        body = await self.ctx.api.get(store_path(kind, ns, name))
        if body is None:
            self.due.pop(sid, None)
            self.keys.pop(sid, None)
            return
        before = self.keys.get(sid)
        ok, reason, message = await self.validate(body)
        new = status.store_status(body, ok, reason, message)
        if new is not None:
            await self.ctx.api.merge_patch(store_path(kind, ns, name) + "/status",
                                           {"status": new})
        self.schedule(body)
        if self.keys.get(sid) != before:
            await self.on_new_credentials(sid)

    def unused(self, used: set[str]) -> list[Provider]:
        """Take out the providers that neither ``used`` (fingerprints) nor a store validation
        needs."""
        keep = used | {k.fingerprint for k in self.keys.values() if k is not None}
        return [self.providers.pop(k) for k in [k for k in self.providers if k not in keep]]
