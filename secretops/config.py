"""``.sops.yaml``: finding it, and the creation rule that applies to a file.

The file is found by ``--config`` / ``$SOPS_CONFIG``, else by walking up from the target file's
directory (then from the working directory, where sops looks) for ``.sops.yaml`` or
``.sops.yml``, at most 100 levels. ``creation_rules`` are tried in order and the first whose
``path_regex`` matches wins; the regex is searched (unanchored, like Go's ``MatchString``) in the
file's path relative to the config file's directory. A rule without ``path_regex`` matches
every file.

Supported rule fields: ``path_regex``, ``age``, ``kms`` (with ``aws_profile``), ``pgp``,
``hc_vault_transit_uri``, ``key_groups`` (with ``age``, ``kms`` maps, ``pgp`` and ``hc_vault``
entries), ``shamir_threshold``, the six selection rules and ``mac_only_encrypted``. Rules naming
GCP, Azure or Huawei keys are refused with a clear error.
The ``stores`` section's ``indent`` settings apply to output, as in sops: every document is
written anew with that indentation, unless ``secretops: keep_layout: true`` keeps each YAML
file's own layout (the indent then applies to what is written anew only).
``destination_rules`` (for ``publish``) are matched by :meth:`Config.destination_for`: the
first whose ``path_regex`` matches the path as given wins; its ``recreation_rule`` is a
creation rule.

**One validation for every reader.** :func:`load_config` checks the shape of the whole file —
every field of every rule, not just the rule a file matches — the way sops's own reading of it
(go-yaml into typed structs) refuses it: ``creation_rules`` a list of maps, the string fields
scalars, ``key_groups`` a list of maps whose entries are lists, ``shamir_threshold`` an integer,
``mac_only_encrypted`` a boolean, at most one selection rule, every regex valid, ``stores``
indents integers. ``encrypt``, ``decrypt``, ``check`` and the git drivers all read
the config through it, so a config that one refuses, all refuse (exit 5): a guard that could not
read the rules must not report "no plaintext". What a key *is* (a valid recipient, a supported
key source) is checked only where keys are used: ``check`` needs none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from secretops.config_shape import SELECTION_FIELDS as _SELECTION_FIELDS
from secretops.configpath import locate
from secretops.errors import ConfigError, ExitCode, SecretOpsError
from secretops.stores import StoreOptions

if TYPE_CHECKING:
    from secretops.keys.specs import KeySpec



class CreationRule(NamedTuple):
    """The keys and options a matching rule gives."""

    groups: list[list[KeySpec]]
    shamir_threshold: int
    selection: dict[str, str]
    mac_only_encrypted: bool
    where: str = ""  # "<.sops.yaml path>: creation_rules[n]", for messages

    def key_groups(self) -> list[list[KeySpec]]:
        """The groups to wrap a data key for; exit 1 (as sops) when the rule names no key."""
        from secretops.keys.specs import require_keys

        require_keys(self.groups, self.where)
        return self.groups


# A destination rule's kind, named by the field that selects it (sops: one per rule).
DESTINATION_KINDS = {"s3": "s3_bucket", "gcs": "gcs_bucket", "vault": "vault_path"}


class DestinationRule(NamedTuple):
    """Where ``publish`` sends a file: ``kind`` (``s3``, ``gcs``, ``vault``; ``""`` when the
    matching rule names none), the rule's own fields, and its ``recreation_rule``."""

    kind: str
    settings: dict[str, Any]
    omit_extensions: bool
    recreation: CreationRule


