"""Azure Key Vault keys against the Key Vault stand-in (``tests/fixtures/azurekv_server.py``)
and the real sops binary: the entry's shape, versions, flags, variables and ``.sops.yaml``,
and failures that are one typed line holding neither the canary nor a token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from secretops.core.metadata import KEY_FIELDS, KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import azurekv
from tests.compat.sidebyside import assert_same, run_both
from tests.fixtures.azurekv import AzureKv, free_port
from tests.helpers import CANARY, AgeKey, assert_no_canary, run, secretops, sops

TEXT = f"password: {CANARY}\nuser: admin\n"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    return f


def _parts(url: str) -> tuple[str, str, str]:
    vault, _, rest = url.partition("/keys/")
    name, _, version = rest.partition("/")
    return vault, name, version


def _entries(text: bytes) -> list[dict[str, str]]:
    return list(yaml.safe_load(text)["sops"]["azure_kv"])


def test_wrap_writes_sops_fields_and_unwrap_returns_the_key(azure_kv: AzureKv) -> None:
    env = dict(os.environ)
    vault, name, version = _parts(azure_kv.urls[0])
    entry = azurekv.AzureKvRecipient(vault, name, version, env).wrap(b"k" * 32)
    assert tuple(entry.fields) == KEY_FIELDS["azure_kv"]
    assert (entry.fields["vault_url"], entry.fields["name"], entry.fields["version"]) == \
        (vault, name, version)
    assert "=" not in entry.enc and "+" not in entry.enc and "/" not in entry.enc  # raw URL b64
    assert azurekv.AzureKvIdentity(env).unwrap(entry) == b"k" * 32
    other = KeyEntry("azure_kv", {**entry.fields, **dict(zip(
        ("vault_url", "name", "version"), _parts(azure_kv.urls[1]), strict=True))})
    with pytest.raises(azurekv.AzureKeyVaultError, match=r"refused the request \(400\)"):
        azurekv.AzureKvIdentity(env).unwrap(other)


def test_a_url_without_version_gets_the_current_one(plain: Path, azure_kv: AzureKv,
                                                    sops_bin: str) -> None:
    vault, name, first = _parts(azure_kv.urls[0])
    newest = _parts(azure_kv.rotate_key(name))[2]
    assert newest != first
    r = secretops("encrypt", "--azure-kv", f"{vault}/keys/{name}", str(plain))
    assert r.code == 0, r.err
    assert [e["version"] for e in _entries(r.out)] == [newest]
    theirs = sops(sops_bin, "encrypt", "--azure-kv", f"{vault}/keys/{name}", str(plain))
    assert [e["version"] for e in _entries(theirs.out)] == [newest]  # as sops resolves it


def test_interop_with_sops_both_ways(plain: Path, tmp_path: Path, azure_kv: AzureKv,
                                     sops_bin: str) -> None:
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
    ours.write_bytes(secretops("encrypt", "--azure-kv", azure_kv.urls[0], str(plain)).out)
    theirs.write_bytes(sops(sops_bin, "encrypt", "--azure-kv", azure_kv.urls[0], str(plain)).out)
    assert [list(e) for e in _entries(ours.read_bytes())] == \
        [list(e) for e in _entries(theirs.read_bytes())]
    by_sops = sops(sops_bin, "decrypt", str(ours))
    assert by_sops.code == 0 and CANARY.encode() in by_sops.out, by_sops.err
    by_us = secretops("decrypt", str(theirs))
    assert by_us.code == 0 and CANARY.encode() in by_us.out, by_us.err


def test_flags_environment_and_sops_yaml(plain: Path, tmp_path: Path, azure_kv: AzureKv,
                                         age_key: AgeKey, sops_bin: str) -> None:
    one, two = azure_kv.urls
    by_env = run([sys.executable, "-m", "secretops", "encrypt", str(plain)],
                 env=dict(os.environ, SOPS_AZURE_KEYVAULT_URLS=f"{one},{two}"))
    assert by_env.code == 0, by_env.err
    assert [e["name"] for e in _entries(by_env.out)] == [_parts(one)[1], _parts(two)[1]]
    vault, name, version = _parts(one)
    config = tmp_path / ".sops.yaml"
    config.write_text(yaml.safe_dump({"creation_rules": [{"key_groups": [
        {"azure_keyvault": [{"vaultUrl": vault, "key": name, "version": version}]},
        {"age": [age_key.recipient]}]}]}))
    ours = secretops("encrypt", str(plain), cwd=tmp_path)
    theirs = sops(sops_bin, "encrypt", str(plain), cwd=tmp_path)
    assert ours.code == 0 and theirs.code == 0, (ours.err, theirs.err)
    for out in (ours.out, theirs.out):
        group = yaml.safe_load(out)["sops"]["key_groups"][0]["azure_kv"]
        assert [(e["vault_url"], e["name"], e["version"]) for e in group] == \
            [(vault, name, version)]
    config.write_text(yaml.safe_dump({"creation_rules": [{"azure_keyvault": two}]}))
    top = secretops("encrypt", str(plain), cwd=tmp_path)
    assert [e["name"] for e in _entries(top.out)] == [_parts(two)[1]]


def test_rotate_adds_and_removes_azure_keys(plain: Path, azure_kv: AzureKv,
                                            sops_bin: str) -> None:
    one, two = azure_kv.urls
    enc = plain.with_name("s.enc.yaml")
    enc.write_bytes(secretops("encrypt", "--azure-kv", one, str(plain)).out)
    r = secretops("rotate", "-i", "--add-azure-kv", two, "--rm-azure-kv", one, str(enc))
    assert r.code == 0, r.err
    assert [e["name"] for e in _entries(enc.read_bytes())] == [_parts(two)[1]]
    opened = sops(sops_bin, "decrypt", str(enc))
    assert opened.code == 0 and CANARY.encode() in opened.out, opened.err


def test_failures_are_typed_one_line_errors(plain: Path, tmp_path: Path, azure_kv: AzureKv,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    server = azure_kv.server
    enc = plain.with_name("s.enc.yaml")
    enc.write_bytes(secretops("encrypt", "--azure-kv", azure_kv.urls[0], str(plain)).out)
    base = {k: v for k, v in os.environ.items()
            if k not in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "SSL_CERT_FILE")}
    ok = {"IDENTITY_ENDPOINT": server.identity_endpoint, "SSL_CERT_FILE": str(server.ca_file)}
    cases = {
        "denied access (403)": {**ok, "IDENTITY_HEADER": server.denied_header},
        "no Azure credentials were found": {"SSL_CERT_FILE": str(server.ca_file)},
        "certificate is not trusted": {**ok, "IDENTITY_HEADER": server.identity_header},
    }
    for what, env in cases.items():
        full = {**base, **env}
        if what.startswith("certificate"):
            full.pop("SSL_CERT_FILE")
        r = run([sys.executable, "-m", "secretops", "decrypt", str(enc)], env=full)
        assert r.code == ExitCode.COULD_NOT_RETRIEVE_KEY, (what, r.err)
        assert what in r.err and "Traceback" not in r.err, r.err
        assert f"Azure Key Vault key {azure_kv.urls[0]}" in r.err
        assert server.identity_header not in r.err and server.denied_header not in r.err
        assert_no_canary(r.err, "stderr")
    env = dict(os.environ)
    vault, name, version = _parts(azure_kv.urls[0])
    dead = f"https://127.0.0.1:{free_port()}"
    with pytest.raises(SecretOpsError, match="cannot reach the vault") as e:
        azurekv.AzureKvRecipient(dead, name, version, env).wrap(b"k" * 32)
    assert e.value.code == ExitCode.ERROR_ENCRYPTING_TREE
    with pytest.raises(SecretOpsError, match=r"does not exist in this vault \(404\)"):
        azurekv.AzureKvRecipient(vault, "absent", "", env).wrap(b"k" * 32)
    # the same vault under another name: its challenge names 0.0.1, not localhost, so the SDK
    # sends no token there (an entry naming a foreign server gets no Key Vault token)
    renamed = vault.replace("127.0.0.1", "localhost")
    with pytest.raises(SecretOpsError, match="challenge names another domain"):
        azurekv.AzureKvRecipient(renamed, name, version, env).wrap(b"k" * 32)


def test_malformed_urls_are_refused_before_any_call(plain: Path) -> None:
    for bad in ("http://vault.example/keys/k/v", "https://vault.example/secrets/k",
                "https://vault.example/keys/k/v/extra", "vault.example/keys/k"):
        r = secretops("encrypt", "--azure-kv", bad, str(plain))
        assert r.code == ExitCode.INVALID_KEY and "invalid Azure Key Vault key" in r.err, r.err
    with pytest.raises(azurekv.AzureKeyVaultError, match="invalid Azure Key Vault key"):
        azurekv.AzureKvIdentity({}).unwrap(KeyEntry("azure_kv", {
            "vault_url": "http://plain.example", "name": "k", "version": "v",
            "created_at": "", "enc": "AAAA"}))


@pytest.mark.parametrize("argv", [
    ["-e", "--azure-kv", "ONE", "s.yaml"],
    ["-r", "-i", "--add-azure-kv", "TWO", "s.enc.yaml"],
    ["-r", "-i", "--rm-azure-kv", "ONE", "s.enc.yaml"],
    ["--rotate", "--in-place", "--add-azure-kv", "TWO", "--rm-azure-kv", "ONE", "s.enc.yaml"],
])
def test_global_forms_side_by_side(argv: list[str], azure_kv: AzureKv, age_key: AgeKey,
                                   tmp_path: Path, sops_bin: str) -> None:
    """sops's global forms with Key Vault keys, run by both against the stand-in: the same
    outcome, the same keys in the file, and each side's file opens."""
    one, two = azure_kv.urls
    made = sops(sops_bin, "encrypt", "--azure-kv", one, "--age", age_key.recipient,
                str(_write(tmp_path, TEXT)))
    assert made.code == 0, made.err
    argv = [{"ONE": one, "TWO": two}.get(a, a) for a in argv]
    pair = run_both(sops_bin, argv, {"s.yaml": TEXT, "s.enc.yaml": made.out}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="decrypted")
    outs = [side.out or side.files["s.enc.yaml"] for side in (pair.sops, pair.ours)]
    names = [[e["name"] for e in yaml.safe_load(o)["sops"].get("azure_kv", [])] for o in outs]
    assert names[0] == names[1], names


