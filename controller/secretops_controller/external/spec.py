"""Spec handling: what an ExternalSecret asks for, checked before anything is read.

:func:`registration` parses ``spec`` (the data and ``dataFrom`` refs, templates, rotation,
``refreshInterval``), finds the store (``secretStoreRef``; a ClusterSecretStore only when they
are on, and only from the namespaces its ``spec.conditions`` allow: ``StoreNotAllowed``) and
resolves its credentials. Anything wrong is :class:`Refused` with the reason and message the
Ready condition shows; nothing of the ExternalSecret is registered then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from secretops_controller.config import parse_duration
from secretops_controller.context import Context
from secretops_controller.external import mapping, rotation, stores
from secretops_controller.external.names import EsReason, StoreId, owner_of
from secretops_controller.external.storecheck import Stores


class Refused(Exception):
    """The ExternalSecret cannot be registered: ``reason`` and ``message`` for its status."""

    def __init__(self, reason: EsReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Registration:
    """What the scheduler needs of a valid ExternalSecret."""

    parsed: mapping.Spec
    interval: float
    resolved: stores.Resolved
    rotation: rotation.Rotation | None
    store_version: str  # the resourceVersion of the store it was resolved from


def store_of(es: Mapping[str, Any]) -> StoreId:
    """``(kind, namespace, name)`` of the store ``es`` names (namespace "" for a cluster one)."""
    ref = (es.get("spec") or {}).get("secretStoreRef") or {}
    kind = str(ref.get("kind") or stores.NAMESPACED_KIND)
    ns = "" if kind == stores.CLUSTER_KIND else owner_of(es)[0]
    return (kind, ns, str(ref.get("name") or ""))


async def registration(ctx: Context, known: Stores, es: Mapping[str, Any]) -> Registration:
    """Parse ``es`` and resolve its store; :class:`Refused` says why it cannot sync."""
    spec = es.get("spec") or {}
    namespace = owner_of(es)[0]
    kind, store_ns, name = store_of(es)
    try:
        parsed = mapping.parse_spec(spec)
        interval = parse_duration(str(spec.get("refreshInterval") or "1h"))
        if not name:
            raise stores.StoreError(EsReason.STORE_NOT_READY.value,
                                    "spec.secretStoreRef.name is required")
        if kind == stores.CLUSTER_KIND and not ctx.config.uses_cluster_stores:
            raise stores.StoreError(EsReason.STORE_NOT_READY.value, (
                "ClusterSecretStores are off in this controller "
                "(--no-cluster-secret-stores): use a SecretStore"))
        store = await known.get(kind, store_ns, name)
        if store is None:
            raise stores.StoreError(EsReason.STORE_NOT_READY.value, f"{kind} {name} not found")
        if kind == stores.CLUSTER_KIND and not await stores.allowed(store, namespace,
                                                                    known.labels):
            raise stores.StoreError(EsReason.STORE_NOT_ALLOWED.value, (
                f"ClusterSecretStore {name} may not be used from namespace {namespace} "
                "(spec.conditions)"))
        resolved = await known.resolve_for(store, namespace)
        rot = rotation.parse(spec)
    except stores.StoreError as e:
        reason = (EsReason.STORE_NOT_ALLOWED if e.reason == EsReason.STORE_NOT_ALLOWED.value
                  else EsReason.STORE_NOT_READY)
        raise Refused(reason, e.message) from None
    except rotation.RotationError as e:
        raise Refused(EsReason.SYNC_ERROR, str(e)) from None
    except mapping.MappingError as e:
        raise Refused(EsReason.SYNC_ERROR, f"{e.path}: {e.message}") from None
    except ValueError as e:
        raise Refused(EsReason.SYNC_ERROR, f"spec.refreshInterval: {e}") from None
    version = str((store.get("metadata") or {}).get("resourceVersion"))
    return Registration(parsed, interval, resolved, rot, version)
