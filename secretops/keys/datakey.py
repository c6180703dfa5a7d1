"""The data key's journey through a file's key groups: wrapping it for recipients, recovering it
with identities.

:func:`wrap_data_key` wraps a new data key for every recipient (a Shamir share per group when
there are several groups, as sops does); :func:`recover_data_key` tries the identities at hand
against a file's key groups, in decryption order, and when nothing fits raises
:class:`~secretops.errors.NoKeyError` listing every key it tried and why each failed — never a
secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from secretops.core.limits import DATA_KEY_SIZE, MAX_KEY_ENTRIES, MAX_KEY_GROUPS, SHARE_SIZE
from secretops.core.metadata import INTERNAL_KEY_ORDER, KeyEntry, Metadata
from secretops.errors import (
    DecryptionError,
    ExitCode,
    LimitExceededError,
    NoKeyError,
    SecretOpsError,
)
from secretops.keys import (
    DEFAULT_DECRYPTION_ORDER,
    SOURCES,
    Identity,
    KeyMismatch,
    Recipient,
    SourceUnavailable,
    describe_entry,
    identity,
    recipient,
    source,
)

if TYPE_CHECKING:
    from secretops.keys.specs import KeySpec
    from secretops.keyservice import Settings


def make_recipients(groups: Sequence[Sequence[KeySpec]],
                    env: Mapping[str, str]) -> list[list[Recipient]]:
    """Recipients for every key spec, group by group.

    Refuses more keys or groups than a file may list (:mod:`secretops.core.limits`), so no
    command writes a file that secretops would refuse to read.
    """
    total = sum(len(g) for g in groups)
    if total > MAX_KEY_ENTRIES or len(groups) > MAX_KEY_GROUPS:
        raise LimitExceededError(
            f"{total} master keys in {len(groups)} key groups: a file may list at most "
            f"{MAX_KEY_ENTRIES} keys in at most {MAX_KEY_GROUPS} groups")
    services = _keyservices(env)
    if services is not None:
        from secretops.keyservice.client import recipients

        return recipients(groups, services, env)
    return [[recipient(s, env) for s in group] for group in groups]


def _keyservices(env: Mapping[str, str]) -> Settings | None:
    """The key service settings when ``env`` names remote services or disables the local one
    (``SOPS_KEYSERVICE``, ``SOPS_ENABLE_LOCAL_KEYSERVICE``); None — nothing imported — when
    this process's own keys are all there is."""
    from secretops.keyservice import configured, settings

    if not configured(env):
        return None
    found = settings(env)
    return found if found.remote else None


def load_identities(metadata: Metadata, env: Mapping[str, str]) -> list[Identity]:
    """The identities available for the kinds of keys this file lists."""
    out: list[Identity] = []
    for kind in dict.fromkeys(k.kind for k in metadata.all_keys()):
        if kind in SOURCES:
            ident = identity(kind, env)
            if ident is not None:
                out.append(ident)
    return out


def lazy_identities(env: Mapping[str, str]) -> Callable[[str], list[Identity]]:
    """Identities of one kind, loaded (and their module imported) the first time it is asked.

    So a file with age and KMS entries that an age identity opens never imports boto3. When
    the environment names key services, the lookup is theirs (:mod:`secretops.keyservice`).
    """
    services = _keyservices(env)
    if services is not None:  # local keys (unless disabled), then each remote key service
        from secretops.keyservice.client import lookup as remote_lookup

        return remote_lookup(services, env)
    cache: dict[str, list[Identity]] = {}

    def lookup(kind: str) -> list[Identity]:
        if kind not in cache:
            ident = identity(kind, env) if kind in SOURCES else None
            cache[kind] = [ident] if ident is not None else []
        return cache[kind]

    return lookup


# What decides among kinds the decryption order does not name (a sops format fact: core's)
_SOPS_GROUP_ORDER = {k: i for i, k in enumerate(INTERNAL_KEY_ORDER)}


def _order(group: Sequence[KeyEntry], decryption_order: Sequence[str]) -> list[KeyEntry]:
    """The group's entries in the order sops tries them: by the place of their kind in
    ``decryption_order``, kinds it does not name last; within that in sops's own order of
    kinds, then the file's."""
    pos = {k: i for i, k in enumerate(decryption_order)}
    rank = _SOPS_GROUP_ORDER
    return sorted(group, key=lambda e: (pos.get(e.kind, len(pos)), rank.get(e.kind, len(rank))))


