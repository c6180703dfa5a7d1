"""The external-secrets half: stores, ExternalSecrets, their Secrets (leader only).

:class:`ExternalSecrets` holds what one leadership term knows and ties the parts together;
:mod:`.handlers` binds it to kopf's watch events. Objects are handled when new to this term or
changed (:mod:`.marks`: no kopf state on them), one at a time each; API errors are retried with
backoff (``--max-retries``), then left for the object's next event.

* **SecretStore / ClusterSecretStore** → :class:`~.storecheck.Stores`:
  credentials resolved from the referenced Secrets (or the default chain), validated by one
  cheap provider call, ``status.conditions[type=Ready]`` with ``Valid`` /
  ``InvalidStoreConfiguration`` / ``InvalidProviderConfig`` / ``ValidationFailed`` /
  ``ValidationUnknown`` (:mod:`.status`), validated again every ``refreshInterval``. The
  ExternalSecrets that use the store are registered again.
* **ExternalSecret** → :func:`.spec.registration` (spec parsed, store
  resolved, a ClusterSecretStore's ``spec.conditions`` enforced), then the refs are registered
  with the central :class:`~.scheduler.Scheduler` under the store's
  :class:`~.scheduler.StoreKey` (its read identity's fingerprint: stores with the same
  credentials share entries, different credentials never do). The
  force-sync annotation (:data:`~.names.FORCE_SYNC`, any new value) asks for a read now.
  Deleted (the watch event: no finalizer): unregistered, its condition series dropped.
* **Each delivery** of the scheduler (a value, a version, NotFound or an error changed) syncs
  the owner (:class:`~.sync.SecretSync`: write per ``creationPolicy`` and ``deletionPolicy``,
  conflicts), one sync at a time per owner, then its status (:func:`.status.report`); the
  ExternalSecret is read for it, unless the watch event that asked handed its body over
  (:meth:`ExternalSecrets.sync`: then its status write is guarded by that resourceVersion); a
  Secret whose data changed goes to the rollout queue (:class:`~.rollqueue.Rollouts`: window,
  budget, completion).
* **Drift** (:mod:`.drift`): our Secrets are watched; one deleted or edited is synced again.
* **Rotation** (:class:`~.rotator.Rotator`): one timer writes new values back to the stores.

No value ever goes to a log, an Event or a status: messages name fields, keys and stores.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from secretops_controller import events, kube
from secretops_controller.conditions import Outcome
from secretops_controller.context import Context, KeyedLocks
from secretops_controller.external import drift, marks, status, stores
from secretops_controller.external.names import (
    FORCE_SYNC,
    KIND,
    EsReason,
    Owner,
    StoreId,
    name_of,
    owner_of,
    path,
    store_id,
    store_path,
    target_of,
)
from secretops_controller.external.provider import ErrorKind, Provider, close_quietly
from secretops_controller.external.rollqueue import Rollouts
from secretops_controller.external.rotator import Rotator
from secretops_controller.external.scheduler import Scheduler, Settings, StoreKey
from secretops_controller.external.spec import Refused, registration, store_of
from secretops_controller.external.storecheck import Stores
from secretops_controller.external.sync import SecretSync, request_rollout
from secretops_controller.external.syncqueue import SyncQueue

log = logging.getLogger(__name__)


@dataclass
class _Owned:
    store: StoreId  # the store it uses
    target: str = ""
    forced: str | None = None
    seen: bool = False  # registered once: a new force-sync value then means "read now"
    key: StoreKey | None = None
    store_version: str | None = None  # the store's resourceVersion it was registered with
    # its status was written or decided on this term: a sync reads it, never takes a watched
    # body (whose status may predate that write)
    reported: bool = False


class ExternalSecrets:
    """The external-secrets half's state while leading: scheduler, providers, owners."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metrics = ctx.metrics
        self.scheduler = self._new_scheduler()
        self.stores = Stores(ctx, ctx.metrics.observe_provider_call, self._new_credentials)
        self.stores.namespaces.on_change = self._namespace_changed
        self.writer = SecretSync(ctx)
        self.rollouts = Rollouts(ctx, self.writer.settle)
        self.rotator = Rotator(ctx, self._provider_of, lambda o: self.scheduler.refresh(o))
        self.owned: dict[Owner, _Owned] = {}
        self.targets: dict[tuple[str, str], set[Owner]] = {}  # Secret -> who targets it
        # what was handled this term (:func:`.marks.mark`): ExternalSecrets and stores
        self.marks: dict[Owner | StoreId, bytes] = {}
        # one handling at a time per object (kopf's worker and a catch-up may meet on it)
        self._handling: KeyedLocks[Owner | StoreId] = KeyedLocks()
        self.syncs = SyncQueue()
        self._tasks: list[asyncio.Task[Any]] = []
        self.metrics.cache_entries.set_function(lambda: self.scheduler.entry_count())
        self.metrics.store_refs.set_function(lambda: self.scheduler.store_ref_count())

    def _new_scheduler(self) -> Scheduler:
        c = self.ctx.config
        settings = Settings(backoff_base=c.retry_base_delay, backoff_cap=c.retry_max_delay)
        return Scheduler(settings=settings, on_update=self._delivered)

    # ---- lifecycle (leader) ------------------------------------------------------------------
    async def start(self) -> None:
        await self.stop()
        self.scheduler = self._new_scheduler()
        self.owned.clear()
        self.targets.clear()
        self.marks.clear()
        self.writer.reset()
        self.rotator.reset()
        self.rollouts.reset()
        self.stores.reset(asyncio.get_running_loop())
        self.syncs.reset()
        self._tasks = [*(asyncio.create_task(self._run(self.sync_worker()), name="sync")
                         for _ in range(self.ctx.config.workers)),
                       asyncio.create_task(self._run(self.rotator.run()), name="rotation"),
                       asyncio.create_task(self._run(self.rollouts.run()), name="rollouts"),
                       asyncio.create_task(self._run(self.stores.run()),
                                           name="store validation"),
                       asyncio.create_task(self._run(self.scheduler.run()), name="scheduler"),
                       asyncio.create_task(self._run(drift.watch(self.ctx, self.on_secret_event)),
                                           name="external Secrets watch")]
        if self.ctx.config.uses_cluster_stores:
            self._tasks.append(asyncio.create_task(self._run(self.stores.namespaces.run()),
                                                   name="namespaces watch"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        providers, self.stores.providers = list(self.stores.providers.values()), {}
        for p in providers:
            await asyncio.to_thread(close_quietly, p)
        self.stores.loop = None

    async def _run(self, coro: Any) -> None:
        events.post_events_from_this_task(self.ctx.api, self.ctx.config)
        await coro

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

    def _provider_of(self, owner: Owner) -> Provider | None:
        o = self.owned.get(owner)
        if o is None or o.key is None:
            return None
        return self.stores.providers.get(o.key.fingerprint)

    # ---- watch events ----------------------------------------------------------------------
    async def store_event(self, kind: str | None, body: Mapping[str, Any]) -> None:
        """A store as listed or watched: handled when new to this term or changed."""
        sid = store_id(body)
        if kind == "DELETED":
            self.marks.pop(sid, None)
            self.stores.gone(sid)
            return
        self.stores.seen(body)
        if not (body.get("metadata") or {}).get("deletionTimestamp"):
            await self._handle(sid, body, f"{sid[0]} {name_of(body)}", self.on_store)

    async def external_event(self, kind: str | None, body: Mapping[str, Any], *,
                             listed: bool = False) -> None:
        """An ExternalSecret as listed or watched: handled when new to this term or changed;
        deleted (no finalizer: the watch event is all there is), forgotten — a rival of a
        conflict may take its Secret over now. ``listed``: from a LIST of our own (a gained
        shard's catch-up), maybe seconds old: skipped if a watch event was handled first, and
        its body is not handed to the sync (that reads the ExternalSecret: deleted or
        retargeted since, it is not written from the listing)."""
        owner = owner_of(body)
        async with self._handling(owner):
            if kind == "DELETED" or (body.get("metadata") or {}).get("deletionTimestamp"):
                if kind == "DELETED" or owner in self.marks:
                    self.marks.pop(owner, None)
                    self.forget(owner)
                return
            if listed and owner in self.marks:
                return
            await self._handle(owner, body, "ExternalSecret {}/{}".format(*owner),
                               lambda es: self.on_external(es, hand_over=not listed))

    async def _handle(self, key: Owner | StoreId, body: Mapping[str, Any], what: str,
                      handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """``handler(body)`` unless ``body`` is as it was last handled (the echo of our status
        write, a re-list); transient API errors retried with backoff (``--max-retries``), then
        left for the object's next event."""
        mark = marks.mark(body)
        if self.marks.get(key) == mark:
            return
        obj = copy.deepcopy(dict(body))

        async def attempt() -> None:
            if await marks.drop_leftovers(self.ctx.api, obj):
                await handler(obj)

        try:
            await kube.retrying(self.ctx.config, attempt, what)
        except kube.ApiError as e:
            self.marks.pop(key, None)  # its next event (a re-list too) tries again
            log.error("%s: %s", what, e)
            return
        self.marks[key] = mark

    # ---- stores --------------------------------------------------------------------------
    async def on_store(self, body: Mapping[str, Any]) -> None:
        ok, reason, message = await self.stores.validate(body)
        new = status.store_status(body, ok, reason, message)
        if new is not None:
            await self.ctx.api.merge_patch(store_path(*store_id(body)) + "/status",
                                           {"status": new})
        self.stores.schedule(body)
        await self._reregister(store_id(body))
        self._drop_unused_providers()

    async def _new_credentials(self, sid: StoreId) -> None:
        await self._reregister(sid)
        self._drop_unused_providers()  # the old credentials' provider

    async def _reregister(self, store: StoreId) -> None:
        """ExternalSecrets that use ``store``: registered again (credentials may differ),
        unless registered with this very version of it and the credentials it validated with
        (a cold start's ExternalSecrets, registered before their store's validation)."""
        watched = self.stores.specs.get(store) or {}
        version = (watched.get("metadata") or {}).get("resourceVersion")
        key = self.stores.keys.get(store)
        await self._again([owner for owner, o in self.owned.items() if o.store == store and not (
            key is not None and o.key == key and version is not None
            and o.store_version == version)])

    async def _namespace_changed(self, ns: str) -> None:
        """Its labels changed: its ExternalSecrets of ClusterSecretStores registered again."""
        await self._again([owner for owner, o in self.owned.items()
                           if owner[0] == ns and o.store[0] == stores.CLUSTER_KIND])

    async def _again(self, owners: list[Owner]) -> None:
        for owner in owners:
            es = await self.ctx.api.get(path(*owner))
            if es is not None:
                await self.on_external(es, refresh=False)

    def _drop_unused_providers(self) -> None:
        """Close the providers no ExternalSecret and no store validation uses any more (old
        credentials: their Vault token is revoked), in a worker thread: closing takes the
        provider's lock, which a login may hold while it waits for this loop."""
        used = {o.key.fingerprint for o in self.owned.values() if o.key is not None}
        for provider in self.stores.unused(used):
            self.scheduler.close_later(provider)

    # ---- ExternalSecrets -----------------------------------------------------------------
    async def on_external(self, es: Mapping[str, Any], refresh: bool = True,
                          hand_over: bool = True) -> None:
        """Register ``es`` with the scheduler (or report why not) and sync what is cached
        (``hand_over``: from this body, see :meth:`kick`)."""
        owner = owner_of(es)
        o = self.owned.get(owner)
        if o is None:
            o = self.owned[owner] = _Owned(store_of(es))
        o.store = store_of(es)
        self._retarget(owner, target_of(es))
        forced = ((es.get("metadata") or {}).get("annotations") or {}).get(FORCE_SYNC)
        try:
            reg = await registration(self.ctx, self.stores, es)
        except Refused as e:
            self.scheduler.unregister(owner)
            self.rotator.drop(owner)
            o.key = o.store_version = None
            o.reported = True
            await status.report(self.ctx, es, Outcome(False, e.reason, e.message))
            return
        self.scheduler.register(owner, reg.resolved.key, self.stores.provider(reg.resolved),
                                reg.parsed.wants(), reg.interval)
        o.key, o.store_version = reg.resolved.key, reg.store_version
        self.rotator.schedule(owner, es, reg.rotation)
        if refresh and o.seen and forced != o.forced and forced is not None:
            log.info("ExternalSecret %s/%s: force-sync", *owner)
            self.scheduler.refresh(owner)
        o.forced, o.seen = forced, True
        # what is cached already (a shared key) is written now, from this body if its status
        # is still the latest this term knows of
        self.syncs.drop(owner)  # a body handed over earlier is older than this one
        self.kick(owner, body=None if o.reported or not hand_over else es)

    def forget(self, owner: Owner) -> None:
        self.syncs.drop(owner)  # a sync still to come reads it (404: nothing written)
        self.scheduler.unregister(owner)
        self.rotator.drop(owner)
        self._retarget(owner, "")  # a loser of a conflict may win now
        self.owned.pop(owner, None)
        self.metrics.external_condition.forget(*owner)
        self._drop_unused_providers()

    # ---- syncing -------------------------------------------------------------------------
    def _delivered(self, owners: set[Any]) -> None:
        for owner in owners:
            self.kick(owner)

    def kick(self, owner: Owner, echo: tuple[str, str, str] | None = None,
             body: Mapping[str, Any] | None = None) -> None:
        """Sync ``owner`` soon (:meth:`.syncqueue.SyncQueue.kick`)."""
        self.syncs.kick(owner, echo, body)

    def pending_syncs(self) -> int:
        """Owners waiting for a sync or being synced."""
        return len(self.syncs)

    async def sync_worker(self) -> None:
        """One of the --workers sync tasks, until cancelled."""
        await self.syncs.worker(self._sync_retrying,
                                lambda echo: self.writer.written.get(echo[:2]) == echo[2])

    async def _sync_retrying(self, owner: Owner, body: Mapping[str, Any] | None) -> None:
        handed = [body]  # the first attempt only: a retry reads it

        async def attempt() -> None:
            es, handed[0] = handed[0], None
            await self.sync(owner, es)

        try:
            await kube.retrying(self.ctx.config, attempt)
        except kube.ApiError as e:
            log.error("ExternalSecret %s/%s: sync failed: %s", *owner, e)
        except Exception:  # one bad sync must not end the loop of others
            log.exception("ExternalSecret %s/%s: sync failed", *owner)

    async def sync(self, owner: Owner, body: Mapping[str, Any] | None = None) -> None:
        """Write the Secret of ``owner`` from the scheduler's snapshot; then the status.
        ``body``: the ExternalSecret as its watch event gave it (then not read), whose status
        is the latest this term knows of; its status write carries the body's resourceVersion,
        so if the ExternalSecret changed since, the write is refused (409) and the sync is made
        again from a fresh read."""
        started = time.perf_counter()
        o = self.owned.get(owner)
        snap = self.scheduler.snapshot(owner)
        if o is None or o.key is None or snap is None or snap.pending:
            return  # nothing to write yet (registered, first read pending): nothing read
        es = body if body is not None and not o.reported else await self.ctx.api.get(
            path(*owner))
        if es is None or (es.get("metadata") or {}).get("deletionTimestamp"):
            self.forget(owner)
            return
        o, snap = self.owned.get(owner), self.scheduler.snapshot(owner)  # as of now
        if o is None or o.key is None or snap is None or snap.pending:
            return
        if any(e.kind == ErrorKind.DENIED for e in snap.errors.values()) and \
                await self.stores.recheck(o.store, o.key, owner[0]):
            return  # other credentials now: registered again, synced once read with them
        o.reported = True
        outcome = await self.writer.apply(es, owner, o.target, snap,
                                          [r[1] for r in self.rivals_of(owner, o.target)])
        self.ctx.metrics.reconcile_duration.labels(kind=KIND).observe(
            time.perf_counter() - started)
        self.metrics.syncs.labels(reason=outcome.reason.value).inc()
        guard = (es.get("metadata") or {}).get("resourceVersion") if es is body else None
        try:
            await status.report(self.ctx, es, outcome, guard=guard)
        except kube.ApiError as e:
            if guard is None or e.status != 409:
                raise
            log.debug("ExternalSecret %s/%s changed since its event: synced again", *owner)
            await self.sync(owner)
            return
        if outcome.changed is not None:
            request_rollout(self.ctx, self.rollouts, es, owner[0], o.target, outcome.changed)

    # ---- drift -----------------------------------------------------------------------------
    def on_secret_event(self, kind: str, secret: Mapping[str, Any]) -> None:
        drift.on_secret_event(self, kind, secret)


__all__ = ["EsReason", "ExternalSecrets"]
