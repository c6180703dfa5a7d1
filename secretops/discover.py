"""Finding the encrypted files under paths: what batch commands (``rotate --older-than``) see.

A path naming a file is taken as it is. A directory is walked (hidden directories such as
``.git`` are skipped, symbolic links are not followed), and a file found there is taken when
a ``.sops.yaml`` creation rule matches it *and* it carries sops metadata — so a rule without
``path_regex`` does not pull in every README, and plaintext files a rule would encrypt are left
to the pre-commit check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from secretops.config import Config, find_config, load_config
from secretops.errors import SecretOpsError
from secretops.stores import format_for_path

_MARKERS = (b"lastmodified", b"ENC[AES256_GCM")


def _looks_encrypted(path: str) -> bool:
    from secretops.fileops import is_encrypted

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if not any(m in data for m in _MARKERS):
        return False
    try:
        return is_encrypted(data, format_for_path(path))
    except SecretOpsError:
        return False


def _matched(path: str, env: Mapping[str, str], configs: dict[Path, Config | None],
             explicit_config: str | None) -> bool:
    cfg_path = find_config(path, env, explicit_config)
    if cfg_path is None:
        return False
    if cfg_path not in configs:
        configs[cfg_path] = load_config(cfg_path)
    cfg = configs[cfg_path]
    if cfg is None:
        return False
    try:
        return cfg.rule_for(path) is not None
    except SecretOpsError:  # no rule matches this file
        return False


def encrypted_files(paths: list[str], env: Mapping[str, str],
                    config: str | None = None) -> Iterator[str]:
    """Files named directly, then files under directories that rules match and are encrypted."""
    configs: dict[Path, Config | None] = {}
    seen: set[str] = set()
    for path in paths:
        if not os.path.isdir(path):
            if path not in seen:
                seen.add(path)
                yield path
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".sops.yaml") or name == ".sops.yml":
                    continue
                full = os.path.join(root, name)
                if full in seen or os.path.islink(full):
                    continue
                if _matched(full, env, configs, config) and _looks_encrypted(full):
                    seen.add(full)
                    yield full
