"""Bad input: one line naming the file, a documented exit code, nothing written or changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, make_age_key, secretops

SECRET = f"password: {CANARY}\nuser: admin\n"


def _encrypted(tmp_path: Path, key: AgeKey, text: str = SECRET) -> Path:
    src = tmp_path / "plain.yaml"
    src.write_text(text)
    r = secretops("encrypt", "--age", key.recipient, str(src))
    assert r.code == 0, r.err
    out = tmp_path / "secret.enc.yaml"
    out.write_bytes(r.out)
    return out


def _assert_clean_error(r: object, code: int, file: Path | str) -> None:
    assert r.code == code, r.err  # type: ignore[attr-defined]
    err: str = r.err  # type: ignore[attr-defined]
    first = err.splitlines()[0]
    assert first.startswith("secretops: error: ") and str(file) in first
    assert all(line.startswith("secretops: ") for line in err.splitlines())
    assert "Traceback" not in err and CANARY not in err
    assert r.out == b""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"a: [unclosed\n", "line"),
        (b"key: value\n  bad indent: here\n", "line"),
        (os.urandom(300) + b"\xff\xfe", "UTF-8"),
        (b"a: 1\na: 2\n", "already defined"),
        (b"- just\n- a list\n", "sequences are not supported"),
        (b"1: int key\n", "not a string"),
    ],
)
def test_decrypt_garbage(tmp_path: Path, age_key: AgeKey, content: bytes, fragment: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_bytes(content)
    r = secretops("decrypt", str(f))
    _assert_clean_error(r, 150, f)
    assert fragment in r.err


def test_decrypt_plain_file_has_no_metadata(tmp_path: Path, age_key: AgeKey) -> None:
    f = tmp_path / "plain.yaml"
    f.write_text(SECRET)
    r = secretops("decrypt", str(f))
    _assert_clean_error(r, 151, f)
    assert "metadata not found" in r.err


def test_decrypt_truncated_file(tmp_path: Path, age_key: AgeKey) -> None:
    enc = _encrypted(tmp_path, age_key)
    data = enc.read_bytes()
    enc.write_bytes(data[: len(data) // 2])
    r = secretops("decrypt", str(enc))
    assert r.code in (150, 151), r.err
    _assert_clean_error(r, r.code, enc)


@pytest.mark.parametrize("version", ["2.0.0", "4.0.0", "banana"])
def test_unsupported_version(tmp_path: Path, age_key: AgeKey, version: str) -> None:
    enc = _encrypted(tmp_path, age_key)
    enc.write_text(enc.read_text().replace("version: 3.11.0", f"version: {version}"))
    r = secretops("decrypt", str(enc))
    _assert_clean_error(r, 152, enc)


def test_no_fitting_identity_names_the_recipients(
    tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = _encrypted(tmp_path, age_key)
    other = make_age_key(tmp_path, "other.txt")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other.path))
    r = secretops("decrypt", str(enc))
    _assert_clean_error(r, 128, enc)
    assert age_key.recipient in r.err
    assert other.secret not in r.err and age_key.secret not in r.err


def test_no_identity_at_all(tmp_path: Path, age_key: AgeKey,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encrypted(tmp_path, age_key)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    r = secretops("decrypt", str(enc))
    _assert_clean_error(r, 128, enc)
    assert "no age identity" in r.err


def test_unreadable_key_file(tmp_path: Path, age_key: AgeKey,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encrypted(tmp_path, age_key)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "missing.txt"))
    r = secretops("decrypt", str(enc))
    _assert_clean_error(r, 128, enc)  # as sops: no key could be used; the hint says why
    assert "missing.txt" in r.err


def test_malformed_key_file(tmp_path: Path, age_key: AgeKey,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _encrypted(tmp_path, age_key)
    bad = tmp_path / "bad-key.txt"
    bad.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(bad))
    r = secretops("decrypt", str(enc))
    _assert_clean_error(r, 128, enc)
    assert "bad-key.txt: line 1" in r.err
    assert "NOTAKEY" not in r.err  # never echo key material


def test_encrypt_already_encrypted(tmp_path: Path, age_key: AgeKey) -> None:
    enc = _encrypted(tmp_path, age_key)
    before = enc.read_bytes()
    r = secretops("encrypt", "-i", "--age", age_key.recipient, str(enc))
    _assert_clean_error(r, 203, enc)
    assert enc.read_bytes() == before


def test_encrypt_without_keys(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SECRET)
    r = secretops("encrypt", "-i", str(f))
    _assert_clean_error(r, 111, f)
    assert f.read_text() == SECRET


def test_encrypt_with_two_selection_rules(tmp_path: Path, age_key: AgeKey) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SECRET)
    r = secretops("encrypt", "--age", age_key.recipient, "--encrypted-regex", "a",
                  "--unencrypted-suffix", "_x", str(f))
    _assert_clean_error(r, 8, f)


def test_missing_file(tmp_path: Path) -> None:
    r = secretops("decrypt", str(tmp_path / "nope.yaml"))
    _assert_clean_error(r, 2, tmp_path / "nope.yaml")


def test_invalid_recipient(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SECRET)
    r = secretops("encrypt", "--age", "age1notarecipient", str(f))
    _assert_clean_error(r, 154, f)


def test_bad_extract_path(tmp_path: Path, age_key: AgeKey) -> None:
    enc = _encrypted(tmp_path, age_key)
    assert secretops("decrypt", "--extract", "data.password", str(enc)).code == 91
    r = secretops("decrypt", "--extract", '["nope"]', str(enc))
    _assert_clean_error(r, 1, enc)  # a path the file does not have: exit 1, as sops
    assert '["nope"]' in r.err


# --- files: atomic in-place writes, modes -----------------------------------------------------


def test_in_place_keeps_mode_and_round_trips(tmp_path: Path, age_key: AgeKey) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SECRET)
    f.chmod(0o640)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(f)).code == 0
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert CANARY not in f.read_text()
    assert secretops("decrypt", "-i", str(f)).code == 0
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert f.read_text() == SECRET
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secretops-")] == []


def test_in_place_writes_through_a_symlink(tmp_path: Path, age_key: AgeKey) -> None:
    """As sops: the link stays a link and its target is encrypted, never left in plaintext."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "s.yaml"
    target.write_text(SECRET)
    target.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(link)).code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert CANARY not in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert secretops("decrypt", "-i", str(link)).code == 0
    assert link.is_symlink() and target.read_text() == SECRET
    assert [p.name for p in target.parent.iterdir()] == ["s.yaml"]  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a link to another user")
