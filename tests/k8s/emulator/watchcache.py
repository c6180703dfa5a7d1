"""One watch cache per resource, as the apiserver's cacher keeps them.

A real kube-apiserver serves watches from a per-resource cache (``k8s.io/apiserver`` cacher,
``watch_cache.go``), not from etcd's history: the cache starts with a list at the revision of the
moment it was initialised (``listResourceVersion``) and keeps a sliding window of that resource's
events. So a watch may resume only from a version the cache still covers: older than
``listResourceVersion`` (e.g. ``resourceVersion=1``), or older than the first kept event once
events have been dropped, is ``410 Expired`` "too old resource version: RV (OLDEST)". Built-in
resources get their cache when the server starts; a custom resource when its CRD is served.

The cache also gives what bookmarks carry: the resource's own newest version, which only moves
when that resource changes (``last_rv``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import errors

if TYPE_CHECKING:
    from .store import Event


class WatchCache:
    """The window of one resource's events (``capacity``: the newest N are kept)."""

    __slots__ = ("events", "last_rv", "list_rv", "removed")

    def __init__(self, list_rv: int, capacity: int) -> None:
        self.list_rv = list_rv
        self.last_rv = list_rv
        self.events: deque[Event] = deque(maxlen=capacity)
        self.removed = False  # an event fell out of the window since the cache started

    def add(self, event: Event) -> None:
        if len(self.events) == self.events.maxlen:
            self.removed = True
        self.events.append(event)
        self.last_rv = event.rv

    def since(self, rv: int) -> Iterator[Event]:
        """The events after ``rv``; 410 if the window no longer reaches back to it."""
        oldest = self.events[0].rv if self.removed else self.list_rv + 1
        if rv < oldest - 1:
            raise errors.gone(f"too old resource version: {rv} ({oldest - 1})")
        return (e for e in self.events if e.rv > rv)
