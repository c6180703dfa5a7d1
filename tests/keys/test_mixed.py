"""Every source at once: age, AWS KMS (moto), Vault transit (OpenBao) and PGP (gpg).

2-of-3 key groups across sources, and one group mixing all four, both ways with the real sops
binary, opened with only some of the sources reachable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.fixtures.moto import AwsKms
from tests.helpers import CANARY, AgeKey, data_of, secretops, sops

TEXT = f"password: {CANARY}\nuser: admin\n"
SOURCES = ("age", "kms", "vault", "pgp")


@pytest.fixture
def keys(age_key: AgeKey, aws_kms: AwsKms, vault_key: str, gpg_key: str) -> dict[str, str]:
    return {"age": age_key.recipient, "kms": aws_kms.arns[0], "vault": vault_key,
            "pgp": gpg_key}


@contextmanager
def only(monkeypatch: pytest.MonkeyPatch, *available: str) -> Iterator[None]:
    """Make every source but ``available`` unusable, the way a user without it would be."""
    with monkeypatch.context() as m:
        if "age" not in available:
            m.delenv("SOPS_AGE_KEY_FILE", raising=False)
        if "kms" not in available:
            for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                m.delenv(var, raising=False)
        if "vault" not in available:
            m.delenv("VAULT_TOKEN", raising=False)
        if "pgp" not in available:
            m.setenv("GNUPGHOME", tempfile.mkdtemp(prefix="g"))
        yield


def _group_rule(keys: dict[str, str], groups: list[list[str]], threshold: int) -> str:
    out = f"creation_rules:\n  - shamir_threshold: {threshold}\n    key_groups:\n"
    for group in groups:
        first = True
        for source in group:
            lead = "      - " if first else "        "
            first = False
            name = {"vault": "hc_vault", "kms": "kms"}.get(source, source)
            value = f"[{{arn: '{keys[source]}'}}]" if source == "kms" else f"['{keys[source]}']"
            out += f"{lead}{name}: {value}\n"
    return out


@pytest.mark.parametrize("writer", ["secretops", "sops"])
def test_two_of_three_groups_across_sources(
    tmp_path: Path, keys: dict[str, str], sops_bin: str, monkeypatch: pytest.MonkeyPatch,
    writer: str,
) -> None:
    (tmp_path / ".sops.yaml").write_text(
        _group_rule(keys, [["age"], ["kms"], ["vault", "pgp"]], 2))
    plain = tmp_path / "s.yaml"
    plain.write_text(TEXT)
    enc = tmp_path / "s.enc.yaml"
    r = (secretops("encrypt", "--filename-override", "s.yaml", str(plain)) if writer ==
         "secretops" else sops(sops_bin, "encrypt", "--filename-override", "s.yaml", str(plain)))
    assert r.code == 0, r.err
    enc.write_bytes(r.out)
    meta = yaml.safe_load(r.out)["sops"]
    assert meta["shamir_threshold"] == 2 and len(meta["key_groups"]) == 3
    for pair in (("age", "kms"), ("kms", "vault"), ("age", "pgp"), ("kms", "pgp")):
        with only(monkeypatch, *pair):
            got = secretops("decrypt", str(enc))
            assert got.code == 0, (pair, got.err)
            assert got.text == TEXT
            theirs = sops(sops_bin, "decrypt", str(enc))
            assert theirs.code == 0, (pair, theirs.err)
            assert data_of(theirs.out, "yaml") == data_of(TEXT.encode(), "yaml")
    with only(monkeypatch, "vault"):
        r = secretops("decrypt", str(enc))
        assert r.code == 128
        assert "only 1 of the 2 key groups needed could be opened" in r.err
        assert CANARY not in r.err


@pytest.mark.parametrize("writer", ["secretops", "sops"])
def test_one_group_of_every_source_opens_with_any_one(
    tmp_path: Path, keys: dict[str, str], sops_bin: str, monkeypatch: pytest.MonkeyPatch,
    writer: str,
) -> None:
    plain = tmp_path / "s.yaml"
    plain.write_text(TEXT)
    flags = ["--age", keys["age"], "--kms", keys["kms"], "--hc-vault-transit", keys["vault"],
             "--pgp", keys["pgp"]]
    r = (secretops("encrypt", *flags, str(plain)) if writer == "secretops"
         else sops(sops_bin, "encrypt", *flags, str(plain)))
    assert r.code == 0, r.err
    enc = tmp_path / "s.enc.yaml"
    enc.write_bytes(r.out)
    meta = yaml.safe_load(r.out)["sops"]
    assert {k for k in ("age", "kms", "hc_vault", "pgp") if meta.get(k)} == {
        "age", "kms", "hc_vault", "pgp"}
    for source in SOURCES:
        with only(monkeypatch, source):
            got = secretops("decrypt", str(enc))
            assert got.code == 0, (source, got.err)
            assert sops(sops_bin, "decrypt", str(enc)).code == 0, source
    with only(monkeypatch):
        r = secretops("decrypt", str(enc))
    assert r.code == 128
    for name in (keys["age"], keys["kms"], "Vault transit key", keys["pgp"][-16:]):
        assert name in r.err, name
    assert CANARY not in r.err


def test_an_unreachable_only_key_fails_fast_naming_the_source(
    tmp_path: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The only fitting key's server is down: a bounded wait, then exit 128 naming it."""
    import socket

    plain = tmp_path / "s.yaml"
    plain.write_text(TEXT)
    enc = tmp_path / "s.enc.yaml"
    r = secretops("encrypt", "--kms", keys["kms"], "--hc-vault-transit", keys["vault"],
                  str(plain))
    assert r.code == 0, r.err
    enc.write_bytes(r.out)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    text = enc.read_text()
    vault_addr = keys["vault"].split("/v1/")[0]
    enc.write_text(text.replace(f"vault_address: {vault_addr}", f"vault_address: {closed}"))
    r = secretops("decrypt", str(enc))  # returns: bounded timeouts (pytest-timeout guards)
    assert r.code == 128, r.err
    assert keys["kms"] in r.err and closed in r.err
    assert CANARY not in r.err
    assert os.path.exists(enc)


