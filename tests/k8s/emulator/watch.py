"""Watch streams: one :class:`StreamWatcher` per open ``?watch=true`` request.

The store offers every event of a resource to that resource's watchers; a watcher keeps the ones
in its namespace that its selectors match, with the apiserver's rule for selectors: an object
that stops matching is sent as DELETED, one that starts matching as ADDED. :func:`serve` writes
the stream — newline-delimited ``{"type": ..., "object": ...}`` — starting from:

* no ``resourceVersion`` (or ``"0"``, or ``sendInitialEvents=true``): a synthetic ADDED for each
  current object, then changes;
* a ``resourceVersion``: the events after it from the store's bounded history, or, if it is
  older than the history, a single ``ERROR`` event carrying a 410 ``Expired`` Status (HTTP 200,
  as the apiserver's watch cache answers);

then sends BOOKMARK events every ``bookmark_interval`` and just before closing when
``allowWatchBookmarks=true``, and closes after ``timeoutSeconds``. An open stream is in the
``streams`` set given to :func:`serve`; :meth:`StreamWatcher.drop` cuts it (the fault mode's
``drop_watches``): the connection is aborted without the chunked stream's end, as a network
failure or an apiserver restart would leave it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import ApiError
from .resources import ResourceType
from .store import Event, Obj, Store

DEFAULT_TIMEOUT = 1800.0  # the apiserver picks 30-60 min when the client gives none
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class StreamWatcher:
    def __init__(
        self, rt: ResourceType, version: str, namespace: str, match: Callable[[Obj], bool] | None
    ) -> None:
        self.rt = rt
        self.api_version = rt.api_version(version)
        self.convert = self.api_version != rt.api_version()
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True
        self.queue.put_nowait(b"")  # wakes the writer up

    def _matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.match is None or self.match(obj)

    def offer(self, event: Event) -> None:
        now = self._matches(event.obj)
        if event.type == "MODIFIED" and self.match is not None:
            was = self._matches(event.old)
            if was != now:
                self.queue.put_nowait(self.line("ADDED" if now else "DELETED", event.obj))
                return
        if now:
            self.queue.put_nowait(self.line(event.type, event.obj, event))

    def line(self, kind: str, obj: Obj, event: Event | None = None) -> bytes:
        cache_key = f"{kind}/{self.api_version}"
        if event is not None and cache_key in event.cache:
            return event.cache[cache_key]
        if self.convert:
            obj = {**obj, "apiVersion": self.api_version}
        data = json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
        if event is not None:
            event.cache[cache_key] = data
        return data

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.api_version, "metadata": meta}
        return (
            json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + b"\n"
        )


async def serve(
    request: web.Request,
    store: Store,
    rt: ResourceType,
    version: str,
    namespace: str,
    match: Callable[[Obj], bool] | None,
    bookmark_interval: float,
    streams: set[StreamWatcher] | None = None,
) -> web.StreamResponse:
    q = request.query
    watcher = StreamWatcher(rt, version, namespace, match)
    bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
    initial_end = q.get("sendInitialEvents") == "true"
    timeout = float(q.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    rv = q.get("resourceVersion") or ""
    error: ApiError | None = None
    # Nothing awaits from here to subscribe(): no event slips between the snapshot and the stream.
    if initial_end or rv in ("", "0"):
        items, _ = store.list(rt, namespace, match)
        for obj in items:
            watcher.queue.put_nowait(watcher.line("ADDED", obj))
    else:
        try:
            for event in store.events_since(rt.key, int(rv)):
                watcher.offer(event)
        except ValueError:
            error = ApiError(400, "BadRequest", f"invalid resource version: {rv}")
        except ApiError as e:
            error = e
    initial_rv = store.rv
    store.subscribe(rt.key, watcher)
    if streams is not None:
        streams.add(watcher)
    resp = web.StreamResponse(
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
    )
    try:
        await resp.prepare(request)
        if error is not None:
            await resp.write(
                json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n"
            )
            return resp
        if initial_end and bookmarks:
            chunk = _drain(watcher) + watcher.bookmark(initial_rv, initial_end=True)
            await resp.write(chunk)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + bookmark_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            try:
                first = await asyncio.wait_for(
                    watcher.queue.get(), min(deadline, next_bookmark) - now
                )
                if watcher.dropped:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                await resp.write(first + _drain(watcher))
            except TimeoutError:
                if bookmarks and time.monotonic() >= next_bookmark:
                    await resp.write(_drain(watcher) + watcher.bookmark(store.rv))
                    next_bookmark = time.monotonic() + bookmark_interval
        tail = _drain(watcher)
        if bookmarks:
            tail += watcher.bookmark(store.rv)
        if tail:
            await resp.write(tail)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        store.unsubscribe(rt.key, watcher)
        if streams is not None:
            streams.discard(watcher)
    return resp


def _drain(watcher: StreamWatcher) -> bytes:
    parts = []
    while not watcher.queue.empty():
        parts.append(watcher.queue.get_nowait())
    return b"".join(parts)
