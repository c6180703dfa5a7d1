"""Tampering with an encrypted file makes decrypt fail cleanly and write nothing.

And what the SOPS format does *not* authenticate behaves as docs/security.md says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, secretops

PLAIN = (
    f"db:\n  user: admin\n  password: {CANARY}\n  list:\n    - one\n    - two\n"
    "other: value\nempty: ''\nnothing: null\n# a comment\n"
)


@pytest.fixture
def enc_file(tmp_path: Path, age_key: AgeKey) -> Path:
    src = tmp_path / "s.yaml"
    src.write_text(PLAIN)
    r = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert r.code == 0, r.err
    out = tmp_path / "s.enc.yaml"
    out.write_bytes(r.out)
    return out


def _line(text: str, key: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(key))


def _flip_b64(field: str) -> str:
    import base64

    raw = bytearray(base64.b64decode(field))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper_part(text: str, key: str, part: str) -> str:
    line = _line(text, key)
    m = re.search(part + r":([^,\]]+)", line)
    assert m
    return text.replace(line, line.replace(m.group(0), f"{part}:{_flip_b64(m.group(1))}"))


def _swap_values(text: str, a: str, b: str) -> str:
    """Exchange the ciphertexts of two keys (each key keeps its place)."""
    la, lb = _line(text, a), _line(text, b)
    ka, va = la.split(": ", 1)
    kb, vb = lb.split(": ", 1)
    return text.replace(la, "@@A@@").replace(lb, f"{kb}: {va}").replace("@@A@@", f"{ka}: {vb}")


TAMPERS = {
    "value-data": (lambda t: _tamper_part(t, "password:", "data"), 25),
    "value-iv": (lambda t: _tamper_part(t, "password:", "iv"), 25),
    "value-tag": (lambda t: _tamper_part(t, "password:", "tag"), 25),
    "mac": (lambda t: _tamper_part(t, "mac:", "data"), 51),
    "lastmodified": (
        lambda t: re.sub(r"lastmodified: \S+", 'lastmodified: "2001-01-01T00:00:00Z"', t), 51
    ),
    "swap-two-values": (lambda t: _swap_values(t, "user:", "password:"), 25),
    "move-value-to-other-key": (
        lambda t: t.replace(_line(t, "other:"), "other: " + _line(t, "user:").split(": ", 1)[1]),
        25,
    ),
    "swap-list-items": (
        lambda t: (lambda items: t.replace(items[0], "@@").replace(items[1], items[0])
                   .replace("@@", items[1]))([ln for ln in t.splitlines() if "- ENC" in ln]),
        51,
    ),
    "remove-value": (lambda t: t.replace(_line(t, "other:") + "\n", ""), 51),
    "add-plain-value": (lambda t: t.replace("empty: ''", "empty: ''\nadded: plain"), 25),
    "add-copied-value": (
        lambda t: t.replace("empty: ''", "empty: ''\nother: " + _line(t, "other:").split(": ")[1]),
        150,
    ),
    "duplicate-list-item": (  # a valid ciphertext at a valid path: only the MAC can tell
        lambda t: (lambda item: t.replace(item, item + "\n" + item, 1))(
            next(ln for ln in t.splitlines() if "- ENC" in ln)
        ),
        51,
    ),
    "remove-list-item": (
        lambda t: t.replace(next(ln for ln in t.splitlines() if "- ENC" in ln) + "\n", ""), 51
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampering_fails_and_writes_nothing(name: str, enc_file: Path, tmp_path: Path) -> None:
    change, code = TAMPERS[name]
    original = enc_file.read_text()
    tampered = change(original)
    assert tampered != original
    enc_file.write_text(tampered)
    out = tmp_path / "out.yaml"
    r = secretops("decrypt", "--output", str(out), str(enc_file))
    assert r.code == code, r.err
    assert r.err.startswith("secretops: error: ") and "Traceback" not in r.err
    assert str(enc_file) in r.err.splitlines()[0]
    assert CANARY not in r.err
    assert not out.exists()
    assert enc_file.read_text() == tampered
    r2 = secretops("decrypt", "-i", str(enc_file))
    assert r2.code == code
    assert enc_file.read_text() == tampered  # -i left the file untouched


def test_error_names_the_path(enc_file: Path) -> None:
    enc_file.write_text(_tamper_part(enc_file.read_text(), "password:", "tag"))
    r = secretops("decrypt", str(enc_file))
    assert '["db"]["password"]' in r.err


def test_ignore_mac_recovers_values_after_a_mac_change(enc_file: Path) -> None:
    enc_file.write_text(TAMPERS["remove-value"][0](enc_file.read_text()))
    r = secretops("decrypt", "--ignore-mac", str(enc_file))
    assert r.code == 0 and CANARY in r.text


# --- what the format does not authenticate (docs/security.md) --------------------------------


def test_type_tag_is_not_authenticated_but_parsing_catches_nonsense(enc_file: Path) -> None:
    text = enc_file.read_text()
    line = _line(text, "user:")
    enc_file.write_text(text.replace(line, line.replace("type:str", "type:int")))
    r = secretops("decrypt", str(enc_file))
    # 'admin' is not an int: decryption succeeds (the tag is not in the AAD) but parsing fails
    assert r.code == 25 and "not a valid int" in r.err


def test_comments_are_not_covered_by_the_mac(enc_file: Path) -> None:
    text = enc_file.read_text()
    comment = next(ln for ln in text.splitlines() if ln.startswith("#ENC["))
    enc_file.write_text(text.replace(comment + "\n", ""))  # remove the encrypted comment
    r = secretops("decrypt", str(enc_file))
    assert r.code == 0 and "# a comment" not in r.text


def test_empty_strings_and_nulls_are_not_covered(enc_file: Path) -> None:
    text = enc_file.read_text().replace("empty: ''", "empty: ''\nsneaky: ''\nnull2: null")
    enc_file.write_text(text)
    r = secretops("decrypt", str(enc_file))
    assert r.code == 0 and "sneaky: ''" in r.text


def test_recipient_list_is_not_authenticated(enc_file: Path) -> None:
    text = enc_file.read_text()
    rec = _line(text, "- recipient:").split(": ", 1)[1]
    fake = "age1" + "q" * 58
    enc_file.write_text(text.replace(rec, fake))
    r = secretops("decrypt", str(enc_file))
    assert r.code == 0  # the label is not checked; the wrapped key is what counts


def test_mac_only_encrypted_leaves_plain_values_unauthenticated(
    tmp_path: Path, age_key: AgeKey
) -> None:
    src = tmp_path / "m.yaml"
    src.write_text("secret_enc: s\npublic: visible\n")
    r = secretops("encrypt", "--age", age_key.recipient, "--encrypted-suffix", "_enc",
                  "--mac-only-encrypted", str(src))
    assert r.code == 0, r.err
    f = tmp_path / "m.enc.yaml"
    f.write_bytes(r.out.replace(b"public: visible", b"public: CHANGED"))
    ok = secretops("decrypt", str(f))
    assert ok.code == 0 and "public: CHANGED" in ok.text
    # without mac_only_encrypted the same change is caught
    r2 = secretops("encrypt", "--age", age_key.recipient, "--encrypted-suffix", "_enc", str(src))
    f.write_bytes(r2.out.replace(b"public: visible", b"public: CHANGED"))
    assert secretops("decrypt", str(f)).code == 51


def test_anyone_with_the_public_keys_writes_a_file_that_decrypts_as_valid(
    tmp_path: Path, age_key: AgeKey, enc_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threat model: a valid MAC means "written by someone who had the data key", not "by
    someone you trust". The recipients are in every file: with them alone (no identity) anyone
    writes a new file that decrypts without complaint."""
    import yaml

    recipients = [e["recipient"] for e in yaml.safe_load(enc_file.read_text())["sops"]["age"]]
    forged = tmp_path / "forged.yaml"
    forged.write_text("db:\n  password: attacker-chosen\n")
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "nobody"))  # no identity at all
    assert secretops("encrypt", "-i", "--age", ",".join(recipients), str(forged)).code == 0
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.path))
    out = secretops("decrypt", str(forged))
    assert out.code == 0 and "attacker-chosen" in out.text