def test_rotate_and_updatekeys_across_sources(
    tmp_path: Path, keys: dict[str, str], sops_bin: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = tmp_path / "s.yaml"
    plain.write_text(TEXT)
    r = secretops("encrypt", "-i", "--age", keys["age"], "--kms", keys["kms"], str(plain))
    assert r.code == 0, r.err
    # updatekeys: Vault and PGP join from .sops.yaml, values stay byte-identical
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {keys['age']}\n    kms: {keys['kms']}\n"
        f"    hc_vault_transit_uri: {keys['vault']}\n    pgp: {keys['pgp']}\n")
    values = [ln for ln in plain.read_text().splitlines() if ln.startswith(("password", "user"))]
    r = secretops("updatekeys", "--yes", str(plain))
    assert r.code == 0, r.err
    assert [ln for ln in plain.read_text().splitlines()
            if ln.startswith(("password", "user"))] == values
    with only(monkeypatch, "pgp"):
        assert secretops("decrypt", str(plain)).text == TEXT
        assert sops(sops_bin, "decrypt", str(plain)).code == 0
    # rotate: a new data key wrapped by every source, minus the KMS key removed
    r = secretops("rotate", "-i", "--rm-kms", keys["kms"], str(plain))
    assert r.code == 0, r.err
    meta = yaml.safe_load(plain.read_text())["sops"]
    assert not meta.get("kms") and meta["hc_vault"] and meta["pgp"] and meta["age"]
    assert not set(values) & set(plain.read_text().splitlines())
    for source in ("age", "vault", "pgp"):
        with only(monkeypatch, source):
            assert secretops("decrypt", str(plain)).text == TEXT, source
            assert sops(sops_bin, "decrypt", str(plain)).code == 0, source
