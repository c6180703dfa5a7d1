"""Which workloads roll when a synced Secret's data changes, how, and when a roll is done. Pure.

Which Deployments, StatefulSets and DaemonSets of the Secret's namespace roll:

* those listed in the ExternalSecret's ``spec.rollout.workloads[] {kind, name}``;
* those annotated for Reloader (so teams can drop it):
  ``secret.reloader.stakater.com/reload: "a,b"`` names the Secret, or
  ``reloader.stakater.com/auto`` / ``secret.reloader.stakater.com/auto: "true"`` and the pod
  template references the Secret (env ``secretKeyRef``, ``envFrom.secretRef``, ``secret`` and
  ``projected`` volumes, init containers included); ``reloader.stakater.com/ignore: "true"``
  and ``secrets.exclude.reloader.stakater.com/reload: "a,b"`` are honoured for the auto kind;
* those opted in with our own :data:`RELOAD_ON_CHANGE` ``"true"`` (same as Reloader's auto).

A roll is a merge patch of the pod-template annotation :data:`RESTARTED_AT` (like
``kubectl rollout restart``) and :data:`HASH_PREFIX` + each changed Secret's name with its new
content hash (:func:`patch_for`: several Secrets changed together, one patch), sent with the
field manager :data:`FIELD_MANAGER`, so the rolling update is done by the workload's own
controller, and neither Argo CD nor Flux sees drift (docs/external-secrets.md, "GitOps: Argo CD
and Flux"). A paused Deployment (``spec.paused``) is not patched. A roll is done when the
workload says so, as ``kubectl rollout status`` reads it (:func:`progress`).

When, how many at once and how often is :mod:`.rollqueue`'s: the window, the cluster-wide
budget, the queue; :data:`PENDING` on the Secret carries a change not yet rolled across
restarts and leader changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
RELOAD_ON_CHANGE = "secretops.dev/reload-on-change"
RESTARTED_AT = "secretops.dev/restartedAt"
HASH_PREFIX = "secretops.dev/secret-hash-"
# On the Secret: the fingerprint of data whose rollout is not done yet (written with the data)
PENDING = "secretops.dev/rollout-pending"
# The field manager of the roll's PATCH: not "kubectl…" nor "before-first-apply", whose fields
# Flux's kustomize-controller takes over and removes; Argo CD can be told to trust it
# (ignoreDifferences.managedFieldsManagers)
FIELD_MANAGER = "secretops-controller"
RELOADER_AUTO = ("reloader.stakater.com/auto", "secret.reloader.stakater.com/auto")
RELOADER_RELOAD = "secret.reloader.stakater.com/reload"
RELOADER_IGNORE = "reloader.stakater.com/ignore"
RELOADER_EXCLUDE = "secrets.exclude.reloader.stakater.com/reload"


@dataclass(frozen=True)
class Target:
    kind: str
    name: str
    why: str  # "listed", "reloader-reload", "reloader-auto", "reload-on-change"
    paused: bool
    obj: Mapping[str, Any]


def _names(value: Any) -> set[str]:
    return {n.strip() for n in str(value or "").split(",") if n.strip()}


def _true(value: Any) -> bool:
    return str(value or "").strip().lower() == "true"


def referenced(workload: Mapping[str, Any]) -> set[str]:
    """The Secrets a workload's pod template references (env, envFrom, volumes, projected)."""
    pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    out: set[str] = set()
    for c in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name"):
                out.add(str(ref["name"]))
        for e in c.get("envFrom") or []:
            ref = e.get("secretRef") or {}
            if ref.get("name"):
                out.add(str(ref["name"]))
    for v in pod.get("volumes") or []:
        if (v.get("secret") or {}).get("secretName"):
            out.add(str(v["secret"]["secretName"]))
        for src in (v.get("projected") or {}).get("sources") or []:
            if (src.get("secret") or {}).get("name"):
                out.add(str(src["secret"]["name"]))
    return out


def why(workload: Mapping[str, Any], secret: str, listed: bool) -> str | None:
    """Why ``workload`` rolls when ``secret`` changes, or None. Pure."""
    if listed:
        return "listed"
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    if secret in _names(annotations.get(RELOADER_RELOAD)):
        return "reloader-reload"
    auto = [k for k in (RELOAD_ON_CHANGE, *RELOADER_AUTO) if _true(annotations.get(k))]
    if not auto or secret not in referenced(workload):
        return None
    if auto == [RELOAD_ON_CHANGE]:
        return "reload-on-change"
    if _true(annotations.get(RELOADER_IGNORE)) or secret in _names(
            annotations.get(RELOADER_EXCLUDE)):
        return "reload-on-change" if RELOAD_ON_CHANGE in auto else None
    return "reloader-auto"


