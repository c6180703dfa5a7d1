"""The external half's kopf wiring: the store and ExternalSecret event handlers, bound to one
:class:`~.reconcile.ExternalSecrets` (they run only while this replica leads).

Event handlers, not kopf's create/update/resume/delete: what was handled is remembered in
memory (:mod:`.marks`) and by ``status.observedGeneration``, so kopf writes no progress or
diffbase annotation and detects no causes. The first event of each object after this replica
starts leading (kopf's listing) handles it, as a resume handler did.
"""

from __future__ import annotations

from typing import Any

import kopf

from secretops_controller.context import Context
from secretops_controller.external.names import GROUP, VERSION
from secretops_controller.external.reconcile import ExternalSecrets


def register(registry: kopf.OperatorRegistry, ctx: Context) -> ExternalSecrets:
    """The store and ExternalSecret handlers, bound to ``ctx`` (run only while leading)."""
    half = ExternalSecrets(ctx)

    # --shards: only the namespaces of the shards this replica handles; cluster-scoped stores
    # are shard 0's (kopf ignores the rest: no handler, no state)
    def mine(namespace: str | None, **_: Any) -> bool:
        return ctx.shards.handles(namespace)

    @kopf.on.startup(registry=registry)
    async def external_startup(**_: Any) -> None:
        await half.start()  # each time this replica starts leading: a fresh scheduler

    @kopf.on.cleanup(registry=registry)
    async def external_cleanup(**_: Any) -> None:
        await half.stop()

    plurals = ["secretstores"] + (["clustersecretstores"] if ctx.config.uses_cluster_stores
                                  else [])
    for plural in plurals:
        @kopf.on.event(GROUP, VERSION, plural, registry=registry, when=mine)
        async def store(event: kopf.RawEvent, **_: Any) -> None:
            await half.store_event(event.get("type"), event.get("object") or {})

    @kopf.on.event(GROUP, VERSION, "externalsecrets", registry=registry, when=mine)
    async def external_secret(event: kopf.RawEvent, **_: Any) -> None:
        await half.external_event(event.get("type"), event.get("object") or {})

    return half


__all__ = ["register"]
