"""Who may write a Secret (pure rules of :mod:`secretops_controller.external.ownership`); the
same rules run against the controller in ``test_conflicts.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from secretops_controller.external import ownership

ES_API = "secretops.dev/v1alpha1"


def secret(*, ctrl: tuple[str, str] | None = None, owner: str | None = None,
           merged: dict[str, list[str]] | None = None, sealed: bool = False,
           patch: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "s", "namespace": "ns", "labels": {}, "annotations": {}}
    if ctrl:
        api = ES_API if ctrl[0] in ("ExternalSecret", "SealedSecret") else "apps/v1"
        meta["ownerReferences"] = [{"apiVersion": api, "kind": ctrl[0], "name": ctrl[1],
                                    "uid": "u", "controller": True}]
    if owner:
        meta["annotations"][ownership.OWNER_ANNOTATION] = owner
    if merged:
        meta["annotations"]["secretops.dev/merged-keys"] = json.dumps(merged)
    if sealed:
        meta["labels"]["secretops.dev/sealed-by"] = "true"
    if patch:
        meta["annotations"]["secretops.dev/patch"] = "true"
    return {"metadata": meta}


def es(name: str, target: str = "s", policy: str = "Owner", created: str = "2026-01-01T00:00:00Z",
       deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "spec": {"target": {"name": target, "creationPolicy": policy}}}


@pytest.mark.parametrize(("existing", "creation", "expected"), [
    # whole writers (Owner, Orphan) clash with any other mark
    (secret(ctrl=("ExternalSecret", "me")), "Owner", []),
    (secret(ctrl=("ExternalSecret", "a")), "Owner", [("ExternalSecret", "a", "controller")]),
    (secret(ctrl=("Deployment", "d")), "Orphan", [("Deployment", "d", "controller")]),
    (secret(ctrl=("SealedSecret", "s"), sealed=True), "Orphan",
     [("SealedSecret", "s", "controller")]),
    (secret(sealed=True, patch=True, owner="me"), "Owner", [("SealedSecret", "s", "label")]),
    (secret(owner="a"), "Orphan", [("ExternalSecret", "a", "annotation")]),
    (secret(owner="a", merged={"a": ["k"]}), "Owner", [("ExternalSecret", "a", "merge")]),
    (secret(), "Owner", []),
    # Merge clashes only with a writer of the whole Secret that rewrites the data
    (secret(ctrl=("ExternalSecret", "a")), "Merge", [("ExternalSecret", "a", "controller")]),
    (secret(ctrl=("Deployment", "d")), "Merge", []),  # as ESO: another controller's Secret
    (secret(ctrl=("SealedSecret", "s"), sealed=True), "Merge",
     [("SealedSecret", "s", "controller")]),
    (secret(sealed=True, patch=True), "Merge", []),  # a SealedSecret merging in too
    (secret(owner="a"), "Merge", [("ExternalSecret", "a", "annotation")]),
    (secret(owner="a", merged={"a": ["k"]}), "Merge", []),  # mergers share
])
def test_rivals(existing: dict[str, Any], creation: str,
                expected: list[tuple[str, str, str]]) -> None:
    got = [(c.kind, c.name, c.how) for c in ownership.rivals(existing, "me", creation)]
    assert got == expected


def test_a_mark_counts_while_its_externalsecret_still_claims() -> None:
    assert ownership.still_claims(es("a", policy="Orphan"), "s", "annotation")
    assert not ownership.still_claims(None, "s", "annotation")  # deleted
    assert not ownership.still_claims(es("a", deleting=True), "s", "annotation")
    assert not ownership.still_claims(es("a", target="t"), "s", "annotation")  # retargeted
    assert not ownership.still_claims(es("a", policy="None"), "s", "annotation")
    assert ownership.still_claims(es("a", policy="Merge"), "s", "merge")
    assert not ownership.still_claims(es("a", policy="Owner"), "s", "merge")


def run_conflict(existing: dict[str, Any] | None, objects: dict[str, dict[str, Any]],
                 creation: str = "Orphan", last: str | None = None) -> str | None:
    async def get(name: str) -> dict[str, Any] | None:
        return objects.get(name)

    others = [n for n in objects if n != "me"]
    return asyncio.run(ownership.conflict(get, "ns", "me", "s", creation, existing, others,
                                          last))


def test_the_recorded_writer_else_the_remembered_one_else_the_oldest_wins() -> None:
    me = es("me", policy="Orphan", created="2026-01-02T00:00:00Z")
    older = es("a", policy="Orphan", created="2026-01-01T00:00:00Z")
    younger = es("b", policy="Orphan", created="2026-01-03T00:00:00Z")
    # recorded on the Secret: the writer keeps it, whatever the ages
    assert run_conflict(secret(owner="me"), {"me": me, "a": older}) is None
    assert "written by ExternalSecret b" in str(run_conflict(secret(owner="b"),
                                                             {"me": me, "b": younger}))
    # a stale mark (its ExternalSecret gone) is taken over
    assert run_conflict(secret(owner="gone"), {"me": me}) is None
    # nothing recorded: the one seen writing it last, else the oldest
    assert "a also writes the whole Secret ns/s, which is older" in str(
        run_conflict(None, {"me": me, "a": older}))
    assert run_conflict(None, {"me": me, "b": younger}) is None
    assert "b also writes the whole Secret ns/s, which wrote it last" in str(
        run_conflict(None, {"me": me, "b": younger}, last="b"))
    assert run_conflict(None, {"me": me, "a": older}, last="me") is None
    # same second: by name
    twin = es("a", policy="Owner", created=me["metadata"]["creationTimestamp"])
    assert "which is older" in str(run_conflict(None, {"me": me, "a": twin}))
    # mergers do not compete for the whole Secret
    assert run_conflict(None, {"me": me, "a": es("a", policy="Merge")}) is None


def test_what_a_failing_externalsecret_says_of_the_secret() -> None:
    assert ownership.state(None, "me", "ns", "s", "Owner") == (
        "Secret ns/s does not exist and is not written")
    assert ownership.state(secret(owner="me"), "me", "ns", "s", "Orphan") == (
        "Secret ns/s keeps the values this ExternalSecret last wrote")
    assert ownership.state(secret(owner="a", merged={"me": ["k"]}), "me", "ns", "s",
                           "Merge").startswith("Secret ns/s keeps")
    assert ownership.state(secret(owner="a"), "me", "ns", "s", "Owner") == (
        "Secret ns/s exists but was not written by this ExternalSecret: left alone")
    assert ownership.state(secret(owner="me"), "me", "ns", "s", "None") == (
        "no Secret is written (creationPolicy None)")