def test_a_planted_link_in_a_shared_directory_is_not_followed(
    tmp_path: Path, age_key: AgeKey
) -> None:
    """decrypt --output /tmp/x, where another user made x a link to a file of theirs."""
    enc = _encrypted(tmp_path, age_key)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    loot = tmp_path / "loot"
    loot.write_text("")
    link = shared / "out.yaml"
    link.symlink_to(loot)
    os.lchown(link, 4242, 4242)
    r = secretops("decrypt", "--output", str(link), str(enc))
    assert r.code == 3 and "symbolic link another user owns" in r.err
    assert loot.read_text() == "" and link.is_symlink()


def test_decrypt_output_new_file_is_private(tmp_path: Path, age_key: AgeKey) -> None:
    enc = _encrypted(tmp_path, age_key)
    out = tmp_path / "plain-out.yaml"
    assert secretops("decrypt", "--output", str(out), str(enc)).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text() == SECRET


def test_stdin_with_filename_override(tmp_path: Path, age_key: AgeKey) -> None:
    r = secretops("encrypt", "--age", age_key.recipient, "--filename-override", "x.json",
                  input=b'{"a": "b"}')
    assert r.code == 0, r.err
    assert r.text.lstrip().startswith("{")
    back = secretops("decrypt", "--input-type", "json", input=r.out)
    assert back.code == 0, back.err
    assert b'"b"' in back.out


# --- keygen ----------------------------------------------------------------------------------


def test_keygen_creates_private_key_and_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "sops" / "age" / "keys.txt"
    r = secretops("keygen", "-o", str(path))
    assert r.code == 0, r.err
    recipient = r.text.strip()
    assert recipient.startswith("age1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    before = path.read_bytes()
    again = secretops("keygen", "-o", str(path))
    _assert_clean_error(again, 153, path)
    assert path.read_bytes() == before
    assert secretops("keygen", "-y", str(path)).text.strip() == recipient


def test_default_key_location_is_used(tmp_path: Path) -> None:
    home = Path(os.environ["XDG_CONFIG_HOME"])
    r = secretops("keygen", "-o", str(home / "sops" / "age" / "keys.txt"))
    f = tmp_path / "s.yaml"
    f.write_text(SECRET)
    enc = secretops("encrypt", "--age", r.text.strip(), str(f))
    f.write_bytes(enc.out)
    assert secretops("decrypt", str(f)).text == SECRET


def test_filestatus(tmp_path: Path, age_key: AgeKey) -> None:
    enc = _encrypted(tmp_path, age_key)
    assert secretops("filestatus", str(enc)).text == '{"encrypted":true}\n'
    assert secretops("filestatus", str(tmp_path / "plain.yaml")).text == '{"encrypted":false}\n'
