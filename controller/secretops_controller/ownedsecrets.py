"""The Secrets the controller writes: who controls one, the owner reference, write or replace.

Both halves write Secrets the same way:

* **Ownership**: a Secret is controlled by the object of its ownerReference with
  ``controller: true`` (:func:`controller_of`, :func:`controlled_by`). The controller's own
  reference (:func:`owner_reference`) has ``controller: true`` and **no**
  ``blockOwnerDeletion``, as Bitnami's Sealed Secrets writes it: with the
  OwnerReferencesPermissionEnforcement admission plugin (on by default in OpenShift), setting
  ``blockOwnerDeletion`` needs ``update`` on the owner's ``finalizers`` subresource, a
  permission the controller would hold for nothing else; the flag only makes a foreground
  deletion of the owner wait for the Secret, which the garbage collector deletes anyway.
* **Write or replace** (:func:`write`): a new Secret is created; an existing one is replaced
  with a PUT carrying the resourceVersion that was read (a concurrent change is a 409 and the
  caller reads again); an immutable Secret whose data changes, or a Secret whose ``type``
  changes, can only be deleted and created again (the API refuses both updates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretops_controller import kube

# The label on every Secret a SealedSecret wrote (its drift watch selects it, and the
# external half sees a SealedSecret's claim by it when there is no ownerReference).
SEALED_LABEL = "secretops.dev/sealed-by"

# what the API server sets on a stored object and refuses on a create
_SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp")


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference of ``obj`` with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return dict(ref)
    return None


def refers_to(ref: Mapping[str, Any], group: str, kind: str) -> bool:
    """``ref`` names an object of ``kind`` in API group ``group`` (any version)."""
    return bool(ref.get("kind") == kind
                and str(ref.get("apiVersion", "")).startswith(group + "/"))


def controlled_by(obj: Mapping[str, Any], group: str, kind: str) -> bool:
    """``obj``'s controller ownerReference is an object of ``group``/``kind``."""
    ref = controller_of(obj)
    return ref is not None and refers_to(ref, group, kind)


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller ownerReference the controller writes (no ``blockOwnerDeletion``: see
    the module docstring)."""
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True}


def needs_replacing(current: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why ``current`` cannot be updated into ``new`` but must be deleted and created again
    (``immutable``, ``its type changed``), or None."""
    if current.get("immutable") and (new.get("data") or {}) != (current.get("data") or {}):
        return "immutable"
    if (current.get("type") or "Opaque") != (new.get("type") or "Opaque"):
        return "its type changed"
    return None


async def write(api: kube.Kube, namespace: str, name: str, current: Mapping[str, Any] | None,
                new: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Write Secret ``namespace/name`` as ``new`` over ``current`` (None: it does not exist).
    The Secret as written and what was done: ``created``, ``updated``, ``re-created
    (immutable)`` or ``re-created (its type changed)``. Raises :class:`kube.ApiError`."""
    if current is None:
        return await api.create(kube.secrets(namespace), new), "created"
    why = needs_replacing(current, new)
    if why is None:
        return await api.replace(kube.secrets(namespace, name), new), "updated"
    await api.delete(kube.secrets(namespace, name))
    new["metadata"] = {k: v for k, v in (new.get("metadata") or {}).items()
                       if k not in _SERVER_FIELDS}
    return await api.create(kube.secrets(namespace), new), f"re-created ({why})"


__all__ = ["SEALED_LABEL", "controlled_by", "controller_of", "needs_replacing",
           "owner_reference", "refers_to", "write"]
