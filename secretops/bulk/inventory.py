"""``secretops status``: what each file a creation rule covers needs, told without a key.

For every file it is given (named, found in directories, listed: :mod:`.paths`),
:class:`InventoryJob` returns one record (a JSON object in the outcome's line) that says:

* **state** — ``current`` (encrypted, its keys are what its rule says), ``stale`` (encrypted,
  ``updatekeys`` would change its keys), ``plaintext`` (not encrypted, and a creation rule with
  a ``path_regex`` says it must be: what ``check`` refuses). A file that cannot be read or
  parsed is the file's failure (its exit code and one line), never a record;
* the file's **key groups** and the rule's, and what ``updatekeys`` would add and remove —
  computed by :func:`secretops.bulk.keyjobs.rule_plan`, the very function ``updatekeys`` runs,
  so the two cannot disagree;
* the keys in the file that **no creation rule** of its ``.sops.yaml`` lists any more (someone
  who left, a retired KMS key);
* whether the file has a **MAC**;
* the **data key's age** from git history (:func:`secretops.keyage.sealing_age`: the signal
  ``rotate --older-than`` reads, told without the data key), and with ``max_age`` whether it
  is due for rotation.

Which files: a file found in a directory is taken when it is encrypted and a creation rule
matches it (as ``updatekeys`` and ``rotate`` take it), or when it is plaintext that ``check``
would refuse; one that holds sops's ciphertext marker, a rule matches, and does not parse is a
failure. A file named is always taken: encrypted, or plaintext a rule must cover, or a failure.

Nothing here loads an identity, recovers a data key or decrypts a value: everything comes from
the metadata, the config and git. Reads are bounded by :mod:`secretops.limits` (the file by
:func:`secretops.fileio.read_input`, the config by :func:`secretops.config.load_config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from secretops.bulk.paths import Item
from secretops.bulk.pool import Job, Outcome
from secretops.errors import ExitCode, MetadataError, SecretOpsError

if TYPE_CHECKING:
    from secretops.config import Config
    from secretops.keyage import KeyAge
    from secretops.stores import Loaded

#: The version of the JSON schema (``docs/usage.md``, "status"): a field is never removed or
#: changed in meaning without a new number.
SCHEMA_VERSION = 1

STATES = ("current", "stale", "plaintext")


class InventoryJob(Job):
    """``status`` of one file: its record, or its failure."""

    def __init__(self, env: Mapping[str, str], *, input_type: str | None,
                 config_path: str | None, max_age: float | None, now: float) -> None:
        self.env = dict(env)
        self.input_type, self.config_path = input_type, config_path
        self.max_age, self.now = max_age, now

    def setup(self) -> None:
        from secretops.discover import Rules
        from secretops.git.guard import Policy

        self.state["rules"] = Rules(self.env, self.config_path)
        self.state["policy"] = Policy(self.env, self.config_path)
        self.state["listed"] = {}

    def __call__(self, item: Item) -> Outcome:
        from secretops.discover import looks_encrypted
        from secretops.fileio import read_input
        from secretops.fileops import load
        from secretops.stores import StoreOptions, format_for_path

        file = item.path
        data = read_input(file)
        fmt = self.input_type or format_for_path(file)
        loaded: Loaded | None = None
        broken: SecretOpsError | None = None
        if looks_encrypted(data):
            try:
                loaded = load(data, fmt, StoreOptions())[1]
            except SecretOpsError as e:
                broken = e
        if broken is not None or (loaded is not None and loaded.metadata is not None):
            if not item.named and not self.state["rules"].match(file):
                return Outcome(file, skipped=True)
            if broken is not None:
                raise broken
            assert loaded is not None
            record = self._encrypted(file, data, fmt, loaded)
        else:
            verdict = self.state["policy"].verdict(file, data)
            if verdict.allowed_by or not verdict.must_encrypt:
                if item.named and not verdict.allowed_by:
                    raise MetadataError(
                        "not encrypted, and no creation rule with a path_regex covers it",
                        hints=("status reports on files a creation rule covers",))
                return Outcome(file, skipped=True)
            record = {"file": file, "state": "plaintext", "format": fmt,
                      "rule": verdict.rule, "actions": ["encrypt"]}
        line = json.dumps(record, separators=(",", ":"), sort_keys=True)
        return Outcome(file, (line,), tags=(record["state"],))

    def _encrypted(self, file: str, data: bytes, fmt: str, loaded: Loaded) -> dict[str, Any]:
        from secretops.bulk.keyjobs import rule_of, rule_plan
        from secretops.compose import settings
        from secretops.core.metadata import Metadata
        from secretops.keys import describe, describe_entry, key_identity

        meta = Metadata.from_wire(loaded.metadata)
        rules = self.state["rules"]
        given = settings(file, input_type=self.input_type,
                         config_path=self.config_path or rules.config_arg(file),
                         env=self.env)
        rule = rule_of(file, given, rules)
        plan = rule_plan(meta, rule, 0, self.env)
        assert given.config is not None  # rule_of found one
        listed = self._listed(given.config)
        unlisted = [describe_entry(e) for e in meta.all_keys()
                    if key_identity(e.kind, e.fields) not in listed]
        age = self._age(file, data, fmt, given.options)
        actions = []
        if plan.changed:
            actions.append("updatekeys")
        if self.max_age is not None and (age["days"] is None
                                         or age["days"] * 86400 >= self.max_age):
            actions.append("rotate")
        if not meta.mac:
            actions.append("fix-mac")
        return {
            "file": file,
            "state": "stale" if plan.changed else "current",
            "format": fmt,
            "rule": rule.where,
            "key_groups": [[describe_entry(e) for e in g] for g in meta.key_groups],
            "rule_key_groups": [[describe(s.kind, s.fields) for s in g] for g in plan.groups],
            "shamir_threshold": plan.old_threshold,
            "rule_shamir_threshold": plan.threshold,
            "add": plan.added,
            "remove": plan.removed,
            "changes": plan.summary(),
            "unlisted": unlisted,
            "mac": bool(meta.mac),
            "data_key": age,
            "actions": actions,
        }

    def _listed(self, cfg: Config) -> set[tuple[Any, ...]]:
        """Every key some creation rule of ``cfg`` lists (read once per config)."""
        cache: dict[str, set[tuple[Any, ...]]] = self.state["listed"]
        if str(cfg.path) not in cache:
            from secretops.keys import key_identity, resolved

            out: set[tuple[Any, ...]] = set()
            for groups in cfg.rules_keys():
                try:
                    specs = resolved(groups, self.env)
                except SecretOpsError:  # a key the source cannot name now: as the rule says
                    specs = [list(g) for g in groups]
                out.update(key_identity(s.kind, s.fields) for g in specs for s in g)
            cache[str(cfg.path)] = out
        return cache[str(cfg.path)]

    def _age(self, file: str, data: bytes, fmt: str, options: Any) -> dict[str, Any]:
        from secretops.keyage import KeyAge, sealing_age

        try:
            age: KeyAge = sealing_age(file, data, fmt, options)
        except SecretOpsError as e:
            if e.code != ExitCode.HISTORY_INCOMPLETE or self.max_age is not None:
                raise  # rotate --older-than refuses a shallow clone too
            age = KeyAge(None, None, "shallow clone: the history ends before the data key "
                                     "was made")
        born = age.born.timestamp() if age.born is not None else None
        return {
            "born": age.born.strftime("%Y-%m-%dT%H:%M:%SZ") if age.born is not None else None,
            "days": int(max(0.0, self.now - born) // 86400) if born is not None else None,
            "commit": age.commit,
            "why": age.why,
        }


def needs_action(record: Mapping[str, Any]) -> bool:
    return bool(record.get("actions"))


def parse(line: str) -> dict[str, Any]:
    """A record back from its outcome line."""
    out: dict[str, Any] = json.loads(line)
    return out

