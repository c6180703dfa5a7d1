"""``secretops convert-eso``: files, stdin, Lists, JSON, -w; refusals on stderr → 170 with nothing
written, notes as warnings (--strict: refusals too), and the output accepted by our CRDs in the
Kubernetes API emulator (applied with real kubectl)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from secretops.errors import ExitCode
from secretops.sealing.serialize import load_documents
from tests.fixtures.k8s import K8s
from tests.helpers import secretops

DATA = Path(__file__).resolve().parents[1] / "testdata" / "eso"
CRDS = Path(__file__).resolve().parents[2] / "crds"
GOOD = [str(DATA / f) for f in ("vault-stores.yaml", "externalsecrets.yaml")]
ALL = [*GOOD, str(DATA / "aws-stores.yaml"), str(DATA / "unsupported.yaml")]


def test_files_to_yaml() -> None:
    r = secretops("convert-eso", *GOOD)
    assert (r.code, r.err) == (0, "")
    docs = list(yaml.safe_load_all(r.text))
    kinds = [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("secretops.dev/v1alpha1", "ExternalSecret", "example") in kinds
    assert len(docs) == 3 + 2


def test_a_refusal_names_each_path_exits_170_and_writes_nothing(tmp_path: Path) -> None:
    """A converter may refuse; it never changes meaning (issue 15 item 12)."""
    out = tmp_path / "out.yaml"
    r = secretops("convert-eso", "-w", str(out), *ALL)
    assert r.code == ExitCode.ESO_UNTRANSLATED == 170
    assert r.out == b"" and not out.exists()
    *errors, hint = r.err.splitlines()
    assert len(errors) == 1 + 12 and all(ln.startswith("secretops: error: ") for ln in errors)
    assert hint.startswith("secretops: hint: nothing was written")
    assert (f"secretops: error: {DATA / 'aws-stores.yaml'}: ClusterSecretStore aws-irsa: "
            "spec.provider.aws.auth.jwt: ") in r.err
    assert (f"{DATA / 'unsupported.yaml'}: ExternalSecret web/fancy: spec.dataFrom[0].rewrite: "
            "not translated: key rewriting") in r.err
    assert "spec.target.template.data.ok: template not translated: 'lower': no exact " \
           "counterpart" in r.err


def test_notes_are_warnings_and_strict_makes_them_refusals(tmp_path: Path) -> None:
    store = """
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: own, namespace: web}
spec:
  provider:
    vault:
      server: https://vault.example:8200
      path: secret
      auth: {kubernetes: {role: demo}}
"""
    r = secretops("convert-eso", input=store.encode())
    assert r.code == 0 and r.err.startswith("secretops: warning: SecretStore web/own: "), r.err
    assert yaml.safe_load(r.out)["metadata"]["name"] == "own"
    out = tmp_path / "out.yaml"
    r = secretops("convert-eso", "--strict", "-w", str(out), "-", input=store.encode())
    assert r.code == 170 and r.err.startswith("secretops: error: SecretStore web/own: ")
    assert not out.exists()


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
    aws = [d for d in load_documents((DATA / "aws-stores.yaml").read_bytes(), "aws")
           if d["metadata"]["name"] != "aws-irsa"]  # refused: see the test above
    (tmp_path / "aws.json").write_text(json.dumps({"kind": "List", "items": aws}))
    r = secretops("convert-eso", "-w", str(out), *GOOD, str(tmp_path / "aws.json"))
    assert r.code == 0, r.err
    applied = k8s.kubectl("apply", "--validate=strict", "-f", str(out))
    assert applied.stdout.count("created") == 7, applied.stdout
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
