"""The key-source seam: decryption order, lazy loading, and failures that list every source."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from secretops.core.metadata import KeyEntry, Metadata
from secretops.errors import NoKeyError
from secretops.keys import Identity, KeyMismatch
from secretops.keys.age import AgeRecipient, generate, load_identities
from secretops.keys.datakey import lazy_identities, recover_data_key

KMS = KeyEntry("kms", {"arn": "arn:aws:kms:eu-west-1:111122223333:key/x", "role": "",
                       "context": {}, "created_at": "2026-01-01T00:00:00Z", "enc": "AAAA",
                       "aws_profile": ""})
VAULT = KeyEntry("hc_vault", {"vault_address": "http://127.0.0.1:1", "engine_path": "transit",
                              "key_name": "k", "created_at": "2026-01-01T00:00:00Z",
                              "enc": "vault:v1:AAAA"})


def test_an_age_identity_that_fits_means_no_other_source_is_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret, recipient = generate()
    key = os.urandom(32)
    meta = Metadata(key_groups=[[KMS, VAULT, AgeRecipient(recipient).wrap(key)]])
    monkeypatch.setenv("SOPS_AGE_KEY", secret)
    asked: list[str] = []
    lazy = lazy_identities(os.environ)

    def lookup(kind: str) -> list[Identity]:
        asked.append(kind)
        return lazy(kind)

    assert recover_data_key(meta, lookup) == key
    assert asked == ["age"]


def test_decryption_order_can_put_a_network_source_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret, recipient = generate()
    key = os.urandom(32)
    meta = Metadata(key_groups=[[AgeRecipient(recipient).wrap(key), VAULT]])
    asked: list[str] = []

    class Refusing:
        kind = "hc_vault"

        def unwrap(self, entry: KeyEntry) -> bytes:
            raise RuntimeError("connection refused")

    def lookup(kind: str) -> list[Identity]:
        asked.append(kind)
        if kind == "hc_vault":
            return [Refusing()]
        monkeypatch.setenv("SOPS_AGE_KEY", secret)
        return [load_identities(os.environ)]

    assert recover_data_key(meta, lookup, ["hc_vault", "age"]) == key
    assert asked == ["hc_vault", "age"]


def test_failure_lists_every_source_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    _, recipient = generate()
    other, _ = generate()
    monkeypatch.setenv("SOPS_AGE_KEY", other)
    meta = Metadata(key_groups=[[AgeRecipient(recipient).wrap(os.urandom(32)), KMS]])
    monkeypatch.setitem(sys.modules, "boto3", None)  # as without the aws extra
    with pytest.raises(NoKeyError) as info:
        recover_data_key(meta, lazy_identities(os.environ))
    hints = "\n".join(info.value.hints)
    assert f"age recipient {recipient}: none of the age identities fits" in hints
    assert (f"AWS KMS key {KMS.fields['arn']}: the AWS KMS key source needs the Python package "
            "boto3, which is not installed") in hints
    assert "pip install 'secretops[aws]'" in hints


def test_a_mismatch_moves_on_to_the_next_identity() -> None:
    key = os.urandom(32)

    class Wrong:
        kind = "age"

        def unwrap(self, entry: KeyEntry) -> bytes:
            raise KeyMismatch()

    class Right:
        kind = "age"

        def unwrap(self, entry: KeyEntry) -> bytes:
            return key

    meta = Metadata(key_groups=[[KeyEntry("age", {"recipient": "age1x", "enc": "x"})]])
    assert recover_data_key(meta, [Wrong(), Right()]) == key


def test_decrypting_an_age_and_kms_file_with_age_never_imports_boto3(tmp_path: object) -> None:
    code = (
        "import os, sys\n"
        "from secretops.core.metadata import KeyEntry, Metadata\n"
        "from secretops.keys.datakey import lazy_identities, recover_data_key\n"
        "from secretops.keys.age import AgeRecipient, generate\n"
        "secret, recipient = generate()\n"
        "os.environ['SOPS_AGE_KEY'] = secret\n"
        f"kms = KeyEntry('kms', {KMS.fields!r})\n"
        "meta = Metadata(key_groups=[[kms, AgeRecipient(recipient).wrap(b'k' * 32)]])\n"
        "assert recover_data_key(meta, lazy_identities(os.environ)) == b'k' * 32\n"
        "print('boto3' in sys.modules, 'hvac' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]
