"""The external-secrets half's vocabulary: API group and kinds, annotations, paths, and the
fixed reasons of its conditions and Events (:class:`EsReason`, ESO's names where they exist)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from secretops_controller import kube
from secretops_controller.external import ownership
from secretops_controller.external.storeconfig import CLUSTER_KIND

GROUP, VERSION = "secretops.dev", "v1alpha1"
API = f"{GROUP}/{VERSION}"
KIND = "ExternalSecret"
FORCE_SYNC = "secretops.dev/force-sync"
OWNER_ANNOTATION = ownership.OWNER_ANNOTATION  # on the Secret: the ExternalSecret's name
READY = "Ready"

Owner = tuple[str, str]  # (namespace, ExternalSecret name)
StoreId = tuple[str, str, str]  # (kind, namespace or "", name) of a store


class EsReason(StrEnum):
    """Condition and Event reasons of the external-secrets half. Never renamed."""

    SYNCED = "SecretSynced"
    SYNC_ERROR = "SecretSyncedError"
    DELETED = "SecretDeleted"
    MISSING = "SecretMissing"
    UPDATE_FAILED = "UpdateFailed"
    STORE_NOT_READY = "StoreNotReady"
    STORE_NOT_ALLOWED = "StoreNotAllowed"
    PROVIDER_UNAVAILABLE = "ProviderUnavailable"
    TEMPLATE_ERROR = "TemplateError"
    CONFLICT = "SecretConflict"  # another ExternalSecret or a SealedSecret writes the Secret
    # stores
    VALID = "Valid"
    INVALID_PROVIDER = "InvalidProviderConfig"
    INVALID_STORE = "InvalidStoreConfiguration"
    VALIDATION_FAILED = "ValidationFailed"
    VALIDATION_UNKNOWN = "ValidationUnknown"
    # rollout and rotation
    ROLLED = "WorkloadsRolled"
    ROLLOUT_STARTED = "RolloutStarted"  # on the workload: patched, its controller rolls it
    ROLLOUT_SKIPPED = "RolloutSkipped"
    ROLLOUT_FAILED = "RolloutFailed"
    ROTATED = "SecretRotated"
    ROTATION_FAILED = "RotationFailed"

    @property
    def normal(self) -> bool:
        return self in _NORMAL


_NORMAL = frozenset({EsReason.SYNCED, EsReason.VALID, EsReason.DELETED, EsReason.ROLLED,
                     EsReason.ROLLOUT_STARTED, EsReason.ROTATED})


def path(namespace: str, name: str | None = None) -> str:
    return kube.resource_path(f"/apis/{API}", namespace, "externalsecrets", name)


def store_path(kind: str, namespace: str, name: str) -> str:
    if kind == CLUSTER_KIND:
        return f"/apis/{API}/clustersecretstores/{name}"
    return kube.resource_path(f"/apis/{API}", namespace, "secretstores", name)


def name_of(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (``name`` for a cluster-scoped object), for messages."""
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(
        meta.get("name"))


def owner_of(es: Mapping[str, Any]) -> Owner:
    meta = es.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("name")))


def store_id(store: Mapping[str, Any]) -> StoreId:
    meta = store.get("metadata") or {}
    return (str(store.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def target_of(es: Mapping[str, Any]) -> str:
    """The name of the Secret ``es`` writes: ``spec.target.name``, else its own name."""
    return str(((es.get("spec") or {}).get("target") or {}).get("name")
               or (es.get("metadata") or {}).get("name"))
