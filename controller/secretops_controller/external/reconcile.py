"""The ExternalSecret reconcile loop: stores, ExternalSecrets, their Secrets (leader only).

:func:`register` adds the handlers to the operator's registry (they run only on the leader,
like the SealedSecret half):

* **SecretStore / ClusterSecretStore** create/update/resume: credentials resolved from the
  referenced Secrets (or the default chain), validated by one cheap provider call (Vault
  ``lookup-self`` or login; an AWS version lookup), ``status.conditions[type=Ready]`` with
  ``Valid`` / ``InvalidStoreConfiguration`` / ``InvalidProviderConfig`` / ``ValidationFailed``
  / ``ValidationUnknown``. ExternalSecrets that use the store are registered again.
* **ExternalSecret** create/update/resume: the spec is parsed, the store resolved (a
  ClusterSecretStore's ``spec.conditions`` enforced: ``StoreNotAllowed``), and the refs are
  registered with the central :class:`~.scheduler.Scheduler` under the store's
  :class:`~.scheduler.StoreKey` (credentials fingerprint: tenants never share an entry). The
  force-sync annotation (:data:`FORCE_SYNC`, any new value) asks for a read now. Deleted (the
  watch event: no finalizer): unregistered.
* **Each delivery** of the scheduler (a value, a version, NotFound or an error changed) syncs
  the owner: the Secret is written per ``creationPolicy`` (Owner, default: ownerReference with
  ``controller: true``; Merge: into an existing Secret; Orphan; None: nothing written) with the
  keyed fingerprint of its data (:mod:`.fingerprint`), unless another writer claims it
  (:mod:`.ownership`: ``SecretConflict``); ``deletionPolicy: Delete`` drops the keys of a
  remote secret that is NotFound and deletes the Secret (Merge: takes the merged keys out) once
  all are (Retain, default, keeps it); a provider error leaves a Secret it wrote with its last
  good values and sets Ready=False with the reason until a read succeeds again (what the
  message says of the Secret is read first, never assumed).
* **Drift**: Secrets labelled ``secretops.dev/managed`` are watched (a watch of its own with a
  server-side label selector: kopf's Secret watch is limited to the SealedSecret label); one that
  is deleted or edited is written again at once from the cached values.

Status: ``Ready`` with ESO's reasons, ``refreshTime``, ``syncedResourceVersion``,
``remoteVersions``, ``dataHash``; Events with fixed reasons (:class:`EsReason`). No value ever
goes to a log, an Event or a status: messages name fields, keys and stores.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast
from urllib.parse import quote

import aiohttp
import kopf

from secretops_controller import kube, runtime
from secretops_controller.config import parse_duration
from secretops_controller.context import Context
from secretops_controller.external import (
    fingerprint,
    mapping,
    ownership,
    rollout,
    rotation,
    stores,
)
from secretops_controller.external.metrics import ExternalMetrics
from secretops_controller.external.provider import (
    ErrorKind,
    Provider,
    ProviderError,
    RemoteRef,
    close_quietly,
)
from secretops_controller.external.scheduler import Scheduler, Settings, StoreKey

log = logging.getLogger(__name__)

GROUP, VERSION = "secretops.dev", "v1alpha1"
API = f"{GROUP}/{VERSION}"
KIND = "ExternalSecret"
FORCE_SYNC = "secretops.dev/force-sync"
OWNER_ANNOTATION = ownership.OWNER_ANNOTATION  # on the Secret: the ExternalSecret's name
READY = "Ready"
DEFAULT_INTERVAL = 3600.0
PROBE = RemoteRef("secretops-validation-probe")
TOKEN_EXPIRATION_SECONDS = 600  # a TokenRequest for a Vault login (the API server's minimum)
TOKEN_REQUEST_TIMEOUT = 5.0  # well under --renew-deadline: a login never waits long

Owner = tuple[str, str]  # (namespace, ExternalSecret name)


class EsReason(StrEnum):
    """Condition and Event reasons of the external-secrets half. Never renamed."""

    SYNCED = "SecretSynced"
    SYNC_ERROR = "SecretSyncedError"
    DELETED = "SecretDeleted"
    MISSING = "SecretMissing"
    UPDATE_FAILED = "UpdateFailed"
    STORE_NOT_READY = "StoreNotReady"
    STORE_NOT_ALLOWED = "StoreNotAllowed"
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"
    TEMPLATE_ERROR = "TemplateError"
    CONFLICT = "SecretConflict"  # another ExternalSecret or a SealedSecret writes the Secret
    # stores
    VALID = "Valid"
    INVALID_PROVIDER = "InvalidProviderConfig"
    INVALID_STORE = "InvalidStoreConfiguration"
    VALIDATION_FAILED = "ValidationFailed"
    VALIDATION_UNKNOWN = "ValidationUnknown"
    # rollout and rotation
    ROLLED = "WorkloadsRolled"
    ROLLOUT_SKIPPED = "RolloutSkipped"
    ROLLOUT_FAILED = "RolloutFailed"
    ROTATED = "SecretRotated"
    ROTATION_FAILED = "RotationFailed"


NORMAL = frozenset({EsReason.SYNCED, EsReason.VALID, EsReason.DELETED, EsReason.ROLLED,
                    EsReason.ROTATED})


def event(obj: Mapping[str, Any], reason: EsReason, message: str) -> None:
    """An Event about ``obj`` with a fixed reason (the shared poster, else kopf's)."""
    kind = "Normal" if reason in NORMAL else "Warning"
    poster = runtime.event_poster.get()
    if poster is not None:
        poster(obj, kind, reason.value, message[:1000])
        return
    kopf.event(kopf.Body(cast(kopf.RawBody, dict(obj))), type=kind, reason=reason.value,
               message=message[:1000])


def path(namespace: str, name: str | None = None) -> str:
    return kube.resource_path(f"/apis/{API}", namespace, "externalsecrets", name)


def store_path(kind: str, namespace: str, name: str) -> str:
    if kind == stores.CLUSTER_KIND:
        return f"/apis/{API}/clustersecretstores/{name}"
    return kube.resource_path(f"/apis/{API}", namespace, "secretstores", name)


def condition(old_status: Mapping[str, Any], ok: bool | None, reason: EsReason,
              message: str) -> dict[str, Any]:
    """The Ready condition (lastTransitionTime kept when the status does not change)."""
    value = "Unknown" if ok is None else ("True" if ok else "False")
    prev = next((c for c in old_status.get("conditions") or []
                 if isinstance(c, dict) and c.get("type") == READY), None)
    stamp = runtime.rfc3339(runtime.now())
    keep = prev is not None and prev.get("status") == value
    return {"type": READY, "status": value, "reason": reason.value, "message": message,
            "lastTransitionTime": prev.get("lastTransitionTime", stamp)
            if keep and prev is not None else stamp}


def _same(cond: Mapping[str, Any], old_status: Mapping[str, Any]) -> bool:
    for c in old_status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == READY:
            return all(c.get(k) == cond.get(k) for k in ("status", "reason", "message"))
    return False


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: EsReason
    message: str
    extra: dict[str, Any] = field(default_factory=dict)  # status fields besides conditions
    wrote: bool = False
    changed: str | None = None  # an existing Secret's data changed: its new fingerprint


@dataclass
class _Owned:
    store: tuple[str, str, str]  # (kind, namespace, name) of the store it uses
    target: str = ""
    forced: str | None = None
    seen: bool = False  # registered once: a new force-sync value then means "read now"
    key: StoreKey | None = None


class ExternalSecrets:
    """The external-secrets half's state while leading: scheduler, providers, owners."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metrics = ExternalMetrics(ctx.metrics.registry)
        self.scheduler = self._new_scheduler()
        self.providers: dict[StoreKey, Provider] = {}
        self.owned: dict[Owner, _Owned] = {}
        self.written: dict[tuple[str, str], str] = {}  # Secret -> resourceVersion we wrote
        # Secret -> the ExternalSecret last seen writing it whole: wins when it is re-created
        self.claims: dict[tuple[str, str], str] = {}
        self.targets: dict[tuple[str, str], set[Owner]] = {}  # Secret -> who targets it
        self._fp_key: bytes | None = None  # the fingerprint key, read when first needed
        self._fp_lock = asyncio.Lock()
        self._running: dict[Owner, asyncio.Task[None]] = {}
        self.rotations: dict[Owner, tuple[rotation.Rotation, datetime]] = {}  # and when due
        self._rotation_wake = asyncio.Event()
        self._again: set[Owner] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self.store_due: dict[tuple[str, str, str], float] = {}  # monotonic time
        self.store_keys: dict[tuple[str, str, str], StoreKey | None] = {}
        self._store_wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self.metrics.cache_entries.set_function(lambda: len(self.scheduler._entries))

    def _new_scheduler(self) -> Scheduler:
        c = self.ctx.config
        settings = Settings(backoff_base=c.retry_base_delay, backoff_cap=c.retry_max_delay)
        return Scheduler(settings=settings, on_update=self._delivered)

    # ---- lifecycle (leader) --------------------------------------------------------------
    async def start(self) -> None:
        await self.stop()
        self._loop = asyncio.get_running_loop()
        self.scheduler = self._new_scheduler()
        self.owned.clear()
        self.written.clear()
        self.claims.clear()
        self.targets.clear()
        self._fp_key = None  # read again: it may have been replaced while we did not lead
        self.rotations.clear()
        self._rotation_wake = asyncio.Event()
        self.store_due.clear()
        self.store_keys.clear()
        self._store_wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(self._rotate_loop()), name="rotation"),
                       asyncio.create_task(self._run(self._store_loop()),
                                           name="store validation"),
                       asyncio.create_task(self._run(self.scheduler.run()), name="scheduler"),
                       asyncio.create_task(self._run(self._watch_secrets()),
                                           name="external Secrets watch")]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._running.values()]
        self._tasks, self._running = [], {}
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        providers, self.providers = list(self.providers.values()), {}
        for p in providers:
            await asyncio.to_thread(close_quietly, p)
        self._loop = None

    async def _run(self, coro: Any) -> None:
        runtime.post_events_from_this_task(self.ctx)
        await coro

    async def _fingerprint_key(self) -> bytes:
        """The key of the data fingerprints (:mod:`.fingerprint`), read or made once per
        leadership term. Raises :class:`kube.ApiError`, :class:`fingerprint.FingerprintKeyError`."""
        async with self._fp_lock:
            if self._fp_key is None:
                ns = self.ctx.config.namespace
                self._fp_key, made = await fingerprint.load_or_create(self.ctx.api, ns)
                if made:
                    log.info("made the fingerprint key (Secret %s/%s)", ns,
                             fingerprint.KEY_SECRET)
            return self._fp_key

    def _retarget(self, owner: Owner, target: str) -> None:
        """``owner`` now writes Secret ``target`` of its namespace ("": none, it is gone);
        the others that target its old or new Secret sync again (a claim may have been given
        up: the winner of a conflict was deleted, retargeted or changed policy)."""
        o = self.owned.get(owner)
        before = o.target if o is not None else ""
        if o is not None:
            o.target = target
        for t in {before, target} - {""}:
            for other in self.rivals_of(owner, t):
                self.kick(other)
        if before != target:
            if before:
                self.targets.get((owner[0], before), set()).discard(owner)
            if target:
                self.targets.setdefault((owner[0], target), set()).add(owner)

    def rivals_of(self, owner: Owner, target: str) -> list[Owner]:
        """The other ExternalSecrets of ``owner``'s namespace that target Secret ``target``."""
        return sorted(o for o in self.targets.get((owner[0], target), ()) if o != owner)

    # ---- stores --------------------------------------------------------------------------
    async def _get_secret(self, ns: str, name: str) -> Mapping[str, Any] | None:
        try:
            return await self.ctx.api.get(kube.secrets(ns, name))
        except kube.ApiError as e:
            if e.status != 403:
                raise
            # RBAC or the namespaced scope: the store's own configuration, not an outage
            raise stores.StoreError(EsReason.INVALID_STORE.value,
                                    f"Secret {ns}/{name}: forbidden: {e.message}") from None

    async def _labels(self, ns: str) -> Mapping[str, str] | None:
        obj = await self.ctx.api.get(f"/api/v1/namespaces/{ns}")
        return None if obj is None else dict((obj.get("metadata") or {}).get("labels") or {})

    async def _resolve(self, store: Mapping[str, Any], es_ns: str | None) -> stores.Resolved:
        tokens = (self._request_token if self.ctx.config.uses_token_requests
                  else _tokens_off)
        return await stores.resolve(
            store, es_ns, self._get_secret, request_token=tokens,
            own_token_file=self.ctx.config.service_account_token_file)

    def _request_token(self, ns: str, name: str, audiences: tuple[str, ...]) -> str:
        """A TokenRequest for a Vault login, from a provider's worker thread (never the loop's:
        it waits for the loop to run the request)."""
        if self._loop is None:
            raise ProviderError(ErrorKind.UNAVAILABLE, "the controller is not leading")
        future = asyncio.run_coroutine_threadsafe(self._token(ns, name, audiences), self._loop)
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

    def _provider(self, resolved: stores.Resolved) -> Provider:
        p = self.providers.get(resolved.key)
        if p is None:
            p = self.providers[resolved.key] = resolved.make(self.metrics.observe)
        return p

    async def validate(self, store: Mapping[str, Any]) -> tuple[bool | None, EsReason, str]:
        """The store's Ready condition: resolve and make one cheap provider call."""
        sid = _store_id(store)
        try:
            resolved = await self._resolve(store, None)
        except stores.StoreError as e:
            self.store_keys[sid] = None
            reason = EsReason(e.reason)
            return (None if reason is EsReason.VALIDATION_UNKNOWN else False), reason, e.message
        self.store_keys[sid] = resolved.key
        provider = self._provider(resolved)
        try:
            await asyncio.to_thread(_probe, provider)
        except ProviderError as e:
            if e.kind in (ErrorKind.DENIED, ErrorKind.INVALID):
                return False, EsReason.INVALID_PROVIDER, e.message
            return False, EsReason.VALIDATION_FAILED, e.message
        return True, EsReason.VALID, f"{resolved.provider_name}: connection and credentials valid"

    def _store_status(self, body: Mapping[str, Any], ok: bool | None, reason: EsReason,
                      message: str) -> dict[str, Any] | None:
        """The store's new status, or None when its Ready condition says the same already;
        a changed condition is logged and posted as an Event."""
        status = body.get("status") or {}
        cond = condition(status, ok, reason, message)
        gen = (body.get("metadata") or {}).get("generation")
        if _same(cond, status) and status.get("observedGeneration") == gen:
            return None
        if not _same(cond, status):
            log.info("%s %s: %s: %s", body.get("kind"), _name(body), reason.value, message)
            event(body, reason, message)
        new: dict[str, Any] = {"conditions": [
            *(c for c in status.get("conditions") or [] if c.get("type") != READY), cond]}
        if gen is not None:
            new["observedGeneration"] = gen
        return new

    async def on_store(self, body: Mapping[str, Any], patch: kopf.Patch) -> None:
        ok, reason, message = await self.validate(body)
        new = self._store_status(body, ok, reason, message)
        if new is not None:
            patch.status.update(new)
        self._schedule_store(body)
        await self._reregister(_store_id(body))
        self._drop_unused_providers()

    # ---- periodic store validation (one timer for all stores) ----------------------------
    def _schedule_store(self, body: Mapping[str, Any]) -> None:
        """Validate ``body`` again after its ``spec.refreshInterval`` (default
        ``--store-refresh-interval``; 0: never), as ESO requeues stores."""
        sid = _store_id(body)
        text = (body.get("spec") or {}).get("refreshInterval")
        try:
            interval = (parse_duration(str(text)) if text
                        else self.ctx.config.store_refresh_interval)
        except ValueError:
            interval = self.ctx.config.store_refresh_interval
        if interval <= 0:
            self.store_due.pop(sid, None)
        else:
            self.store_due[sid] = time.monotonic() + interval
        self._store_wake.set()

    async def _store_loop(self) -> None:
        while True:
            now = time.monotonic()
            for sid in [s for s, due in self.store_due.items() if due <= now]:
                try:
                    await self.revalidate(sid)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # one store must not stop the others' validation
                    log.warning("%s %s: periodic validation failed: %s", sid[0],
                                "/".join(p for p in sid[1:] if p), e)
                    self.store_due[sid] = time.monotonic() + self.ctx.config.retry_max_delay
            nxt = min(self.store_due.values(), default=None)
            self._store_wake.clear()
            timeout = None if nxt is None else max(0.05, nxt - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store_wake.wait(), timeout)

    async def revalidate(self, sid: tuple[str, str, str]) -> None:
        """One periodic validation: the status written only if the condition changed; the
        ExternalSecrets registered again only if the credentials did (a rotated token)."""
        kind, ns, name = sid
        body = await self.ctx.api.get(store_path(kind, ns, name))
        if body is None:
            self.store_due.pop(sid, None)
            self.store_keys.pop(sid, None)
            return
        before = self.store_keys.get(sid)
        ok, reason, message = await self.validate(body)
        new = self._store_status(body, ok, reason, message)
        if new is not None:
            await self.ctx.api.merge_patch(store_path(kind, ns, name) + "/status",
                                           {"status": new})
        self._schedule_store(body)
        if self.store_keys.get(sid) != before:
            await self._reregister(sid)
            self._drop_unused_providers()  # the old credentials' provider

    async def _reregister(self, store: tuple[str, str, str]) -> None:
        """ExternalSecrets that use ``store``: registered again (credentials may differ)."""
        for owner, o in list(self.owned.items()):
            if o.store == store:
                es = await self.ctx.api.get(path(*owner))
                if es is not None:
                    await self.on_external(es, refresh=False)

    # ---- ExternalSecrets -----------------------------------------------------------------
    async def on_external(self, es: Mapping[str, Any], refresh: bool = True) -> None:
        """Register ``es`` with the scheduler (or report why not) and sync what is cached."""
        meta = es.get("metadata") or {}
        owner: Owner = (str(meta.get("namespace")), str(meta.get("name")))
        spec = es.get("spec") or {}
        ref = spec.get("secretStoreRef") or {}
        kind = ref.get("kind") or stores.NAMESPACED_KIND
        store_ns = "" if kind == stores.CLUSTER_KIND else owner[0]
        o = self.owned.get(owner)
        if o is None:
            o = self.owned[owner] = _Owned((kind, store_ns, str(ref.get("name") or "")))
        o.store = (kind, store_ns, str(ref.get("name") or ""))
        self._retarget(owner, str((spec.get("target") or {}).get("name") or owner[1]))
        forced = (meta.get("annotations") or {}).get(FORCE_SYNC)
        try:
            parsed = mapping.parse_spec(spec)
            interval = parse_duration(str(spec.get("refreshInterval") or "1h"))
            if not ref.get("name"):
                raise stores.StoreError(EsReason.STORE_NOT_READY.value,
                                        "spec.secretStoreRef.name is required")
            if kind == stores.CLUSTER_KIND and not self.ctx.config.uses_cluster_stores:
                raise stores.StoreError(EsReason.STORE_NOT_READY.value, (
                    "ClusterSecretStores are off in this controller "
                    "(--no-cluster-secret-stores): use a SecretStore"))
            store = await self.ctx.api.get(store_path(kind, store_ns, o.store[2]))
            if store is None:
                raise stores.StoreError(EsReason.STORE_NOT_READY.value,
                                        f"{kind} {o.store[2]} not found")
            if kind == stores.CLUSTER_KIND and not await stores.allowed(store, owner[0],
                                                                        self._labels):
                raise stores.StoreError(EsReason.STORE_NOT_ALLOWED.value, (
                    f"ClusterSecretStore {o.store[2]} may not be used from namespace "
                    f"{owner[0]} (spec.conditions)"))
            resolved = await self._resolve(store, owner[0])
            rot = rotation.parse(spec)
        except (mapping.MappingError, ValueError, stores.StoreError) as e:
            self.scheduler.unregister(owner)
            self.rotations.pop(owner, None)
            o.key = None
            if isinstance(e, stores.StoreError):
                reason = EsReason.STORE_NOT_READY if e.reason not in (
                    EsReason.STORE_NOT_ALLOWED.value,) else EsReason.STORE_NOT_ALLOWED
                msg = e.message
            elif isinstance(e, rotation.RotationError):
                reason, msg = EsReason.SYNC_ERROR, str(e)
            elif isinstance(e, mapping.MappingError):
                reason, msg = EsReason.SYNC_ERROR, f"{e.path}: {e.message}"
            else:
                reason, msg = EsReason.SYNC_ERROR, f"spec.refreshInterval: {e}"
            await self._report(es, Outcome(False, reason, msg))
            return
        self.scheduler.register(owner, resolved.key, self._provider(resolved),
                                parsed.wants(), interval)
        o.key = resolved.key
        self._schedule_rotation(owner, es, rot)
        if refresh and o.seen and forced != o.forced and forced is not None:
            log.info("ExternalSecret %s/%s: force-sync", *owner)
            self.scheduler.refresh(owner)
        o.forced, o.seen = forced, True
        self.kick(owner)  # what is cached already (a shared key) is written now

    def on_annotations(self, es: Mapping[str, Any]) -> None:
        """Force-sync: a new value of :data:`FORCE_SYNC` reads the remote values now. (kopf's
        update handlers cannot see it: kopf leaves annotations of its storage prefix,
        ``secretops.dev/``, out of the diff, so every watch event is checked here.)"""
        meta = es.get("metadata") or {}
        owner: Owner = (str(meta.get("namespace")), str(meta.get("name")))
        o = self.owned.get(owner)
        forced = (meta.get("annotations") or {}).get(FORCE_SYNC)
        if o is None or not o.seen or o.key is None or forced == o.forced or forced is None:
            return
        o.forced = forced
        log.info("ExternalSecret %s/%s: force-sync", *owner)
        self.scheduler.refresh(owner)

    def forget(self, owner: Owner) -> None:
        self.scheduler.unregister(owner)
        self.rotations.pop(owner, None)
        self._retarget(owner, "")  # a loser of a conflict may win now
        self.owned.pop(owner, None)
        self._drop_unused_providers()

    def _drop_unused_providers(self) -> None:
        """Close the providers no ExternalSecret and no store validation uses any more (old
        credentials: their Vault token is revoked), in a worker thread: closing takes the
        provider's lock, which a login may hold while it waits for this loop."""
        used = {o.key for o in self.owned.values()} | {
            k for k in self.store_keys.values() if k is not None}
        for key in [k for k in self.providers if k not in used]:
            self.scheduler.close_later(self.providers.pop(key))

    # ---- rotation: one timer for all (see :mod:`.rotation`) ------------------------------
    def _schedule_rotation(self, owner: Owner, es: Mapping[str, Any],
                           rot: rotation.Rotation | None) -> None:
        if rot is None:
            self.rotations.pop(owner, None)
            return
        meta = es.get("metadata") or {}
        since = (rotation.parse_time((es.get("status") or {}).get("lastRotationTime"))
                 or rotation.parse_time(meta.get("creationTimestamp")) or runtime.now())
        prev = self.rotations.get(owner)
        if prev is not None and prev[0] == rot:
            return  # unchanged: keep the due time (a retry may be pending)
        self.rotations[owner] = (rot, rotation.next_due(rot.schedule, since))
        self._rotation_wake.set()

    async def _rotate_loop(self) -> None:
        while True:
            now = runtime.now()
            due = [o for o, (_, t) in self.rotations.items() if t <= now]
            for owner in due:
                try:
                    await self.rotate(owner)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad rotation must not end the timer of the others
                    log.exception("ExternalSecret %s/%s: rotation failed", *owner)
                    entry = self.rotations.get(owner)
                    if entry is not None:
                        self.rotations[owner] = (entry[0], runtime.now() + timedelta(seconds=60))
            nxt = min((t for _, t in self.rotations.values()), default=None)
            timeout = None if nxt is None else max(0.05, (nxt - runtime.now()).total_seconds())
            self._rotation_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rotation_wake.wait(), timeout)

    async def rotate(self, owner: Owner) -> None:
        """Generate a new value, write it to the store, record the time, read it back now
        (the sync then rolls the workloads). The value goes nowhere else."""
        entry = self.rotations.get(owner)
        o = self.owned.get(owner)
        if entry is None:
            return
        rot, _ = entry
        es = await self.ctx.api.get(path(*owner))
        provider = self.providers.get(o.key) if o is not None and o.key is not None else None
        where = rot.key + (f" (property {rot.prop})" if rot.prop else "")
        try:
            if es is None:
                self.rotations.pop(owner, None)
                return
            if provider is None:
                raise ProviderError(ErrorKind.UNAVAILABLE, "the ExternalSecret has no usable "
                                    "store (see its Ready condition)")
            write = getattr(provider, "write", None)
            if write is None:
                raise ProviderError(ErrorKind.INVALID,
                                    f"provider {provider.name} cannot write a rotated value")
            version = await asyncio.to_thread(write, rot.key, rot.prop, rot.generator.generate())
        except (ProviderError, kube.ApiError) as e:
            retry = min(60.0, rot.schedule if isinstance(rot.schedule, float) else 60.0)
            self.rotations[owner] = (rot, runtime.now() + timedelta(seconds=max(1.0, retry)))
            msg = f"rotating {where} failed: {e}; retrying"
            log.warning("ExternalSecret %s/%s: %s", *owner, msg)
            if es is not None:
                event(es, EsReason.ROTATION_FAILED, msg)
            return
        stamp = runtime.now()
        self.rotations[owner] = (rot, rotation.next_due(rot.schedule, stamp))
        msg = f"a new value written to {where}" + (f", version {version}" if version else "")
        log.info("ExternalSecret %s/%s: rotated: %s", *owner, msg)
        event(es, EsReason.ROTATED, msg)
        with contextlib.suppress(kube.ApiError):
            await self.ctx.api.merge_patch(path(*owner) + "/status", {"status": {
                "lastRotationTime": runtime.rfc3339(stamp)}})
        self.scheduler.refresh(owner)

    # ---- syncing -------------------------------------------------------------------------
    def _delivered(self, owners: set[Any]) -> None:
        for owner in owners:
            self.kick(owner)

    def kick(self, owner: Owner) -> None:
        """Sync ``owner`` soon: one sync at a time per owner, one more if asked meanwhile."""
        if owner in self._running:
            self._again.add(owner)
            return
        self._running[owner] = asyncio.create_task(self._sync_loop(owner))

    async def _sync_loop(self, owner: Owner) -> None:
        runtime.post_events_from_this_task(self.ctx)
        try:
            while True:
                self._again.discard(owner)
                await self._sync_retrying(owner)
                if owner not in self._again:
                    return
        finally:
            self._running.pop(owner, None)

    async def _sync_retrying(self, owner: Owner) -> None:
        try:
            await kube.retrying(self.ctx.config, lambda: self.sync(owner))
        except kube.ApiError as e:
            log.error("ExternalSecret %s/%s: sync failed: %s", *owner, e)
        except Exception:  # one bad sync must not end the loop of others
            log.exception("ExternalSecret %s/%s: sync failed", *owner)

    async def sync(self, owner: Owner) -> None:
        """Write the Secret of ``owner`` from the scheduler's snapshot; then the status."""
        started = time.perf_counter()
        es = await self.ctx.api.get(path(*owner))
        if es is None or (es.get("metadata") or {}).get("deletionTimestamp"):
            self.forget(owner)
            return
        o = self.owned.get(owner)
        snap = self.scheduler.snapshot(owner)
        if o is None or o.key is None or snap is None or snap.pending:
            return
        outcome = await self._apply(es, owner, o, snap)
        self.ctx.metrics.reconcile_duration.labels(kind=KIND).observe(
            time.perf_counter() - started)
        self.metrics.syncs.labels(reason=outcome.reason.value).inc()
        await self._report(es, outcome)
        if outcome.changed is not None:
            await self._rollout(es, owner[0], o.target, outcome.changed)

    async def _rollout(self, es: Mapping[str, Any], ns: str, secret: str,
                       data_hash: str) -> None:
        """The Secret's data changed: roll the workloads that use it (see :mod:`.rollout`)."""
        api = self.ctx.api
        listed = rollout.listed_workloads(es.get("spec") or {})
        if not self.ctx.config.uses_rollout:  # no rights to list or patch workloads
            if listed:
                msg = (f"rollouts are off in this controller (--no-rollout): not rolled after "
                       f"Secret {ns}/{secret} changed: "
                       + ", ".join(f"{k}/{n}" for k, n in listed))
                log.warning("ExternalSecret %s: %s", _name(es), msg)
                event(es, EsReason.ROLLOUT_SKIPPED, msg)
            return
        try:
            rolled, skipped, missing = await rollout.roll(
                ns, secret, data_hash, listed, api.list, api.merge_patch)
        except kube.ApiError as e:
            msg = f"rolling the workloads that use Secret {ns}/{secret} failed: {e}"
            log.warning("ExternalSecret %s: %s", _name(es), msg)
            event(es, EsReason.ROLLOUT_FAILED, msg)
            return
        for t in skipped:
            msg = (f"{t.kind} {ns}/{t.name} is paused: not rolled after Secret {secret} "
                   "changed")
            log.warning("ExternalSecret %s: %s", _name(es), msg)
            event({"apiVersion": "apps/v1", "kind": t.kind, **t.obj}, EsReason.ROLLOUT_SKIPPED,
                  msg)
            event(es, EsReason.ROLLOUT_SKIPPED, msg)
        if missing:
            msg = (f"listed in spec.rollout but not found: {', '.join(missing)} "
                   f"(namespace {ns})")
            log.warning("ExternalSecret %s: %s", _name(es), msg)
            event(es, EsReason.ROLLOUT_FAILED, msg)
        if rolled:
            names = ", ".join(f"{t.kind}/{t.name} ({t.why})" for t in rolled)
            msg = f"Secret {ns}/{secret} changed: rolled {names}"
            log.info("ExternalSecret %s: %s", _name(es), msg)
            event(es, EsReason.ROLLED, msg)

    async def _apply(self, es: Mapping[str, Any], owner: Owner, o: _Owned,
                     snap: Any) -> Outcome:
        spec = es.get("spec") or {}
        target = spec.get("target") or {}
        creation = target.get("creationPolicy") or "Owner"
        deletion = target.get("deletionPolicy") or "Retain"
        ns, name = owner[0], o.target
        errors = {str(w): e for w, e in snap.errors.items()}
        parsed = mapping.parse_spec(spec)
        missing = ", ".join(sorted(str(r) for r in snap.missing))
        if snap.missing and deletion != "Delete":
            state = await self._state(ns, name, owner[1], creation)
            return Outcome(False, EsReason.SYNC_ERROR, (
                f"the remote secret {missing} does not exist; {state} (deletionPolicy "
                f"{deletion})"))
        if deletion == "Delete" and not snap.errors and _all_gone(parsed, snap):
            # deletionPolicy Delete, every remote secret gone (as ESO): the Secret is deleted,
            # or, merged into someone else's Secret, the merged keys are taken out of it
            return await self._remove(owner, ns, name, creation, missing)
        def build() -> mapping.SecretData:
            return mapping.build(parsed, snap, skip_missing=deletion == "Delete",
                                 pool=self.ctx.renderer)

        try:
            # templates render in a worker process: waited for in a thread, off the loop
            data = (await self.ctx.renderer.in_thread(build)
                    if parsed.template is not None and parsed.template.data else build())
        except mapping.MappingError as e:
            if errors:
                return _provider_outcome(errors, await self._state(ns, name, owner[1],
                                                                   creation))
            reason = (EsReason.TEMPLATE_ERROR if (e.path or "").startswith("spec.target.template")
                      else EsReason.SYNC_ERROR)
            return Outcome(False, reason, f"{e.path}: {e.message}")
        try:
            key = await self._fingerprint_key()
        except fingerprint.FingerprintKeyError as e:
            log.error("the fingerprint key is unusable: %s", e)
            return Outcome(False, EsReason.SYNC_ERROR, (
                f"the controller's fingerprint key is unusable ({e}); "
                f"{await self._state(ns, name, owner[1], creation)}"))
        digest = fingerprint.fingerprint(key, ns, name, data.data)
        data = replace(data, annotations={**data.annotations, mapping.HASH_ANNOTATION: digest})
        extra = {"remoteVersions": data.versions, "dataHash": digest}
        wrote = False
        changed: str | None = None
        verb = "up to date"
        if creation != "None":
            async with self.ctx.lock(ns, name):
                current = await self.ctx.api.get(kube.secrets(ns, name))
                if current is None and creation == "Merge":
                    return Outcome(False, EsReason.MISSING, (
                        f"Secret {ns}/{name} does not exist (creationPolicy Merge writes into "
                        "an existing Secret only)"))
                conflict = await self._conflict(owner, name, creation, current)
                if conflict is not None:
                    return Outcome(False, EsReason.CONFLICT, conflict)
                new = desired(current, data, es, creation,
                              bool(target.get("immutable")))
                if current is None or _differs(current, new):
                    verb = await self._write(ns, name, current, new)
                    wrote = True
                    if current is not None and (current.get("data") or {}) != new["data"]:
                        changed = digest  # the data changed, not only its fingerprint
                if creation in ownership.WHOLE:
                    self.claims[(ns, name)] = owner[1]
        keys = ", ".join(sorted(data.data))
        if errors:
            state = (ownership.state(None, owner[1], ns, name, creation) if creation == "None"
                     else f"Secret {ns}/{name} holds the last values read")
            return replace(_provider_outcome(errors, state, extra), changed=changed, wrote=wrote)
        if snap.missing:
            return Outcome(True, EsReason.SYNCED, (
                f"Secret {ns}/{name} {verb} (keys: {keys}); without the keys of {missing}, "
                "which does not exist (deletionPolicy Delete)"), extra, wrote=wrote,
                changed=changed)
        if creation == "None":
            return Outcome(True, EsReason.SYNCED, f"values read (keys: {keys}); creationPolicy "
                                                  "None writes no Secret", extra)
        return Outcome(True, EsReason.SYNCED, f"Secret {ns}/{name} {verb} (keys: {keys})",
                       extra, wrote=wrote, changed=changed)

    async def _state(self, ns: str, name: str, es_name: str, creation: str) -> str:
        """What holds for the Secret when ``es_name`` cannot sync (read, not assumed)."""
        current = None if creation == "None" else await self.ctx.api.get(kube.secrets(ns, name))
        return ownership.state(current, es_name, ns, name, creation)

    async def _conflict(self, owner: Owner, name: str, creation: str,
                        current: Mapping[str, Any] | None) -> str | None:
        """Why ``owner`` may not write Secret ``name`` (see :func:`ownership.conflict`)."""
        ns = owner[0]
        return await ownership.conflict(
            lambda es_name: self.ctx.api.get(path(ns, es_name)), ns, owner[1], name, creation,
            current, [o[1] for o in self.rivals_of(owner, name)], self.claims.get((ns, name)))

    async def _remove(self, owner: Owner, ns: str, name: str, creation: str,
                      missing: str) -> Outcome:
        why = f"the remote secret {missing} does not exist (deletionPolicy Delete)"
        if creation == "None":
            return Outcome(False, EsReason.DELETED, f"nothing written: {why}")
        async with self.ctx.lock(ns, name):
            current = await self.ctx.api.get(kube.secrets(ns, name))
            if current is None:
                return Outcome(False, EsReason.DELETED, f"Secret {ns}/{name} absent: {why}")
            if creation == "Merge":
                if owner[1] not in ownership.merged(current):
                    return Outcome(False, EsReason.DELETED, (
                        f"nothing merged into Secret {ns}/{name}: {why}"))
                await self._write(ns, name, current, unmerged(current, owner[1]))
                return Outcome(False, EsReason.DELETED, (
                    f"keys merged into Secret {ns}/{name} removed: {why}"), wrote=True)
            if ownership.writer(current) != owner[1]:
                return Outcome(False, EsReason.DELETED, (
                    f"{ownership.state(current, owner[1], ns, name, creation)}: {why}"))
            await self.ctx.api.delete(kube.secrets(ns, name))
            self.written.pop((ns, name), None)
            return Outcome(False, EsReason.DELETED, f"Secret {ns}/{name} deleted: {why}",
                           wrote=True)

    async def _write(self, ns: str, name: str, current: Mapping[str, Any] | None,
                     new: dict[str, Any]) -> str:
        api = self.ctx.api
        if current is None:
            written = await api.create(kube.secrets(ns), new)
            verb = "created"
        elif (current.get("immutable") and new.get("data") != current.get("data")) or (
                (current.get("type") or "Opaque") != new.get("type")):
            await api.delete(kube.secrets(ns, name))  # immutable or new type: replaced whole
            new["metadata"] = {k: v for k, v in new["metadata"].items()
                               if k not in ("resourceVersion", "uid", "creationTimestamp")}
            written = await api.create(kube.secrets(ns), new)
            verb = "re-created"
        else:
            written = await api.replace(kube.secrets(ns, name), new)
            verb = "updated"
        self.written[(ns, name)] = str((written.get("metadata") or {}).get("resourceVersion"))
        return verb

    async def _report(self, es: Mapping[str, Any], outcome: Outcome) -> None:
        """Status (only when something changed) and an Event (writes and new conditions)."""
        meta = es.get("metadata") or {}
        old = es.get("status") or {}
        cond = condition(old, outcome.ok, outcome.reason, outcome.message)
        same = _same(cond, old)
        status: dict[str, Any] = {
            "conditions": [*(c for c in old.get("conditions") or [] if c.get("type") != READY),
                           cond],
            "observedGeneration": meta.get("generation"),
            **outcome.extra,
        }
        if outcome.ok:  # as ESO: the version of the ExternalSecret that was synced
            status["syncedResourceVersion"] = synced_version(es)
        if outcome.ok or outcome.wrote:
            status["refreshTime"] = runtime.rfc3339(runtime.now())
        unchanged = same and not outcome.wrote and all(
            old.get(k) == v for k, v in status.items() if k not in ("conditions", "refreshTime"))
        if not unchanged:
            if "remoteVersions" in status and old.get("remoteVersions"):
                # a merge patch merges maps: refs no longer used are removed explicitly
                gone = set(old["remoteVersions"]) - set(status["remoteVersions"])
                status["remoteVersions"] = {**status["remoteVersions"], **dict.fromkeys(gone)}
            await self.ctx.api.merge_patch(path(str(meta.get("namespace")),
                                                str(meta.get("name"))) + "/status",
                                           {"status": status})
        if outcome.wrote or not same:
            log_fn = log.info if outcome.ok or outcome.reason is EsReason.DELETED else log.warning
            log_fn("ExternalSecret %s: %s: %s", _name(es), outcome.reason.value, outcome.message)
            event(es, outcome.reason, outcome.message)

    # ---- drift: our Secrets, watched -----------------------------------------------------
    def on_secret_event(self, kind: str, secret: Mapping[str, Any]) -> None:
        meta = secret.get("metadata") or {}
        ns, name = str(meta.get("namespace")), str(meta.get("name"))
        writer = ownership.writer(secret)
        if kind == "DELETED" and writer:
            self.claims[(ns, name)] = writer  # its writer re-creates it, not a rival
        # every ExternalSecret that targets it (a loser of a conflict may now win), the one
        # recorded on it first
        es_name = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
        owners = [(ns, str(es_name))] if es_name else []
        owners += [k for k in sorted(self.targets.get((ns, name), ())) if k not in owners]
        for owner in owners:
            if owner not in self.owned:
                continue
            if kind != "DELETED" and self.written.get((ns, name)) == str(
                    meta.get("resourceVersion")):
                continue  # our own write, echoed
            log.info("Secret %s/%s %s: syncing its ExternalSecret", ns, name,
                     "deleted" if kind == "DELETED" else "changed")
            self.kick(owner)

    async def _watch_secrets(self) -> None:
        scopes: list[str | None] = list(self.ctx.config.watch_namespaces) or [None]
        await asyncio.gather(*(self._watch_scope(ns) for ns in scopes))

    async def _watch_scope(self, ns: str | None) -> None:
        """LIST then WATCH our Secrets (label selector), relisting when the watch ends badly."""
        cfg = self.ctx.config
        base = kube.secrets(ns) if ns else "/api/v1/secrets"
        selector = f"{mapping.MANAGED_LABEL}=true"
        while True:
            try:
                info = kube.login(cfg.kubeconfig)
                https = info.server.startswith("https")
                conn = aiohttp.TCPConnector(ssl=info.as_ssl_context() if https else False)
                async with aiohttp.ClientSession(connector=conn) as session:
                    listed = await self.ctx.api.request("GET", base,
                                                        params={"labelSelector": selector})
                    for item in listed.get("items") or []:
                        self.on_secret_event("LISTED", item)
                    rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                    while True:
                        rv = await self._watch_once(session, info, base, selector, rv)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, kube.ApiError, ValueError,
                    _Relist) as e:
                log.debug("external Secrets watch: %s (relisting)", type(e).__name__)
            await asyncio.sleep(cfg.retry_base_delay)

    async def _watch_once(self, session: aiohttp.ClientSession, info: kopf.ConnectionInfo,
                          base: str, selector: str, rv: str) -> str:
        cfg = self.ctx.config
        params = {"watch": "true", "labelSelector": selector, "resourceVersion": rv,
                  "timeoutSeconds": str(cfg.watch_timeout),
                  "allowWatchBookmarks": "true"}
        headers = {"Accept": "application/json", **info.as_http_headers()}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=cfg.watch_timeout + 30)
        async with session.get(info.server.rstrip("/") + base, params=params, headers=headers,
                               timeout=timeout) as resp:
            if resp.status >= 400:
                raise _Relist()
            async for line in resp.content:
                if not line.strip():
                    continue
                ev = json.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    raise _Relist()
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_secret_event(str(ev["type"]), obj)
        return rv


