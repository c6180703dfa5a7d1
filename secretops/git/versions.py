"""File versions for ``secretops log``: each read once, decrypted once, each data key unwrapped
once.

A history shows most versions twice (as the new side of one commit and the old side of the
next), and a data key stays the same from one edit to the next until the file is rotated. So:

* :class:`DataKeys` keeps unwrapped data keys by the encrypted entries that hold them (every
  key group's age stanzas, PGP packets, KMS blobs …, ``created_at`` aside). A version whose
  entries were seen before gets the data key without a master key being asked again — no
  gpg-agent, KMS or Vault call per version. A failure to unwrap is kept the same way, so a
  missing key is tried once, not once per version. Bounded (least recently used go first),
  in memory only, never written anywhere; nothing here logs or prints a key or an entry.
  AES-GCM still authenticates every value and the MAC of every version with the key.
* :class:`Versions` keeps what each version shows (its text and outcome, from
  :func:`secretops.git.textconv.convert`) by blob id and format, within a byte budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from secretops.errors import DecryptionError, LimitExceededError, NoKeyError, SecretOpsError
from secretops.git.textconv import UNREADABLE, Shown, convert, unreadable

if TYPE_CHECKING:
    from secretops.core.metadata import Metadata
    from secretops.git.catfile import BatchReader
    from secretops.keys import Identity

KEY_CACHE_SIZE = 256  # distinct data keys kept (a rotation or updatekeys makes a new entry)
TEXT_CACHE_BYTES = 64 * 1024 * 1024
_KEPT_FAILURES = (NoKeyError, DecryptionError, LimitExceededError)


def _entries(metadata: Metadata) -> tuple[object, ...]:
    """What decides the data key a file's metadata yields: its wrapped keys, group by
    group."""
    return (metadata.shamir_threshold, tuple(
        tuple(sorted((e.kind, tuple(sorted((k, repr(v)) for k, v in e.fields.items()
                                           if k != "created_at")))
                     for e in group))
        for group in metadata.key_groups))


class DataKeys:
    """Data keys by their encrypted entries; call it with a file's metadata."""

    def __init__(self, env: Mapping[str, str],
                 identities: Callable[[str], list[Identity]] | None = None,
                 capacity: int = KEY_CACHE_SIZE) -> None:
        from secretops.keys import decryption_order
        from secretops.keys.datakey import lazy_identities

        self._lookup = identities or lazy_identities(env)
        self._order = decryption_order(env)
        self._capacity = capacity
        self._known: OrderedDict[tuple[object, ...], bytes | SecretOpsError] = OrderedDict()
        self.unwrapped = 0  # times the master keys were asked: the cache's misses

    def __call__(self, metadata: Metadata) -> bytes:
        from secretops.keys.datakey import recover_data_key

        key = _entries(metadata)
        known = self._known.get(key)
        if known is None:
            self.unwrapped += 1
            try:
                known = recover_data_key(metadata, self._lookup, self._order)
            except _KEPT_FAILURES as e:
                known = e
            self._known[key] = known
            if len(self._known) > self._capacity:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(key)
        if isinstance(known, SecretOpsError):
            # a new exception each time: raising one object again would chain tracebacks
            raise type(known)(known.message, hints=known.hints)
        return known


class Version(NamedTuple):
    """A file version as ``log`` shows it; ``shown`` is None when it could not be read:
    ``size`` over the limit on input, or missing from the repository (``size`` -1)."""

    shown: Shown | None
    size: int
    fresh: bool  # first time this version was shown in this run (its problems not yet told)


class Versions:
    """Reads versions through ``blobs`` and shows them, reusing what was done before."""

    def __init__(self, blobs: BatchReader, env: Mapping[str, str], *, trailer: bool = True,
                 identities: Callable[[str], list[Identity]] | None = None,
                 budget: int = TEXT_CACHE_BYTES) -> None:
        self.blobs = blobs
        self.env = env
        self.trailer = trailer
        self.keys = DataKeys(env, identities)
        self._budget = budget
        self._used = 0
        self._shown: OrderedDict[tuple[str, str], Shown] = OrderedDict()
        self._unread: OrderedDict[str, int] = OrderedDict()  # versions too large or missing

    def _open(self, data: bytes, fmt: str, ignore_mac: bool) -> object:
        from secretops import fileops

        return fileops.open_file(data, format=fmt, env=self.env, ignore_mac=ignore_mac,
                                 keep_ivs=False, data_key_for=self.keys)

    def get(self, oid: str, name: str) -> Version:
        """Version ``oid`` of the file called ``name`` (its format follows the name)."""
        from secretops.stores import format_for_path

        key = (oid, format_for_path(name))
        hit = self._shown.get(key)
        if hit is not None:
            self._shown.move_to_end(key)
            return Version(hit, len(hit.text), False)
        if oid in self._unread:
            return Version(None, self._unread[oid], False)
        blob = self.blobs.read(oid)
        if blob is None or blob.data is None:
            size = -1 if blob is None else blob.size
            self._unread[oid] = size
            if len(self._unread) > KEY_CACHE_SIZE:
                self._unread.popitem(last=False)
            return Version(None, size, True)
        try:
            shown = convert(blob.data, name, self.env, opener=self._open, trailer=self.trailer)
        except Exception as e:  # like the textconv driver: one bad version never stops a log
            why = f"internal error ({type(e).__name__})"
            shown = Shown(unreadable(blob.data, name, why), UNREADABLE, why)
        self._remember(key, shown)
        return Version(shown, blob.size, True)

    def _remember(self, key: tuple[str, str], shown: Shown) -> None:
        size = len(shown.text)
        if size > self._budget // 4:
            return
        self._shown[key] = shown
        self._used += size
        while self._used > self._budget:
            _, old = self._shown.popitem(last=False)
            self._used -= len(old.text)
