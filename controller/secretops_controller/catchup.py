"""``--shards``: what a replica does first with the shards it gained (a replica died, or the
shards were shared out again).

The informers, started again for the new set of shards, list the whole cluster and reach every
object in its order, the gained shards' among all the others (the kept shards' objects, the
other replicas', read and dropped). At ten thousand objects that is seconds after the takeover.
So
each half registers a **catch-up** that handles the gained shards' objects straight from one
LIST, as soon as kopf's startup handlers have run (each half is then ready):

* SealedSecrets: :func:`secretops_controller.sealed.catch_up` (never-synced ones first);
* ExternalSecrets: :func:`external_secrets` (those with no status yet first), through the
  half's event entry point
  (:meth:`~secretops_controller.external.reconcile.ExternalSecrets.external_event`, what the
  informer's handler calls): registered, read from the provider, their Secrets written,
  marked handled.

The informers' listing meets the same objects later and finds them handled (a SealedSecret's
mark, an ExternalSecret's mark): they are not handled, nor their Secrets written, again
(``tests/controller/test_sharding.py`` counts the attempts in the audit log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from secretops_controller import events, kube
from secretops_controller.context import Context

log = logging.getLogger(__name__)
Wanted = Callable[[str], bool]
CatchUp = Callable[[Context, Wanted], Awaitable[int]]


async def run(ctx: Context, steps: Mapping[str, CatchUp], wanted: Wanted,
              ready: asyncio.Event) -> None:
    """Once kopf is ready: each half's catch-up of the ``wanted`` namespaces, the halves side
    by side (a failure is logged: the informers' listing handles those objects)."""
    events.post_events_from_this_task(ctx.api, ctx.config)
    await ready.wait()

    async def one(kind: str, step: CatchUp) -> None:
        try:
            done = await step(ctx, wanted)
            log.info("caught up with the new shards: %d %s handled", done, kind)
        except kube.ApiError as e:
            log.warning("catch-up of %s: %s (the informers' listing handles them)", kind, e)

    await asyncio.gather(*(one(kind, step) for kind, step in steps.items()))


def external_secrets(on_external: Callable[[Mapping[str, Any]], Awaitable[None]],
                     concurrency: int = 16) -> CatchUp:
    """The ExternalSecrets' catch-up, calling the half's ``on_external`` for each."""

    async def catch_up(ctx: Context, wanted: Wanted) -> int:
        scopes: list[str | None] = list(ctx.config.watch_namespaces) or [None]
        group = f"/apis/{kube.SEALED_GROUP_VERSION}"
        items: list[dict[str, Any]] = []
        for ns in scopes:
            items += await ctx.api.list(f"{group}/namespaces/{ns}/externalsecrets" if ns
                                        else f"{group}/externalsecrets")
        todo = [i for i in items if wanted(str((i.get("metadata") or {}).get("namespace")))
                and not (i.get("metadata") or {}).get("deletionTimestamp")]
        todo.sort(key=lambda i: bool(i.get("status")))  # never reported (new) ones first
        gate = asyncio.Semaphore(concurrency)

        async def one(es: dict[str, Any]) -> None:
            async with gate:
                try:
                    await on_external(es)
                except kube.ApiError as e:  # the informer's handler retries it
                    meta = es.get("metadata") or {}
                    log.warning("catch-up: ExternalSecret %s/%s: %s", meta.get("namespace"),
                                meta.get("name"), e)

        await asyncio.gather(*(one(i) for i in todo))
        return len(todo)

    return catch_up


__all__ = ["CatchUp", "external_secrets", "run"]
