"""The SealedSecret CRD: well-formed, structural, and it accepts what secretops writes."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyrage import x25519

from secretops.sealing import API_VERSION, seal_secret
from secretops.sealing.format import GROUP, KIND, PLURAL, VERSION
from tests.helpers import CANARY

CRD = Path(__file__).resolve().parents[2] / "crds" / "sealedsecret.yaml"


def _crd() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    assert isinstance(crd, dict)
    return crd


def _schema() -> dict[str, Any]:
    (version,) = _crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str) -> None:
    """Structural schema rules: every node has a type; properties/items/additional nest."""
    assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
    for name, sub in (node.get("properties") or {}).items():
        _walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        _walk(node["items"], f"{path}[]")


def test_names_match_the_code() -> None:
    crd = _crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == KIND and spec["names"]["plural"] == PLURAL
    assert spec["names"]["shortNames"] == ["sealed"]
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Synced"] == '.status.conditions[?(@.type=="Synced")].status'
    assert columns["Age"] == ".metadata.creationTimestamp"
    _walk(_schema(), "openAPIV3Schema")
    scope = _schema()["properties"]["spec"]["properties"]["scope"]
    assert scope["enum"] == ["strict", "namespace-wide", "cluster-wide"]
    assert scope["default"] == "strict"


def _manifests() -> list[dict[str, Any]]:
    ident = x25519.Identity.generate()
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "db", "namespace": "prod", "labels": {"a": "b"},
                           "annotations": {"secretops.dev/managed": "true"}},
              "type": "Opaque", "immutable": False,
              "data": {"tls.crt": base64.b64encode(b"x").decode()},
              "stringData": {"password": CANARY}}
    out = [seal_secret(secret, [str(ident.to_public())], scope)
           for scope in ("strict", "namespace-wide", "cluster-wide")]
    out[0]["spec"]["template"]["data"] = {"url": "{{ .password }}"}
    out[0]["status"] = {"observedGeneration": 2, "conditions": [{
        "type": "Synced", "status": "True", "reason": "Unsealed", "message": "ok",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return out


def test_the_schema_accepts_what_seal_writes_and_refuses_the_rest() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(_schema())
    for manifest in _manifests():
        assert manifest["apiVersion"] == API_VERSION
        assert not list(validator.iter_errors(manifest))
    good = _manifests()[0]
    bad_cases = [
        {**good, "spec": {**good["spec"], "scope": "global"}},
        {**good, "spec": {**good["spec"], "encryptedData": {"k": "AgBitnamiLooking=="}}},
        {**good, "spec": {k: v for k, v in good["spec"].items() if k != "encryptedData"}},
        {**good, "spec": {**good["spec"], "template": {"immutable": "yes"}}},
    ]
    for bad in bad_cases:
        assert list(validator.iter_errors(bad)), bad["spec"]
