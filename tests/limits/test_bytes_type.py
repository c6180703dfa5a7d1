"""A value retagged ``type:bytes``: sops 3.11 cannot decrypt one (it panics); nor do we."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import AgeKey, secretops, sops

FILES = {"yaml": "user: admin\n", "json": '{"user": "admin"}\n', "dotenv": "user=admin\n",
         "ini": "[s]\nuser=admin\n"}
EXT = {"yaml": "yaml", "json": "json", "dotenv": "env", "ini": "ini"}


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_bytes_value_is_refused_like_sops(fmt: str, sops_bin: str, age_key: AgeKey,
                                          tmp_path: Path) -> None:
    from secretops import fileops

    plain = tmp_path / f"f.{EXT[fmt]}"
    plain.write_text(FILES[fmt])
    made = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(plain))
    assert made.code == 0, made.err
    opened = fileops.open_file(made.out, format=fmt)
    retagged = opened.cipher.seal(b"admin", "bytes", "s:user:" if fmt == "ini" else "user:")
    data = re.sub(rb"ENC\[AES256_GCM,data:[^\]]*type:str\]", retagged.encode(), made.out,
                  count=1)
    enc = tmp_path / f"t.enc.{EXT[fmt]}"
    enc.write_bytes(data)
    theirs = sops(sops_bin, "decrypt", "--ignore-mac", str(enc))
    assert theirs.code != 0 and b"admin" not in theirs.out  # sops: a Go panic
    ours = secretops("decrypt", "--ignore-mac", str(enc))
    assert ours.code == 25 and not ours.out
    assert "type bytes" in ours.err and "b'admin'" not in ours.err and "admin" not in ours.err
