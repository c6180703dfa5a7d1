"""The rotation loop: one timer for every ExternalSecret with ``spec.rotation`` (leader only).

:mod:`.rotation` parses the schedule and makes values; here a due rotation generates a value,
writes it to the store through the provider's :class:`~.provider.Writer` ability (a provider
without it cannot rotate: ``RotationFailed``), records ``status.lastRotationTime`` and asks the
scheduler to read the key again at once, so the sync that follows rolls the workloads. A failed
rotation is tried again after at most a minute. The value goes nowhere but the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from secretops_controller import kube
from secretops_controller.context import Context
from secretops_controller.events import event
from secretops_controller.external import rotation
from secretops_controller.external.names import EsReason, Owner, path
from secretops_controller.external.provider import ErrorKind, Provider, ProviderError, Writer
from secretops_controller.runtime import now, rfc3339

log = logging.getLogger(__name__)


class Rotator:
    """``schedule`` each ExternalSecret's rotation; :meth:`run` rotates what is due."""

    def __init__(self, ctx: Context, provider_of: Callable[[Owner], Provider | None],
                 refresh: Callable[[Owner], None]) -> None:
        self.ctx = ctx
        self.provider_of = provider_of  # the provider of the owner's store, if usable
        self.refresh = refresh  # read the owner's keys again now
        self.rotations: dict[Owner, tuple[rotation.Rotation, datetime]] = {}  # and when due
        self._wake = asyncio.Event()

    def reset(self) -> None:
        self.rotations.clear()
        self._wake = asyncio.Event()

    def drop(self, owner: Owner) -> None:
        self.rotations.pop(owner, None)

    def schedule(self, owner: Owner, es: Mapping[str, Any],
                 rot: rotation.Rotation | None) -> None:
        if rot is None:
            self.rotations.pop(owner, None)
            return
        meta = es.get("metadata") or {}
        since = (rotation.parse_time((es.get("status") or {}).get("lastRotationTime"))
                 or rotation.parse_time(meta.get("creationTimestamp")) or now())
        prev = self.rotations.get(owner)
        if prev is not None and prev[0] == rot:
            return  # unchanged: keep the due time (a retry may be pending)
        self.rotations[owner] = (rot, rotation.next_due(rot.schedule, since))
        self._wake.set()

    async def run(self) -> None:
        while True:
            due = [o for o, (_, t) in self.rotations.items() if t <= now()]
            for owner in due:
                try:
                    await self.rotate(owner)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad rotation must not end the timer of the others
                    log.exception("ExternalSecret %s/%s: rotation failed", *owner)
                    entry = self.rotations.get(owner)
                    if entry is not None:
                        self.rotations[owner] = (entry[0], now() + timedelta(seconds=60))
            nxt = min((t for _, t in self.rotations.values()), default=None)
            timeout = None if nxt is None else max(0.05, (nxt - now()).total_seconds())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def rotate(self, owner: Owner) -> None:
        """Generate a new value, write it to the store, record the time, read it back now
        (the sync then rolls the workloads). The value goes nowhere else."""
        entry = self.rotations.get(owner)
        if entry is None:
            return
        rot, _ = entry
        es = await self.ctx.api.get(path(*owner))
        provider = self.provider_of(owner)
        where = rot.key + (f" (property {rot.prop})" if rot.prop else "")
        try:
            if es is None:
                self.rotations.pop(owner, None)
                return
            if provider is None:
                raise ProviderError(ErrorKind.UNAVAILABLE, "the ExternalSecret has no usable "
                                    "store (see its Ready condition)")
            if not isinstance(provider, Writer):
                raise ProviderError(ErrorKind.INVALID,
                                    f"provider {provider.name} cannot write a rotated value")
            version = await asyncio.to_thread(provider.write, rot.key, rot.prop,
                                              rot.generator.generate())
        except (ProviderError, kube.ApiError) as e:
            retry = min(60.0, rot.schedule if isinstance(rot.schedule, float) else 60.0)
            self.rotations[owner] = (rot, now() + timedelta(seconds=max(1.0, retry)))
            msg = f"rotating {where} failed: {e}; retrying"
            log.warning("ExternalSecret %s/%s: %s", *owner, msg)
            if es is not None:
                event(es, EsReason.ROTATION_FAILED, msg)
            return
        stamp = now()
        self.rotations[owner] = (rot, rotation.next_due(rot.schedule, stamp))
        msg = f"a new value written to {where}" + (f", version {version}" if version else "")
        log.info("ExternalSecret %s/%s: rotated: %s", *owner, msg)
        event(es, EsReason.ROTATED, msg)
        with contextlib.suppress(kube.ApiError):
            await self.ctx.api.merge_patch(path(*owner) + "/status", {"status": {
                "lastRotationTime": rfc3339(stamp)}})
        self.refresh(owner)
