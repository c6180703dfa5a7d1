"""The ExternalSecret sync queue: owners wait in one queue for one of ``--workers`` sync tasks
(a task per owner would be 10,000 tasks at a cold start); one sync at a time per owner, and
one more if asked while it runs — unless every event that asked was the echo of that sync's
own write.

A kick may hand over the ExternalSecret's body (its watch event's): it is given to the owner's
next sync, which then need not read it, and dropped then; at most :data:`HELD` bodies wait so,
later ones are read by their sync. The ExternalSecrets' informer waits (:meth:`SyncQueue.room`)
while that many owners wait, so at a cold start its bodies are handed over rather than read
again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from secretops_controller.external.names import Owner

HELD = 128  # bodies waiting for their sync at most (a small bound: later syncs read theirs)
Body = Mapping[str, Any]
Echo = tuple[str, str, str]  # a Secret's (namespace, name, resourceVersion) seen in a watch event


class SyncQueue:
    def __init__(self) -> None:
        self._pending: asyncio.Queue[Owner] = asyncio.Queue()
        self._queued: set[Owner] = set()
        self._busy: set[Owner] = set()
        # owner -> sync again after its sync: unconditionally (None), or unless every event
        # that asked turns out to be the echo of that sync's own write
        self._again: dict[Owner, set[Echo] | None] = {}
        self._bodies: dict[Owner, Body] = {}  # handed over by a kick, for the next sync
        self._room = asyncio.Event()  # set when a sync ends: fewer than HELD may wait now

    def drop(self, owner: Owner) -> None:
        """Forget the body handed over for ``owner`` (deleted, or a newer one came)."""
        self._bodies.pop(owner, None)

    def reset(self) -> None:
        self._bodies.clear()
        self._pending = asyncio.Queue()
        self._queued.clear()
        self._busy.clear()
        self._again.clear()
        self._room.set()

    def busy(self, owner: Owner) -> bool:
        return owner in self._busy

    async def room(self) -> None:
        """Wait while :data:`HELD` owners or more wait or sync: the watch's reader (the
        informer) then reads no further, and the next owners' bodies can be handed over."""
        while len(self) >= HELD:
            self._room.clear()
            await self._room.wait()

    def __len__(self) -> int:
        """Owners waiting for a sync or being synced."""
        return len(self._queued) + len(self._busy)

    def kick(self, owner: Owner, echo: Echo | None = None, body: Body | None = None) -> None:
        """Sync ``owner`` soon. ``echo``: asked by a watch event of a Secret at this version,
        which may be the echo of the write the sync in progress is making (its watch event
        can arrive before the write's answer): then no second sync. ``body``: the
        ExternalSecret as just watched, for the next sync (not while one runs: that sync's
        own status write is newer)."""
        if body is not None and owner not in self._busy and (
                owner in self._bodies or len(self._bodies) < HELD):
            self._bodies[owner] = body
        if owner in self._busy:
            if echo is None:
                self._again[owner] = None
            else:
                echoes = self._again.setdefault(owner, set())
                if echoes is not None:
                    echoes.add(echo)
        elif owner not in self._queued:
            self._queued.add(owner)
            self._pending.put_nowait(owner)

    async def worker(self, sync: Callable[[Owner, Body | None], Awaitable[None]],
                     ours: Callable[[Echo], bool]) -> None:
        """One sync task: the next owner in the queue, until cancelled. ``ours``: whether an
        echo is our own last write of that Secret."""
        while True:
            owner = await self._pending.get()
            self._queued.discard(owner)
            self._busy.add(owner)
            body = self._bodies.pop(owner, None)
            try:
                while True:
                    self._again.pop(owner, None)
                    await sync(owner, body)
                    body = None  # a sync again reads it: the first one wrote its status
                    if owner not in self._again:
                        break
                    echoes = self._again[owner]
                    if echoes is not None and all(ours(e) for e in echoes):
                        break  # the events were our own write's echo
            finally:
                self._busy.discard(owner)
                self._room.set()
