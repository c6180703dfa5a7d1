"""The emulator's work per write, counted (issue 20: at 10,000 SealedSecrets and 10,000
ExternalSecrets the emulator's CPU decides the cold start as much as the controller's).

A status write of a custom resource used to validate its whole body against the CRD schema and
to walk its whole body for managedFields, spec included, though the status endpoint keeps the
spec as stored. These tests count that work — and check that skipping it refuses exactly what
a whole validation refuses.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.emulator import typed
from tests.k8s.emulator.fieldpath import path_string
from tests.k8s.emulator.schema import CompiledSchema

ROOT = Path(__file__).resolve().parents[2]


def schema_of(crd: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "crds" / crd).read_text())
    return dict(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def external_secret(**status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
        "metadata": {"name": "es", "namespace": "ns"},
        "spec": {"secretStoreRef": {"name": "vault", "kind": "SecretStore"},
                 "refreshInterval": "1h",
                 "data": [{"secretKey": "v", "remoteRef": {"key": "k", "property": "p"}}]}}
    if status:
        obj["status"] = status
    return obj


def causes(schema: CompiledSchema, obj: dict[str, Any]) -> list[dict[str, str]]:
    return [c.as_dict() for c in schema.validate(obj)]


def test_status_writes_validate_the_unchanged_spec_once() -> None:
    schema = CompiledSchema(schema_of("externalsecret.yaml"))
    assert causes(schema, external_secret()) == []  # the create
    for i in range(3):  # three status writes, the spec as stored
        ok = {"conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                              "message": f"write {i}"}]}
        assert causes(schema, external_secret(**ok)) == []
    assert schema.validated == {"apiVersion": 1, "kind": 1, "spec": 1, "status": 3}


def test_skipping_a_known_spec_refuses_what_a_whole_validation_refuses() -> None:
    """Every variant, validated after the valid spec is known, gets the causes (fields,
    messages, order) of a validation by a schema that knows nothing yet."""
    memo = CompiledSchema(schema_of("externalsecret.yaml"))
    assert causes(memo, external_secret()) == []
    good = external_secret()
    bad_spec = copy.deepcopy(good)
    bad_spec["spec"]["data"] = [{"secretKey": 1}]
    variants = [
        external_secret(conditions="not a list"),
        external_secret(conditions=[{"type": 1}]),
        external_secret(conditions=[{"type": "Ready", "status": "True"}], bogus=None),
        {**bad_spec, "status": {"conditions": "x"}},
        bad_spec,
        {k: v for k, v in good.items() if k != "spec"},
        {**good, "apiVersion": 7},
        good,
    ]
    for obj in variants * 2:  # the second time, whatever was valid is known
        assert causes(memo, obj) == causes(CompiledSchema(schema_of("externalsecret.yaml")),
                                            obj), obj
    assert causes(memo, bad_spec)  # an invalid value never becomes known


def count_cmp_calls(lhs: Any, rhs: Any, t: typed.T) -> tuple[int, typed.Comparison]:
    calls = 0
    code = typed._cmp.__code__

    def profile(frame: Any, event: str, _: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profile)
    try:
        result = typed.compare(lhs, rhs, t)
    finally:
        sys.setprofile(None)
    return calls, result


def test_a_status_writes_comparison_does_not_walk_the_unchanged_spec() -> None:
    """managedFields: comparing the stored object with a status write's result looks only at
    what differs; an equal spec (a copy, as pruning makes it) is one equality test."""
    t = typed.custom_root(schema_of("externalsecret.yaml"))
    old = external_secret(conditions=[{"type": "Ready", "status": "False", "reason": "A"}])
    old["spec"]["target"] = {"name": "s", "template": {
        "metadata": {"labels": {f"l{i}": "x" for i in range(50)}},
        "data": {f"k{i}": "{{ .v }}" for i in range(50)}}}
    new = copy.deepcopy(old)
    new["status"]["conditions"][0]["status"] = "True"
    calls, c = count_cmp_calls(old, new, t)
    assert calls < 10, calls  # the root, its fields, the status down to the change
    assert [path_string(p) for p in c.modified.paths()] == [".status.conditions"]  # atomic
    assert c.added.empty() and c.removed.empty()