class Config(NamedTuple):
    """A loaded ``.sops.yaml``: where it is, and its parsed content."""

    path: Path
    data: dict[str, Any]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def store_options(self, fmt: str) -> StoreOptions:
        stores = self.data.get("stores") or {}
        name = "json_binary" if fmt == "binary" else fmt  # sops's name for the binary envelope
        section = stores.get(name) or {}  # shapes checked by load_config
        indent = section.get("indent")
        # an indent set here is a request for sops's output (docs/usage.md, "stores"), unless
        # secretops.keep_layout asks to keep each file's own layout
        keep = bool((self.data.get("secretops") or {}).get("keep_layout"))
        return StoreOptions(indent=indent, reindent=indent is not None and not keep)

    def rules(self) -> list[dict[str, Any]]:
        """The creation rules (each a map: checked by :func:`load_config`; an empty entry is
        an empty rule, as go-yaml reads it)."""
        return [rule or {} for rule in self.data.get("creation_rules") or []]

    def rules_keys(self) -> list[list[list[KeySpec]]]:
        """The key groups of every creation rule, as written (not resolved); a rule whose keys
        cannot be read (a source this version does not support) is left out."""
        out = []
        for n, raw in enumerate(self.rules()):
            try:
                out.append(self._parse_rule(raw, f"creation_rules[{n}]").groups)
            except SecretOpsError:
                continue
        return out

    def first_match(self, file_path: str, resolved: str | None = None
                    ) -> tuple[int, dict[str, Any]] | None:
        """The index and content of the first creation rule matching ``file_path``: its
        ``path_regex`` is searched (unanchored) in the path relative to the config; a rule
        without one matches every file. ``resolved``: see :func:`relative_path`."""
        return self.match_relative(relative_path(file_path, self.directory, resolved))

    def match_relative(self, rel: str) -> tuple[int, dict[str, Any]] | None:
        """:meth:`first_match` for a path already relative to the config's directory."""
        for n, raw in enumerate(self.rules()):
            regex = str(raw.get("path_regex") or "")
            if not regex or re.search(regex, rel) is not None:
                return n, raw
        return None

    def rule_for(self, file_path: str) -> CreationRule | None:
        """The first creation rule matching ``file_path``; None when the config has none."""
        if self.data.get("creation_rules") is None:
            return None
        found = self.first_match(file_path)
        if found is not None:
            return self.parse_rule(found[1], found[0])
        rel = relative_path(file_path, self.directory)
        raise ConfigError(
            f"no creation rule matches {rel}",
            code=ExitCode.ERROR_READING_CONFIG,
            file=str(self.path),
            hints=("add a creation rule whose path_regex matches this file",),
        )

    def destination_for(self, file_path: str) -> DestinationRule:
        """The first ``destination_rules`` entry matching ``file_path`` (``publish``).

        As in sops, and unlike creation rules, ``path_regex`` is searched in the path as the
        command was given it (not relative to the config), and a rule without one matches
        every file.
        """
        for n, raw in enumerate(self.data.get("destination_rules") or []):
            raw = raw or {}
            regex = str(raw.get("path_regex") or "")
            try:
                hit = not regex or re.search(regex, file_path) is not None
            except (re.error, RecursionError, OverflowError):
                raise ConfigError(f"destination_rules[{n}].path_regex is not a valid regex",
                                  file=str(self.path)) from None
            if hit:
                return self._destination(raw, n)
        raise ConfigError("no matching destination found in config", file=str(self.path),
                          hints=("add a destination_rules entry whose path_regex matches "
                                 "this file",))

    def _destination(self, raw: dict[str, Any], n: int) -> DestinationRule:
        kinds = [kind for kind, field in DESTINATION_KINDS.items() if raw.get(field)]
        if len(kinds) > 1:
            raise ConfigError(
                f"destination_rules[{n}] names more than one destination ({', '.join(kinds)}); "
                "sops allows one per rule", file=str(self.path))
        recreation = self._parse_rule(raw.get("recreation_rule") or {},
                                      f"destination_rules[{n}].recreation_rule")
        settings = {k: v for k, v in raw.items() if k not in ("recreation_rule", "path_regex")}
        return DestinationRule(kinds[0] if kinds else "", settings,
                               bool(raw.get("omit_extensions")), recreation)

    def parse_rule(self, raw: dict[str, Any], n: int) -> CreationRule:
        """``creation_rules[n]`` (its content ``raw``, from :meth:`first_match`) read."""
        return self._parse_rule(raw, f"creation_rules[{n}]")

    def _parse_rule(self, raw: dict[str, Any], where: str) -> CreationRule:
        from secretops.keys.specs import from_rule

        try:
            groups = from_rule(raw, where)
        except SecretOpsError as e:
            raise e.with_file(str(self.path)) from None
        selection = {k: str(raw[k]) for k in _SELECTION_FIELDS if raw.get(k)}
        threshold = raw.get("shamir_threshold") or 0
        return CreationRule(
            groups=groups,
            shamir_threshold=threshold,
            selection=selection,
            mac_only_encrypted=bool(raw.get("mac_only_encrypted")),
            where=f"{where} in {self.path}",
        )


