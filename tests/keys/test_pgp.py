"""PGP keys through gpg: interop both ways with the real sops binary, and the failure modes.

Keys are throwaway gpg keys (``tests/fixtures/gpg.py``) in each test's own GNUPGHOME, plus
sops's published functional-test key and the examples sops encrypted with it
(``tests/testdata/sops-examples``).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from secretops.core.metadata import KeyEntry
from secretops.keys import KeyMismatch
from secretops.keys import pgp as pgpkeys
from tests.fixtures.gpg import GpgKey, gpg, import_key, kill_agents
from tests.helpers import CANARY, TESTDATA, data_of, secretops, sops

TEXT = f"db:\n    password: {CANARY}\n    user: admin\n"
EXAMPLES = TESTDATA / "sops-examples"
SOPS_KEY_1 = "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"
SOPS_KEY_2 = "D7229043384BCC60326C6FB9D8720D957C3D3074"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    return f


def _secretops_encrypt(src: Path, *args: str) -> Path:
    r = secretops("encrypt", *args, str(src))
    assert r.code == 0, r.err
    out = src.with_name("s.enc.yaml")
    out.write_bytes(r.out)
    return out


def _sops_encrypt(sops_bin: str, src: Path, *args: str) -> Path:
    r = sops(sops_bin, "encrypt", *args, str(src))
    assert r.code == 0, r.err
    out = src.with_name("s.sops.yaml")
    out.write_bytes(r.out)
    return out


def _assert_decrypts(sops_bin: str, enc: Path) -> None:
    """Both tools decrypt ``enc`` to TEXT."""
    r = secretops("decrypt", str(enc))
    assert r.code == 0, r.err
    assert r.text == TEXT and CANARY not in r.err
    s = sops(sops_bin, "decrypt", str(enc))
    assert s.code == 0, s.err
    assert data_of(s.out, "yaml") == data_of(TEXT.encode(), "yaml")


def _sops_block_shape(text: str) -> list[str]:
    """The field names of the ``sops:`` block in order, with their indentation, no values."""
    block = text[text.index("\nsops:\n"):]
    return [m.group(1) for m in re.finditer(r"^(\s*(?:- )?[a-z_]+):", block, re.M)]


def _pgp_block(text: str) -> list[str]:
    """The armored ``enc`` texts of a YAML file's pgp entries, as written (``|-`` blocks)."""
    return re.findall(r"enc: \|-\n((?: {12}.*\n|\n)+?) {10}fp:", text)


# --- interop ------------------------------------------------------------------------------


def test_secretops_encrypts_sops_decrypts(plain: Path, gpg_key: str, sops_bin: str) -> None:
    enc = _secretops_encrypt(plain, "--pgp", gpg_key)
    text = enc.read_text()
    assert CANARY not in text and f"fp: {gpg_key}" in text
    created = re.search(r'created_at: "([^"]+)"', text)
    assert created and RFC3339_UTC.match(created.group(1))
    _assert_decrypts(sops_bin, enc)


def test_sops_encrypts_secretops_decrypts(plain: Path, gpg_key: str, sops_bin: str) -> None:
    enc = _sops_encrypt(sops_bin, plain, "--pgp", gpg_key)
    _assert_decrypts(sops_bin, enc)


def test_metadata_matches_sops_field_for_field(plain: Path, gpg_key: str,
                                               sops_bin: str) -> None:
    ours = _secretops_encrypt(plain, "--pgp", gpg_key).read_text()
    theirs = _sops_encrypt(sops_bin, plain, "--pgp", gpg_key).read_text()
    assert _sops_block_shape(ours) == _sops_block_shape(theirs)
    assert "    pgp:\n        - created_at:" in ours
    # enc is gpg's armor with the trailing newline trimmed: a `|-` block in both files
    (a,), (b,) = _pgp_block(ours), _pgp_block(theirs)
    for armor in (a, b):
        lines = [ln.strip() for ln in armor.splitlines()]
        assert lines[:2] == ["-----BEGIN PGP MESSAGE-----", ""]
        assert lines[-1] == "-----END PGP MESSAGE-----"
        assert max(len(ln) for ln in lines) <= 64
    assert len(a.splitlines()) == len(b.splitlines())


