"""Sealing and opening whole files' trees: values, MAC and ``lastmodified`` together.

:func:`seal` encrypts plaintext documents into a file's trees and completes its metadata;
:func:`open_documents` decrypts them and checks the MAC. ``open_documents`` returns the
:class:`ValueCipher` it used: passing that cipher back to :func:`seal` is the *minimal
re-encryption seam* — every value that did not change gets its old IV and so its exact old
ciphertext, and only changed values, ``lastmodified`` and ``mac`` differ (the basis of ``edit``,
``set``, ``--reuse`` and the merge driver). A changed value always gets a fresh random IV.

The clock and randomness come in as arguments.
"""

from __future__ import annotations

from secretops.core.cipher import CipherError, Random, ValueCipher
from secretops.core.engine import (
    decrypt_documents,
    encrypt_documents,
    encrypt_mac,
    reencrypt_documents,
    verify_mac,
)
from secretops.core.metadata import Metadata
from secretops.core.tree import Branch
from secretops.errors import DecryptionError


def seal(
    docs: list[Branch],
    metadata: Metadata,
    data_key: bytes,
    *,
    random: Random,
    lastmodified: str,
    cipher: ValueCipher | None = None,
) -> list[Branch]:
    """Encrypt ``docs`` under ``data_key``; sets ``metadata.lastmodified`` and ``metadata.mac``."""
    cipher = cipher or ValueCipher(data_key, random)
    encrypted, mac = encrypt_documents(docs, metadata.selection, cipher)
    metadata.lastmodified = lastmodified
    metadata.mac = encrypt_mac(mac, lastmodified, cipher)
    return encrypted


def open_documents(
    docs: list[Branch],
    metadata: Metadata,
    data_key: bytes,
    *,
    random: Random,
    ignore_mac: bool = False,
    keep_ivs: bool = True,
) -> tuple[list[Branch], ValueCipher]:
    """Decrypt ``docs`` and verify the MAC (unless ``ignore_mac``).

    The returned cipher remembers every value's IV for :func:`seal` unless ``keep_ivs`` is
    false (plain reading).
    """
    if len(data_key) != 32:  # a key source let an altered wrapped key through
        raise DecryptionError(f"the data key is {len(data_key)} bytes, not 32")
    cipher = ValueCipher(data_key, random, remember=keep_ivs)
    plain, mac = decrypt_documents(docs, metadata.selection, cipher)
    if not ignore_mac:
        verify_mac(metadata.mac, mac, metadata.lastmodified, cipher)
    return plain, cipher


def reseal(
    docs: list[Branch],
    metadata: Metadata,
    data_key: bytes,
    new_key: bytes,
    *,
    random: Random,
    lastmodified: str,
    one_walk: bool = True,
) -> tuple[list[Branch], str]:
    """``docs`` (sealed under ``data_key``) decrypted, their MAC verified, and sealed under
    ``new_key``: the new trees and their ``mac`` for ``lastmodified`` (``rotate``).

    What :func:`open_documents` and then :func:`seal` give, in one walk over the values where
    :func:`~secretops.core.engine.reencrypt_documents` can; ``one_walk=False``: in those two
    walks (the path the one walk must equal, and where it cannot).
    """
    if len(data_key) != 32:  # as open_documents
        raise DecryptionError(f"the data key is {len(data_key)} bytes, not 32")
    if one_walk:
        old = ValueCipher(data_key, random, remember=False)
        new = ValueCipher(new_key, random, remember=False)
        got = reencrypt_documents(docs, metadata.selection, old, new)
        if got is not None:
            out, old_mac, new_mac = got
            verify_mac(metadata.mac, old_mac, metadata.lastmodified, old)
            return out, encrypt_mac(new_mac, lastmodified, new)
    plain, _ = open_documents(docs, metadata, data_key, random=random, keep_ivs=False)
    target = Metadata(selection=metadata.selection)  # seal sets its lastmodified and mac
    sealed = seal(plain, target, new_key, random=random, lastmodified=lastmodified)
    return sealed, target.mac


def data_key_fits(metadata: Metadata, data_key: bytes) -> bool:
    """Whether ``data_key`` is the key this file's values were sealed with.

    Checked on the encrypted MAC (authenticated with ``lastmodified`` as AAD), so no value is
    decrypted and no master key is needed: the test behind the data-key age of ``rotate
    --older-than``.
    """
    if not metadata.mac or len(data_key) != 32:
        return False
    try:
        ValueCipher(data_key, _no_random).decrypt(metadata.mac, metadata.lastmodified)
    except CipherError:
        return False
    return True


def _no_random(n: int) -> bytes:
    raise AssertionError("decryption needs no randomness")
