"""Changing a file's master keys without touching its values (``updatekeys``, ``groups``).

:func:`plan_update` compares the key groups a file has with the ones its ``.sops.yaml`` rule
asks for and returns a :class:`KeyPlan`: what is added, removed and kept, and whether the
Shamir threshold changes. :func:`apply_plan` builds the new metadata:

* the data key stays the same, so every value's ciphertext, ``lastmodified`` and ``mac`` stay
  byte-identical (the metadata-only rewrite of :func:`secretops.fileops.rewrite_metadata`);
* with one key group, entries of keys that stay keep their wrapped key as it was (a small
  diff), and only new keys wrap the data key;
* when the number of groups or the threshold changes, the data key is split anew and every
  group's keys wrap their new share (sops does the same).

Selection rules and ``mac_only_encrypted`` are never changed by ``updatekeys`` (as in sops:
they determine which values are encrypted, which only ``rotate``/re-encryption can change).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from secretops.core.metadata import KeyEntry, Metadata
from secretops.keys import SOURCES, describe, describe_entry, key_identity, source
from secretops.keys.specs import KeySpec


class KeyPlan(NamedTuple):
    """What ``updatekeys`` would change in one file."""

    groups: list[list[KeySpec]]
    threshold: int
    added: list[list[str]]
    removed: list[list[str]]
    old_threshold: int
    resplit: bool

    @property
    def changed(self) -> bool:
        return bool(self.resplit or any(self.added) or any(self.removed)
                    or self.threshold != self.old_threshold)

    def summary(self) -> list[str]:
        lines = []
        for n in range(max(len(self.added), len(self.removed))):
            adds = self.added[n] if n < len(self.added) else []
            rems = self.removed[n] if n < len(self.removed) else []
            if adds or rems:
                lines.append(f"key group {n + 1}:")
                lines += [f"  + {a}" for a in adds] + [f"  - {r}" for r in rems]
        if self.threshold != self.old_threshold:
            old, new = self.old_threshold or "-", self.threshold or "-"
            lines.append(f"shamir threshold: {old} -> {new}")
        if self.resplit:
            lines.append("the data key's shares are split anew (values stay as they are)")
        return lines


def plan_update(metadata: Metadata, groups: Sequence[Sequence[KeySpec]],
                threshold: int) -> KeyPlan:
    old = metadata.key_groups
    new_threshold = threshold if len(groups) > 1 else 0
    if len(groups) > 1 and not new_threshold:
        new_threshold = len(groups)
    old_threshold = metadata.shamir_threshold if len(old) > 1 else 0
    if len(old) > 1 and not old_threshold:
        old_threshold = len(old)
    resplit = len(groups) != len(old) or (len(groups) > 1 and new_threshold != old_threshold)
    added: list[list[str]] = []
    removed: list[list[str]] = []
    for n in range(max(len(groups), len(old))):
        want = {key_identity(s.kind, s.fields): s for s in (groups[n] if n < len(groups) else [])}
        have = {key_identity(e.kind, e.fields): e for e in (old[n] if n < len(old) else [])}
        added.append([describe(s.kind, s.fields) for k, s in want.items() if k not in have])
        removed.append([describe_entry(e) for k, e in have.items() if k not in want])
    if len(groups) > 1 and (any(added) or any(removed)):
        resplit = True  # a group's own share cannot be recovered: every group gets a new one
    return KeyPlan([list(g) for g in groups], new_threshold, added, removed, old_threshold,
                   resplit)


def apply_plan(metadata: Metadata, plan: KeyPlan, data_key: bytes,
               env: Mapping[str, str]) -> Metadata:
    """New metadata carrying the same data key for the plan's groups."""
    from secretops.keys.datakey import make_recipients, wrap_data_key

    recipients = make_recipients(plan.groups, env)
    if plan.resplit or len(plan.groups) > 1:
        groups = wrap_data_key(recipients, data_key, plan.threshold, os.urandom)
    else:
        have = {key_identity(e.kind, e.fields): e for e in metadata.key_groups[0]}
        groups = [[
            have.get(key_identity(s.kind, s.fields)) or r.wrap(data_key)
            for s, r in zip(plan.groups[0], recipients[0], strict=True)
        ]]
    return Metadata(
        key_groups=groups,
        shamir_threshold=plan.threshold,
        lastmodified=metadata.lastmodified,
        mac=metadata.mac,
        selection=metadata.selection,
        version=metadata.version,
    )


# -- rotate ---------------------------------------------------------------------------------

_WRAP_ONLY = ("enc", "created_at")


def spec_of(entry: KeyEntry) -> KeySpec:
    """The master key an entry was wrapped for, without its wrapped key."""
    if entry.kind not in SOURCES:
        from secretops.errors import ExitCode, SecretOpsError

        raise SecretOpsError(
            f"the file lists a {entry.kind} key, which secretops cannot wrap a new data key for",
            code=ExitCode.INVALID_KEY,
            hints=("remove that key with sops, or rotate the file with sops",),
        )
    return KeySpec(entry.kind, {k: v for k, v in entry.fields.items() if k not in _WRAP_ONLY})