def test_sops_pgp_fp_environment_variable(plain: Path, gpg_key: str, sops_bin: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_PGP_FP", gpg_key)
    enc = _secretops_encrypt(plain)
    assert f"fp: {gpg_key}" in enc.read_text()
    _assert_decrypts(sops_bin, enc)


def test_sops_yaml_rule(plain: Path, tmp_path: Path, gpg_key: str, sops_bin: str) -> None:
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - pgp: {gpg_key}\n")
    enc = _secretops_encrypt(plain)
    assert f"fp: {gpg_key}" in enc.read_text()
    _assert_decrypts(sops_bin, enc)


@pytest.mark.parametrize("tool", ["secretops", "sops"])
def test_two_fingerprints_only_the_second_secret_is_here(
    tool: str, plain: Path, gpg_keys: tuple[GpgKey, GpgKey], sops_bin: str
) -> None:
    first, second = gpg_keys
    import_key(first, secret=False)  # known, but its secret key is somewhere else
    import_key(second)
    fprs = f"{first.fingerprint},{second.fingerprint}"
    enc = (_secretops_encrypt(plain, "--pgp", fprs) if tool == "secretops"
           else _sops_encrypt(sops_bin, plain, "--pgp", fprs))
    text = enc.read_text()
    assert text.index(first.fingerprint) < text.index(second.fingerprint)
    _assert_decrypts(sops_bin, enc)


def test_updatekeys_adds_and_removes_fingerprints(
    plain: Path, tmp_path: Path, gpg_keys: tuple[GpgKey, GpgKey], sops_bin: str
) -> None:
    first, second = gpg_keys
    import_key(first)
    import_key(second, secret=False)
    rules = tmp_path / ".sops.yaml"
    rules.write_text(f"creation_rules:\n  - pgp: {first.fingerprint}\n")
    enc = _secretops_encrypt(plain)
    rules.write_text(f"creation_rules:\n  - pgp: {second.fingerprint}\n")
    r = secretops("updatekeys", "-y", str(enc))
    assert r.code == 0, r.err
    text = enc.read_text()
    assert second.fingerprint in text and first.fingerprint not in text
    # only the new key opens it now
    assert secretops("decrypt", str(enc)).code == 128
    gpg("--batch", "--yes", "--delete-secret-keys", first.fingerprint)
    import_key(second)
    _assert_decrypts(sops_bin, enc)


# --- sops's own examples --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.yaml", "example.json"])
@pytest.mark.parametrize("keys_present", ["both", "second-only"])
def test_sops_project_examples(name: str, keys_present: str, sops_bin: str) -> None:
    import_key(EXAMPLES.joinpath("sops_functional_tests_key.asc").read_bytes())
    if keys_present == "second-only":
        gpg("--batch", "--yes", "--delete-secret-keys", SOPS_KEY_1)
    path = EXAMPLES / name
    theirs = sops(sops_bin, "decrypt", str(path))
    assert theirs.code == 0, theirs.err
    ours = secretops("decrypt", str(path))
    assert ours.code == 0, ours.err
    fmt = name.rsplit(".", 1)[1]
    assert data_of(ours.out, fmt) == data_of(theirs.out, fmt)
    if fmt == "json":
        assert ours.out == theirs.out


def test_sops_yaml_example_decrypts_byte_identical(sops_bin: str) -> None:
    import_key(EXAMPLES.joinpath("sops_functional_tests_key.asc").read_bytes())
    path = EXAMPLES / "example.yaml"
    assert secretops("decrypt", str(path)).out == sops(sops_bin, "decrypt", str(path)).out


def test_sops_example_without_any_secret_key_exits_128(sops_bin: str) -> None:
    import_key(EXAMPLES.joinpath("sops_functional_tests_key.asc").read_bytes())
    for fpr in (SOPS_KEY_1, SOPS_KEY_2):
        gpg("--batch", "--yes", "--delete-secret-keys", fpr)
    path = EXAMPLES / "example.yaml"
    r = secretops("decrypt", str(path))
    assert r.code == 128
    assert SOPS_KEY_1 in r.err and SOPS_KEY_2 in r.err
    assert sops(sops_bin, "decrypt", str(path)).code == 128


# --- failure modes ----------------------------------------------------------------------------


def test_no_fitting_secret_key_exits_128_naming_the_fingerprint(
    plain: Path, gpg_keys: tuple[GpgKey, GpgKey], sops_bin: str
) -> None:
    first, _ = gpg_keys
    import_key(first, secret=False)
    enc = _secretops_encrypt(plain, "--pgp", first.fingerprint)
    r = secretops("decrypt", str(enc))
    assert r.code == 128
    assert f"PGP key {first.fingerprint}" in r.err
    assert r.err.startswith("secretops: error:") and "Traceback" not in r.err
    assert CANARY not in r.err and CANARY.encode() not in r.out
    s = sops(sops_bin, "decrypt", str(enc))
    assert s.code == 128  # the same exit code as sops (CouldNotRetrieveKey)


def test_unknown_public_key_fails_encryption_clearly(plain: Path, gpg_keys: tuple[GpgKey, GpgKey]
                                                     ) -> None:
    fpr = gpg_keys[1].fingerprint  # never imported here
    r = secretops("encrypt", "--pgp", fpr, str(plain))
    assert r.code == 23
    assert fpr in r.err and "gpg" in r.err and "Traceback" not in r.err
    assert CANARY not in r.err and not r.out


def test_missing_gpg_binary(plain: Path, gpg_key: str, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _secretops_encrypt(plain, "--pgp", gpg_key)
    monkeypatch.setenv("SOPS_GPG_EXEC", str(tmp_path / "no-such-gpg"))
    r = secretops("encrypt", "--pgp", gpg_key, str(plain))
    assert r.code == 23 and "no-such-gpg" in r.err and "was not found" in r.err
    r = secretops("decrypt", str(enc))
    assert r.code == 128 and f"PGP key {gpg_key}: no pgp identity available" in r.err
    assert pgpkeys.identity(dict(os.environ)) is None


def test_sops_gpg_exec_is_honoured(plain: Path, gpg_key: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "my-gpg"
    wrapper.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexec gpg \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SOPS_GPG_EXEC", str(wrapper))
    enc = _secretops_encrypt(plain, "--pgp", gpg_key)
    assert secretops("decrypt", str(enc)).text == TEXT
    calls = log.read_text().splitlines()
    assert any("--encrypt" in c and gpg_key in c for c in calls)
    assert any("--decrypt" in c for c in calls)


def test_locked_key_is_an_error_not_a_mismatch() -> None:
    """A secret key that is here but cannot be unlocked is reported, not skipped, and no hang."""
    env = dict(os.environ)
    home = env["GNUPGHOME"]
    lock = ["--batch", "--pinentry-mode", "loopback", "--passphrase", "locked"]
    conf = Path(home, "gpg-agent.conf")
    conf.write_text("s2k-count 65536\n")  # a cheap passphrase hash: generation in ms, not s
    out = gpg(*lock, "--status-fd", "1", "--quick-gen-key", "locked <l@example.invalid>",
              "ed25519", "cert", "never").decode()
    fpr = out.split("KEY_CREATED P ")[1].split()[0]
    gpg(*lock, "--quick-add-key", fpr, "cv25519", "encr", "never")
    entry = pgpkeys.recipient({"fp": fpr}, env).wrap(b"k" * 32)
    # a fresh agent (passphrase not cached) whose pinentry cannot start
    kill_agents(home)
    conf.write_text(f"s2k-count 65536\npinentry-program {Path(home, 'no-pinentry')}\n")
    ident = pgpkeys.identity(env)
    assert ident is not None
    with pytest.raises(pgpkeys.GpgError) as e:
        ident.unwrap(entry)
    assert fpr in str(e.value) and "\n" not in str(e.value)


def test_damaged_message_is_an_error_not_a_mismatch(gpg_key: str) -> None:
    ident = pgpkeys.identity(dict(os.environ))
    assert ident is not None
    bad = KeyEntry("pgp", {"created_at": "2026-01-01T00:00:00Z",
                           "enc": "-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----",
                           "fp": gpg_key})
    with pytest.raises(pgpkeys.GpgError, match=gpg_key):
        ident.unwrap(bad)


def test_wrap_and_unwrap_round_trip(gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    first, second = gpg_keys
    import_key(first)
    import_key(second, secret=False)
    env = dict(os.environ)
    key = os.urandom(32)
    entries = [pgpkeys.recipient({"fp": k.fingerprint}, env).wrap(key) for k in gpg_keys]
    assert [list(e.fields) for e in entries] == [["created_at", "enc", "fp"]] * 2
    assert not entries[0].enc.endswith("\n")
    ident = pgpkeys.identity(env)
    assert ident is not None
    assert ident.unwrap(entries[0]) == key
    with pytest.raises(KeyMismatch):
        ident.unwrap(entries[1])
