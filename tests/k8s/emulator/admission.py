"""Admission plugins the emulator can turn on (``--enable-admission-plugins``), off by default
as on an upstream kube-apiserver.

``OwnerReferencesPermissionEnforcement`` (plugin/pkg/admission/gc/gc_admission.go; on by default
in OpenShift), on every create and update (PUT, PATCH, apply; ``pods/status`` excepted):

* a write that changes ``metadata.ownerReferences`` (a create with any) needs ``delete`` on the
  object itself, else 403 ``cannot set an ownerRef on a resource you can't delete``;
* each reference that newly sets ``blockOwnerDeletion: true`` (a new uid, or one that was not
  blocking) needs ``update`` on ``<owner resource>/finalizers`` named as the owner, in the
  object's namespace, else 403 ``cannot set blockOwnerDeletion if an ownerReference refers to a
  resource you can't set finalizers on``; an owner kind the server does not serve is refused too.

Authorization is RBAC over the Roles, ClusterRoles and bindings the emulator stores (the
evaluator of :mod:`tests.k8s.rbac`); the admin credential of tests is ``system:masters`` and is
never refused. The checks it makes are authorization checks, not requests: each is added to the
audit log with ``"admission": true`` so a least-privilege check sees the permission used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rbac import Policy
from . import errors
from .auth import User
from .resources import ResourceType
from .store import Obj, Store

PLUGINS = ("OwnerReferencesPermissionEnforcement",)
_RBAC = "rbac.authorization.k8s.io"
_RBAC_KINDS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")

# (user, verb, group, resource/subresource, namespace, name) of one authorization check
Record = Callable[[User, str, str, str, str, str], None]


class OwnerReferencesPermissionEnforcement:
    def __init__(self, store: Store, record: Record) -> None:
        self.store = store
        self.record = record
        self._policy: Policy | None = None
        self._seen: tuple[int, ...] = ()

    def _rbac(self) -> Policy:
        """The RBAC policy as stored now (rebuilt when an RBAC object changed)."""
        versions = tuple(self.store.resource_rv((_RBAC, k)) for k in _RBAC_KINDS)
        if self._policy is None or versions != self._seen:
            manifests = []
            for plural in _RBAC_KINDS:
                rt = self.store.registry.by_key((_RBAC, plural))
                assert rt is not None
                items, _ = self.store.list(rt, "", None)
                manifests += [{**o, "apiVersion": f"{_RBAC}/v1", "kind": rt.kind} for o in items]
            self._policy, self._seen = Policy(manifests), versions
        return self._policy

    def _allowed(self, user: User, verb: str, group: str, resource: str, namespace: str,
                 name: str) -> bool:
        self.record(user, verb, group, resource, namespace, name)
        return bool(self._rbac().allows({
            "user": user.username, "verb": verb, "apiGroup": group, "resource": resource,
            "namespace": namespace, "name": name}))

    def _resources(self, api_version: str, kind: str) -> list[ResourceType]:
        group, _, version = api_version.rpartition("/")
        return [rt for rt in self.store.registry.all()
                if rt.group == group and rt.kind == kind and version in rt.versions]

    def admit(self, user: User | None, rt: ResourceType, namespace: str, name: str,
              subresource: str | None, new: Obj, old: Obj | None) -> None:
        if user is None:  # the admin (system:masters), or the emulator's own controllers
            return
        if rt.key == ("", "pods") and subresource == "status":
            return
        refs = list((new.get("metadata") or {}).get("ownerReferences") or [])
        before = list(((old or {}).get("metadata") or {}).get("ownerReferences") or [])
        if (not refs) if old is None else refs == before:
            return
        resource = f"{rt.plural}/{subresource}" if subresource else rt.plural
        if not self._allowed(user, "delete", rt.group, resource, namespace, name):
            raise errors.forbidden(rt.plural, rt.group, name,
                                   "cannot set an ownerRef on a resource you can't delete: , "
                                   "<nil>")
        was = {r.get("uid"): r for r in before}
        for ref in refs:
            if ref.get("blockOwnerDeletion") is not True:
                continue
            prev = was.get(ref.get("uid"))
            if prev is not None and prev.get("blockOwnerDeletion") is True:
                continue  # it was blocking already
            owners = self._resources(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
            if not owners:
                raise errors.forbidden(rt.plural, rt.group, name, (
                    "cannot set blockOwnerDeletion in this case because cannot find RESTMapping "
                    f"for APIVersion {ref.get('apiVersion')} Kind {ref.get('kind')}: , <nil>"))
            for owner in owners:
                if not self._allowed(user, "update", owner.group, f"{owner.plural}/finalizers",
                                     namespace, str(ref.get("name", ""))):
                    raise errors.forbidden(rt.plural, rt.group, name, (
                        "cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                        "you can't set finalizers on: , <nil>"))


def plugins(names: list[str], store: Store, record: Record) -> list[Any]:
    """The plugins named (``--enable-admission-plugins``), in that order."""
    unknown = sorted(set(names) - set(PLUGINS))
    if unknown:
        raise ValueError(f"unknown admission plugins: {', '.join(unknown)} (known: "
                         f"{', '.join(PLUGINS)})")
    return [OwnerReferencesPermissionEnforcement(store, record) for _ in names]
