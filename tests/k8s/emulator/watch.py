"""Watch streams: one :class:`StreamWatcher` per open ``?watch=true`` request.

The store offers every event of a resource to that resource's watchers; a watcher keeps the ones
in its namespace that its selectors match, with the apiserver's rule for selectors: an object
that stops matching is sent as DELETED, one that starts matching as ADDED. :func:`serve` writes
the stream — newline-delimited ``{"type": ..., "object": ...}`` — starting from:

* no ``resourceVersion`` (or ``"0"``, or ``sendInitialEvents=true``): a synthetic ADDED for each
  current object, then changes;
* a ``resourceVersion``: the events after it from the resource's watch cache
  (:mod:`.watchcache`), or, if it is older than the cache reaches (``resourceVersion=1``, or
  events dropped from the window), a single ``ERROR`` event carrying a 410 ``Expired`` Status
  (HTTP 200, as the apiserver's watch cache answers);

then, with ``allowWatchBookmarks``, a BOOKMARK every ``bookmark_interval`` and one 2 s before
``timeoutSeconds`` closes the stream (none at the close, none for a timeout under 2 s), each only
if the resource's own newest version moved past the watch's start, and carrying that version (as
the apiserver's cache watcher does). An open stream is in the
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
from .params import go_bool
from .resources import ResourceType
from .store import Event, Obj, Store
from .views import View

DEFAULT_TIMEOUT = 1800.0  # the apiserver picks 30-60 min when the client gives none
TOO_LARGE_WAIT = 3.0  # watch_cache.go blockTimeout
_TOO_LARGE = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
PRE_TIMEOUT_BOOKMARK = 2.0  # cache_watcher.go: a bookmark 2 s before the watch times out
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


# the object a watch line was last made of, and its JSON: the response to the write that made
# the event is the same object (one serialisation instead of two per write)
_last: tuple[Any, bytes] = (None, b"")


def _encode(obj: Obj) -> bytes:
    global _last
    if _last[0] is not obj:
        _last = (obj, json.dumps(obj, separators=(",", ":")).encode())
    return _last[1]


def encoded(obj: Any) -> bytes | None:
    """The JSON of ``obj`` if a watch line was just made of this very object, else None (the
    stored objects are never changed in place: each write stores a new one)."""
    return _last[1] if _last[0] is obj else None


class StreamWatcher:
    def __init__(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        match: Callable[[Obj], bool] | None,
        view: View | None = None,
    ) -> None:
        self.rt = view.rt if view else rt
        self.view = view
        self.api_version = self.rt.api_version(version)
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
        if self.view is not None:
            obj = self.view.from_storage(obj)
        elif self.convert:
            obj = {**obj, "apiVersion": self.api_version}
        # the same bytes as json.dumps({"type": kind, "object": obj}), the object's own kept
        # for the write's response (:func:`encoded`)
        data = b'{"type":' + json.dumps(kind).encode() + b',"object":' + _encode(obj) + b"}\n"
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
    view: View | None = None,
) -> web.StreamResponse:
    q = request.query
    watcher = StreamWatcher(rt, version, namespace, match, view)
    bookmarks = go_bool(q.get("allowWatchBookmarks"))
    initial_end = go_bool(q.get("sendInitialEvents"))
    timeout = float(q.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    rv = q.get("resourceVersion") or ""
    error: ApiError | None = None
    if rv.isdigit() and int(rv) > store.rv:
        error = await _wait_until_fresh(store, int(rv))
    start_rv = store.resource_rv(rt.key)
    # Nothing awaits from here to subscribe(): no event slips between the snapshot and the stream.
    if initial_end or rv in ("", "0"):
        items, _ = store.list(rt, namespace, match)
        for obj in items:
            watcher.queue.put_nowait(watcher.line("ADDED", obj))
    else:
        try:
            start_rv = int(rv)
            for event in store.events_since(rt.key, start_rv):
                watcher.offer(event)
        except ValueError:
            error = ApiError(400, "BadRequest", f"invalid resource version: {rv}")
        except ApiError as e:
            error = error or e
    initial_rv = store.rv
    store.subscribe(rt.key, watcher)
    if streams is not None:
        streams.add(watcher)
    resp = web.StreamResponse(
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
    )

    def bookmark() -> bytes:
        # The cacher sends a bookmark only once its resource moved past the watch's start.
        resource_rv = store.resource_rv(rt.key)
        return watcher.bookmark(resource_rv) if resource_rv > start_rv else b""

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
        started = time.monotonic()
        deadline = started + timeout
        next_bookmark = _next_bookmark(started, bookmark_interval, deadline) if bookmarks else None
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wake = deadline if next_bookmark is None else min(deadline, next_bookmark)
            try:
                first = await asyncio.wait_for(watcher.queue.get(), wake - now)
                if watcher.dropped:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                await resp.write(first + _drain(watcher))
            except TimeoutError:
                if next_bookmark is not None and time.monotonic() >= next_bookmark:
                    chunk = _drain(watcher) + bookmark()
                    if chunk:
                        await resp.write(chunk)
                    next_bookmark = _next_bookmark(time.monotonic(), bookmark_interval, deadline)
        tail = _drain(watcher)
        if tail:
            await resp.write(tail)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        store.unsubscribe(rt.key, watcher)
        if streams is not None:
            streams.discard(watcher)
    return resp


async def _wait_until_fresh(store: Store, rv: int) -> ApiError | None:
    """A version newer than the server's: the cacher waits 3 s for it, then gives up (504)."""
    deadline = time.monotonic() + TOO_LARGE_WAIT
    while store.rv < rv:
        if time.monotonic() >= deadline:
            return ApiError(
                504,
                "Timeout",
                f"Timeout: Too large resource version: {rv}, current: {store.rv}",
                {"causes": [_TOO_LARGE], "retryAfterSeconds": 1},
            )
        await asyncio.sleep(0.05)
    return None


def _next_bookmark(now: float, interval: float, deadline: float) -> float | None:
    """The cache watcher's rule: every ``interval``, and 2 s before the timeout; none later."""
    at = min(now + interval, deadline - PRE_TIMEOUT_BOOKMARK)
    return at if at > now else None


def _drain(watcher: StreamWatcher) -> bytes:
    parts = []
    while not watcher.queue.empty():
        parts.append(watcher.queue.get_nowait())
    return b"".join(parts)