def targets(listings: Mapping[str, Iterable[Mapping[str, Any]]], secret: str,
            listed: Iterable[tuple[str, str]]) -> list[Target]:
    """The workloads (``listings``: kind -> the namespace's objects) that roll. Pure."""
    wanted = set(listed)
    out: list[Target] = []
    for kind in KINDS:
        for obj in listings.get(kind) or []:
            name = str((obj.get("metadata") or {}).get("name"))
            reason = why(obj, secret, (kind, name) in wanted)
            if reason is None:
                continue
            paused = kind == "Deployment" and bool((obj.get("spec") or {}).get("paused"))
            out.append(Target(kind, name, reason, paused, obj))
    return out


def listed_workloads(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    items = ((spec.get("rollout") or {}).get("workloads")) or []
    return [(str(w.get("kind")), str(w.get("name"))) for w in items
            if w.get("kind") in KINDS and w.get("name")]


def hash_key(secret: str) -> str | None:
    """The template annotation holding ``secret``'s fingerprint (None: the name is too long
    for an annotation name, at most 63 characters after the prefix)."""
    key = HASH_PREFIX + secret
    return key if len(key.split("/", 1)[1]) <= 63 else None


def patch_for(hashes: Mapping[str, str], when: datetime | None = None) -> dict[str, Any]:
    """One roll for Secrets that changed together: ``hashes`` maps each to its fingerprint."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    annotations = {RESTARTED_AT: stamp.replace("+00:00", "Z")}
    for secret, digest in sorted(hashes.items()):
        key = hash_key(secret)
        if key is not None:
            annotations[key] = digest
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def rolled_for(workload: Mapping[str, Any], hashes: Mapping[str, str]) -> bool:
    """The workload's template already carries every one of ``hashes`` (a roll for them was
    sent before: by a leader that stopped before it could say so)."""
    notes = ((((workload.get("spec") or {}).get("template") or {}).get("metadata") or {})
             .get("annotations") or {})
    keys = {s: hash_key(s) for s in hashes}
    return bool(hashes) and all(k is not None and notes.get(k) == hashes[s]
                                for s, k in keys.items())


class Progress(Enum):
    DONE = "done"
    WAITING = "waiting"
    FAILED = "failed"  # a Deployment past its progressDeadlineSeconds


def progress(kind: str, workload: Mapping[str, Any], generation: int) -> Progress:
    """Whether the roll that made ``generation`` is done, as ``kubectl rollout status`` judges
    it: the workload's controller has seen that generation and every replica is updated and
    available; ``OnDelete`` StatefulSets and DaemonSets are done at once (nothing rolls)."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return Progress.WAITING
    if kind == "Deployment":
        for c in status.get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                return Progress.FAILED
        want = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        if updated < want or int(status.get("replicas") or 0) > updated \
                or int(status.get("availableReplicas") or 0) < updated:
            return Progress.WAITING
        return Progress.DONE
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return Progress.DONE
    if kind == "StatefulSet":
        want = int(spec.get("replicas", 1))
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        if int(status.get("readyReplicas") or 0) < want:
            return Progress.WAITING
        if partition:
            done = int(status.get("updatedReplicas") or 0) >= want - partition
            return Progress.DONE if done else Progress.WAITING
        same = status.get("updateRevision") == status.get("currentRevision")
        return Progress.DONE if same else Progress.WAITING
    desired = int(status.get("desiredNumberScheduled") or 0)  # DaemonSet
    if int(status.get("updatedNumberScheduled") or 0) < desired \
            or int(status.get("numberAvailable") or 0) < desired:
        return Progress.WAITING
    return Progress.DONE


def path(namespace: str, kind: str, name: str | None = None) -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/{KINDS[kind]}"
    return base if name is None else f"{base}/{name}"


__all__ = ["FIELD_MANAGER", "KINDS", "PENDING", "RELOAD_ON_CHANGE", "RESTARTED_AT", "Progress",
           "Target", "hash_key", "listed_workloads", "patch_for", "path", "progress",
           "referenced", "rolled_for", "targets", "why"]