class _Relist(Exception):
    pass


def _tokens_off(namespace: str, name: str, audiences: tuple[str, ...]) -> str:
    raise ProviderError(ErrorKind.DENIED, f"no TokenRequest for serviceaccount {namespace}/"
                                          f"{name}: token requests are off in this controller "
                                          "(--no-token-requests)")


def _provider_outcome(errors: Mapping[str, ProviderError], state: str,
                      extra: dict[str, Any] | None = None) -> Outcome:
    """A read failed: the provider's message, then what is true of the Secret (``state``)."""
    first = sorted(errors.items())[0][1]
    reason = (EsReason.PROVIDER_UNAVAILABLE if first.transient else EsReason.SYNC_ERROR)
    return Outcome(False, reason, f"{first.message}; {state}; retrying with backoff",
                   extra or {})


def _probe(provider: Provider) -> None:
    """One cheap call that proves connection and credentials (NotFound is fine)."""
    check = getattr(provider, "check", None)
    if check is not None:  # Vault: the login (its token is reused later), else lookup-self
        check()
        return
    result = provider.versions([PROBE]).get(PROBE)
    if isinstance(result, ProviderError) and result.kind != ErrorKind.NOT_FOUND:
        raise result


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(
        meta.get("name"))


def _store_id(store: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = store.get("metadata") or {}
    return (str(store.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def synced_version(es: Mapping[str, Any]) -> str:
    """As ESO: the generation and a hash of the labels and annotations (kopf's excluded)."""
    meta = es.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not k.startswith("secretops.dev/last-handled")
                   and not k.startswith("kopf.")}
    digest = hashlib.sha256(json.dumps([meta.get("labels") or {}, annotations],
                                       sort_keys=True).encode()).hexdigest()[:16]
    return f"{meta.get('generation')}-{digest}"


def desired(current: Mapping[str, Any] | None, data: mapping.SecretData,
            es: Mapping[str, Any], creation: str, immutable: bool) -> dict[str, Any]:
    """The Secret to write over ``current`` for ``creation`` (Owner / Merge / Orphan). Pure."""
    meta = es.get("metadata") or {}
    encoded = {k: base64.b64encode(v).decode() for k, v in data.data.items()}
    cmeta = copy.deepcopy(dict((current or {}).get("metadata") or {}))
    cmeta.pop("managedFields", None)
    new_meta: dict[str, Any] = {**cmeta, "name": (cmeta.get("name")
                                                  or _target(es)),
                                "namespace": meta.get("namespace")}
    new_meta["labels"] = {**(cmeta.get("labels") or {}), **data.labels}
    new_meta["annotations"] = {**(cmeta.get("annotations") or {}), **data.annotations,
                               OWNER_ANNOTATION: str(meta.get("name"))}
    if creation == "Merge":
        merged = ownership.merged(current)
        before = set(merged.get(str(meta.get("name")), ()))
        values = {k: v for k, v in ((current or {}).get("data") or {}).items()
                  if k not in before or k in encoded}  # keys it no longer produces go
        values.update(encoded)
        merged[str(meta.get("name"))] = sorted(encoded)
        new_meta["annotations"][mapping.MERGED_KEYS_ANNOTATION] = json.dumps(
            merged, sort_keys=True, separators=(",", ":"))
        kind = (current or {}).get("type") or data.type
    else:
        values = encoded
        kind = data.type
    if creation == "Owner":
        refs = [r for r in cmeta.get("ownerReferences") or [] if not r.get("controller")]
        refs.append({"apiVersion": API, "kind": KIND, "name": meta.get("name"),
                     "uid": meta.get("uid"), "controller": True,
                     "blockOwnerDeletion": True})
        new_meta["ownerReferences"] = refs
    new: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": new_meta,
                           "type": kind, "data": values}
    if immutable or (current or {}).get("immutable"):
        new["immutable"] = True
    return new


def unmerged(current: Mapping[str, Any], es_name: str) -> dict[str, Any]:
    """``current`` without what ``es_name`` merged into it: its keys, its entry in the merged
    keys; once no ExternalSecret has merged anything, our annotations and the managed label
    too (the Secret is someone else's again). Pure."""
    new = copy.deepcopy(dict(current))
    meta = new.setdefault("metadata", {})
    meta.pop("managedFields", None)
    merged = ownership.merged(current)
    gone = set(merged.pop(es_name, ()))
    still = {k for keys in merged.values() for k in keys}
    new["data"] = {k: v for k, v in (new.get("data") or {}).items()
                   if k not in gone or k in still}
    notes = dict(meta.get("annotations") or {})
    if merged:
        notes[mapping.MERGED_KEYS_ANNOTATION] = json.dumps(merged, sort_keys=True,
                                                           separators=(",", ":"))
        if notes.get(OWNER_ANNOTATION) == es_name:
            notes[OWNER_ANNOTATION] = sorted(merged)[0]
    else:
        for k in (OWNER_ANNOTATION, mapping.HASH_ANNOTATION, mapping.MERGED_KEYS_ANNOTATION):
            notes.pop(k, None)
        meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                          if k != mapping.MANAGED_LABEL}
    meta["annotations"] = notes
    return new


