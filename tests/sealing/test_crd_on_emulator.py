"""The SealedSecret CRD in crds/ applied with the real kubectl to the API emulator.

The emulator validates custom resources against the CRD's openAPIV3Schema, so a wrong CRD (or a
manifest `secretops seal` writes that the CRD does not accept) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.k8s import K8s
from tests.helpers import AgeKey, secretops
from tests.k8s.helpers import wait_for

CRDS = Path(__file__).parents[2] / "crds"


def test_sealed_secrets_from_seal_are_accepted(k8s: K8s, tmp_path: Path, age_key: AgeKey) -> None:
    out = k8s.kubectl("apply", "-f", str(CRDS / "sealedsecret.yaml")).stdout
    assert "sealedsecrets.secretops.dev created" in out
    wait_for(lambda: k8s.kubectl("get", "sealedsecrets", check=False).returncode == 0,
             what="the SealedSecret resource is served")
    k8s.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata:\n"
                "  name: apps\n")
    secret = tmp_path / "secret.yaml"
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\n"
                      "  labels: {app: db}\ntype: Opaque\nstringData:\n  password: s3cret\n")
    for scope in ("strict", "namespace-wide", "cluster-wide"):
        r = secretops("seal", "--recipient", age_key.recipient, "--scope", scope, str(secret))
        assert r.code == 0, r.err
        sealed = tmp_path / f"{scope}.yaml"
        sealed.write_bytes(r.out)
        applied = k8s.kubectl("apply", "-f", str(sealed)).stdout
        assert "sealedsecret.secretops.dev/db" in applied, applied
        got = json.loads(k8s.kubectl("get", "sealed", "db", "-n", "apps", "-o", "json").stdout)
        assert set(got["spec"]["encryptedData"]) == {"password"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: secretops.dev/v1alpha1\nkind: SealedSecret\nmetadata:\n"
                   "  name: bad\n  namespace: apps\nspec:\n  scope: galaxy-wide\n"
                   "  encryptedData: {a: b}\n")
    r = k8s.kubectl("apply", "-f", str(bad), check=False)
    assert r.returncode != 0 and "spec.scope" in r.stderr
