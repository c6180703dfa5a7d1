"""The SecretStore, ClusterSecretStore and ExternalSecret CRDs, applied with the real kubectl to
the Kubernetes API emulator, which validates custom resources against their openAPIV3Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for

CRDS = Path(__file__).resolve().parents[3] / "crds"
FILES = ("secretstore.yaml", "clustersecretstore.yaml", "externalsecret.yaml")

STORES = """
apiVersion: secretops.dev/v1alpha1
kind: SecretStore
metadata: {name: vault, namespace: default}
spec:
  provider:
    vault:
      server: https://vault.example:8200
      path: secret
      version: v2
      auth:
        appRole:
          path: approle
          roleId: 0d9c-role
          secretRef: {name: vault-approle, key: secret-id}
---
apiVersion: secretops.dev/v1alpha1
kind: SecretStore
metadata: {name: aws, namespace: default}
spec:
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
      role: arn:aws:iam::123456789012:role/reader
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: aws, key: id}
          secretAccessKeySecretRef: {name: aws, key: secret}
---
apiVersion: secretops.dev/v1alpha1
kind: ClusterSecretStore
metadata: {name: shared-vault}
spec:
  conditions:
    - namespaceSelector: {matchLabels: {team: payments}}
    - namespaces: [billing]
  provider:
    vault:
      server: https://vault.example:8200
      auth:
        kubernetes:
          mountPath: kubernetes
          role: reader
          serviceAccountRef: {name: app}
"""

# an ESO v1 manifest with apiVersion changed: every field carries over
EXTERNAL_SECRET = """
apiVersion: secretops.dev/v1alpha1
kind: ExternalSecret
metadata: {name: db, namespace: default}
spec:
  refreshInterval: 15m
  secretStoreRef: {name: vault, kind: SecretStore}
  target:
    name: db-credentials
    creationPolicy: Owner
    deletionPolicy: Retain
    template:
      type: kubernetes.io/basic-auth
      metadata:
        labels: {app: web}
      data:
        dsn: "postgres://{{ .username }}:{{ .password }}@pg/app"
  data:
    - secretKey: username
      remoteRef: {key: app/db, property: username}
    - secretKey: password
      remoteRef: {key: app/db, property: password, version: "3", decodingStrategy: None}
  dataFrom:
    - extract: {key: app/common}
    - find:
        path: app/certs
        name: {regexp: "^tls-"}
  rollout:
    workloads: [{kind: Deployment, name: web}]
"""


@pytest.fixture
def crds(k8s: K8s) -> K8s:
    for f in FILES:
        k8s.kubectl("apply", "-f", str(CRDS / f))
    for name in ("secretstores", "clustersecretstores", "externalsecrets"):
        k8s.kubectl("wait", "--for=condition=Established", f"crd/{name}.secretops.dev")
    return k8s


def test_the_crds_are_well_formed_and_match_their_names() -> None:
    for f in FILES:
        crd = yaml.safe_load((CRDS / f).read_text())
        spec = crd["spec"]
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.secretops.dev"
        assert spec["versions"][0]["name"] == "v1alpha1"
        assert spec["versions"][0]["subresources"] == {"status": {}}
        assert '"default":' not in json.dumps(spec), "defaults would show as drift in GitOps"
    assert "conditions" in yaml.safe_load((CRDS / FILES[1]).read_text())["spec"]["versions"][0][
        "schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


def test_eso_like_stores_and_external_secret_are_accepted(crds: K8s) -> None:
    crds.kubectl("apply", "-f", "-", input=STORES)
    crds.kubectl("apply", "-f", "-", input=EXTERNAL_SECRET)
    es = json.loads(crds.kubectl("get", "externalsecret", "db", "-o", "json").stdout)
    assert es["spec"]["data"][1]["remoteRef"]["version"] == "3"
    assert es["spec"]["dataFrom"][1]["find"]["name"]["regexp"] == "^tls-"
    # the emulator serves no server-side Tables, so the printer columns' JSONPaths are checked
    # through kubectl's client-side custom-columns, which evaluate the same expressions
    crd = yaml.safe_load((CRDS / "externalsecret.yaml").read_text())
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    spec = ",".join(f"{c['name'].upper()}:{c['jsonPath']}" for c in columns)
    table = crds.kubectl("get", "es", "db", "-o", f"custom-columns={spec}").stdout.split("\n")
    assert table[0].split() == ["STORE", "REFRESH", "READY", "REASON", "SYNCED", "AGE"]
    assert table[1].split()[:4] == ["vault", "15m", "<none>", "<none>"]
    css = crds.kubectl("get", "clustersecretstores").stdout
    assert "shared-vault" in css
    assert "vault" in crds.kubectl("get", "ss", "-n", "default").stdout


@pytest.mark.parametrize(("change", "field", "words"), [
    (("creationPolicy: Owner", "creationPolicy: Sometimes"), "spec.target.creationPolicy",
     "Unsupported value"),
    (("{key: app/db, property: username}", "{property: username}"),
     "spec.data[0].remoteRef.key", "Required value"),
    (("decodingStrategy: None", "decodingStrategy: Hex"),
     "spec.data[1].remoteRef.decodingStrategy", "Unsupported value"),
    (("refreshInterval: 15m", "refreshInterval: soon"), "spec.refreshInterval", "Invalid value"),
    (("kind: SecretStore}", "kind: Vault}"), "spec.secretStoreRef.kind", "Unsupported value"),
])
def test_a_wrong_external_secret_is_refused_with_the_field_path(
        crds: K8s, change: tuple[str, str], field: str, words: str) -> None:
    bad = EXTERNAL_SECRET.replace(*change).replace("name: db,", "name: bad,")
    assert bad != EXTERNAL_SECRET.replace("name: db,", "name: bad,")
    result = crds.kubectl("apply", "-f", "-", input=bad, check=False)
    assert result.returncode == 1
    assert f"{field}: {words}" in result.stderr, result.stderr
    gone = crds.kubectl("get", "es", "bad", check=False)
    assert gone.returncode == 1


def test_a_store_with_two_providers_or_an_unknown_field_is_refused(crds: K8s) -> None:
    two = STORES.split("---")[0].replace(
        "  provider:\n", "  provider:\n    aws: {service: SecretsManager, region: eu-west-1}\n")
    result = crds.kubectl("apply", "-f", "-", input=two.replace("name: vault,", "name: two,"),
                          check=False)
    assert result.returncode == 1 and "spec.provider" in result.stderr
    bogus = STORES.split("---")[1].replace("region: eu-west-1", "region: eu-west-1\n      bogus: 1")
    result = crds.kubectl("apply", "-f", "-", input=bogus.replace("name: aws,", "name: b,"),
                          check=False)
    assert result.returncode == 1 and 'unknown field "spec.provider.aws.bogus"' in result.stderr
    wait_for(lambda: crds.kubectl("get", "ss", "b", check=False).returncode == 1, what="absent")
