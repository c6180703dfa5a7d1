"""updatekeys: keys follow .sops.yaml; values, lastmodified and mac stay byte-identical."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import AgeKey, data_of, make_age_key, secretops, sops

TEXT = "db:\n  password: s3cret\n  user: admin\n# note\n"


def _config(directory: Path, *recipients: str, groups: list[list[str]] | None = None,
            threshold: int = 0) -> None:
    if groups:
        body = f"  - shamir_threshold: {threshold}\n    key_groups:\n" if threshold else (
            "  - key_groups:\n")
        body += "".join("      - age:\n" + "".join(f"          - {r}\n" for r in g)
                        for g in groups)
    else:
        body = f"  - age: {','.join(recipients)}\n"
    (directory / ".sops.yaml").write_text("creation_rules:\n" + body)


def _enc_lines(text: str) -> list[str]:
    """Every value's ciphertext line, plus lastmodified and mac."""
    return [ln for ln in text.splitlines()
            if ("ENC[" in ln) or ln.strip().startswith("lastmodified:")]


@pytest.fixture
def enc(tmp_path: Path, age_key: AgeKey) -> Path:
    _config(tmp_path, age_key.recipient)
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    assert secretops("encrypt", "-i", str(f)).code == 0
    return f


def test_adds_and_removes_recipients_values_untouched(
    enc: Path, tmp_path: Path, age_key: AgeKey, sops_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = enc.read_text()
    new = make_age_key(tmp_path, "new.txt")
    _config(tmp_path, age_key.recipient, new.recipient)
    r = secretops("updatekeys", "--yes", str(enc))
    assert r.code == 0, r.err
    assert f"+ age recipient {new.recipient}" in r.text
    after = enc.read_text()
    assert _enc_lines(after) == _enc_lines(before)
    old_block = re.search(r"-----BEGIN AGE.*?-----END AGE ENCRYPTED FILE-----", before, re.S)
    assert old_block and old_block.group(0) in after  # the kept key's entry is as it was
    for key in (age_key, new):
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
        assert secretops("decrypt", str(enc)).text == TEXT
        plain = sops(sops_bin, "decrypt", str(enc)).out
        assert data_of(plain, "yaml") == data_of(TEXT.encode(), "yaml")
    # and removing the old one
    _config(tmp_path, new.recipient)
    r = secretops("updatekeys", "-y", str(enc))
    assert r.code == 0 and f"- age recipient {age_key.recipient}" in r.text
    assert age_key.recipient not in enc.read_text()
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.path))
    assert secretops("decrypt", str(enc)).code == 128


def test_no_terminal_and_no_yes_changes_nothing(enc: Path, tmp_path: Path,
                                                age_key: AgeKey) -> None:
    before = enc.read_bytes()
    _config(tmp_path, age_key.recipient, make_age_key(tmp_path, "n.txt").recipient)
    r = secretops("updatekeys", str(enc))
    assert r.code == 155
    assert "no terminal" in r.err and enc.read_bytes() == before


def test_up_to_date_file_is_left_alone(enc: Path) -> None:
    before = enc.read_bytes()
    r = secretops("updatekeys", str(enc))
    assert r.code == 0 and "already up to date" in r.text
    assert enc.read_bytes() == before


def test_to_key_groups_with_threshold(enc: Path, tmp_path: Path, age_key: AgeKey,
                                      sops_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    before = enc.read_text()
    others = [make_age_key(tmp_path, f"g{i}.txt") for i in range(2)]
    _config(tmp_path, groups=[[age_key.recipient], [others[0].recipient],
                              [others[1].recipient]], threshold=2)
    r = secretops("updatekeys", "--yes", str(enc))
    assert r.code == 0, r.err
    assert "shamir threshold: - -> 2" in r.text
    assert _enc_lines(enc.read_text()) == _enc_lines(before)
    both = tmp_path / "both.txt"
    both.write_text(others[0].path.read_text() + others[1].path.read_text())
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(both))
    assert secretops("decrypt", str(enc)).text == TEXT
    plain = sops(sops_bin, "decrypt", str(enc)).out
    assert data_of(plain, "yaml") == data_of(TEXT.encode(), "yaml")


def test_a_failing_file_does_not_stop_the_others(enc: Path, tmp_path: Path,
                                                 age_key: AgeKey) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("not: encrypted\n")
    new = make_age_key(tmp_path, "n.txt")
    _config(tmp_path, age_key.recipient, new.recipient)
    r = secretops("updatekeys", "--yes", str(broken), str(enc))
    assert r.code == 180  # some files failed, not all alike (one alone: its own 151)
    assert broken.read_text() == "not: encrypted\n"
    assert new.recipient in enc.read_text()


