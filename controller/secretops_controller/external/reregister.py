"""ExternalSecrets registered again: a store changed or its credentials did
(:meth:`Again.store_changed`), or a namespace's labels (:meth:`Again.namespace_changed`: a
ClusterSecretStore's ``namespaceSelector`` may allow or refuse them now).

:class:`Again` reads each one and hands it to the registration (``register``), under the same
per-object lock the watch's handling takes (``locks``): a handling in flight that evaluated
the old labels or credentials finishes first, and this registration, made with the new ones,
comes after it — never the other way round (a label removal would otherwise be undone by a
handling that started before it).

Each owner is retried on its own (``--max-retries``, transient API errors): one that still
fails does not keep the others from being registered again. It is **revoked** meanwhile
(``revoke``: no longer synced, its mark dropped so its next event handles it again) — fail
safe, since a namespace whose label was removed must stop syncing — and tried again after
``--retry-max-delay``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from secretops_controller import kube
from secretops_controller.context import Context, KeyedLocks
from secretops_controller.external.names import Owner, StoreId, path
from secretops_controller.external.scheduler import StoreKey
from secretops_controller.external.storecheck import Stores
from secretops_controller.external.storeconfig import CLUSTER_KIND

log = logging.getLogger(__name__)


class Registered(Protocol):
    """What this term knows of an owner's registration."""

    store: StoreId
    key: StoreKey | None
    store_version: str | None


class Again:
    """Registering ExternalSecrets again, each under its handling lock; retries of failures."""

    def __init__(self, ctx: Context, stores: Stores, owned: Mapping[Owner, Registered],
                 locks: KeyedLocks[Any], register: Callable[[Mapping[str, Any]], Awaitable[None]],
                 revoke: Callable[[Owner], None]) -> None:
        self.ctx = ctx
        self.stores = stores
        self.owned = owned  # the owners of this term (not deleted since)
        self.locks = locks
        self.register = register
        self.revoke = revoke
        self._retries: dict[Owner, asyncio.Task[None]] = {}

    async def store_changed(self, store: StoreId) -> None:
        """ExternalSecrets that use ``store``: registered again (credentials may differ),
        unless registered with this very version of it and the credentials it validated with
        (a cold start's ExternalSecrets, registered before their store's validation)."""
        watched = self.stores.specs.get(store) or {}
        version = (watched.get("metadata") or {}).get("resourceVersion")
        key = self.stores.keys.get(store)
        await self([owner for owner, o in self.owned.items() if o.store == store and not (
            key is not None and o.key == key and version is not None
            and o.store_version == version)])

    async def namespace_changed(self, ns: str) -> None:
        """Its labels changed (or it is new): its ExternalSecrets of ClusterSecretStores."""
        await self([owner for owner, o in self.owned.items()
                    if owner[0] == ns and o.store[0] == CLUSTER_KIND])

    def reset(self) -> None:
        """A new term (or its end): the retries of the last one cancelled."""
        retries, self._retries = list(self._retries.values()), {}
        for t in retries:
            t.cancel()

    async def __call__(self, owners: Iterable[Owner]) -> None:
        for owner in owners:
            await self.one(owner)

    async def one(self, owner: Owner) -> None:
        retry = self._retries.pop(owner, None)
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()  # this registration is newer

        async def attempt() -> None:
            if owner not in self.owned:
                return  # deleted meanwhile: forgotten by its watch event
            es = await self.ctx.api.get(path(*owner))
            if es is not None:
                await self.register(es)

        what = "ExternalSecret {}/{}: registering again".format(*owner)
        try:
            async with self.locks(owner):
                await kube.retrying(self.ctx.config, attempt, what)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # one owner's failure must not skip the others
            delay = self.ctx.config.retry_max_delay
            # an API error names no value; anything else is logged by its type only
            log.error("%s failed (%s): not synced until it is, tried again in %gs", what,
                      e if isinstance(e, kube.ApiError) else type(e).__name__, delay)
            if owner in self.owned:
                self.revoke(owner)
                self._retries[owner] = asyncio.create_task(self._later(owner, delay))

    async def _later(self, owner: Owner, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._retries.get(owner) is asyncio.current_task():
            await self.one(owner)


__all__ = ["Again"]
