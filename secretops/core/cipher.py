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
ENC_PREFIX = "ENC[AES256_GCM,"
_ENC_RE = re.compile(r"ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
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


def _split_enc(text: str) -> tuple[str, ...] | None:
    """The four fields of ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]``, or None.

    A fast path for the well-formed value (base64 fields, a lowercase type); anything unusual
    falls back to sops's own regular expression, so both accept the same inputs.
    """
    m = _ENC_WELL_FORMED.fullmatch(text)
    if m is None:
        m = _ENC_RE.match(text)
        if m is None:
            return None
    return m.groups()


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
        fields = _split_enc(text)
        if fields is None:
            raise CipherError("the value is not in sops's ENC[AES256_GCM,...] format")
        data_b64, iv_b64, tag_b64, type_ = fields
        try:
            data = a2b_base64(data_b64)
            iv = a2b_base64(iv_b64)
            tag = a2b_base64(tag_b64)
        except binascii.Error:
            raise CipherError("the value's base64 is malformed") from None
        if len(iv) < 8 or len(tag) != TAG_SIZE:
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
                raise CipherError(f"the decrypted value is not a valid {type_}") from None
        if self._stash is not None:
            self._stash.setdefault((aad, type_, plain), []).append(iv)
        return value, plain
