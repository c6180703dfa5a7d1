"""Rollout of workloads when a synced Secret's data changes (never on its first creation).

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
``kubectl rollout restart``) and :data:`HASH_PREFIX` + the Secret's name with its new content
hash, so the rolling update is done by the workload's own controller. A paused Deployment
(``spec.paused``) is skipped with a Warning Event. Pure selection lives in :func:`targets`; the
calls (one LIST per kind in the namespace, one PATCH per workload) in :func:`roll`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}
RELOAD_ON_CHANGE = "secretops.dev/reload-on-change"
RESTARTED_AT = "secretops.dev/restartedAt"
HASH_PREFIX = "secretops.dev/secret-hash-"
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


def patch_for(secret: str, data_hash: str, when: datetime | None = None) -> dict[str, Any]:
    stamp = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    annotations = {RESTARTED_AT: stamp.replace("+00:00", "Z")}
    key = (HASH_PREFIX + secret)
    if len(key.split("/", 1)[1]) <= 63:  # an annotation name is at most 63 characters
        annotations[key] = data_hash
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def path(namespace: str, kind: str, name: str | None = None) -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/{KINDS[kind]}"
    return base if name is None else f"{base}/{name}"


List = Callable[[str], Awaitable[list[dict[str, Any]]]]
Patch = Callable[[str, Mapping[str, Any]], Awaitable[Any]]


async def roll(namespace: str, secret: str, data_hash: str, listed: list[tuple[str, str]],
               list_: List, patch: Patch) -> tuple[list[Target], list[Target], list[str]]:
    """Roll what :func:`targets` selects: (rolled, skipped as paused, listed but missing)."""
    listings = {kind: await list_(path(namespace, kind)) for kind in KINDS}
    chosen = targets(listings, secret, listed)
    found = {(t.kind, t.name) for t in chosen}
    missing = [f"{k}/{n}" for k, n in listed if (k, n) not in found]
    rolled, skipped = [], []
    body = patch_for(secret, data_hash)
    for t in chosen:
        if t.paused:
            skipped.append(t)
            continue
        await patch(path(namespace, t.kind, t.name), body)
        rolled.append(t)
    return rolled, skipped, missing


__all__ = ["KINDS", "RELOAD_ON_CHANGE", "RESTARTED_AT", "Target", "listed_workloads",
           "patch_for", "referenced", "roll", "targets", "why"]
