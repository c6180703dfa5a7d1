"""The CLI side of sealing hardening, as transcripts: templates bound to the values, every
listed recipient on --merge-into, kubeseal's scope annotations (issue 15 items 10-11, issue 16
item 1). Every failure is one ``secretops: error:`` line (and hints), writes nothing, and
carries no value nor anything computed from one."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretops.sealing.format import decode
from tests.helpers import CANARY, TESTDATA, AgeKey, make_age_key, secretops
from tests.sealing.legacy import leaked

SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  password: {CANARY}
  user: admin
"""
URL = "url=postgres://{{ .user }}:{{ .password }}@db"


@pytest.fixture
def cluster(tmp_path: Path) -> AgeKey:
    return make_age_key(tmp_path, "cluster.key")


@pytest.fixture
def breakglass(tmp_path: Path) -> AgeKey:
    return make_age_key(tmp_path, "break-glass.key")


@pytest.fixture
def cert(tmp_path: Path, cluster: AgeKey) -> Path:
    path = tmp_path / "cluster.txt"
    path.write_text(f"{cluster.recipient}\n")
    return path


def _seal(tmp_path: Path, cert: Path, *extra: str, source: str = SECRET) -> Path:
    src = tmp_path / "secret.yaml"
    src.write_text(source)
    out = tmp_path / "sealed.yaml"
    r = secretops("seal", "--cert", str(cert), *extra, str(src), "-w", str(out))
    assert r.code == 0, r.err
    return out


def _data(out: bytes) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in yaml.safe_load(out)["data"].items()}


def _refused(r: Any, code: int, *words: str) -> None:
    """One error line (plus hints), the code, the words, and nothing of the canary."""
    lines = r.err.splitlines()
    assert r.code == code, r.err
    assert lines[0].startswith("secretops: error: ") and all(
        ln.startswith("secretops: hint: ") for ln in lines[1:]), r.err
    assert all(w in r.err for w in words), r.err
    assert not leaked(r.err + r.text), r.err


def test_merge_into_keeps_break_glass_working(tmp_path: Path, cert: Path, cluster: AgeKey,
                                              breakglass: AgeKey) -> None:
    """Issue 15 item 10, as reported: after --merge-into with the cluster's --cert only,
    verify --identity break-glass.txt exited 128."""
    sealed = _seal(tmp_path, cert, "-r", breakglass.recipient)
    before = sealed.read_bytes()
    r = secretops("seal", "--cert", str(cert), "--merge-into", str(sealed),
                  "--from-literal", f"token={CANARY}")
    _refused(r, 111, breakglass.recipient, '["spec"]["recipients"]', "--recipient")
    assert sealed.read_bytes() == before
    r = secretops("seal", "--cert", str(cert), "-r", breakglass.recipient, "--merge-into",
                  str(sealed), "--from-literal", f"token={CANARY}")
    assert r.code == 0, r.err
    for key in (breakglass, cluster):
        r = secretops("verify", "--identity", str(key.path), str(sealed))
        assert (r.code, r.text) == (0, f"{sealed}: ok: 3 values open\n"), r.err


@pytest.mark.parametrize("scope", ["namespace-wide", "cluster-wide"])
def test_kubeseal_scope_annotations_are_honoured(tmp_path: Path, cert: Path, cluster: AgeKey,
                                                 scope: str) -> None:
    """Issue 15 item 11: the annotation gave strict scope and stayed as dead metadata."""
    annotated = SECRET.replace(
        "  namespace: prod\n",
        f"  namespace: prod\n  annotations:\n    sealedsecrets.bitnami.com/{scope}: \"true\"\n")
    sealed = _seal(tmp_path, cert, source=annotated)
    doc = yaml.safe_load(sealed.read_text())
    assert doc["spec"]["scope"] == scope
    assert "metadata" not in doc["spec"]["template"]  # the annotation did its job: dropped
    # moved where its scope allows, it still opens
    doc["metadata"]["name"] = "renamed"
    sealed.write_text(yaml.safe_dump(doc))
    assert secretops("verify", "--identity", str(cluster.path), str(sealed)).code == 0
    (tmp_path / "a.yaml").write_text(annotated)
    r = secretops("seal", "--cert", str(cert), "--scope", "strict", str(tmp_path / "a.yaml"))
    _refused(r, 8, f"--scope strict conflicts with the Secret's annotation "
                   f"sealedsecrets.bitnami.com/{scope}")
    assert r.out == b""
    r = secretops("seal", "--cert", str(cert), "--scope", scope, str(tmp_path / "a.yaml"))
    assert r.code == 0 and yaml.safe_load(r.out)["spec"]["scope"] == scope


