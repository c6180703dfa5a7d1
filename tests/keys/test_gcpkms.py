"""GCP KMS keys against the Cloud KMS stand-in (``tests/fixtures/gcpkms_server.py``): the
entry's shape, the three credential forms sops reads, flags, variables and ``.sops.yaml``, and
failures that are one typed line holding neither the canary nor a credential.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from secretops.core.metadata import KEY_FIELDS, KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import gcpkms
from tests.fixtures.gcpkms import GcpKms, free_port
from tests.helpers import CANARY, AgeKey, assert_no_canary, run, secretops

TEXT = f"password: {CANARY}\nuser: admin\n"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    return f


def _decrypt(path: Path, **env: str) -> tuple[int, bytes, str]:
    full = {k: v for k, v in os.environ.items() if k != "GOOGLE_OAUTH_ACCESS_TOKEN"}
    full.update(env)
    r = run([sys.executable, "-m", "secretops", "decrypt", str(path)], env=full)
    return r.code, r.out, r.err


def test_wrap_writes_sops_fields_and_unwrap_returns_the_key(gcp_kms: GcpKms) -> None:
    env = dict(os.environ)
    entry = gcpkms.GcpKmsRecipient(gcp_kms.resource_ids[0], env).wrap(b"k" * 32)
    assert tuple(entry.fields) == KEY_FIELDS["gcp_kms"] == ("resource_id", "created_at", "enc")
    assert entry.fields["resource_id"] == gcp_kms.resource_ids[0]
    base64.b64decode(entry.enc, validate=True)  # standard base64, as sops writes it
    assert gcpkms.GcpKmsIdentity(env).unwrap(entry) == b"k" * 32
    # another key's identity call is refused by the service, as a typed error
    other = KeyEntry("gcp_kms", {**entry.fields, "resource_id": gcp_kms.resource_ids[1]})
    with pytest.raises(gcpkms.GcpKmsError, match="another key or is damaged"):
        gcpkms.GcpKmsIdentity(env).unwrap(other)


def test_every_credential_form_sops_reads(plain: Path, gcp_kms: GcpKms) -> None:
    enc = plain.with_name("s.enc.yaml")
    r = secretops("encrypt", "--gcp-kms", gcp_kms.resource_ids[0], str(plain))
    assert r.code == 0, r.err
    enc.write_bytes(r.out)
    server = gcp_kms.server
    creds = server.credentials_file
    for env in ({"GOOGLE_OAUTH_ACCESS_TOKEN": server.token},
                {"GOOGLE_CREDENTIALS": str(creds)},  # a path to a service account key
                {"GOOGLE_CREDENTIALS": creds.read_text()},  # the JSON itself
                {"GOOGLE_APPLICATION_CREDENTIALS": str(creds)}):  # Application Default
        code, out, err = _decrypt(enc, **env)
        assert code == 0 and CANARY.encode() in out, (list(env), err)


def test_flags_environment_and_sops_yaml(plain: Path, tmp_path: Path, gcp_kms: GcpKms,
                                         age_key: AgeKey) -> None:
    one, two = gcp_kms.resource_ids
    by_flag = secretops("encrypt", "--gcp-kms", f"{one}, {two}", str(plain))
    assert by_flag.code == 0, by_flag.err
    assert [e["resource_id"] for e in yaml.safe_load(by_flag.out)["sops"]["gcp_kms"]] == \
        [one, two]
    by_env = run([sys.executable, "-m", "secretops", "encrypt", str(plain)],
                 env=dict(os.environ, SOPS_GCP_KMS_IDS=two))
    assert [e["resource_id"] for e in yaml.safe_load(by_env.out)["sops"]["gcp_kms"]] == [two]
    config = tmp_path / ".sops.yaml"
    config.write_text(yaml.safe_dump({"creation_rules": [{"key_groups": [
        {"gcp_kms": [{"resource_id": one}]}, {"age": [age_key.recipient]}]}]}))
    grouped = secretops("encrypt", str(plain), cwd=tmp_path)
    assert grouped.code == 0, grouped.err
    groups = yaml.safe_load(grouped.out)["sops"]["key_groups"]
    assert [e["resource_id"] for e in groups[0]["gcp_kms"]] == [one]
    config.write_text(yaml.safe_dump({"creation_rules": [{"gcp_kms": [one, two]}]}))
    listed = secretops("encrypt", str(plain), cwd=tmp_path)
    assert len(yaml.safe_load(listed.out)["sops"]["gcp_kms"]) == 2


def test_rotate_adds_and_removes_gcp_keys(plain: Path, gcp_kms: GcpKms) -> None:
    one, two = gcp_kms.resource_ids
    enc = plain.with_name("s.enc.yaml")
    enc.write_bytes(secretops("encrypt", "--gcp-kms", one, str(plain)).out)
    r = secretops("rotate", "-i", "--add-gcp-kms", two, "--rm-gcp-kms", one, str(enc))
    assert r.code == 0, r.err
    assert [e["resource_id"] for e in yaml.safe_load(enc.read_bytes())["sops"]["gcp_kms"]] == \
        [two]
    code, out, err = _decrypt(enc, GOOGLE_OAUTH_ACCESS_TOKEN=gcp_kms.server.token)
    assert code == 0 and CANARY.encode() in out, err


def test_denied_unknown_and_unreachable_are_typed_one_line_errors(
        plain: Path, gcp_kms: GcpKms, monkeypatch: pytest.MonkeyPatch) -> None:
    server = gcp_kms.server
    enc = plain.with_name("s.enc.yaml")
    enc.write_bytes(secretops("encrypt", "--gcp-kms", gcp_kms.resource_ids[0], str(plain)).out)
    dead = f"http://127.0.0.1:{free_port()}"
    cases = {
        "GCP denied access (403)": {"GOOGLE_OAUTH_ACCESS_TOKEN": server.denied_token},
        "GCP rejected the credentials": {"GOOGLE_OAUTH_ACCESS_TOKEN": "not-a-token"},
        "cannot reach GCP KMS": {"GOOGLE_OAUTH_ACCESS_TOKEN": server.token,
                                 "SOPS_GCP_KMS_ENDPOINT": dead},
        "no GCP credentials were found": {},
        "neither a credentials JSON file nor JSON": {
            "GOOGLE_CREDENTIALS": '{"private_key": "-----BEGIN' + server.token},
    }
    for what, env in cases.items():
        code, _, err = _decrypt(enc, **env)
        assert code == ExitCode.COULD_NOT_RETRIEVE_KEY, err
        assert what in err and "Traceback" not in err, err
        assert f"GCP KMS key {gcp_kms.resource_ids[0]}" in err
        assert server.token not in err and server.denied_token not in err
        assert_no_canary(err, "stderr")
    # wrapping fails the same way, exit 23, naming the key
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", server.denied_token)
    with pytest.raises(SecretOpsError) as e:
        gcpkms.GcpKmsRecipient(gcp_kms.resource_ids[0], dict(os.environ)).wrap(b"k" * 32)
    assert e.value.code == ExitCode.ERROR_ENCRYPTING_TREE and "403" in e.value.message
    missing = gcp_kms.resource_ids[0].rsplit("/", 1)[0] + "/absent"
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", server.token)
    with pytest.raises(SecretOpsError, match=r"does not exist \(404\)"):
        gcpkms.GcpKmsRecipient(missing, dict(os.environ)).wrap(b"k" * 32)


def test_a_malformed_resource_id_is_refused_before_any_call(plain: Path) -> None:
    for bad in ("projects/p/keyRings/r", "projects/p/locations/l/keyRings/r/cryptoKeys/..",
                "arn:aws:kms:x"):
        r = secretops("encrypt", "--gcp-kms", bad, str(plain))
        assert r.code == ExitCode.INVALID_KEY and "invalid GCP KMS resource ID" in r.err, r.err
    # a file's entry with a bad resource ID fails in the identity, never reaching a server
    with pytest.raises(gcpkms.GcpKmsError, match="invalid GCP KMS resource ID"):
        gcpkms.GcpKmsIdentity({}).unwrap(KeyEntry("gcp_kms", {
            "resource_id": "projects/../x", "created_at": "", "enc": "AAAA"}))


def test_a_service_account_key_never_shows_in_errors(plain: Path, gcp_kms: GcpKms) -> None:
    """GOOGLE_CREDENTIALS holds a private key: a failure names the variable, not its value."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(gcp_kms.server.credentials_file.read_text())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = stranger.private_bytes(  # a key the service does not know
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    enc = plain.with_name("s.enc.yaml")
    enc.write_bytes(secretops("encrypt", "--gcp-kms", gcp_kms.resource_ids[0], str(plain)).out)
    code, _, err = _decrypt(enc, GOOGLE_CREDENTIALS=json.dumps(info))
    assert code == ExitCode.COULD_NOT_RETRIEVE_KEY, err
    assert "GCP rejected the credentials" in err, err
    assert "PRIVATE KEY" not in err and info["private_key"][40:80] not in err
