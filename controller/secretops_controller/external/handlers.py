"""The external half's wiring: its startup and cleanup while leading (kopf's), and the store
and ExternalSecret watches (:mod:`~secretops_controller.informer`), bound to one
:class:`~.reconcile.ExternalSecrets`.

What was handled is remembered in memory (:mod:`.marks`) and by ``status.observedGeneration``,
so nothing is kept on the objects. The first sight of each object after this replica starts
leading (the listing) handles it, as a resume handler did; the informer drops the echo of our
own status write of an ExternalSecret (its mark unchanged) before it keeps the body.
"""

from __future__ import annotations

from typing import Any

import kopf

from secretops_controller.context import Context
from secretops_controller.external import marks
from secretops_controller.external.names import GROUP, VERSION
from secretops_controller.external.reconcile import ExternalSecrets
from secretops_controller.informer import Watch


def register(registry: kopf.OperatorRegistry, ctx: Context
             ) -> tuple[ExternalSecrets, list[Watch]]:
    """The half's startup and cleanup (run only while leading) and what it watches."""
    half = ExternalSecrets(ctx)

    @kopf.on.startup(registry=registry)
    async def external_startup(**_: Any) -> None:
        await half.start()  # each time this replica starts leading: a fresh scheduler

    @kopf.on.cleanup(registry=registry)
    async def external_cleanup(**_: Any) -> None:
        await half.stop()

    def external_echo(kind: str | None, body: dict[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        owner = (str(meta.get("namespace")), str(meta.get("name")))
        return (kind != "DELETED" and not meta.get("deletionTimestamp")
                and half.marks.get(owner) == marks.mark(body))

    prefix = f"/apis/{GROUP}/{VERSION}"
    # stores are few: every event of theirs is handed over (the half keeps their bodies)
    watches = [Watch(prefix, "secretstores", half.store_event)]
    if ctx.config.uses_cluster_stores:  # cluster-scoped: shard 0's
        watches.append(Watch(prefix, "clustersecretstores", half.store_event,
                             cluster_scoped=True))
    async def external_secret(kind: str | None, body: dict[str, Any]) -> None:
        await half.external_event(kind, body)
        # back-pressure: no further reading while the syncs lag (their bodies are handed over)
        await half.syncs.room()

    watches.append(Watch(prefix, "externalsecrets", external_secret, external_echo))
    return half, watches


__all__ = ["register"]
