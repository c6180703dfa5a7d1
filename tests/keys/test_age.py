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
    assert r.code == 128 and "SOPS_AGE_KEY_CMD failed" in r.err  # sops: 128 too


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


def _age_cli() -> str:
    import shutil

    path = shutil.which("age")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the age CLI is missing; .ci/run installs it")
        pytest.skip("the age CLI is not installed (./.ci/run installs it)")
    return path


def test_wrapped_key_interoperates_with_the_age_cli(tmp_path: Path, age_key: AgeKey) -> None:
    """Our `enc` opens with `age -d`; an `enc` written by `age -e -a` opens with secretops."""
    import re
    import subprocess

    age = _age_cli()
    f = _encrypt(tmp_path, age_key.recipient)
    text = f.read_text()
    armored = re.search(r"-----BEGIN AGE.*?-----END AGE ENCRYPTED FILE-----", text, re.S)
    assert armored
    body = "\n".join(line.strip() for line in armored.group(0).splitlines()) + "\n"
    key = subprocess.run([age, "-d", "-i", str(age_key.path)], input=body.encode(),
                         capture_output=True, check=True).stdout
    assert len(key) == 32
    rewrapped = subprocess.run([age, "-e", "-a", "-r", age_key.recipient], input=key,
                               capture_output=True, check=True).stdout.decode()
    indent = re.search(r"\n( +)-----BEGIN AGE", text)
    assert indent
    pad = indent.group(1)
    new_block = "\n".join(pad + line if i else line
                          for i, line in enumerate(rewrapped.strip().splitlines()))
    f.write_text(text.replace(armored.group(0), new_block))
    r = secretops("decrypt", str(f))
    assert r.code == 0, r.err
    assert r.text == TEXT


@pytest.fixture
def xortest_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The toy age plugin from tests/plugin on PATH; returns (identity, recipient)."""
    import subprocess

    bindir = tmp_path / "plugin-bin"
    bindir.mkdir()
    script = Path(__file__).parent.parent / "plugin" / "age_plugin_xortest.py"
    exe = bindir / "age-plugin-xortest"
    exe.write_text(f"#!{sys.executable}\nimport runpy\n"
                   f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run([str(exe), "--generate"], capture_output=True, text=True, check=True)
    identity, recipient = out.stdout.split()
    return identity, recipient


def test_age_plugin_recipient_both_ways(
    tmp_path: Path, sops_bin: str, xortest_plugin: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identity, recipient = xortest_plugin
    keyfile = tmp_path / "plugin-key.txt"
    keyfile.write_text(identity + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(keyfile))
    f = _encrypt(tmp_path, recipient)
    assert recipient in f.read_text()
    assert secretops("decrypt", str(f)).text == TEXT
    theirs = sops(sops_bin, "decrypt", str(f))
    assert theirs.code == 0, theirs.err
    assert theirs.text == TEXT
    src = tmp_path / "t.yaml"
    src.write_text(TEXT)
    enc = sops(sops_bin, "encrypt", "--age", recipient, str(src))
    assert enc.code == 0, enc.err
    g = tmp_path / "t.enc.yaml"
    g.write_bytes(enc.out)
    assert secretops("decrypt", str(g)).text == TEXT


def test_missing_plugin_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "s.yaml"
    src.write_text(TEXT)
    recipient = "age1nosuchplugin1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq7qxhhy"
    r = secretops("encrypt", "--age", recipient, str(src))
    assert r.code != 0 and "Traceback" not in r.err
    assert r.err.startswith("secretops: error: ")
