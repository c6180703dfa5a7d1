"""``secretops convert-eso``: files, stdin, Lists, JSON, -w, warnings on stderr, --strict → 170,
and the output accepted by our CRDs in the Kubernetes API emulator (applied with real kubectl)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from secretops.errors import ExitCode
from tests.fixtures.k8s import K8s
from tests.helpers import secretops

DATA = Path(__file__).resolve().parents[1] / "testdata" / "eso"
CRDS = Path(__file__).resolve().parents[2] / "crds"
ALL = [str(DATA / f) for f in ("vault-stores.yaml", "aws-stores.yaml", "externalsecrets.yaml",
                               "unsupported.yaml")]


def test_files_to_yaml_with_one_warning_line_per_untranslated_item() -> None:
    r = secretops("convert-eso", *ALL)
    assert r.code == 0, r.err
    docs = list(yaml.safe_load_all(r.text))
    kinds = [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("secretops.dev/v1alpha1", "ExternalSecret", "example") in kinds
    assert ("v1", "ConfigMap", "passes-through") in kinds
    assert len(docs) == 3 + 2 + 2 + 2
    lines = r.err.splitlines()
    assert len(lines) == 12
    assert all(line.startswith("secretops: warning: ") for line in lines)
    assert (f"secretops: warning: {DATA / 'aws-stores.yaml'}: ClusterSecretStore aws-irsa: "
            "spec.provider.aws.auth.jwt: ") in r.err
    assert f"{DATA / 'unsupported.yaml'}: ExternalSecret web/fancy: spec.dataFrom[0].rewrite: " \
           "not translated" in r.err


def test_strict_exits_170_and_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    r = secretops("convert-eso", "--strict", "-w", str(out), str(DATA / "unsupported.yaml"))
    assert r.code == ExitCode.ESO_UNTRANSLATED == 170
    assert r.out == b""
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out.read_text())] == [
        "fancy", "passes-through"]
    clean = secretops("convert-eso", "--strict", str(DATA / "vault-stores.yaml"))
    assert (clean.code, clean.err) == (0, "")


def test_stdin_list_to_json() -> None:
    docs = list(yaml.safe_load_all((DATA / "externalsecrets.yaml").read_text()))
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}).encode()
    r = secretops("convert-eso", "-o", "json", input=listing)
    assert r.code == 0, r.err
    body = json.loads(r.out)
    assert body["kind"] == "List"
    assert [i["metadata"]["name"] for i in body["items"]] == ["example", "cluster-store-user"]
    one = secretops("convert-eso", "-o", "json", "-", input=json.dumps(docs[1]).encode())
    assert json.loads(one.out)["kind"] == "ExternalSecret"


def test_bad_input_is_an_input_error() -> None:
    r = secretops("convert-eso", input=b"a: [")
    assert r.code == ExitCode.INVALID_INPUT, r.err
    missing = secretops("convert-eso", "/nonexistent/eso.yaml")
    assert missing.code == ExitCode.COULD_NOT_READ_INPUT


def test_output_validates_against_our_crds_in_the_emulator(k8s: K8s, tmp_path: Path) -> None:
    for f in ("secretstore.yaml", "clustersecretstore.yaml", "externalsecret.yaml"):
        k8s.kubectl("apply", "-f", str(CRDS / f))
    for crd in ("secretstores", "clustersecretstores", "externalsecrets"):
        k8s.kubectl("wait", "--for=condition=Established", f"crd/{crd}.secretops.dev")
    for ns in ("web", "ops"):
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    out = tmp_path / "converted.yaml"
    r = secretops("convert-eso", "-w", str(out), *ALL)
    assert r.code == 0, r.err
    applied = k8s.kubectl("apply", "--validate=strict", "-f", str(out))
    assert applied.stdout.count("created") == 9, applied.stdout
    # what was stored is what was written (nothing pruned as unknown)
    stored = json.loads(k8s.kubectl("get", "externalsecrets.secretops.dev", "-n", "web",
                                    "example", "-o", "json").stdout)
    written = next(d for d in yaml.safe_load_all(out.read_text())
                   if d["metadata"]["name"] == "example")
    assert stored["spec"] == written["spec"]
    css = json.loads(k8s.kubectl("get", "clustersecretstores.secretops.dev", "vault-k8s",
                                 "-o", "json").stdout)
    assert css["spec"]["conditions"][1] == {"namespaces": ["ops"]}
    # and the check has teeth: an ESO-only field is refused by the same apply
    written["spec"]["target"]["template"]["engineVersion"] = "v2"
    refused = k8s.kubectl("apply", "--validate=strict", "-f", "-", check=False,
                          input=json.dumps(written))
    assert refused.returncode != 0 and "engineVersion" in refused.stderr, refused


def test_vault_kubernetes_auth_secret_ref_and_the_controllers_own_identity() -> None:
    store = """
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: NAME, namespace: web}
spec:
  provider:
    vault:
      server: https://vault.example:8200
      path: secret
      auth:
        kubernetes:
          role: demo
AUTH"""
    with_ref = store.replace("NAME", "from-secret").replace(
        "AUTH", "          secretRef: {name: sa-token, key: token}\n")
    own = store.replace("NAME", "own").replace("AUTH", "")
    r = secretops("convert-eso", input=f"{with_ref}---\n{own}".encode())
    assert r.code == 0, r.err
    first, second = yaml.safe_load_all(r.text)
    assert first["spec"]["provider"]["vault"]["auth"] == {"kubernetes": {
        "role": "demo", "secretRef": {"name": "sa-token", "key": "token"}}}
    assert second["spec"]["provider"]["vault"]["auth"] == {"kubernetes": {"role": "demo"}}
    [line] = r.err.splitlines()  # only the SecretStore that would log in as the controller
    assert "SecretStore web/own: spec.provider.vault.auth.kubernetes: names no " \
           "serviceAccountRef or secretRef" in line