def relative_path(file_path: str, directory: Path, resolved: str | None = None) -> str:
    """``file_path`` relative to the config's ``directory`` (as given or with links resolved),
    which is what ``path_regex`` is searched in; else the path as given. ``resolved``: the
    directory with its links resolved, when the caller knows it already."""
    prefix = (resolved or str(directory.resolve())) + os.sep
    absolute = os.path.abspath(file_path)
    if absolute.startswith(prefix):
        return absolute[len(prefix):]
    real = os.path.realpath(file_path)  # only when needed: it stats every component
    if real.startswith(prefix):
        return real[len(prefix):]
    return file_path


def find_config(start: str | None, env: Mapping[str, str], explicit: str | None = None,
                exists: Callable[[Path], bool] = Path.is_file) -> Path | None:
    """The config file to use, or None (:func:`secretops.configpath.locate`, as a Path)."""
    found = locate(start, env, explicit, lambda p: exists(Path(p)))
    return Path(found) if found is not None else None


# Configs read from disk by this process, by path and the file's identity and times: a
# many-file run applies one .sops.yaml to every file, and parsing and checking it again for
# each file was a tenth of a bulk rotate's time. A changed file (size, mtime or ctime, or a
# new inode) is read again. Config.data is never changed by its readers.
_loaded: dict[tuple[str, int, int, int, int, int], Config] = {}
_MAX_LOADED = 32


def load_config(path: Path, text: bytes | None = None) -> Config:
    """The config at ``path`` (its content ``text`` when given, e.g. from the git index),
    within the size limit and checked whole (see the module's docstring)."""
    from secretops.limits import MAX_CONFIG_BYTES

    if text is not None:
        return _parse_config(path, text)
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if key in _loaded:
                return _loaded[key]
            raw = f.read(MAX_CONFIG_BYTES + 1)  # no more than the limit, whatever it is
    except OSError as e:
        raise ConfigError(f"cannot read the config: {e.strerror}", file=str(path)) from None
    config = _parse_config(path, raw)  # a config that is refused is never kept
    if len(_loaded) >= _MAX_LOADED:
        _loaded.clear()
    _loaded[key] = config
    return config


def _parse_config(path: Path, raw: bytes) -> Config:
    from secretops import yamlload
    from secretops.config_shape import check_shape

    data = yamlload.load(raw, str(path), config=True)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a map", file=str(path))
    check_shape(data, str(path))
    _contexts_as_written(data, raw, path)
    return Config(path, data)


def _list(value: Any) -> list[Any]:
    """``value`` if it is a list, else nothing: a malformed entry is reported where it is used
    (``rule_for``), not here."""
    return value if isinstance(value, list) else []


def _contexts_as_written(data: dict[str, Any], raw: bytes, path: Path) -> None:
    """KMS encryption contexts of ``key_groups`` hold the scalars' text, as go-yaml gives sops
    (``true``, ``yes``, ``0x10`` — not ``True``, ``16``): they are sent to KMS and an IAM
    condition may name them."""
    where = []
    for n, rule in enumerate(_list(data.get("creation_rules"))):
        for m, group in enumerate(_list(rule.get("key_groups") if isinstance(rule, dict) else 0)):
            for k, entry in enumerate(_list(group.get("kms") if isinstance(group, dict) else 0)):
                if isinstance(entry, dict) and isinstance(entry.get("context"), dict):
                    where.append((n, m, k))
    if not where:
        return
    from secretops import yamlload

    text = yamlload.load(raw, str(path), config=True, strings=True)  # every scalar a string
    for n, m, k in where:
        typed = data["creation_rules"][n]["key_groups"][m]["kms"][k]
        for key, value in typed["context"].items():
            if value is None:
                raise ConfigError(
                    f"creation_rules[{n}].key_groups[{m}].kms[{k}].context.{key} has no value",
                    file=str(path))
        try:
            as_written = text["creation_rules"][n]["key_groups"][m]["kms"][k]["context"]
            typed["context"] = {str(c): str(v) for c, v in as_written.items()}
        except (KeyError, IndexError, TypeError, AttributeError):
            # merge keys (<<) shape the typed reading only: the text cannot be matched up
            raise ConfigError(
                f"creation_rules[{n}].key_groups[{m}].kms[{k}].context cannot be read as "
                "written (write it out without merge keys)", file=str(path)) from None