def _removes(spec: KeySpec, kind: str, fields: Mapping[str, Any]) -> bool:
    """Whether ``--rm-*`` ``spec`` names this key (as its source's record says)."""
    return spec.kind == kind and source(kind).removes(spec.fields, fields)


def rotation_groups(metadata: Metadata, add: Sequence[KeySpec],
                    remove: Sequence[KeySpec]) -> tuple[list[list[KeySpec]], list[str]]:
    """The key groups after ``rotate --add-*/--rm-*``, and what was asked but had no effect.

    As in sops: added keys join the first key group; removed keys leave every group.
    """
    groups = [[spec_of(e) for e in group
               if not any(_removes(r, e.kind, e.fields) for r in remove)]
              for group in metadata.key_groups] or [[]]
    have = {key_identity(s.kind, s.fields) for g in groups for s in g}
    notes = [f"{describe(s.kind, s.fields)} is not in the file" for s in remove
             if not any(_removes(s, e.kind, e.fields) for e in metadata.all_keys())]
    for spec in add:
        if key_identity(spec.kind, spec.fields) in have:
            notes.append(f"{describe(spec.kind, spec.fields)} is already in the file")
        else:
            groups[0].append(spec)
            have.add(key_identity(spec.kind, spec.fields))
    if not any(groups):
        from secretops.errors import ExitCode, SecretOpsError

        raise SecretOpsError("rotating would remove every master key of the file",
                             code=ExitCode.NO_ENCRYPTION_KEY_FOUND)
    if len(groups) > 1 and not all(groups):
        from secretops.errors import ExitCode, SecretOpsError

        raise SecretOpsError("rotating would leave a key group without keys",
                             code=ExitCode.NO_ENCRYPTION_KEY_FOUND,
                             hints=("change key groups with updatekeys and .sops.yaml",))
    return groups, notes


# -- groups add / delete --------------------------------------------------------------------

def add_group(metadata: Metadata, group: Sequence[KeySpec], threshold: int, data_key: bytes,
              env: Mapping[str, str]) -> Metadata:
    """``groups add``: the file's key groups plus ``group``, all wrapping the same data key.

    As in sops, every group gets a new share (so every entry's ``enc`` changes) and the
    threshold is ``threshold`` if given, else the file's, else the number of groups. Unlike
    sops, a group without keys, or a threshold no split can meet, is refused rather than
    written into a file nobody could open again.
    """
    if not group:
        from secretops.errors import ExitCode, SecretOpsError

        raise SecretOpsError("the new key group has no keys",
                             code=ExitCode.NO_ENCRYPTION_KEY_FOUND,
                             hints=("name its keys: --age, --pgp, --kms, --hc-vault-transit",))
    specs = [[spec_of(e) for e in g] for g in metadata.key_groups] + [list(group)]
    return _regroup(metadata, specs, threshold or metadata.shamir_threshold, data_key, env)


def delete_group(metadata: Metadata, index: int, threshold: int, data_key: bytes,
                 env: Mapping[str, str]) -> Metadata:
    """``groups delete``: the file without key group ``index`` (counted from 0), the data key
    shared anew among the groups left."""
    from secretops.errors import ExitCode, SecretOpsError

    count = len(metadata.key_groups)
    if not 0 <= index < count:
        raise SecretOpsError(f"there is no key group {index}: the file has {count} "
                             f"(numbered from 0)", code=ExitCode.GENERIC)
    if count == 1:
        raise SecretOpsError("this is the file's only key group: without it nobody could "
                             "decrypt the file", code=ExitCode.NO_ENCRYPTION_KEY_FOUND)
    threshold = threshold or metadata.shamir_threshold
    if count - 1 < threshold:  # sops's check and message
        raise SecretOpsError(
            "removing this key group will make the Shamir threshold impossible to satisfy: "
            f"Shamir threshold is {threshold}, but we only have {count - 1} key groups",
            code=ExitCode.GENERIC,
            hints=("lower it with --shamir-secret-sharing-threshold",))
    specs = [[spec_of(e) for e in g] for n, g in enumerate(metadata.key_groups) if n != index]
    return _regroup(metadata, specs, threshold, data_key, env)


def _regroup(metadata: Metadata, groups: list[list[KeySpec]], threshold: int, data_key: bytes,
             env: Mapping[str, str]) -> Metadata:
    """Metadata wrapping ``data_key`` for ``groups`` (a share each when several), values and
    MAC untouched. The threshold is written as sops writes it: kept with one group, the number
    of groups when none is given with several."""
    from secretops.keys.datakey import make_recipients, wrap_data_key

    if len(groups) > 1:
        threshold = threshold or len(groups)
    wrapped = wrap_data_key(make_recipients(groups, env), data_key, threshold, os.urandom)
    return Metadata(key_groups=wrapped, shamir_threshold=threshold,
                    lastmodified=metadata.lastmodified, mac=metadata.mac,
                    selection=metadata.selection, version=metadata.version)
