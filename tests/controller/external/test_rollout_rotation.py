"""Pure parts of rollout (which workloads roll) and rotation (schedule, generator)."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

import pytest
from secretops_controller.external import rollout, rotation


def wl(name: str, annotations: dict[str, str] | None = None, *, env: str | None = None,
       paused: bool = False) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": "c"}]
    init = [{"name": "i", "envFrom": [{"secretRef": {"name": env}}]}] if env else []
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"paused": paused, "template": {"spec": {
                "containers": containers, "initContainers": init}}}}


def test_targets_by_listing_reloader_and_our_annotation() -> None:
    auto = {"reloader.stakater.com/auto": "true"}
    listings = {"Deployment": [
        wl("listed"), wl("named", {"secret.reloader.stakater.com/reload": "x, db"}),
        wl("auto", auto, env="db"), wl("auto-other", auto, env="other"),
        wl("ours", {"secretops.dev/reload-on-change": "true"}, env="db"),
        wl("excluded", {**auto, "secrets.exclude.reloader.stakater.com/reload": "db"}, env="db"),
        wl("paused", auto, env="db", paused=True), wl("plain", env="db")],
        "StatefulSet": [wl("listed")]}
    got = {(t.kind, t.name): (t.why, t.paused) for t in rollout.targets(
        listings, "db", [("Deployment", "listed")])}
    assert got == {("Deployment", "listed"): ("listed", False),
                   ("Deployment", "named"): ("reloader-reload", False),
                   ("Deployment", "auto"): ("reloader-auto", False),
                   ("Deployment", "ours"): ("reload-on-change", False),
                   ("Deployment", "paused"): ("reloader-auto", True)}


def test_referenced_secrets() -> None:
    obj = {"spec": {"template": {"spec": {
        "containers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "a"}}},
                                {"valueFrom": {"configMapKeyRef": {"name": "cm"}}}],
                        "envFrom": [{"secretRef": {"name": "b"}}]}],
        "volumes": [{"secret": {"secretName": "c"}},
                    {"projected": {"sources": [{"secret": {"name": "d"}},
                                               {"configMap": {"name": "cm"}}]}}]}}}}
    assert rollout.referenced(obj) == {"a", "b", "c", "d"}


def test_patch_sets_the_restart_and_hash_annotations() -> None:
    p = rollout.patch_for({"db": "abc"}, datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert p == {"spec": {"template": {"metadata": {"annotations": {
        "secretops.dev/restartedAt": "2026-01-02T03:04:05.000006Z",
        "secretops.dev/secret-hash-db": "abc"}}}}}
    long = rollout.patch_for({"x" * 60: "abc"})["spec"]["template"]["metadata"]["annotations"]
    assert list(long) == ["secretops.dev/restartedAt"]
    # several Secrets changed together: one patch, one restart, every fingerprint
    both = rollout.patch_for({"db": "1", "api": "2"})["spec"]["template"]["metadata"]
    assert set(both["annotations"]) == {"secretops.dev/restartedAt",
                                        "secretops.dev/secret-hash-db",
                                        "secretops.dev/secret-hash-api"}
    rolled = {"spec": {"template": {"metadata": both}}}
    assert rollout.rolled_for(rolled, {"db": "1", "api": "2"})
    assert not rollout.rolled_for(rolled, {"db": "new"})
    assert not rollout.rolled_for(rolled, {"x" * 60: "abc"})  # no annotation to tell


def status(**fields: Any) -> dict[str, Any]:
    return {"observedGeneration": 5, **fields}


@pytest.mark.parametrize(("kind", "spec", "st", "expected"), [
    ("Deployment", {"replicas": 3}, {"observedGeneration": 4}, "waiting"),
    ("Deployment", {"replicas": 3}, status(updatedReplicas=2, replicas=3,
                                           availableReplicas=2), "waiting"),
    ("Deployment", {"replicas": 3}, status(updatedReplicas=3, replicas=4,
                                           availableReplicas=3), "waiting"),  # an old one left
    ("Deployment", {"replicas": 3}, status(updatedReplicas=3, replicas=3,
                                           availableReplicas=2), "waiting"),
    ("Deployment", {"replicas": 3}, status(updatedReplicas=3, replicas=3,
                                           availableReplicas=3), "done"),
    ("Deployment", {"replicas": 3}, status(conditions=[{
        "type": "Progressing", "reason": "ProgressDeadlineExceeded"}]), "failed"),
    ("StatefulSet", {"replicas": 2}, status(readyReplicas=2, updateRevision="b",
                                            currentRevision="a"), "waiting"),
    ("StatefulSet", {"replicas": 2}, status(readyReplicas=2, updateRevision="b",
                                            currentRevision="b"), "done"),
    ("StatefulSet", {"replicas": 4, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
     status(readyReplicas=4, updatedReplicas=2), "done"),
    ("StatefulSet", {"updateStrategy": {"type": "OnDelete"}}, status(), "done"),
    ("DaemonSet", {}, status(desiredNumberScheduled=3, updatedNumberScheduled=3,
                             numberAvailable=2), "waiting"),
    ("DaemonSet", {}, status(desiredNumberScheduled=3, updatedNumberScheduled=3,
                             numberAvailable=3), "done"),
])
def test_progress_reads_a_roll_as_kubectl_rollout_status(
        kind: str, spec: dict[str, Any], st: dict[str, Any], expected: str) -> None:
    assert rollout.progress(kind, {"spec": spec, "status": st}, 5).value == expected


def test_schedules() -> None:
    t = datetime(2026, 3, 1, 10, 30, 15, tzinfo=UTC)
    assert rotation.next_due(rotation.parse_schedule("90s"), t) == datetime(
        2026, 3, 1, 10, 31, 45, tzinfo=UTC)
    assert rotation.next_due(rotation.parse_schedule("0 3 * * *"), t) == datetime(
        2026, 3, 2, 3, 0, tzinfo=UTC)
    assert rotation.next_due(rotation.parse_schedule("*/15 * * * *"), t) == datetime(
        2026, 3, 1, 10, 45, tzinfo=UTC)
    # 2026-03-01 is a Sunday: the next Monday 00:00
    assert rotation.next_due(rotation.parse_schedule("0 0 * * 1"), t) == datetime(
        2026, 3, 2, 0, 0, tzinfo=UTC)
    assert rotation.next_due(rotation.parse_schedule("0 0 1 1,7 *"), t) == datetime(
        2026, 7, 1, 0, 0, tzinfo=UTC)
    for bad in ("", "0s", "soon", "61 * * * *", "* * * *"):
        with pytest.raises(rotation.RotationError):
            rotation.parse_schedule(bad)


def test_generator() -> None:
    rot = rotation.parse({"rotation": {"schedule": "1h", "remoteRef": {"key": "k"},
                                       "generator": {"length": 20, "digits": 4, "symbols": 3,
                                                     "symbolCharacters": "!#",
                                                     "noUpper": True}}})
    assert rot is not None and rot.prop is None
    values = {rot.generator.generate() for _ in range(50)}
    assert len(values) == 50
    for v in values:
        assert len(v) == 20 and v == v.lower()
        assert sum(c in string.digits for c in v) >= 4 and sum(c in "!#" for c in v) >= 3
        assert set(v) <= set(string.ascii_lowercase + string.digits + "!#")
    norep = rotation.Generator(length=30, digits=5, allow_repeat=False).generate()
    assert len(set(norep)) == 30
    assert rotation.parse({}) is None
    with pytest.raises(rotation.RotationError):
        rotation.parse({"rotation": {"schedule": "1h", "remoteRef": {"key": "k"},
                                     "generator": {"length": 8, "digits": 9}}})
