"""Formatting fidelity: goldens from sops's formatting issues round-trip byte for byte."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from tests.helpers import TESTDATA, AgeKey, data_of, secretops, sops

GOLDEN = sorted((TESTDATA / "fidelity").glob("*.yaml"))


def _without_sops_blocks(text: str) -> str:
    return re.sub(r"(?ms)^sops:\r?\n(?:[ \t]+.*?\n|\r?\n)*", "", text)


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.name for g in GOLDEN])
def test_round_trip_is_byte_identical_and_sops_reads_it(
    golden: Path, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    enc = secretops("encrypt", "--age", age_key.recipient, str(golden))
    assert enc.code == 0, enc.err
    f = tmp_path / golden.name
    f.write_bytes(enc.out)
    dec = secretops("decrypt", str(f))
    assert dec.code == 0, dec.err
    assert dec.out == golden.read_bytes()
    theirs = sops(sops_bin, "decrypt", str(f))
    assert theirs.code == 0, theirs.err
    assert "ENC[" not in theirs.text
    assert data_of(theirs.out, "yaml") == data_of(golden.read_bytes(), "yaml")


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.name for g in GOLDEN])
def test_encrypted_file_changes_only_values_and_comments(
    golden: Path, age_key: AgeKey
) -> None:
    enc = secretops("encrypt", "--age", age_key.recipient, str(golden))
    assert enc.code == 0, enc.err
    before = golden.read_text().splitlines()
    after = _without_sops_blocks(enc.text).splitlines()
    # every comment is encrypted, wherever it sits (after a key, a block scalar's header, ...)
    assert [line for line in after if re.search(r"(?:^|[ \t])#(?!ENC\[)", line)] == []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        assert op != "insert", f"lines added: {after[j1:j2]}"
        for line in after[j1:j2]:
            # a changed line carries a ciphertext, or is a block scalar header now ending in '-'
            assert "ENC[" in line or line.rstrip().endswith(("|-", ">-")), line
        for line in before[i1:i2]:
            key = line.split(":", 1)[0]
            if ":" in line and not line.lstrip().startswith(("#", "-")):
                # the key part of every changed line survives
                assert any(a.startswith(key + ":") for a in after[j1:j2]) or not key.strip(), line


def test_lossy_spellings_keep_the_data(tmp_path: Path, age_key: AgeKey, sops_bin: str) -> None:
    """What the encrypted file cannot carry changes spelling only, exactly as documented."""
    src = TESTDATA / "fidelity-lossy" / "lossy.yaml"
    expected = (TESTDATA / "fidelity-lossy" / "lossy.expected.yaml").read_bytes()
    enc = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0, enc.err
    f = tmp_path / "lossy.enc.yaml"
    f.write_bytes(enc.out)
    dec = secretops("decrypt", str(f))
    assert dec.out == expected
    assert data_of(dec.out, "yaml") == data_of(src.read_bytes(), "yaml")
    assert data_of(sops(sops_bin, "decrypt", str(f)).out, "yaml") == data_of(expected, "yaml")


def test_typed_tags_are_dropped_like_sops(tmp_path: Path, age_key: AgeKey, sops_bin: str) -> None:
    src = tmp_path / "tags.yaml"
    src.write_text('b: !!binary aGVsbG8=\ni: !!int "5"\nf: !!float 1\nkeep: !!str 12\n'
                   "when: 2001-12-14\n")
    enc = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0, enc.err
    assert "!!binary" not in enc.text and "!!int" not in enc.text and "!!float" not in enc.text
    assert "keep: !!str ENC[" in enc.text and "type:float" in enc.text and "type:time" in enc.text
    f = tmp_path / "tags.enc.yaml"
    f.write_bytes(enc.out)
    ours = secretops("decrypt", str(f))
    assert ours.text == "b: hello\ni: 5\nf: 1\nkeep: !!str 12\nwhen: 2001-12-14T00:00:00Z\n"
    theirs = sops(sops_bin, "decrypt", str(f))
    assert theirs.code == 0, theirs.err
    assert data_of(theirs.out, "yaml") == data_of(ours.out, "yaml")
