"""Drift: the Secrets the external half wrote, watched; a changed or deleted one is synced again.

Secrets labelled ``secretops.dev/managed=true`` are listed and watched (one watch per watched
namespace, or one for the cluster) through :meth:`secretops_controller.kube.Kube.watch` with a
server-side label selector: kopf's own Secret watch is narrowed to the SealedSecret label.
:func:`owners_to_sync` says which ExternalSecrets sync again for one event: the one recorded on
the Secret first, then every other that targets it (a loser of a conflict may win now) — never
for the echo of our own write (its resourceVersion is the one we wrote).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Mapping
from typing import Any

from secretops_controller import kube
from secretops_controller.context import Context
from secretops_controller.external import mapping, ownership
from secretops_controller.external.names import OWNER_ANNOTATION, Owner

log = logging.getLogger(__name__)

SELECTOR = f"{mapping.MANAGED_LABEL}=true"


def owners_to_sync(kind: str, secret: Mapping[str, Any], known: Container[Owner],
                   targets: Mapping[tuple[str, str], set[Owner]],
                   written: Mapping[tuple[str, str], str]) -> list[Owner]:
    """The ExternalSecrets (of ``known``) to sync for watch event ``kind`` of ``secret``."""
    meta = secret.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    if kind != "DELETED" and written.get((ns, name)) == str(meta.get("resourceVersion")):
        return []  # our own write, echoed
    es_name = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    owners = [(ns, str(es_name))] if es_name else []
    owners += [k for k in sorted(targets.get((ns, name), ())) if k not in owners]
    return [o for o in owners if o in known]


async def watch(ctx: Context, on_event: Callable[[str, Mapping[str, Any]], None]) -> None:
    """LIST then WATCH our Secrets in every watched namespace, forever (``LISTED`` for each
    listed one, then ``ADDED``/``MODIFIED``/``DELETED``); relisted after a failure."""
    cfg = ctx.config

    async def scope(ns: str | None) -> None:
        async for ev in ctx.api.watch(kube.secrets(ns) if ns else "/api/v1/secrets",
                                      label_selector=SELECTOR,
                                      timeout_seconds=cfg.watch_timeout,
                                      retry_delay=cfg.retry_base_delay):
            if ev.type != "BOOKMARK":
                on_event(ev.type, ev.object)

    scopes: list[str | None] = list(cfg.watch_namespaces) or [None]
    await asyncio.gather(*(scope(ns) for ns in scopes))


def on_secret_event(half: Any, kind: str, secret: Mapping[str, Any]) -> None:
    """One of our Secrets as watched (``half``: the :class:`~.reconcile.ExternalSecrets`):
    a deleted one's writer re-creates it; the owners it concerns sync again (not for the echo of
    a write under way)."""
    meta = secret.get("metadata") or {}
    ns, name = str(meta.get("namespace")), str(meta.get("name"))
    writer = ownership.writer(secret)
    if kind == "DELETED" and writer:
        half.writer.claims[(ns, name)] = writer  # its writer re-creates it, not a rival
    echo = None if kind == "DELETED" else (ns, name, str(meta.get("resourceVersion")))
    for owner in owners_to_sync(kind, secret, half.owned, half.targets, half.writer.written):
        if half.syncs.busy(owner) and echo is not None:
            log.debug("Secret %s/%s changed while its ExternalSecret syncs", ns, name)
        else:
            log.info("Secret %s/%s %s: syncing its ExternalSecret", ns, name,
                     "deleted" if kind == "DELETED" else "changed")
        half.kick(owner, echo)
