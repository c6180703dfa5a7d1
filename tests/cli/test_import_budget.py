"""Start-up is a feature: what each invocation may import (checked with -X importtime)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import AgeKey, secretops

HEAVY = ("cryptography", "yaml", "pyrage")


def _imported(*args: str, cwd: Path | None = None) -> set[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "secretops", *args],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd)
    return {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["decrypt", "--help"]])
def test_help_and_version_skip_crypto_and_yaml(args: list[str]) -> None:
    mods = _imported(*args)
    assert ("click" in mods) == (args != ["--version"])  # --version needs no click either
    assert not [m for m in mods if m.split(".")[0] in HEAVY]


def test_decrypt_skips_click_and_dataclasses(tmp_path: Path, age_key: AgeKey) -> None:
    src = tmp_path / "s.yaml"
    src.write_text("a: b\n")
    enc = tmp_path / "s.enc.yaml"
    enc.write_bytes(secretops("encrypt", "--age", age_key.recipient, str(src)).out)
    mods = _imported("decrypt", str(enc), cwd=tmp_path)
    assert "yaml" in mods and "secretops.core.cipher" in mods
    for absent in ("click", "dataclasses", "inspect", "secretops.config", "subprocess",
                   "tempfile", "json", "secretops.stores.json",
                   "_hashlib"):  # the system's OpenSSL: the MAC uses cryptography's SHA-512
        assert absent not in mods, absent


def test_encrypt_skips_click_and_dataclasses(tmp_path: Path, age_key: AgeKey) -> None:
    src = tmp_path / "s.yaml"
    src.write_text("a: b\n")
    mods = _imported("encrypt", "--age", age_key.recipient, str(src), cwd=tmp_path)
    assert "pyrage" in mods
    for absent in ("click", "dataclasses", "inspect", "subprocess", "tempfile", "_hashlib"):
        assert absent not in mods, absent