def test_merge_into_and_from_bitnami_refuse_a_scope_conflict(tmp_path: Path,
                                                             cert: Path) -> None:
    sealed = _seal(tmp_path, cert)
    before = sealed.read_bytes()
    wide = SECRET.replace("  namespace: prod\n", "  namespace: prod\n  annotations:\n"
                          "    sealedsecrets.bitnami.com/cluster-wide: \"true\"\n")
    (tmp_path / "wide.yaml").write_text(wide)
    r = secretops("seal", "--cert", str(cert), "--merge-into", str(sealed),
                  str(tmp_path / "wide.yaml"))
    _refused(r, 8, "cluster-wide but the SealedSecret's scope is strict")
    assert sealed.read_bytes() == before
    vectors = TESTDATA / "bitnami"
    r = secretops("seal", "--from-bitnami", str(vectors / "ok-cluster-wide.yaml"),
                  "--bitnami-key", str(vectors / "key-backup.yaml"), "--cert", str(cert),
                  "--scope", "strict")
    _refused(r, 8, "--scope strict conflicts with the Bitnami SealedSecret's scope "
                   "cluster-wide")
    (tmp_path / "odd.yaml").write_text(wide.replace('"true"', '"yes"'))
    r = secretops("seal", "--cert", str(cert), str(tmp_path / "odd.yaml"))
    _refused(r, 150, 'expected "true" or "false"')


def test_templates_are_sealed_with_the_values_and_bound(tmp_path: Path, cert: Path,
                                                        cluster: AgeKey) -> None:
    sealed = _seal(tmp_path, cert, "--template", URL)
    r = secretops("unseal", "--identity", str(cluster.path), str(sealed))
    assert _data(r.out)["url"] == f"postgres://admin:{CANARY}@db".encode()
    doc = yaml.safe_load(sealed.read_text())
    assert {decode(v).template for v in doc["spec"]["encryptedData"].values()} != {None}
    r = secretops("seal", "--cert", str(cert), "-n", "p", "--name", "n",
                  "--from-literal", "a=b", "--template", "x={{ unclosed")
    _refused(r, 163, "does not parse")
    assert r.out == b""


def test_an_edited_template_is_refused_offline(tmp_path: Path, cert: Path, cluster: AgeKey,
                                               breakglass: AgeKey) -> None:
    sealed = _seal(tmp_path, cert, "-r", breakglass.recipient, "--template", URL)
    doc = yaml.safe_load(sealed.read_text())
    doc["spec"]["template"]["data"]["x"] = "{{ values[password[::-1]] }}"
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(doc))
    for command in (("unseal",), ("verify",), ("reseal", "--cert", str(cert))):
        r = secretops(*command, "--identity", str(breakglass.path), str(edited))
        _refused(r, 164, f"{edited}: [\"spec\"][\"template\"]: spec.template is not the "
                         "template the values were sealed with", "--bind-template")
        assert r.out == b""
    r = secretops("reseal", "--controller", "--bind-template", str(edited))
    _refused(r, 8, "offline only")
    # the holder of the break-glass key reviews the template, fixes it and binds it
    doc["spec"]["template"]["data"]["x"] = "{{ .user | upper }}"
    edited.write_text(yaml.safe_dump(doc))
    r = secretops("reseal", "--identity", str(breakglass.path), "--cert", str(cert),
                  "-r", breakglass.recipient, "--bind-template", "-i", str(edited))
    assert r.code == 0, r.err
    r = secretops("unseal", "--identity", str(cluster.path), str(edited))
    assert r.code == 0 and _data(r.out)["x"] == b"ADMIN", r.err


def test_version_1_files_migrate_with_reseal(tmp_path: Path, cert: Path,
                                             cluster: AgeKey) -> None:
    v1 = TESTDATA / "sealing"
    key = str(v1 / "v1-key.txt")
    r = secretops("unseal", "--identity", key, str(v1 / "v1-no-template-data.yaml"))
    assert r.code == 0 and _data(r.out)["password"] == CANARY.encode(), r.err
    templated = tmp_path / "templated.yaml"
    templated.write_bytes((v1 / "v1-template-data.yaml").read_bytes())
    r = secretops("unseal", "--identity", key, str(templated))
    _refused(r, 164, "format 1", "secretops reseal --identity KEY --bind-template")
    r = secretops("reseal", "--identity", key, "--cert", str(cert), "-i", str(templated))
    _refused(r, 164, "format 1")
    r = secretops("reseal", "--identity", key, "--cert", str(cert), "--bind-template", "-i",
                  str(templated))
    assert r.code == 0, r.err
    r = secretops("unseal", "--identity", str(cluster.path), str(templated))
    assert _data(r.out)["url"] == f"postgres://admin:{CANARY}@db:5432/app".encode()


def test_a_raw_value_is_bound_to_its_type(tmp_path: Path, cert: Path, cluster: AgeKey) -> None:
    r = secretops("seal", "--raw", "--cert", str(cert), "-n", "prod", "--name", "pull",
                  "--key", ".dockerconfigjson", "--type", "kubernetes.io/dockerconfigjson",
                  input=b"{}")
    assert r.code == 0, r.err
    doc: dict[str, Any] = {"apiVersion": "secretops.dev/v1alpha1", "kind": "SealedSecret",
           "metadata": {"name": "pull", "namespace": "prod"},
           "spec": {"encryptedData": {".dockerconfigjson": r.text.strip()},
                    "template": {"type": "kubernetes.io/dockerconfigjson"}}}
    path = tmp_path / "pull.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert secretops("verify", "--identity", str(cluster.path), str(path)).code == 0
    doc["spec"]["template"]["type"] = "Opaque"
    path.write_text(yaml.safe_dump(doc))
    _refused(secretops("verify", "--identity", str(cluster.path), str(path)), 164)
