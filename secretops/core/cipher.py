"""The per-value cipher: ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]``.

AES-256-GCM with sops's non-standard 32-byte nonce, a 16-byte tag, standard base64 with padding,
and the value's key path (``a:b:c:``) as associated data, so a ciphertext moved to another path
no longer decrypts.

**IV reuse, and why it is safe.** A :class:`ValueCipher` remembers, for every value it
decrypts, the IV that value had (its *stash*, keyed by associated data, type and plaintext). When
the same cipher later encrypts the same plaintext at the same path, it reuses that IV and so
reproduces the identical ciphertext: an edit changes only the values that changed. The stash
belongs to one data key and one cipher object, and an IV is only reused for the identical
(key, path, type, plaintext) — i.e. only to produce a ciphertext that already exists. Any new
or changed plaintext gets a fresh random IV, so GCM never sees one nonce with two messages.
Identical values at one path (list items, comments) each get back their own IV, in order, and
each remembered IV is used at most once: re-encrypting never makes two equal values show equal
ciphertexts that were different before.

Randomness is a parameter (``random``), never read from a global here.
"""

from __future__ import annotations

import binascii
import re
from binascii import a2b_base64
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secretops.core.values import Scalar, from_bytes, to_bytes, type_name

NONCE_SIZE = 32
TAG_SIZE = 16
# sops writes 32-byte IVs; Go's GCM takes other sizes, the AES-GCM here takes 8 to 128 bytes
MIN_NONCE, MAX_NONCE = 8, 128
ENC_PREFIX = "ENC[AES256_GCM,"
_ENC_HEAD = "ENC[AES256_GCM,data:"
_ENC_WELL_FORMED = re.compile(
    r"ENC\[AES256_GCM,data:([A-Za-z0-9+/]+=*),iv:([A-Za-z0-9+/]+=*),"
    r"tag:([A-Za-z0-9+/]+=*),type:([a-z]+)\]"
)

Random = Callable[[int], bytes]


class CipherError(ValueError):
    """A value could not be decrypted or parsed. The message never contains plaintext."""


def is_encrypted(value: object) -> bool:
    """Does this scalar look like a sops-encrypted value?"""
    return isinstance(value, str) and value.startswith(ENC_PREFIX)


def enc_fields(text: str) -> tuple[str, ...] | None:
    """The four fields of ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]``, or None.

    A fast path for the well-formed value (base64 fields, a lowercase type). Anything unusual
    gets the fields sops's regular expression ``^ENC\\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),
    type:(.+)\\]`` would give (greedy groups, ``.`` never a line end), found without
    backtracking: each group ends at the last delimiter that still leaves room for the rest.
    A backtracking regex takes cubic time here (a 9 KB value took 14 s).
    """
    m = _ENC_WELL_FORMED.fullmatch(text)
    if m is not None:
        return m.groups()
    if not text.startswith(_ENC_HEAD):
        return None
    line = text[len(_ENC_HEAD):].split("\n", 1)[0]
    close = line.rfind("]")
    # each delimiter must end at least one character before the next begins (``.+``)
    type_at = line.rfind(",type:", 0, close - 1) if close > 0 else -1
    tag_at = line.rfind(",tag:", 0, type_at - 1) if type_at > 0 else -1
    iv_at = line.rfind(",iv:", 0, tag_at - 1) if tag_at > 0 else -1
    if iv_at < 1:
        return None
    return (line[:iv_at], line[iv_at + 4:tag_at], line[tag_at + 5:type_at],
            line[type_at + 6:close])


def _shown(type_: str) -> str:
    """A ``type:`` tag fit for a message (the file's own text: short, printable, or not shown)."""
    return type_ if len(type_) <= 16 and type_.isascii() and type_.isalnum() else "type"


def _b64decode(text: str) -> bytes:
    """Base64 as Go's ``StdEncoding`` reads it (sops): padded, only the alphabet, line ends
    ignored. Python's default drops any other character instead, so ``data:!!…`` decrypted
    here while sops refuses the file (exit 25)."""
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "").replace("\n", "")
    return a2b_base64(text, strict_mode=True)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


