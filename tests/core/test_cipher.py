"""The value cipher: format, typing, IV reuse rules, tamper detection."""

from __future__ import annotations

import os

import pytest

from secretops.core.cipher import CipherError, ValueCipher, is_encrypted
from secretops.core.tree import Comment
from secretops.core.values import Timestamp, format_float, from_bytes, to_bytes

KEY = bytes(range(32))


def cipher() -> ValueCipher:
    return ValueCipher(KEY, os.urandom)


@pytest.mark.parametrize(
    "value",
    ["s3cret", "héllo 😀", "multi\nline\n", 42, -7, 0, 1.5, 1e21, -0.25, True, False,
     Comment(" a comment"), Timestamp("2001-12-14T21:59:43.1-05:00")],
)
def test_round_trip_keeps_value_and_type(value: object) -> None:
    c = cipher()
    enc = c.encrypt(value, "a:b:")  # type: ignore[arg-type]
    assert is_encrypted(enc)
    out = c.decrypt(enc, "a:b:")
    assert out == value and type(out) is type(value)


def test_format_is_sops_v3() -> None:
    enc = cipher().encrypt("x", "k:")
    assert enc.startswith("ENC[AES256_GCM,data:") and enc.endswith(",type:str]")
    iv_b64 = enc.split(",iv:")[1].split(",tag:")[0]
    import base64

    assert len(base64.b64decode(iv_b64)) == 32


def test_empty_string_stays_empty() -> None:
    assert cipher().encrypt("", "k:") == ""
    assert cipher().decrypt("", "k:") == ""


def test_wrong_path_fails() -> None:
    c = cipher()
    enc = c.encrypt("x", "a:")
    with pytest.raises(CipherError, match="authentication failed"):
        c.decrypt(enc, "b:")


@pytest.mark.parametrize("part", ["data", "iv", "tag"])
def test_any_bit_flip_fails(part: str) -> None:
    import base64

    c = cipher()
    enc = c.encrypt("s3cret value", "a:")
    head, rest = enc.split(f"{part}:", 1)
    field, tail = rest.split(",", 1)
    raw = bytearray(base64.b64decode(field))
    raw[0] ^= 1
    tampered = f"{head}{part}:{base64.b64encode(bytes(raw)).decode()},{tail}"
    with pytest.raises(CipherError):
        c.decrypt(tampered, "a:")


def test_iv_reused_only_for_identical_value_and_path() -> None:
    """The minimal-diff seam: same key+path+plaintext → same ciphertext; anything else → new IV."""
    c = cipher()
    original = c.encrypt("unchanged", "a:")
    other = c.encrypt("old value", "b:")
    reader = ValueCipher(KEY, os.urandom)
    assert reader.decrypt(original, "a:") == "unchanged"
    assert reader.decrypt(other, "b:") == "old value"
    assert reader.encrypt("unchanged", "a:") == original  # reproduced byte for byte
    changed = reader.encrypt("new value", "b:")
    iv = lambda e: e.split(",iv:")[1].split(",")[0]  # noqa: E731
    assert iv(changed) != iv(other)  # a changed value never reuses the old nonce
    assert reader.encrypt("unchanged", "elsewhere:") != original  # another path: fresh IV
    # a fresh cipher (no stash) never reproduces a ciphertext
    assert ValueCipher(KEY, os.urandom).encrypt("unchanged", "a:") != original


def test_identical_values_at_one_path_get_back_their_own_ivs() -> None:
    """List items and comments share their AAD: the n-th re-encryption of the same value gets
    the n-th IV seen, each IV at most once; one more copy gets a fresh IV."""
    c = cipher()
    first, second = c.encrypt("x", "l:"), c.encrypt("x", "l:")
    assert first != second
    reader = ValueCipher(KEY, os.urandom)
    assert reader.decrypt(first, "l:") == reader.decrypt(second, "l:") == "x"
    again = [reader.encrypt("x", "l:") for _ in range(3)]
    assert again[:2] == [first, second] and again[2] not in (first, second)


def test_a_reading_cipher_remembers_no_iv() -> None:
    """``remember=False`` (plain decrypt, textconv, exec-env): nothing kept, nothing reused."""
    original = cipher().encrypt("unchanged", "a:")
    reader = ValueCipher(KEY, os.urandom, remember=False)
    assert reader.decrypt(original, "a:") == "unchanged"
    assert reader.encrypt("unchanged", "a:") != original


@pytest.mark.parametrize("value", ["s3cret", "héllo 😀", "", 42, 1.5, True,
                                   Comment(" c"), Timestamp("2001-12-14T21:59:43Z")])
def test_open_returns_the_plaintext_bytes(value: object) -> None:
    """The MAC hashes a string's plaintext bytes as they come out of the cipher."""
    c = cipher()
    out, plain = c.open(c.encrypt(value, "k:"), "k:")  # type: ignore[arg-type]
    assert out == value and type(out) is type(value)
    assert plain == to_bytes(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("enc", [
    # sops's own expression is not anchored at the end and takes any characters
    "ENC[AES256_GCM,data:{d},iv:{i},tag:{t},type:str]trailing",
    "ENC[AES256_GCM,data:{d},iv:{i},tag:{t},type:str]]",
])
def test_unusual_but_valid_spellings_still_decrypt(enc: str) -> None:
    c = cipher()
    good = c.encrypt("v", "k:")
    d, rest = good[len("ENC[AES256_GCM,data:"):].split(",iv:")
    i, rest = rest.split(",tag:")
    t = rest.split(",type:")[0]
    text = enc.format(d=d, i=i, t=t)
    if text.endswith("]]"):  # type "str]" is not a type sops knows
        with pytest.raises(CipherError):
            c.decrypt(text, "k:")
    else:
        assert c.decrypt(text, "k:") == "v"


def test_stash_is_per_cipher_and_key() -> None:
    enc = cipher().encrypt("v", "a:")
    other_key = ValueCipher(bytes(32), os.urandom)
    with pytest.raises(CipherError):
        other_key.decrypt(enc, "a:")


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (1.5, "1.5"), (1e21, "1000000000000000000000"), (1e-7, "0.0000001"),
     (100000000000000000000.0, "100000000000000000000"), (-0.5, "-0.5"),
     (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (0.1, "0.1"),
     (-9223372036854775809.0, "-9223372036854776000")],
)
def test_go_float_formatting(value: float, text: str) -> None:
    assert format_float(value) == text
    assert to_bytes(value) == text.encode()


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_bool_parsing(text: str) -> None:
    assert from_bytes(text.encode(), "bool") is True


def test_bool_bytes_are_capitalised_like_sops() -> None:
    assert to_bytes(True) == b"True" and to_bytes(False) == b"False"


@pytest.mark.parametrize(("data", "type_"), [(b"x1", "int"), (b"1.2.3", "float"),
                                             (b"yes", "bool"), (b"x", "nosuchtype")])
def test_malformed_typed_plaintext(data: bytes, type_: str) -> None:
    with pytest.raises(ValueError):
        from_bytes(data, type_)
