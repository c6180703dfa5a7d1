"""Helpers of the rollout tests: workloads, what a roll left on them, and the workload controller
the emulator does not run (:func:`report_done` writes the status a Deployment controller would
once the roll is over, so the rollout budget sees it finish)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.controller.external.test_reconcile import MERGE, PLURALS, get
from tests.controller.helpers import events, secret
from tests.fixtures.k8s import K8s

RESTARTED = "secretops.dev/restartedAt"
PENDING = "secretops.dev/rollout-pending"
DATA_HASH = "secretops.dev/data-hash"
OURS = {"secretops.dev/reload-on-change": "true"}


def namespace(k8s: K8s) -> str:
    name = f"ro-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def deployment(ns: str, name: str, *secrets: str) -> dict[str, Any]:
    """A Deployment opted in with our annotation, reading ``secrets`` through envFrom."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "annotations": dict(OURS)},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "busybox", "envFrom": [
                    {"secretRef": {"name": s}} for s in secrets]}]}}}}


def workload_path(ns: str, name: str, kind: str = "Deployment") -> str:
    return f"/apis/apps/v1/namespaces/{ns}/{PLURALS[kind]}/{name}"


def live(k8s: K8s, ns: str, name: str) -> dict[str, Any]:
    return get(k8s, workload_path(ns, name))


def generation(k8s: K8s, ns: str, name: str) -> int:
    return int(live(k8s, ns, name)["metadata"]["generation"])


def template_notes(k8s: K8s, ns: str, name: str) -> dict[str, str]:
    return dict(live(k8s, ns, name)["spec"]["template"]["metadata"].get("annotations") or {})


def secret_notes(k8s: K8s, ns: str, name: str) -> dict[str, str]:
    return dict(((secret(k8s, ns, name) or {}).get("metadata") or {}).get("annotations") or {})


def carries(k8s: K8s, ns: str, workload: str, *secrets: str) -> bool:
    """The workload's template carries each Secret's current fingerprint: it was patched for
    their current data."""
    notes = template_notes(k8s, ns, workload)
    marks = [secret_notes(k8s, ns, s) for s in secrets]
    return all(m.get(DATA_HASH) and notes.get(f"secretops.dev/secret-hash-{s}") == m[DATA_HASH]
               for s, m in zip(secrets, marks, strict=True))


def rolled_for(k8s: K8s, ns: str, workload: str, *secrets: str) -> bool:
    """:func:`carries`, and no Secret is still marked pending: the rollout for their current
    data was sent to every workload."""
    return carries(k8s, ns, workload, *secrets) and not any(
        PENDING in secret_notes(k8s, ns, s) for s in secrets)


def started_events(k8s: K8s, ns: str, workload: str) -> list[dict[str, Any]]:
    return events(k8s, ns, workload, "RolloutStarted")


def report_done(k8s: K8s, ns: str, name: str) -> None:
    """Play the Deployment controller: every replica updated and available for the current
    generation (the emulator runs no workload controller)."""
    obj = live(k8s, ns, name)
    replicas = int(obj["spec"].get("replicas", 1))
    status, body, _ = k8s.request("PATCH", workload_path(ns, name) + "/status", {"status": {
        "observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
        "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas}}, MERGE)
    assert status == 200, body
