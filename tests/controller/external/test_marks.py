"""What the external-secrets half remembers of a handled object (:mod:`.marks`): a change of
generation, labels or a user's annotation is news; the annotations an earlier version's kopf
kept its state in are not, and they leave ``syncedResourceVersion`` as it was."""

from __future__ import annotations

import json
from typing import Any

from secretops_controller.external.marks import kopf_leftover, leftovers_patch, mark
from secretops_controller.external.status import synced_version

DIFFBASE = "secretops.dev/last-handled-configuration"
MARKER = "secretops.dev/kopf-managed"
PROGRESS = "secretops.dev/register._locals_.external_secret"
STORE_PROGRESS = "secretops.dev/register._locals_.store"


def copy(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(obj)))


def test_kopfs_leftovers_count_for_no_mark_and_no_synced_version() -> None:
    body: dict[str, Any] = {"metadata": {"uid": "u", "generation": 3, "labels": {"a": "b"},
                                         "annotations": {"team": "payments"}}}
    upgraded = copy(body)
    upgraded["metadata"]["annotations"].update(
        {DIFFBASE: "{}", MARKER: "yes", PROGRESS: "{}", STORE_PROGRESS: "{}"})
    assert mark(upgraded) == mark(body)
    assert synced_version(upgraded) == synced_version(body)
    # a user's annotations under our prefix are no leftover: force-sync is one
    assert not kopf_leftover("secretops.dev/force-sync")
    touched = copy(body)
    touched["metadata"]["annotations"]["secretops.dev/force-sync"] = "1"
    assert mark(touched) != mark(body)
    bumped = copy(body)
    bumped["metadata"]["generation"] = 4
    assert mark(bumped) != mark(body)
    assert leftovers_patch(body) is None
    assert leftovers_patch(upgraded) == {"metadata": {"annotations": dict.fromkeys(
        sorted([DIFFBASE, MARKER, PROGRESS, STORE_PROGRESS]))}}