def _all_gone(spec: mapping.Spec, snap: Any) -> bool:
    """Every remote secret of ``spec`` is gone: each ref NotFound, each find answered empty
    (only answers count: an error is never a reason to delete)."""
    return all(w in snap.missing if isinstance(w, RemoteRef)
               else w in snap.found and not snap.found[w] for w in spec.wants())


def _target(es: Mapping[str, Any]) -> str:
    return str(((es.get("spec") or {}).get("target") or {}).get("name")
               or (es.get("metadata") or {}).get("name"))


def _differs(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    cm, nm = current.get("metadata") or {}, new.get("metadata") or {}
    return bool((current.get("data") or {}) != (new.get("data") or {})
                or (current.get("type") or "Opaque") != new.get("type")
                or cm.get("labels") != nm.get("labels")
                or cm.get("annotations") != nm.get("annotations")
                or (cm.get("ownerReferences") or []) != (nm.get("ownerReferences") or [])
                or bool(current.get("immutable")) != bool(new.get("immutable")))


def register(registry: kopf.OperatorRegistry, ctx: Context) -> ExternalSecrets:
    """The store and ExternalSecret handlers, bound to ``ctx`` (run only while leading)."""
    half = ExternalSecrets(ctx)
    kw: dict[str, Any] = {"registry": registry, "retries": ctx.config.max_retries + 1}

    @kopf.on.startup(registry=registry)
    async def external_startup(**_: Any) -> None:
        await half.start()  # each time this replica starts leading: a fresh scheduler

    @kopf.on.cleanup(registry=registry)
    async def external_cleanup(**_: Any) -> None:
        await half.stop()

    async def store_handler(body: kopf.Body, patch: kopf.Patch, retry: int) -> None:
        try:
            await half.on_store(copy.deepcopy(dict(body)), patch)
        except kube.ApiError as e:
            if e.transient and retry < ctx.config.max_retries:
                raise kopf.TemporaryError(f"store: {e}",
                                          delay=ctx.config.retry_delay(retry, e)) from None
            raise kopf.PermanentError(str(e)) from None

    plurals = ["secretstores"] + (["clustersecretstores"] if ctx.config.uses_cluster_stores
                                  else [])
    for plural in plurals:
        @kopf.on.resume(GROUP, VERSION, plural, **kw)
        @kopf.on.create(GROUP, VERSION, plural, **kw)
        @kopf.on.update(GROUP, VERSION, plural, **kw)
        async def store(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
            await store_handler(body, patch, retry)

    @kopf.on.resume(GROUP, VERSION, "externalsecrets", **kw)
    @kopf.on.create(GROUP, VERSION, "externalsecrets", **kw)
    @kopf.on.update(GROUP, VERSION, "externalsecrets", **kw)
    async def external_secret(body: kopf.Body, retry: int, **_: Any) -> None:
        try:
            await half.on_external(copy.deepcopy(dict(body)))
        except kube.ApiError as e:
            if e.transient and retry < ctx.config.max_retries:
                raise kopf.TemporaryError(f"ExternalSecret: {e}",
                                          delay=ctx.config.retry_delay(retry, e)) from None
            raise kopf.PermanentError(str(e)) from None

    @kopf.on.event(GROUP, VERSION, "externalsecrets", registry=registry)
    async def external_secret_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        if event.get("type") == "MODIFIED":
            half.on_annotations(body)
        elif event.get("type") == "DELETED":
            # without a finalizer kopf runs no deletion handler: the watch event is all there
            # is (a rival of a conflict may take the Secret over now)
            meta = body.get("metadata") or {}
            half.forget((str(meta.get("namespace")), str(meta.get("name"))))

    @kopf.on.delete(GROUP, VERSION, "externalsecrets", optional=True, registry=registry)
    async def external_secret_gone(namespace: str | None, name: str | None, **_: Any) -> None:
        half.forget((str(namespace), str(name)))

    return half


__all__ = ["FORCE_SYNC", "EsReason", "ExternalSecrets", "desired", "register"]