def recover_data_key(
    metadata: Metadata,
    identities: Sequence[Identity] | Callable[[str], list[Identity]],
    decryption_order: Sequence[str] = DEFAULT_DECRYPTION_ORDER,
) -> bytes:
    """Find the data key with the identities at hand (local ones first, as ordered).

    ``identities`` is a list, or a lookup by kind (:func:`lazy_identities`) asked only for the
    kinds actually tried.
    """
    failures: list[str] = []
    # the most telling failure decides the error when no key is found: a limit passed, then
    # a wrapped key of the wrong size (both mean the file was altered), then "no key fits"
    refused: list[SecretOpsError] = []
    if callable(identities):
        lookup = identities
    else:
        by_kind: dict[str, list[Identity]] = {}
        for ident in identities:
            by_kind.setdefault(ident.kind, []).append(ident)

        def lookup(kind: str) -> list[Identity]:
            return by_kind.get(kind, [])
    if not metadata.key_groups:
        raise NoKeyError("the file lists no master keys, so its data key cannot be recovered")
    many = len(metadata.key_groups) > 1
    size = SHARE_SIZE if many else DATA_KEY_SIZE
    shares: list[bytes] = []
    for group in metadata.key_groups:
        got = _open_group(group, lookup, decryption_order, size, failures, refused)
        if got is not None:
            shares.append(got)
            if not many:
                return got
    if many:
        threshold = metadata.shamir_threshold or len(metadata.key_groups)
        if len(shares) >= threshold:
            return _combine(shares[:threshold])
        failures.append(
            f"only {len(shares)} of the {threshold} key groups needed could be opened"
        )
    present = {k.kind for k in metadata.all_keys()}
    hints = [*failures] + [h for h in (_no_identity_hint(k) for k in SOURCES if k in present) if h]
    if refused:
        first = sorted(refused, key=lambda e: not isinstance(e, LimitExceededError))[0]
        raise type(first)(first.message, hints=failures)
    raise NoKeyError("no identity available could decrypt the data key", hints=hints)


def _no_identity_hint(kind: str) -> str:
    try:
        return source(kind).no_identity_hint
    except SourceUnavailable:  # already listed among the failures
        return ""


def _open_group(group: Sequence[KeyEntry], lookup: Callable[[str], list[Identity]],
                decryption_order: Sequence[str], size: int, failures: list[str],
                refused: list[SecretOpsError]) -> bytes | None:
    """The data key (or share) from the first entry of the group that opens, else None."""
    for entry in _order(group, decryption_order):
        kind = entry.kind
        try:
            candidates = lookup(kind)
        except SourceUnavailable as e:  # its extra is not installed: say which
            failures.append(f"{describe_entry(entry)}: {e.message}")
            failures += [h for h in e.hints if h not in failures]
            continue
        if not candidates:
            failures.append(f"{describe_entry(entry)}: no {kind} identity available")
            continue
        failed = False
        for ident in candidates:
            try:
                got = ident.unwrap(entry)
            except KeyMismatch:
                continue
            except LimitExceededError as e:
                failures.append(f"{describe_entry(entry)}: {e.message}")
                refused.append(e)
                break
            except Exception as e:  # a failing source must not stop the others
                failures.append(f"{describe_entry(entry)}: {e}")
                failed = True  # the next candidate (another key service) may still open it
                continue
            if len(got) != size:  # sops would fail on it later (exit 25): try the others
                what = "share of the data key" if size == SHARE_SIZE else "data key"
                err = DecryptionError(
                    f"the {what} unwrapped from {describe_entry(entry)} is {len(got)} bytes, "
                    f"not {size}: the key entry was altered")
                failures.append(err.message)
                refused.append(err)
                break
            return got
        else:
            if not failed:
                failures.append(f"{describe_entry(entry)}: none of the {kind} identities fits")
    return None


def _combine(shares: list[bytes]) -> bytes:
    from secretops.core.shamir import combine

    try:
        key = combine(shares)
    except ValueError as e:  # duplicate or unequal shares: altered key groups
        raise DecryptionError(f"the key groups' shares do not combine: {e}") from None
    if len(key) != DATA_KEY_SIZE:  # pragma: no cover - shares were checked to be 33 bytes
        raise DecryptionError("the combined data key is not 32 bytes")
    return key


def wrap_data_key(
    groups: Sequence[Sequence[Recipient]],
    data_key: bytes,
    threshold: int,
    random: Callable[[int], bytes],
) -> list[list[KeyEntry]]:
    """Wrap the data key for every recipient; with several groups, each group gets a share.

    Shares follow sops: x coordinate = group index + 1, threshold defaulting to the number of
    groups.
    """
    if not groups or not any(groups):
        raise SecretOpsError(
            "no master key was given to encrypt with",
            code=ExitCode.NO_ENCRYPTION_KEY_FOUND,
            hints=("pass --age RECIPIENT, set SOPS_AGE_RECIPIENTS, or add a creation rule to "
                   ".sops.yaml",),
        )
    if len(groups) == 1:
        return [[r.wrap(data_key) for r in groups[0]]]
    from secretops.core.shamir import split

    threshold = threshold or len(groups)
    if not 2 <= threshold <= len(groups):
        raise SecretOpsError(
            f"the Shamir threshold {threshold} must be between 2 and the number of key groups "
            f"({len(groups)})",
            code=ExitCode.CONFLICTING_PARAMETERS,
        )
    shares = split(data_key, len(groups), threshold, random)
    return [[r.wrap(share) for r in group] for group, share in zip(groups, shares, strict=True)]
