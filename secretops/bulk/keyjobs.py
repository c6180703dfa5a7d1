"""The per-file work of ``updatekeys`` and ``rotate``, for one file or many.

:func:`plan_keys` / :func:`apply_keys` are ``updatekeys``'s two halves (the CLI asks between
them on a terminal); :func:`rotate_file` is ``rotate -i``'s work on one file. The jobs run them
in worker processes (:mod:`secretops.bulk.pool`) and return the same lines the one-file
commands print. Files found in directories are taken only when they are encrypted and a
creation rule matches them (:mod:`secretops.discover`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from secretops.bulk.jobs import Decrypting, is_encrypted
from secretops.bulk.paths import Item
from secretops.bulk.pool import Outcome
from secretops.errors import ExitCode, SecretOpsError

if TYPE_CHECKING:
    from secretops.compose import Settings
    from secretops.config import CreationRule
    from secretops.core.metadata import Metadata
    from secretops.discover import Rules
    from secretops.fileops import SealedFile
    from secretops.keyops import KeyPlan
    from secretops.keys import Identity
    from secretops.keys.specs import KeySpec

Lookup = Callable[[str], list["Identity"]]


class KeysPlan(NamedTuple):
    """A file opened for ``updatekeys`` and what its rule asks to change."""

    opened: SealedFile
    plan: KeyPlan


def plan_keys(file: str, *, input_type: str | None, shamir: int, config_path: str | None,
              env: Mapping[str, str], identities: Lookup | None = None,
              rules: Rules | None = None) -> KeysPlan:
    """Open ``file`` and compare its keys with what its creation rule says (``rules``: a
    run's, to find and read the config and its rules once).

    As sops's ``updatekeys``, no value is decrypted: the values keep their ciphertext, and
    only the data key is needed. That key is checked on the file's MAC (one decryption), so a
    key entry that gives another key is refused before that key is wrapped for anyone.
    """
    from secretops.compose import open_sealed_path, settings

    given = (rules.settings(file, input_type) if rules is not None
             else settings(file, input_type=input_type, config_path=config_path, env=env))
    rule = rule_of(file, given, rules)
    sealed = open_sealed_path(file, given, env=env, rewrite=True, identities=identities)
    check_data_key(sealed.metadata, sealed.data_key)
    return KeysPlan(sealed, rule_plan(sealed.metadata, rule, shamir, env))


def check_data_key(metadata: Metadata, data_key: bytes) -> None:
    """Refuse a data key that does not open the file's MAC (the errors of a MAC check)."""
    from secretops.core.document import data_key_fits
    from secretops.errors import MacMismatchError

    if not metadata.mac:
        raise SecretOpsError("the file has no MAC", code=ExitCode.MAC_NOT_FOUND)
    if not data_key_fits(metadata, data_key):
        raise MacMismatchError(
            "MAC mismatch: the data key its key entries give does not open the file's MAC "
            "(the key entries, the mac or lastmodified were altered)")


def rule_of(file: str, given: Settings, rules: Rules | None = None) -> CreationRule:
    """The creation rule that says which keys ``file`` should have (errors as sops's);
    ``rules``: a run's, which parses each rule once."""
    cfg = given.config
    if cfg is None:
        raise SecretOpsError("no .sops.yaml found for this file",
                             code=ExitCode.CONFIG_FILE_NOT_FOUND,
                             hints=("updatekeys applies the file's creation rule; "
                                    "pass --config if it lives elsewhere",))
    rule = cfg.rule_for(file) if rules is None else rules.rule_for(cfg, file)
    if rule is None:  # sops: "no matching creation rules found"
        raise SecretOpsError("the config has no creation_rules: nothing says which keys this "
                             "file should have", code=ExitCode.ERROR_READING_CONFIG,
                             file=str(cfg.path))
    return rule


def rule_plan(metadata: Metadata, rule: CreationRule, shamir: int,
              env: Mapping[str, str]) -> KeyPlan:
    """What ``updatekeys`` changes in a file with ``metadata``: the one computation that both
    ``updatekeys`` and ``status`` (which holds no key) make."""
    from secretops.keyops import plan_update
    from secretops.keys import resolved

    return plan_update(metadata, resolved(rule.key_groups(), env),
                       shamir or rule.shamir_threshold)


def plan_lines(file: str, planned: KeysPlan) -> list[str]:
    """What ``updatekeys`` prints about the plan (before asking)."""
    if not planned.plan.changed:
        return [f"{file}: already up to date"]
    return [f"{file}: the following changes will be made:",
            *(f"  {line}" for line in planned.plan.summary())]


def apply_keys(file: str, planned: KeysPlan, env: Mapping[str, str]) -> None:
    """Write the file's new key entries (values, ``lastmodified`` and ``mac`` untouched)."""
    from secretops import fileops
    from secretops.fileio import write_file
    from secretops.keyops import apply_plan

    new_meta = apply_plan(planned.opened.metadata, planned.plan, planned.opened.data_key, env)
    write_file(file, fileops.rewrite_metadata(planned.opened, new_meta), private=False,
               rewrite=True)


def wanted(item: Item, rules: Rules, input_type: str | None) -> bool:
    """Named files always; found ones when encrypted and matched by a creation rule."""
    if item.named:
        return True
    data = _candidate(item, rules)
    return data is None or (bool(data) and is_encrypted(data, item.path, input_type))


def _candidate(item: Item, rules: Rules) -> bytes | None:
    """A found file's bytes when it holds the sops marker and a rule matches it, else
    ``b""``; ``None`` when it cannot be read (the job reports it)."""
    from secretops.discover import looks_encrypted
    from secretops.limits import MAX_INPUT_BYTES

    try:
        with open(item.path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)  # over the limit: the job says so
    except OSError:
        return None
    return data if looks_encrypted(data) and rules.match(item.path) else b""


class _Selective(Decrypting):
    """A job on encrypted files that creation rules match (:func:`wanted`)."""

    # calendar: the stores read the metadata's lastmodified (secretops.stores._yamlscalar)
    preload = (*Decrypting.preload, "secretops.keyops", "secretops.rotation",
               "calendar")

    config_path: str | None
    input_type: str | None

    def setup(self) -> None:
        from secretops.discover import Rules
        from secretops.keys import sources

        super().setup()
        self.state["rules"] = Rules(self.env, self.config_path)
        # a creation rule is read with every key source's record (secretops.keys.specs):
        # their modules load here, before the workers fork, not once in each of them
        with contextlib.suppress(SecretOpsError):  # a broken one fails the files as before
            sources()

    def selected(self, item: Item, work: Callable[[], Outcome]) -> Outcome:
        """``work()`` on the files :func:`wanted` takes; others are skipped. A found file is
        parsed once: ``work`` opens it, and only when that finds no sops file is it parsed
        again to tell "not sops's file" (skipped) from "sops's file, damaged" (its error)."""
        from secretops.errors import FormatError, MetadataError

        if item.named:
            return work()
        data = _candidate(item, self.state["rules"])
        if data == b"":
            return Outcome(item.path, skipped=True)
        try:
            return work()
        except (MetadataError, FormatError):
            if data is None or is_encrypted(data, item.path, self.input_type):
                raise
            return Outcome(item.path, skipped=True)


class UpdateKeysJob(_Selective):
    """``updatekeys --yes`` of many files."""

    def __init__(self, env: Mapping[str, str], *, input_type: str | None, shamir: int,
                 config_path: str | None) -> None:
        super().__init__(env)
        self.input_type, self.shamir, self.config_path = input_type, shamir, config_path

    def __call__(self, item: Item) -> Outcome:
        return self.selected(item, lambda: self._update(item))

    def _update(self, item: Item) -> Outcome:
        planned = plan_keys(item.path, input_type=self.input_type, shamir=self.shamir,
                            config_path=self.config_path, env=self.env,
                            identities=self.state["identities"], rules=self.state["rules"])
        lines = plan_lines(item.path, planned)
        if not planned.plan.changed:
            return Outcome(item.path, tuple(lines), tags=("current",))
        apply_keys(item.path, planned, self.env)
        return Outcome(item.path, (*lines, f"{item.path}: keys updated"), tags=("done",))


class Rotation(NamedTuple):
    """What ``rotate`` did with one file."""

    message: str
    notes: list[str]
    due: bool
    rotated: bool


def rotate_file(file: str, *, input_type: str | None, config_path: str | None,
                add: Sequence[KeySpec], remove: Sequence[KeySpec], max_age: float | None,
                dry_run: bool, env: Mapping[str, str],
                identities: Lookup | None = None, rules: Rules | None = None) -> Rotation:
    """``rotate -i`` (or ``-n``) of one file, ``--older-than`` deciding when given
    (``rules``: a run's, which finds each directory's config once)."""
    from secretops.compose import open_sealed_path, settings
    from secretops.fileio import write_file
    from secretops.keyops import rotation_groups
    from secretops.rotation import reseal_values, rotate_sealed

    given = (rules.settings(file, input_type) if rules is not None
             else settings(file, input_type=input_type, config_path=config_path, env=env))
    if max_age is not None or dry_run:  # every file is decrypted to decide: the two walks
        return _rotate_opened(file, given, add, remove, max_age, dry_run, env, identities)
    # the values are decrypted and encrypted again in one walk (before the key groups are
    # worked out: a damaged file fails as it does when decrypted first)
    sealed = open_sealed_path(file, given, env=env, rewrite=True, identities=identities)
    resealed = reseal_values(sealed)
    groups, notes = rotation_groups(sealed.metadata, list(add), list(remove))
    data = rotate_sealed(sealed, resealed, groups, sealed.metadata.shamir_threshold, env)
    write_file(file, data, private=False, rewrite=True)
    return Rotation("rotated", [f"{file}: note: {note}" for note in notes], due=True,
                    rotated=True)


def _rotate_opened(file: str, given: Settings, add: Sequence[KeySpec],
                   remove: Sequence[KeySpec], max_age: float | None, dry_run: bool,
                   env: Mapping[str, str], identities: Lookup | None) -> Rotation:
    """``rotate -n`` or ``--older-than`` of one file, decrypted first to decide."""
    from datetime import UTC, datetime

    from secretops.compose import open_path
    from secretops.fileio import write_file
    from secretops.keyops import rotation_groups
    from secretops.rotation import rotate

    opened = open_path(file, env=env, rewrite=not dry_run, given=given, identities=identities,
                       keep_ivs=False)
    why = ""
    if max_age is not None:
        from secretops.keyage import data_key_age

        age = data_key_age(file, opened.data_key, given.format, given.options)
        if age.born is not None:
            days = (datetime.now(UTC) - age.born).total_seconds() / 86400
            why = f"data key {days:.0f} days old ({age.why})"
            if days * 86400 < max_age:
                return Rotation(f"not due: {why}", [], due=False, rotated=False)
        else:
            why = f"data key age unknown ({age.why})"
    groups, notes = rotation_groups(opened.metadata, list(add), list(remove))
    notes = [f"{file}: note: {note}" for note in notes]
    tail = f": {why}" if why else ""
    if dry_run:
        return Rotation(f"would rotate{tail}", notes, due=True, rotated=False)
    data = rotate(opened, groups, opened.metadata.shamir_threshold, env)
    write_file(file, data, private=False, rewrite=True)
    return Rotation(f"rotated{tail}", notes, due=True, rotated=True)


class RotateJob(_Selective):
    """``rotate -i`` / ``-n`` of many files."""

    def __init__(self, env: Mapping[str, str], *, input_type: str | None,
                 config_path: str | None, add: Sequence[Any], remove: Sequence[Any],
                 max_age: float | None, dry_run: bool) -> None:
        super().__init__(env)
        self.input_type, self.config_path = input_type, config_path
        self.add, self.remove = list(add), list(remove)
        self.max_age, self.dry_run = max_age, dry_run

    def __call__(self, item: Item) -> Outcome:
        return self.selected(item, lambda: self._rotate(item))

    def _rotate(self, item: Item) -> Outcome:
        done = rotate_file(item.path, input_type=self.input_type, config_path=self.config_path,
                           add=self.add, remove=self.remove, max_age=self.max_age,
                           dry_run=self.dry_run, env=self.env,
                           identities=self.state["identities"], rules=self.state["rules"])
        tags = (*(("due",) if done.due else ()), *(("done",) if done.rotated else ()))
        return Outcome(item.path, (f"{item.path}: {done.message}",), tuple(done.notes), tags)
