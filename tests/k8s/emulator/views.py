"""Resources served from another resource's storage, as the apiserver serves them.

``events.k8s.io/v1`` Events are the core Events (one storage, ``pkg/registry/events``): an Event
posted through either API is read, listed and watched through both, with the field names of the
API asked (``pkg/apis/events/v1/conversion.go``): ``regarding`` is ``involvedObject``, ``note``
is ``message``, ``reportingController`` is ``reportingComponent``, ``deprecatedSource``,
``deprecatedFirstTimestamp``, ``deprecatedLastTimestamp`` and ``deprecatedCount`` are ``source``,
``firstTimestamp``, ``lastTimestamp`` and ``count``; the other fields carry over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .resources import Registry, ResourceType

Obj = dict[str, Any]

_EVENT_FIELDS = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
_TO_STORAGE = dict(_EVENT_FIELDS)
_FROM_STORAGE = {core: v1 for v1, core in _EVENT_FIELDS}


@dataclass(frozen=True)
class View:
    rt: ResourceType  # the resource as asked for
    storage: ResourceType  # the resource whose objects it shows

    def to_storage(self, obj: Any) -> Any:
        if not isinstance(obj, dict):
            return obj  # the store refuses it with its own message
        out = {_TO_STORAGE.get(k, k): v for k, v in obj.items()}
        out["apiVersion"] = self.storage.api_version()
        return out

    def from_storage(self, obj: Obj) -> Obj:
        out = {_FROM_STORAGE.get(k, k): v for k, v in obj.items()}
        out["apiVersion"] = self.rt.api_version()
        return out


VIEWS = {("events.k8s.io", "events"): ("", "events")}


def view_of(rt: ResourceType, registry: Registry) -> View | None:
    storage_key = VIEWS.get(rt.key)
    storage = registry.by_key(storage_key) if storage_key else None
    return View(rt, storage) if storage is not None else None
