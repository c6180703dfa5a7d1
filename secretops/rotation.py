"""A new data key for an encrypted file: ``rotate``'s work on one file.

:func:`rotate_sealed` takes a file that is loaded and whose data key is recovered but whose
values are not decrypted yet (:func:`secretops.fileops.open_sealed`): every value is decrypted
with the old key and encrypted with the new one in the same walk
(:func:`secretops.core.document.reseal`), the MAC of the old values is verified, then the new
data key is wrapped for the key groups. :func:`rotate` does the same for a file already
decrypted (``rotate --older-than`` and ``-n`` decrypt every file to decide). Either way every
value gets a new ciphertext (new key, new IVs), ``lastmodified`` and ``mac`` change, and the
selection rules and the layout stay. Nothing is written: the caller writes atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from secretops.core.metadata import KeyEntry, Metadata
from secretops.fileops import OpenedFile, SealedFile, emit_sealed, now

if TYPE_CHECKING:
    from secretops.core.tree import Branch
    from secretops.keys.specs import KeySpec


class Resealed(NamedTuple):
    """A file's values under a new data key, before that key is wrapped."""

    docs: list[Branch]
    data_key: bytes
    lastmodified: str
    mac: str


def reseal_values(sealed: SealedFile, *, random: Callable[[int], bytes] = os.urandom,
                  lastmodified: str | None = None, one_walk: bool = True) -> Resealed:
    """Every value of ``sealed`` decrypted (the MAC checked) and encrypted under a new data
    key, in one walk (``one_walk=False``: two, the path it must equal)."""
    from secretops.core.document import reseal

    data_key = random(32)
    stamp = lastmodified or now()
    docs, mac = reseal(sealed.loaded.docs, sealed.metadata, sealed.data_key, data_key,
                       random=random, lastmodified=stamp, one_walk=one_walk)
    return Resealed(docs, data_key, stamp, mac)


def rotate_sealed(sealed: SealedFile, resealed: Resealed, groups: Sequence[Sequence[KeySpec]],
                  threshold: int = 0, env: Mapping[str, str] | None = None,
                  output: Any = None, random: Callable[[int], bytes] = os.urandom) -> bytes:
    """The file with its values ``resealed`` and their new data key wrapped for ``groups``."""
    key_groups, threshold = _wrap(resealed.data_key, groups, threshold, env, random)
    metadata = Metadata(
        key_groups=key_groups,
        shamir_threshold=threshold,  # kept with one group too, as sops keeps it
        lastmodified=resealed.lastmodified,
        mac=resealed.mac,
        selection=sealed.metadata.selection,
        version=sealed.metadata.version,
    )
    return emit_sealed(sealed, resealed.docs, metadata, sealed.loaded.layout, output)


def rotate(opened: OpenedFile, groups: Sequence[Sequence[KeySpec]], threshold: int = 0,
           env: Mapping[str, str] | None = None, output: Any = None) -> bytes:
    """Re-encrypt a decrypted file under a new data key wrapped for ``groups``."""
    from secretops.core.document import seal

    data_key = os.urandom(32)
    key_groups, threshold = _wrap(data_key, groups, threshold, env, os.urandom)
    metadata = Metadata(
        key_groups=key_groups,
        shamir_threshold=threshold,  # kept with one group too, as sops keeps it
        selection=opened.metadata.selection,
        version=opened.metadata.version,
    )
    sealed = seal(opened.docs, metadata, data_key, random=os.urandom, lastmodified=now())
    return emit_sealed(opened, sealed, metadata, opened.loaded.layout, output)


def _wrap(data_key: bytes, groups: Sequence[Sequence[KeySpec]], threshold: int,
          env: Mapping[str, str] | None,
          random: Callable[[int], bytes]) -> tuple[list[list[KeyEntry]], int]:
    """The data key wrapped for the non-empty groups (a share each when several), and the
    threshold as sops writes it."""
    from secretops.keys.datakey import make_recipients, wrap_data_key

    recipients = make_recipients([g for g in groups if g], os.environ if env is None else env)
    if len(recipients) > 1:
        threshold = threshold or len(recipients)
    return wrap_data_key(recipients, data_key, threshold, random), threshold
