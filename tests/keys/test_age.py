"""age identities and recipients: every discovery source sops has, SSH keys, recipients env."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers import AgeKey, make_age_key, secretops, sops

TEXT = "token: s3cret\n"


def _ssh_key(directory: Path, name: str = "id_ed25519") -> tuple[Path, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path = directory / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    return path, pub


def _encrypt(tmp_path: Path, recipient: str) -> Path:
    src = tmp_path / "s.yaml"
    src.write_text(TEXT)
    r = secretops("encrypt", "--age", recipient, str(src))
    assert r.code == 0, r.err
    out = tmp_path / "s.enc.yaml"
    out.write_bytes(r.out)
    return out


def test_sops_age_key_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_age_key(tmp_path)
    f = _encrypt(tmp_path, key.recipient)
    monkeypatch.setenv("SOPS_AGE_KEY", key.path.read_text())
    assert secretops("decrypt", str(f)).text == TEXT


def test_sops_age_key_cmd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_age_key(tmp_path)
    f = _encrypt(tmp_path, key.recipient)
    monkeypatch.setenv("SOPS_AGE_KEY_CMD", f"cat {key.path}")
    assert secretops("decrypt", str(f)).text == TEXT


def test_failing_key_cmd_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = make_age_key(tmp_path)
    f = _encrypt(tmp_path, key.recipient)
    monkeypatch.setenv("SOPS_AGE_KEY_CMD", f"{sys.executable} -c 'raise SystemExit(3)'")
    r = secretops("decrypt", str(f))
    assert r.code == 154 and "SOPS_AGE_KEY_CMD" in r.err


def test_recipients_from_env(tmp_path: Path, age_key: AgeKey,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_RECIPIENTS", age_key.recipient)
    src = tmp_path / "s.yaml"
    src.write_text(TEXT)
    r = secretops("encrypt", str(src))
    assert r.code == 0 and age_key.recipient in r.text


def test_several_recipients_each_can_decrypt(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_age_key(tmp_path, "a.txt"), make_age_key(tmp_path, "b.txt")
    f = _encrypt(tmp_path, f"{a.recipient},{b.recipient}")
    for k in (a, b):
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(k.path))
        assert secretops("decrypt", str(f)).text == TEXT


def test_ssh_ed25519_recipient_both_ways(tmp_path: Path, sops_bin: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    priv, pub = _ssh_key(tmp_path)
    monkeypatch.setenv("SOPS_AGE_SSH_PRIVATE_KEY_FILE", str(priv))
    f = _encrypt(tmp_path, pub)
    assert secretops("decrypt", str(f)).text == TEXT
    assert sops(sops_bin, "decrypt", str(f)).text == TEXT
    src = tmp_path / "t.yaml"
    src.write_text(TEXT)
    theirs = sops(sops_bin, "encrypt", "--age", pub, str(src))
    assert theirs.code == 0, theirs.err
    g = tmp_path / "t.enc.yaml"
    g.write_bytes(theirs.out)
    assert secretops("decrypt", str(g)).text == TEXT


def test_default_ssh_key_in_home(tmp_path: Path) -> None:
    ssh_dir = Path(os.environ["HOME"]) / ".ssh"
    ssh_dir.mkdir()
    _, pub = _ssh_key(ssh_dir)
    f = _encrypt(tmp_path, pub)
    assert secretops("decrypt", str(f)).text == TEXT


def test_default_keys_txt_under_xdg(tmp_path: Path) -> None:
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "sops" / "age"
    cfg.mkdir(parents=True)
    key = make_age_key(cfg, "keys.txt")
    f = _encrypt(tmp_path, key.recipient)
    assert secretops("decrypt", str(f)).text == TEXT
