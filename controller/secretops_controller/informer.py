"""Our own informers: what the controller watches, and a keyed work queue per resource.

kopf runs the lifecycle (login, startup and cleanup while leading or holding shards) but
watches nothing: each half names what it watches as a :class:`Watch` (SealedSecrets and our
Secrets in :func:`secretops_controller.sealed.register`, stores and ExternalSecrets in
:func:`secretops_controller.external.handlers.register`), and :func:`run` follows them from
when kopf's startup handlers have run (each half is then ready) until kopf stops — so
leadership and shard semantics are kopf's run's, as before.

Each watch is what a client-go informer with a workqueue is:

* :meth:`secretops_controller.kube.Kube.watch` lists page by page, then watches from the
  list's resourceVersion with bookmarks; it resumes after a dropped connection or an
  ``ERROR`` event, and relists only on ``410 Expired``;
* before a body is kept, it is filtered: another shard's namespace is dropped, and so is the
  echo of our own write (``Watch.echo``: the marks each half keeps of what it handled, the
  fingerprints of the Secrets we wrote) unless that object is queued or being handled; its
  ``metadata.managedFields`` is removed (the bulk of a body, read by no handler);
* :class:`WorkQueue`: one pending entry per object (a newer body replaces the one waiting),
  at most ``--workers`` handlers at once and never two for one object; a change that comes
  while its object is handled is handled once more afterwards, with the newest body. While
  ``bound`` bodies wait, neither the next LIST page nor the stream is read: the memory held
  does not grow with the number of objects.

A listed object is handed to its handler with kind ``None`` (as kopf's listing did: the first
sight of each object after this replica starts leading, and again after a relist), a watched
one with ``ADDED``, ``MODIFIED`` or ``DELETED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from secretops_controller import events, kube
from secretops_controller.config import Config

log = logging.getLogger(__name__)
Key = tuple[str | None, str]  # (namespace, name)
Body = dict[str, Any]
Handler = Callable[[str | None, Body], Awaitable[None]]


def _never(kind: str | None, body: Body) -> bool:
    return False


@dataclass(frozen=True)
class Watch:
    """One resource the controller watches: its collection ``plural`` under ``prefix``
    (``/api/v1``, ``/apis/secretops.dev/v1alpha1``), its handler, and what is the echo of our
    own write (``echo(kind, body)``: dropped before it is kept)."""

    prefix: str
    plural: str
    handler: Handler
    echo: Callable[[str | None, Body], bool] = _never
    label_selector: str | None = None
    cluster_scoped: bool = False

    def paths(self, namespaces: Sequence[str]) -> list[str]:
        """The collections to watch: one per watched namespace, else the cluster's."""
        if self.cluster_scoped or not namespaces:
            return [f"{self.prefix}/{self.plural}"]
        return [kube.resource_path(self.prefix, ns, self.plural, None) for ns in namespaces]


def key_of(body: Body) -> Key:
    meta = body.get("metadata") or {}
    ns = meta.get("namespace")
    return (str(ns) if ns else None, str(meta.get("name")))


