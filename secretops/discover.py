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

from collections.abc import Mapping
from pathlib import Path

from secretops.config import Config, find_config, load_config
from secretops.errors import SecretOpsError

MARKER = b"ENC[AES256_GCM,"


def looks_encrypted(data: bytes) -> bool:
    """Does ``data`` hold sops's ciphertext marker? (A quick test before parsing.)"""
    return MARKER in data


class Rules:
    """Does a ``.sops.yaml`` creation rule match a path? Configs are read once per run."""

    def __init__(self, env: Mapping[str, str], explicit_config: str | None = None) -> None:
        self.env = env
        self.explicit_config = explicit_config
        self._configs: dict[Path, Config] = {}

    def match(self, path: str) -> bool:
        """True when a rule of the config that applies to ``path`` matches it. A config that
        cannot be read raises (exit 5), as it would for the file named."""
        cfg_path = find_config(path, self.env, self.explicit_config)
        if cfg_path is None:
            return False
        if cfg_path not in self._configs:
            self._configs[cfg_path] = load_config(cfg_path)
        try:
            return self._configs[cfg_path].rule_for(path) is not None
        except SecretOpsError:  # no rule matches this file
            return False
