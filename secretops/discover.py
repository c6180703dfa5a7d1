"""Which files found in a directory a many-file command applies to.

A file *named* on the command line (or in a ``--files-from`` list) is always worked on, and
fails when it is not what the command expects. A file *found* by walking a directory
(:mod:`secretops.bulk.paths`) is worked on only when it is what the command is for, and
passed over in silence otherwise:

* ``decrypt``: an encrypted file — one that holds ``ENC[AES256_GCM,`` (:func:`looks_encrypted`;
  every file sops writes does, its MAC at least) and has ``sops`` metadata. A file that holds
  the marker but does not parse fails, as ``check`` reports it: it looks encrypted;
* ``rotate``, ``updatekeys``: an encrypted file that a ``.sops.yaml`` creation rule matches
  (:class:`Rules`), so a rule without ``path_regex`` does not pull in every README;
* ``encrypt -i --all``: a file that ``check`` would report as "must be encrypted": the first
  creation rule that matches it has a ``path_regex``, it is not allowlisted, and it is not
  encrypted yet (:class:`secretops.git.guard.Policy`);
* ``check``, ``filestatus``: every file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secretops.config import Config, CreationRule, find_config, load_config
from secretops.errors import SecretOpsError

if TYPE_CHECKING:
    from secretops.compose import Settings

MARKER = b"ENC[AES256_GCM,"


def looks_encrypted(data: bytes) -> bool:
    """Does ``data`` hold sops's ciphertext marker? (A quick test before parsing.)"""
    return MARKER in data


class Rules:
    """Which ``.sops.yaml`` and creation rule apply to a path, for one run.

    A run applies one config to many files: each directory's config is searched for once, each
    config read once (:func:`~secretops.config.load_config`) and each rule's keys parsed once,
    where doing all three for every file was a fifth of a bulk ``updatekeys``'s time in this
    process. Files and configs are assumed not to move while the run lasts."""

    def __init__(self, env: Mapping[str, str], explicit_config: str | None = None) -> None:
        self.env = env
        self.explicit_config = explicit_config
        self._configs: dict[Path, Config] = {}
        self._found: dict[str, Path | None] = {}
        self._resolved: dict[Path, str] = {}  # a config's directory, links resolved
        self._parsed: dict[tuple[Path, int], CreationRule] = {}

    def config_path(self, path: str) -> Path | None:
        """The config that applies to ``path`` (:func:`~secretops.config.find_config`)."""
        directory = os.path.dirname(os.path.abspath(path))
        if directory not in self._found:
            self._found[directory] = find_config(path, self.env, self.explicit_config)
        return self._found[directory]

    def config_arg(self, path: str) -> str | None:
        """:meth:`config_path` as a ``config_path`` argument (``--config``) for ``path``."""
        found = self.config_path(path)
        return str(found) if found is not None else None

    def settings(self, path: str, input_type: str | None = None) -> Settings:
        """:func:`secretops.compose.settings` for ``path`` with the run's config, found and
        read once per directory (not looked for and opened again for every file)."""
        from secretops.compose import Settings, store_options
        from secretops.stores import format_for_path

        fmt = input_type or format_for_path(path)
        cfg_path = self.config_path(path)
        cfg = None
        if cfg_path is not None:
            if cfg_path not in self._configs:
                self._configs[cfg_path] = load_config(cfg_path)
            cfg = self._configs[cfg_path]
        return Settings(fmt, cfg, store_options(cfg, fmt))

    def match(self, path: str) -> bool:
        """True when a rule of the config that applies to ``path`` matches it and its keys can
        be read. A config that cannot be read raises (exit 5), as it would for the file
        named."""
        cfg_path = self.config_path(path)
        if cfg_path is None:
            return False
        if cfg_path not in self._configs:
            self._configs[cfg_path] = load_config(cfg_path)
        cfg = self._configs[cfg_path]
        found = self._first_match(cfg, path)
        if found is None:
            return False
        try:
            self._rule(cfg, *found)
        except SecretOpsError:  # its keys cannot be read (a source not supported)
            return False
        return True

    def rule_for(self, cfg: Config, path: str) -> CreationRule | None:
        """:meth:`Config.rule_for <secretops.config.Config.rule_for>`, each rule parsed once
        per config."""
        found = (self._first_match(cfg, path) if cfg.data.get("creation_rules") is not None
                 else None)
        if found is None:
            return cfg.rule_for(path)  # None, or its "no creation rule matches" error
        return self._rule(cfg, *found)

    def _first_match(self, cfg: Config, path: str) -> tuple[int, dict[str, Any]] | None:
        if cfg.path not in self._resolved:
            self._resolved[cfg.path] = str(cfg.directory.resolve())
        return cfg.first_match(path, self._resolved[cfg.path])

    def _rule(self, cfg: Config, n: int, raw: dict[str, Any]) -> CreationRule:
        """``creation_rules[n]`` of ``cfg`` read, once (a rule that cannot be read raises each
        time: its error names the file it is raised for)."""
        key = (cfg.path, n)
        if self._configs.get(cfg.path) is not cfg:  # another reading of it: nothing kept holds
            self._configs[cfg.path] = cfg
            self._parsed = {k: v for k, v in self._parsed.items() if k[0] != cfg.path}
            self._resolved.pop(cfg.path, None)
        if key not in self._parsed:
            self._parsed[key] = cfg.parse_rule(raw, n)
        return self._parsed[key]
