"""``secretops vault rewrap``: several files, files without Vault keys, failures per file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.openbao import OpenBao
from tests.helpers import AgeKey, secretops
from tests.keys.test_vault import TEXT, enc_lines, encrypt, key_name, rewrap


def test_several_files_one_failing(tmp_path: Path, vault_key: str, openbao: OpenBao,
                                   age_key: AgeKey) -> None:
    a = encrypt(tmp_path, vault_key, "a.enc.yaml")
    b = encrypt(tmp_path, vault_key, "b.enc.yaml")
    plain = tmp_path / "plain.yaml"
    aged = tmp_path / "aged.enc.yaml"
    r = secretops("encrypt", "--age", age_key.recipient, "--output", str(aged), str(plain))
    assert r.code == 0, r.err
    broken = tmp_path / "broken.yaml"
    broken.write_text("not: encrypted\n")
    before = {p: p.read_text() for p in (a, b, aged)}
    openbao.client().secrets.transit.rotate_key(name=key_name(vault_key))
    r = rewrap(str(a), str(broken), str(aged), str(b))
    assert r.code == 151  # the first error's code; the other files are still done
    assert "broken.yaml: sops metadata not found" in r.err
    assert f"{aged}: no Vault transit keys, left unchanged" in r.text
    assert aged.read_text() == before[aged]
    for f in (a, b):
        assert f"{f}: rewrapped {vault_key} (v1 -> v2)" in r.text
        assert enc_lines(f.read_text()) == enc_lines(before[f])
        assert "enc: vault:v2:" in f.read_text()
        assert secretops("decrypt", str(f)).text == TEXT


def test_json_file(tmp_path: Path, vault_key: str, openbao: OpenBao) -> None:
    src = tmp_path / "s.json"
    src.write_text('{"a": "x", "b": [1, 2]}\n')
    r = secretops("encrypt", "--hc-vault-transit", vault_key, "-i", str(src))
    assert r.code == 0, r.err
    before = src.read_text()
    openbao.client().secrets.transit.rotate_key(name=key_name(vault_key))
    assert rewrap(str(src)).code == 0
    after = src.read_text()
    changed = [(x, y) for x, y in zip(before.splitlines(), after.splitlines(), strict=True)
               if x != y]
    assert len(changed) == 1 and '"enc": "vault:v2:' in changed[0][1]
    expected = '{\n\t"a": "x",\n\t"b": [\n\t\t1,\n\t\t2\n\t]\n}\n'
    assert secretops("decrypt", str(src)).text == expected


def _registered() -> bool:
    from secretops.cli.app import cli

    return "vault" in cli.commands


@pytest.mark.skipif(not _registered(), reason="the vault group is not registered in app.py yet")
def test_through_the_secretops_command(tmp_path: Path, vault_key: str, openbao: OpenBao) -> None:
    f = encrypt(tmp_path, vault_key)
    openbao.client().secrets.transit.rotate_key(name=key_name(vault_key))
    r = secretops("vault", "rewrap", str(f))
    assert r.code == 0, r.err
    assert r.text == f"{f}: rewrapped {vault_key} (v1 -> v2)\n"