class ValueCipher:
    """Encrypts and decrypts single values under one 32-byte data key."""

    __slots__ = ("_aead", "_random", "_stash")

    def __init__(self, key: bytes, random: Random, *, remember: bool = True) -> None:
        """``remember=False``: a cipher that only reads (plain ``decrypt``) keeps no IVs."""
        if len(key) != 32:
            raise CipherError("the data key must be 32 bytes")
        self._aead = AESGCM(key)
        self._random = random
        # (AAD, type, plaintext) -> the IVs seen, in file order: list items and comments share
        # their AAD, so identical ones get back their own IVs, the n-th use the n-th
        self._stash: dict[tuple[str, str, bytes], list[bytes]] | None = (
            {} if remember else None
        )

    def adopt(self, other: ValueCipher) -> None:
        """Also reuse the IVs ``other`` (a cipher under the same key) has seen, where this one
        has none: values taken from another version of the file keep their ciphertext."""
        if self._stash is None or other._stash is None:
            return
        for k, ivs in other._stash.items():
            self._stash.setdefault(k, list(ivs))

    def encrypt(self, value: Scalar, aad: str) -> str:
        """Encrypt one leaf. Empty strings stay empty, as in sops."""
        if value == "" and isinstance(value, str):
            return ""
        return self.seal(to_bytes(value), type_name(value), aad)

    def seal(self, plain: bytes, type_: str, aad: str) -> str:
        """Encrypt a leaf given as its bytes (:func:`~secretops.core.values.to_bytes`) and its
        ``type:`` tag; the old IV when this cipher saw the identical value at ``aad``."""
        ivs = self._stash.get((aad, type_, plain)) if self._stash else None
        iv = ivs.pop(0) if ivs else self._random(NONCE_SIZE)
        sealed = self._aead.encrypt(iv, plain, aad.encode("utf-8", "surrogateescape"))
        return (
            f"ENC[AES256_GCM,data:{_b64(sealed[:-TAG_SIZE])},iv:{_b64(iv)},"
            f"tag:{_b64(sealed[-TAG_SIZE:])},type:{type_}]"
        )

    def decrypt(self, text: str, aad: str) -> Scalar:
        """Decrypt one ``ENC[…]`` value (and remember its IV for reuse, if this cipher does)."""
        return self.open(text, aad)[0]

    def open(self, text: str, aad: str) -> tuple[Scalar, bytes]:
        """Decrypt one ``ENC[…]`` value: the value and its plaintext bytes (what the MAC hashes
        for a string; ``b""`` for the empty string, which stays unencrypted)."""
        if text == "":
            return "", b""
        fields = enc_fields(text)
        if fields is None:
            raise CipherError("the value is not in sops's ENC[AES256_GCM,...] format")
        data_b64, iv_b64, tag_b64, type_ = fields
        try:
            data, iv, tag = _b64decode(data_b64), _b64decode(iv_b64), _b64decode(tag_b64)
        except (binascii.Error, ValueError):  # ValueError: a character that is not ASCII
            raise CipherError("the value's base64 is malformed") from None
        if not MIN_NONCE <= len(iv) <= MAX_NONCE or len(tag) != TAG_SIZE:
            raise CipherError("the value's IV or tag has a wrong length")
        if type_ == "bytes":
            # no sops store writes one; sops 3.11 cannot decrypt one either (its decryption
            # panics, in every output format), so neither a Python repr nor a guess goes out
            raise CipherError("the value is of type bytes, which sops cannot decrypt either")
        try:
            plain = self._aead.decrypt(iv, data + tag, aad.encode("utf-8", "surrogateescape"))
        except InvalidTag:
            raise CipherError(
                "authentication failed (the value was altered, moved to another path, "
                "or belongs to another data key)"
            ) from None
        if type_ == "str":  # the common case, without the dispatch of from_bytes
            value: Scalar = plain.decode("utf-8", "surrogateescape")
        else:
            try:
                value = from_bytes(plain, type_)
            except (ValueError, UnicodeDecodeError):
                raise CipherError(f"the decrypted value is not a valid {_shown(type_)}") from None
        if self._stash is not None:
            self._stash.setdefault((aad, type_, plain), []).append(iv)
        return value, plain
