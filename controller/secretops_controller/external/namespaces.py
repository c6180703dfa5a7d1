"""Namespaces' labels, as watched: what a ClusterSecretStore's ``namespaceSelector`` conditions
are matched against.

One LIST+WATCH of the namespaces (cluster-wide mode), or one per watched namespace with a
``metadata.name`` field selector (namespaced mode: no other namespace is read), keeps every
namespace's labels (:meth:`Namespaces.run`, a task while leading). An ExternalSecret's
registration reads none: a 500-namespace cluster costs one paged LIST, not a GET per
ExternalSecret. A registration made before the first list waits for it (at most
:data:`LIST_WAIT` seconds, then a transient error its handling retries). After it, a namespace
not seen yet (created a moment ago, its event still on its way) has no labels known: it matches
no ``namespaceSelector`` (:func:`.stores.allowed`). A namespace whose labels change — or that
is first seen after the first list — calls ``on_change`` (its ExternalSecrets of
ClusterSecretStores are registered again: a condition may allow or refuse them now); a failure
there is logged, and the watch goes on. A relist forgets the namespaces it no longer has
(deleted while the watch was away).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from secretops_controller import kube
from secretops_controller.context import Context

log = logging.getLogger(__name__)
PATH = "/api/v1/namespaces"
LIST_WAIT = 10.0  # a registration's wait for the first list of the namespaces


class Namespaces:
    """Every watched namespace's labels; :meth:`run` while leading, :meth:`reset` at its start."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.on_change: Callable[[str], Awaitable[None]] | None = None
        self.known: dict[str, dict[str, str]] = {}
        self._listed = asyncio.Event()

    def reset(self) -> None:
        self.known.clear()
        self._listed = asyncio.Event()

    async def labels(self, ns: str) -> Mapping[str, str] | None:
        """The labels of namespace ``ns`` as last watched (None: no such namespace)."""
        if not self._listed.is_set():
            try:
                await asyncio.wait_for(self._listed.wait(), LIST_WAIT)
            except TimeoutError:
                raise kube.ApiError(503, "NotListed", "the namespaces are not listed yet "
                                    "(the controller's RBAC needs namespaces list, watch)",
                                    "LIST", PATH) from None
        return self.known.get(ns)

    async def run(self) -> None:
        """Watch the namespaces, forever (resumed after a failure, relisted after a 410)."""
        cfg = self.ctx.config
        scopes: list[str | None] = list(cfg.watch_namespaces) or [None]
        pending = set(scopes)
        listing: dict[str | None, set[str]] = {s: set() for s in scopes}  # this (re)list's

        def listed(scope: str | None) -> None:
            names, listing[scope] = listing[scope], set()
            for gone in [n for n in self.known if (scope is None or n == scope)
                         and n not in names]:
                del self.known[gone]  # deleted while the watch was away
            pending.discard(scope)
            if not pending:
                self._listed.set()

        async def watch(scope: str | None) -> None:
            async for ev in self.ctx.api.watch(
                    PATH, field_selector=f"metadata.name={scope}" if scope else None,
                    timeout_seconds=cfg.watch_timeout, retry_delay=cfg.retry_base_delay,
                    max_delay=cfg.retry_max_delay, on_listed=lambda: listed(scope)):
                if ev.type == "BOOKMARK":
                    continue
                if ev.type == "LISTED":
                    listing[scope].add(str((ev.object.get("metadata") or {}).get("name")))
                await self._event(ev.type, ev.object)

        await asyncio.gather(*(watch(s) for s in scopes))

    async def _event(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if kind == "DELETED":
            self.known.pop(name, None)
            return
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        before = self.known.get(name)
        self.known[name] = labels
        # after the first list, a namespace new to us counts too: an ExternalSecret of it may
        # have been refused before its event came (created while the watch was away)
        if before != labels and self._listed.is_set() and self.on_change is not None:
            log.debug("namespace %s: labels new or changed: its ExternalSecrets of "
                      "ClusterSecretStores registered again", name)
            try:
                await self.on_change(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the watch must go on: later changes must count
                log.error("namespace %s: registering its ExternalSecrets again failed: %s", name,
                          e if isinstance(e, kube.ApiError) else type(e).__name__)


__all__ = ["Namespaces"]