def _write(directory: Path, text: str) -> Path:
    path = directory / "plain.yaml"
    path.write_text(text)
    return path


def test_updatekeys_with_a_rule_naming_no_version_side_by_side(
        azure_kv: AzureKv, age_key: AgeKey, tmp_path: Path, sops_bin: str) -> None:
    """A rule naming the key without a version means its current version, for both: a file
    that has it is up to date (left byte for byte; secretops wrapped it anew before), and after
    the key is rotated in the vault both move the file to the new version."""
    vault, name, _ = _parts(azure_kv.urls[0])
    cfg = yaml.safe_dump({"creation_rules": [{"azure_keyvault": f"{vault}/keys/{name}",
                                              "age": age_key.recipient}]})
    made_dir = tmp_path / "made"
    made_dir.mkdir()
    (made_dir / ".sops.yaml").write_text(cfg)
    made = sops(sops_bin, "encrypt", str(_write(made_dir, TEXT)), cwd=made_dir)
    assert made.code == 0, made.err
    files = {".sops.yaml": cfg, "s.enc.yaml": made.out}
    pair = run_both(sops_bin, ["updatekeys", "-y", "s.enc.yaml"], files, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    assert pair.sops.files == pair.ours.files == pair.before
    newest = _parts(azure_kv.rotate_key(name))[2]
    pair = run_both(sops_bin, ["updatekeys", "-y", "s.enc.yaml"], files, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    assert_same(pair, stdout="ignore", files="decrypted")
    for side in (pair.sops, pair.ours):
        assert [e["version"] for e in _entries(side.files["s.enc.yaml"])] == [newest]