class WorkQueue:
    """Keyed, coalescing and bounded: ``put`` keeps the newest body per key (and waits while
    ``bound`` bodies wait), ``workers`` tasks run ``handler`` (one per key at a time).
    ``peak`` counts the most bodies ever waiting."""

    def __init__(self, handler: Handler, workers: int, bound: int) -> None:
        self._handler = handler
        self._workers = workers
        self.bound = max(bound, 1)
        self._pending: dict[Key, tuple[str | None, Body]] = {}
        # the pending keys not being handled, each once, oldest first: a worker takes one
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._running: set[Key] = set()
        self._space = asyncio.Event()  # set when a waiting body was taken
        self.peak = 0
        self.handled = 0

    def busy(self, key: Key) -> bool:
        """Queued or being handled (an echo of it then is not dropped: it may be newer)."""
        return key in self._pending or key in self._running

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def put(self, key: Key, kind: str | None, body: Body) -> None:
        """Queue ``body`` (replacing the one waiting for ``key``); while ``bound`` bodies of
        other objects wait, wait for one to be taken."""
        while key not in self._pending and len(self._pending) >= self.bound:
            self._space.clear()
            await self._space.wait()
        if key not in self._pending and key not in self._running:
            self._ready.put_nowait(key)
        self._pending[key] = (kind, body)
        self.peak = max(self.peak, len(self._pending))

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            kind, body = self._pending.pop(key)
            self._running.add(key)
            self._space.set()
            try:
                await self._handler(kind, body)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one object's failure must not end the worker
                # the type only: an exception's text could hold anything, a value included
                log.error("%s: handling failed: internal error (%s)",
                          "/".join(k for k in key if k), type(e).__name__)
            finally:
                del body
                self.handled += 1
                self._running.discard(key)
                if key in self._pending:  # changed while handled: once more, the newest body
                    self._ready.put_nowait(key)

    async def run(self) -> None:
        """The workers, until cancelled."""
        tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Informer:
    """One :class:`Watch` followed in every collection it names, through one queue."""

    def __init__(self, api: kube.Kube, watch: Watch, config: Config,
                 wanted: Callable[[str | None], bool], bound: int | None = None,
                 page: int = 500) -> None:
        self.api = api
        self.watch = watch
        self.config = config
        self.wanted = wanted
        self.page = page
        self.queue = WorkQueue(watch.handler, config.workers,
                               bound if bound is not None else 2 * config.workers)
        self.received = 0  # bodies read from the lists and watches
        self.dropped = 0  # another shard's or an echo
        self.versions: dict[str, str] = {}  # path -> the newest resourceVersion a bookmark gave

    async def offer(self, kind: str | None, body: Body) -> None:
        """A listed (``kind`` None) or watched body: filtered, stripped, queued."""
        key = key_of(body)
        if not self.wanted(key[0]):
            self.dropped += 1
            return
        if not self.queue.busy(key) and self.watch.echo(kind, body):
            self.dropped += 1
            return
        (body.get("metadata") or {}).pop("managedFields", None)
        await self.queue.put(key, kind, body)

    async def _follow(self, path: str) -> None:
        async for ev in self.api.watch(path, label_selector=self.watch.label_selector,
                                       timeout_seconds=self.config.watch_timeout,
                                       retry_delay=self.config.retry_base_delay,
                                       max_delay=self.config.retry_max_delay,
                                       limit=self.page):
            if ev.type == "BOOKMARK":
                meta = ev.object.get("metadata") or {}
                self.versions[path] = str(meta.get("resourceVersion"))
                continue
            self.received += 1
            await self.offer(None if ev.type == "LISTED" else ev.type, ev.object)

    async def run(self) -> None:
        """List and watch, and handle, until cancelled."""
        paths = self.watch.paths(self.config.watch_namespaces)
        await asyncio.gather(self.queue.run(), *(self._follow(p) for p in paths))


async def run(api: kube.Kube, watches: Sequence[Watch], config: Config,
              wanted: Callable[[str | None], bool], ready: asyncio.Event) -> None:
    """Once ``ready`` (kopf's startup handlers ran): every watch, until cancelled. Handlers
    post Events themselves (no kopf handler runs them)."""
    events.post_events_from_this_task(api, config)
    await ready.wait()
    informers = [Informer(api, w, config, wanted) for w in watches]
    await asyncio.gather(*(i.run() for i in informers))


class Informers:
    """The controller's watches (each half adds its own) and, while kopf runs, their task."""

    def __init__(self) -> None:
        self.watches: list[Watch] = []
        self._task: asyncio.Task[None] | None = None

    def start(self, api: kube.Kube, config: Config, wanted: Callable[[str | None], bool],
              ready: asyncio.Event) -> None:
        self._task = asyncio.create_task(run(api, self.watches, config, wanted, ready),
                                         name="informers")

    async def stop(self) -> None:
        """Cancel the watches and the handlers running (before the halves stop)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


__all__ = ["Informer", "Informers", "Watch", "WorkQueue", "key_of", "run"]