def test_an_empty_key_group_is_refused_and_the_file_kept(
    tmp_path: Path, age_key: AgeKey
) -> None:
    """A 2-of-2 file whose second group would lose its only key: it could never be opened
    again, so updatekeys refuses (as sops does) and writes nothing."""
    other = make_age_key(tmp_path, "other.txt")
    _config(tmp_path, groups=[[age_key.recipient], [other.recipient]], threshold=2)
    f = tmp_path / "g.yaml"
    f.write_text(TEXT)
    assert secretops("encrypt", "-i", str(f)).code == 0
    before = f.read_bytes()
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - age:\n          - {age_key.recipient}\n      - age: []\n")
    r = secretops("updatekeys", "--yes", str(f))
    assert r.code != 0 and "empty key group" in r.err
    assert f.read_bytes() == before


def test_updatekeys_decrypts_no_value(
    enc: Path, tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted: as sops's updatekeys, only the data key is needed. It is checked on the MAC
    (one decryption); before, every value was decrypted and the MAC computed from them."""
    import os

    from secretops.bulk.keyjobs import apply_keys, plan_keys
    from secretops.core.cipher import ValueCipher

    _config(tmp_path, age_key.recipient, make_age_key(tmp_path, "new.txt").recipient)
    before = enc.read_text()
    opened: list[str] = []
    real = ValueCipher.open

    def counted(self: ValueCipher, text: str, aad: str) -> tuple[object, bytes]:
        opened.append(aad)
        return real(self, text, aad)

    monkeypatch.setattr(ValueCipher, "open", counted)
    monkeypatch.chdir(tmp_path)
    planned = plan_keys(str(enc), input_type=None, shamir=0, config_path=None, env=os.environ)
    assert planned.plan.changed
    apply_keys(str(enc), planned, os.environ)
    assert len(opened) == 1  # the MAC, with lastmodified as its associated data
    assert _enc_lines(enc.read_text()) == _enc_lines(before)


def _swap_values(path: Path) -> None:
    """The two values' ciphertexts exchanged: neither decrypts at the other's path."""
    text = path.read_text()
    pw = re.search(r"password: (ENC\[[^\]]*\])", text)
    user = re.search(r"user: (ENC\[[^\]]*\])", text)
    assert pw and user
    path.write_text(text.replace(pw.group(1), "@PW@").replace(user.group(1), pw.group(1))
                    .replace("@PW@", user.group(1)))


def test_a_damaged_value_is_kept_as_sops_keeps_it(
    enc: Path, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    """updatekeys does not read the values, in sops as here: a damaged value stays as it was
    (and still fails every decryption); only the key entries change."""
    _swap_values(enc)
    theirs = tmp_path / "theirs.yaml"
    theirs.write_bytes(enc.read_bytes())
    before = enc.read_text()
    _config(tmp_path, age_key.recipient, make_age_key(tmp_path, "new.txt").recipient)
    assert sops(sops_bin, "updatekeys", "-y", str(theirs)).code == 0
    r = secretops("updatekeys", "-y", str(enc))
    assert r.code == 0, r.err
    assert _enc_lines(enc.read_text()) == _enc_lines(before)
    assert secretops("decrypt", str(enc)).code != 0
    assert sops(sops_bin, "decrypt", str(enc)).code != 0


def test_a_data_key_that_does_not_open_the_mac_is_not_wrapped(
    enc: Path, tmp_path: Path, age_key: AgeKey
) -> None:
    """A mac sealed under another key: the key the entries give is not the file's, and it
    is wrapped for no one (exit 51, the file as it was)."""
    from secretops import fileops
    from secretops.core.cipher import ValueCipher

    text = enc.read_text()
    opened = fileops.open_file(enc.read_bytes(), format="yaml")
    stamp = opened.metadata.lastmodified
    other = ValueCipher(bytes(range(32)), lambda n: bytes(n)).encrypt("0" * 128, stamp)
    enc.write_text(text.replace(opened.metadata.mac, other))
    before = enc.read_bytes()
    _config(tmp_path, age_key.recipient, make_age_key(tmp_path, "new.txt").recipient)
    r = secretops("updatekeys", "-y", str(enc))
    assert r.code == 51, r.err
    assert "MAC mismatch" in r.err
    assert enc.read_bytes() == before
