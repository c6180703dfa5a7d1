"""What the apiserver's controllers do in the background, run by the store through ``defer``.

* garbage collection: when an owner goes, each dependent whose every owner is gone is deleted
  (honouring its finalizers); one that still has a live owner loses only the dangling reference;
  ``propagationPolicy=Orphan`` strips the references instead; an object created with only
  absent owners is collected too;
* namespace termination: a deleted namespace is ``Terminating`` (no new content, 403), its
  objects are deleted, and it goes once it is empty;
* CRDs: a new CRD is served at once and then marked NamesAccepted/Established; a changed one is
  re-served; a deleted one takes its objects with it.

This is a mixin of :class:`~.store.Store`; the attributes it uses are the store's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import kinds
from .resources import ResourceType

if TYPE_CHECKING:
    from .resources import Registry

Obj = dict[str, Any]
Key = tuple[str, str]


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Controllers:
    registry: Registry
    clock: Callable[[], float]
    _objects: dict[Key, dict[str, dict[str, Obj]]]
    _uids: dict[str, tuple[Key, str, str]]
    _dependents: dict[str, set[tuple[Key, str, str]]]
    _ns_count: dict[str, int]

    if TYPE_CHECKING:  # provided by Store

        def delete(self, rt: ResourceType, namespace: str, name: str, **kw: Any) -> Obj: ...
        def namespace_state(self, namespace: str) -> Obj | None: ...
        def _commit(
            self, rt: ResourceType, ns: str, name: str, obj: Obj, old: Obj | None
        ) -> Obj: ...
        def _remove(self, rt: ResourceType, ns: str, name: str, last: Obj) -> Obj: ...
        def start_cache(self, key: Key) -> None: ...
        def stop_cache(self, key: Key) -> None: ...
        def _internal(self, key: Key, ns: str, name: str) -> tuple[ResourceType, Obj] | None: ...
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
        ) -> tuple[Obj, list[str]]: ...

    def _collect(self, owner_uid: str) -> None:
        """Garbage collection: dependents of a deleted owner go too, unless another owner lives."""
        for key, ns, name in list(self._dependents.pop(owner_uid, ())):
            self._collect_one(key, ns, name)

    def _collect_one(self, key: Key, ns: str, name: str) -> None:
        found = self._internal(key, ns, name)
        if not found:
            return
        rt, obj = found
        refs = obj["metadata"].get("ownerReferences") or []
        live = [r for r in refs if r.get("uid") in self._uids]
        if live and len(live) < len(refs):
            self._set_owners(rt, ns, name, obj, live)
        elif not live and not obj["metadata"].get("deletionTimestamp"):
            self.delete(rt, ns, name)

    def _set_owners(self, rt: ResourceType, ns: str, name: str, obj: Obj, refs: list[Obj]) -> None:
        meta = {**obj["metadata"], "ownerReferences": refs}
        if not refs:
            meta.pop("ownerReferences")
        self._commit(rt, ns, name, {**obj, "metadata": meta}, obj)

    def _orphan(self, rt: ResourceType, ns: str, name: str) -> None:
        owner = self._objects[rt.key].get(ns, {}).get(name)
        if owner is None:
            return
        uid = owner["metadata"]["uid"]
        for key, dns, dname in list(self._dependents.pop(uid, ())):
            found = self._internal(key, dns, dname)
            if found:
                drt, dep = found
                refs = [
                    r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                self._set_owners(drt, dns, dname, dep, refs)
        finalizers = [f for f in owner["metadata"].get("finalizers") or [] if f != "orphan"]
        self._update(
            rt,
            ns,
            name,
            owner,
            {**owner, "metadata": {**owner["metadata"], "finalizers": finalizers}},
            None,
            False,
            False,
        )

    def _empty_namespace(self, namespace: str) -> None:
        for rt in self.registry.all():
            if rt.namespaced:
                for name in list(self._objects[rt.key].get(namespace, {})):
                    obj = self._objects[rt.key][namespace].get(name)
                    if obj and not obj["metadata"].get("deletionTimestamp"):
                        self.delete(rt, namespace, name)
        if not self._ns_count[namespace]:
            self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        rt = self.registry.by_key(("", "namespaces"))
        obj = self.namespace_state(namespace)
        if rt and obj and not obj["metadata"].get("finalizers") and not self._ns_count[namespace]:
            self._remove(rt, "", namespace, {**obj, "spec": {}})

    def _establish(self, name: str) -> None:
        """The CRD controllers: accept the names, serve the resource, mark it Established."""
        found = self._internal(("apiextensions.k8s.io", "customresourcedefinitions"), "", name)
        if not found:
            return
        rt, crd = found
        served = kinds.crd_resource_type(crd)
        self.registry.add(served)
        self.start_cache(served.key)
        status = kinds.crd_accepted_status(crd, rfc3339(self.clock()))
        self._commit(rt, "", name, {**crd, "status": status}, crd)

    def _serve_crd(self, name: str) -> None:
        found = self._internal(("apiextensions.k8s.io", "customresourcedefinitions"), "", name)
        if found:
            self.registry.add(kinds.crd_resource_type(found[1]))

    def _unserve_crd(self, crd: Obj) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        rt = self.registry.remove(key)
        if rt is not None:
            for ns, bucket in list(self._objects.get(key, {}).items()):
                for name, obj in list(bucket.items()):
                    self._remove(rt, ns, name, obj)
        self._objects.pop(key, None)
        self.stop_cache(key)
