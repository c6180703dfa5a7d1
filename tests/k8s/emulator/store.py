"""The object store: what etcd plus the apiserver's generic registry do, in memory.

Objects live in ``{(group, plural): {namespace: {name: object}}}`` (cluster-scoped objects under
namespace ``""``), so a get, create, update or delete costs the same whatever the number of
stored objects; a list costs the size of what it returns. Stored objects are never mutated: a
write builds a new dict (sharing unchanged subtrees), so watch events and responses can hold them.

Every write takes the next value of one cluster-wide counter as its ``resourceVersion`` and is
appended to its resource's watch cache that watches resume from (:mod:`.watchcache`: an older
version is 410 Expired). The store
also keeps what the apiserver's controllers would do in the background — ownerReference garbage
collection, namespace termination, CRD establishment — and runs it through ``defer`` (the event
loop's ``call_soon`` in the server), i.e. right after the request that caused it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import errors, kinds
from .controllers import Controllers, rfc3339
from .errors import Cause
from .patch import apply_patch
from .resources import Registry, ResourceType
from .watchcache import WatchCache

Obj = dict[str, Any]
Key = tuple[str, str]
# Records field managers on a write: (live object or None, new object, the managedFields the
# request carried) -> the new object with its managedFields (see :mod:`.managedfields`).
Track = Callable[[Obj | None, Obj, Any], Obj]
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class Event:
    type: str  # ADDED, MODIFIED, DELETED
    key: Key
    rv: int
    obj: Obj
    old: Obj | None
    # serialised forms per type and apiVersion, shared by the watchers it is offered to
    cache: dict[str, bytes] = field(default_factory=dict)


class Watcher(Protocol):
    def offer(self, event: Event) -> None: ...


class Store(Controllers):
    def __init__(
        self,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.time,
        history: int = 10_000,
        defer: Callable[[Callable[[], None]], Any] | None = None,
        cache_init_seconds: float = 0.0,
        kube_controllers: bool = True,
    ) -> None:
        self.registry = registry or Registry()
        self.clock = clock
        self.defer = defer or (lambda fn: fn())
        # kube-controller-manager's garbage collector and namespace controller: without them
        # (a bare apiserver), dependents outlive their owners and a deleted namespace stays
        # Terminating.
        self.kube_controllers = kube_controllers
        self.rv = 0
        self.history_size = history  # events kept per resource (each resource's watch cache)
        self._caches: dict[Key, WatchCache] = {}
        self._boot_rv = 0
        # A served CRD's storage answers lists and watches with 429 until this time.
        self.cache_init_seconds = cache_init_seconds
        self._initializing: dict[Key, float] = {}
        self._objects: dict[Key, dict[str, dict[str, Obj]]] = defaultdict(dict)
        self._uids: dict[str, tuple[Key, str, str]] = {}
        self._dependents: dict[str, set[tuple[Key, str, str]]] = defaultdict(set)
        self._ns_count: dict[str, int] = defaultdict(int)
        self._watchers: dict[Key, set[Watcher]] = defaultdict(set)
        # admission: called with (rt, namespace, name, subresource, new, old) before a create or
        # update is stored (dry runs included); raises ApiError to refuse (see admission.py)
        self.admit: Callable[[ResourceType, str, str, str | None, Obj, Obj | None], None] | None
        self.admit = None
        ns = self.registry.by_key(("", "namespaces"))
        assert ns is not None
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(ns, "", {"metadata": {"name": name}})
        # The built-in resources' caches start now, as an apiserver's start after etcd has data.
        self._caches.clear()
        self._boot_rv = self.rv

    def _background(self, fn: Callable[[], None]) -> None:
        if self.kube_controllers:
            self.defer(fn)

    def now(self) -> str:
        return rfc3339(self.clock())

    # ---- reads -------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._objects[rt.key].get(namespace, {}).get(name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def list(
        self, rt: ResourceType, namespace: str, match: Callable[[Obj], bool] | None = None
    ) -> tuple[list[Obj], int]:
        buckets = self._objects[rt.key]
        spaces = (
            [buckets.get(namespace, {})] if namespace else [buckets[n] for n in sorted(buckets)]
        )
        items = [o for b in spaces for _, o in sorted(b.items()) if match is None or match(o)]
        return items, self.rv

    def snapshot(self, rt: ResourceType, namespace: str, rv: int) -> list[Obj]:
        """The objects (in ``namespace``, or all) as they were at version ``rv``: the current
        ones with the watch cache's later events undone. 410 when the cache no longer reaches
        back to ``rv`` (etcd would have compacted it)."""
        later = list(self.events_since(rt.key, rv))
        buckets = self._objects[rt.key]
        spaces = [namespace] if namespace else list(buckets)
        state = {(ns, name): o for ns in spaces for name, o in buckets.get(ns, {}).items()}
        for event in reversed(later):
            meta = event.obj["metadata"]
            key = (meta.get("namespace") or "", meta["name"])
            if namespace and key[0] != namespace:
                continue
            if event.old is None:
                state.pop(key, None)
            else:
                state[key] = event.old
        return list(state.values())

    def namespace_state(self, namespace: str) -> Obj | None:
        return self._objects[("", "namespaces")].get("", {}).get(namespace)

    # ---- watch support -----------------------------------------------------------------------
    def subscribe(self, key: Key, watcher: Watcher) -> None:
        self._watchers[key].add(watcher)

    def unsubscribe(self, key: Key, watcher: Watcher) -> None:
        self._watchers[key].discard(watcher)

    def events_since(self, key: Key, rv: int) -> Iterator[Event]:
        return self._cache(key).since(rv)

    def resource_rv(self, key: Key) -> int:
        """The newest version of this resource's own objects (what its bookmarks carry)."""
        return self._cache(key).last_rv

    def check_ready(self, key: Key) -> None:
        """429 while a just-served CRD's storage initialises, as its cacher answers."""
        until = self._initializing.get(key)
        if until is None:
            return
        if time.monotonic() >= until:
            del self._initializing[key]
            return
        raise errors.storage_initializing()

    def start_cache(self, key: Key) -> None:
        """A custom resource's cache starts when its CRD is first served."""
        if key not in self._caches:
            self._caches[key] = WatchCache(self.rv, self.history_size)
            if self.cache_init_seconds > 0:
                self._initializing[key] = time.monotonic() + self.cache_init_seconds

    def stop_cache(self, key: Key) -> None:
        self._caches.pop(key, None)
        self._initializing.pop(key, None)

    def _cache(self, key: Key) -> WatchCache:
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = WatchCache(self._boot_rv, self.history_size)
        return cache

    # ---- writes ------------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Obj,
        *,
        dry_run: bool = False,
        strict: bool = False,
        track: Track | None = None,
    ) -> tuple[Obj, list[str]]:
        meta = dict(body.get("metadata") or {})
        requested = meta.get("managedFields")
        self._check_type(rt, body)
        self._check_namespace(rt, namespace, meta)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    "",
                    [
                        Cause(
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                            "metadata.name",
                        )
                    ],
                )
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_SUFFIX) for _ in range(5))
        for f in (
            "uid",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
        ):
            meta.pop(f, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock())
        if rt.generation:
            meta["generation"] = 1
        if rt.namespaced:
            meta["namespace"] = namespace
        obj = {**body, "apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta}
        if rt.status_subresource:
            obj.pop("status", None)
        obj, warnings = self._prepare(rt, obj, None, strict)
        if track is not None:
            obj = track(None, obj, requested)
        name = meta["name"]
        ns = namespace if rt.namespaced else ""
        if self.admit is not None:
            self.admit(rt, ns, name, None, obj, None)
        if name in self._objects[rt.key].get(ns, {}):
            raise errors.already_exists(rt.plural, rt.group, name)
        if namespace and rt.namespaced:
            state = self.namespace_state(namespace)
            if state and state["metadata"].get("deletionTimestamp"):
                raise errors.forbidden(
                    rt.plural,
                    rt.group,
                    name,
                    "unable to create new content in "
                    f"namespace {namespace} because it is being terminated",
                )
        if dry_run:
            return obj, warnings
        obj = self._commit(rt, ns, name, obj, None)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.defer(lambda: self._establish(name))
        return obj, warnings

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        track: Track | None = None,
    ) -> tuple[Obj, list[str]]:
        old = self.get(rt, namespace, name)  # a missing object is 404 before anything else
        self._check_type(rt, body)
        if not rt.unconditional_update and not (body.get("metadata") or {}).get(
            "resourceVersion"
        ):
            raise errors.invalid(
                rt.plural,
                rt.group,
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                        "metadata.resourceVersion",
                    )
                ],
            )
        return self._update(rt, namespace, name, old, body, subresource, dry_run, strict, track)

    def put(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        track: Track | None = None,
    ) -> tuple[Obj, list[str], bool]:
        """A PUT: an update, or a create where the kind allows it; the last item says which."""
        if rt.create_on_update and not subresource and (
            self._objects[rt.key].get(namespace if rt.namespaced else "", {}).get(name) is None
        ):
            meta = {k: v for k, v in (body.get("metadata") or {}).items()
                    if k != "resourceVersion"}  # the storage layer clears it
            if meta.get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name "
                    f"on the URL ({name})"
                )
            obj, warnings = self.create(
                rt, namespace, {**body, "metadata": {**meta, "name": name}}, dry_run=dry_run,
                strict=strict, track=track,
            )
            return obj, warnings, True
        obj, warnings = self.update(
            rt, namespace, name, body, subresource=subresource, dry_run=dry_run, strict=strict,
            track=track,
        )
        return obj, warnings, False

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        track: Track | None = None,
    ) -> tuple[Obj, list[str]]:
        old = self.get(rt, namespace, name)
        body = apply_patch(content_type, old, patch, rt.custom)
        if not isinstance(body, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        return self._update(rt, namespace, name, old, body, subresource, dry_run, strict, track)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        """The object, or None if there is none (no 404)."""
        return self._objects[rt.key].get(namespace if rt.namespaced else "", {}).get(name)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Obj | None = None,
        dry_run: bool = False,
    ) -> Obj:
        old = self.get(rt, namespace, name)
        ns = namespace if rt.namespaced else ""
        meta = old["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                "Precondition failed: UID in precondition: "
                f"{pre['uid']}, UID in object meta: {meta['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        if rt.key == ("", "namespaces") and name in PROTECTED_NAMESPACES:
            raise errors.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if dry_run or meta.get("deletionTimestamp"):
            return old
        finalizers = list(meta.get("finalizers") or [])
        if (
            propagation == "Orphan"
            and "orphan" not in finalizers
            and self._dependents.get(meta["uid"])
        ):
            finalizers.append("orphan")
            self._background(lambda: self._orphan(rt, ns, name))
        if finalizers or rt.key == ("", "namespaces"):
            new_meta = {
                **meta,
                "deletionTimestamp": rfc3339(self.clock()),
                "deletionGracePeriodSeconds": 0,
                "finalizers": finalizers,
            }
            if not finalizers:
                new_meta.pop("finalizers")
            if rt.generation:
                new_meta["generation"] = meta.get("generation", 0) + 1
            new = {**old, "metadata": new_meta}
            if rt.key == ("", "namespaces"):
                new["status"] = {**(old.get("status") or {}), "phase": "Terminating"}
                self._background(lambda: self._empty_namespace(name))
            return self._commit(rt, ns, name, new, old)
        return self._remove(rt, ns, name, old)

    # ---- the generic update path -------------------------------------------------------------
    def _update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        old: Obj,
        body: Obj,
        subresource: str | None,
        dry_run: bool,
        strict: bool,
        track: Track | None = None,
    ) -> tuple[Obj, list[str]]:
        ns = namespace if rt.namespaced else ""
        self._check_type(rt, body)
        meta = dict(body.get("metadata") or {})
        requested = meta.pop("managedFields", None) if track is not None else None
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name "
                f"on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace", namespace) != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace "
                "sent on the request"
            )
        old_meta = old["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        if subresource == "status":
            new = {**old}
            if "status" in body:
                new["status"] = body["status"]
            else:
                new.pop("status", None)
        else:
            for f in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
                "generateName",
                "resourceVersion",
            ):
                if f in old_meta:
                    meta[f] = old_meta[f]
                else:
                    meta.pop(f, None)
            new = {**body, "apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta}
            if rt.status_subresource:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
        new, warnings = self._prepare(rt, new, old, strict)
        if subresource != "status" and rt.generation and self._spec_changed(rt, old, new):
            new = {
                **new,
                "metadata": {**new["metadata"], "generation": old_meta.get("generation", 0) + 1},
            }
        if track is not None:
            new = track(old, new, requested)
        if self.admit is not None:
            self.admit(rt, ns, name, subresource, new, old)
        if old_meta.get("deletionTimestamp"):
            added = [
                f
                for f in new["metadata"].get("finalizers") or []
                if f not in (old_meta.get("finalizers") or [])
            ]
            if added:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    name,
                    [
                        Cause(
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is "
                            f"being deleted, found new finalizers {added}",
                            "metadata.finalizers",
                        )
                    ],
                )
        if new == old or dry_run:
            return (old if new == old else new), warnings
        if (
            old_meta.get("deletionTimestamp")
            and not new["metadata"].get("finalizers")
            and rt.key != ("", "namespaces")
        ):
            return self._remove(rt, ns, name, new), warnings
        return self._commit(rt, ns, name, new, old), warnings

    @staticmethod
    def _spec_changed(rt: ResourceType, old: Obj, new: Obj) -> bool:
        if not rt.custom:
            return old.get("spec") != new.get("spec")
        skip = {"metadata", "status"} if rt.status_subresource else {"metadata"}
        return {k: v for k, v in old.items() if k not in skip} != {
            k: v for k, v in new.items() if k not in skip
        }

    def _prepare(
        self, rt: ResourceType, obj: Obj, old: Obj | None, strict: bool
    ) -> tuple[Obj, list[str]]:
        warnings: list[str] = []
        if rt.custom:
            schema = rt.schemas.get(rt.storage_version)
            if schema is not None:
                obj, unknown = schema.prune(obj)
                if unknown and strict:
                    raise errors.bad_request(
                        "strict decoding error: "
                        + ", ".join(f'unknown field "{u}"' for u in unknown)
                    )
                warnings = [f'unknown field "{u}"' for u in unknown]
                causes = schema.validate(obj)
                if causes:
                    raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        else:
            obj = kinds.prepare(rt, obj, old)
        causes = kinds.validate_metadata(rt, obj)
        if causes:
            raise errors.invalid(
                rt.kind, rt.group if rt.custom else "", obj["metadata"].get("name", ""), causes
            )
        return obj, warnings

    def _check_type(self, rt: ResourceType, body: Obj) -> None:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request is not a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version not in (rt.api_version(v) for v in rt.versions):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the "
                f"expected API version ({rt.api_version()})"
            )
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )

    def _check_namespace(self, rt: ResourceType, namespace: str, meta: Obj) -> None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace "
                "sent on the request"
            )
        if self.namespace_state(namespace) is None:
            raise errors.not_found("namespaces", "", namespace)

    # ---- commit and removal ------------------------------------------------------------------
    def _commit(self, rt: ResourceType, ns: str, name: str, obj: Obj, old: Obj | None) -> Obj:
        self.rv += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        bucket = self._objects[rt.key].setdefault(ns, {})
        bucket[name] = obj
        uid = obj["metadata"]["uid"]
        if old is None:
            self._uids[uid] = (rt.key, ns, name)
            if ns:
                self._ns_count[ns] += 1
        else:
            self._unindex_owners(old, (rt.key, ns, name))
        owners = [r.get("uid") for r in obj["metadata"].get("ownerReferences") or []]
        for owner in owners:
            self._dependents[owner].add((rt.key, ns, name))
        if owners and not any(o in self._uids for o in owners):
            self._background(lambda: self._collect_one(rt.key, ns, name))
        self._emit(Event("MODIFIED" if old else "ADDED", rt.key, self.rv, obj, old))
        if (
            old is not None
            and rt.key == ("apiextensions.k8s.io", "customresourcedefinitions")
            and (obj.get("spec") != old.get("spec"))
        ):
            self.defer(lambda: self._serve_crd(name))
        return obj

    def _remove(self, rt: ResourceType, ns: str, name: str, last: Obj) -> Obj:
        self.rv += 1
        obj = {**last, "metadata": {**last["metadata"], "resourceVersion": str(self.rv)}}
        del self._objects[rt.key][ns][name]
        uid = obj["metadata"]["uid"]
        self._uids.pop(uid, None)
        self._unindex_owners(last, (rt.key, ns, name))
        self._emit(Event("DELETED", rt.key, self.rv, obj, last))
        if ns:
            self._ns_count[ns] -= 1
            state = self.namespace_state(ns)
            if state and state["metadata"].get("deletionTimestamp") and not self._ns_count[ns]:
                self._background(lambda: self._finish_namespace(ns))
        if uid in self._dependents:
            self._background(lambda: self._collect(uid))
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.defer(lambda: self._unserve_crd(obj))
        return obj

    def _unindex_owners(self, obj: Obj, entry: tuple[Key, str, str]) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            deps = self._dependents.get(ref.get("uid"))
            if deps is not None:
                deps.discard(entry)
                if not deps:
                    del self._dependents[ref.get("uid")]

    def _emit(self, event: Event) -> None:
        self._cache(event.key).add(event)
        for watcher in list(self._watchers.get(event.key, ())):
            watcher.offer(event)
        # Served to every open watch: the window keeps the objects, not their serialised lines
        # (a resume from it serialises again). Kept, they doubled the emulator's memory at 10k.
        event.cache.clear()

    def _internal(self, key: Key, ns: str, name: str) -> tuple[ResourceType, Obj] | None:
        rt = self.registry.by_key(key)
        obj = self._objects[key].get(ns, {}).get(name) if rt else None
        return (rt, obj) if rt and obj else None
