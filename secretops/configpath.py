"""Where the ``.sops.yaml`` that applies to a file is: the search, without reading the file.

Apart from :mod:`secretops.config`, which parses and checks a config, because every
``decrypt`` looks for one (its ``stores:`` section sets the output's indentation) and most
find none: the search needs only :mod:`os.path`, the parser pathlib, the YAML loader and the
shape checks. The rules are in ``docs/usage.md`` ("How it is found").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from secretops.errors import ExitCode, SecretOpsError

CONFIG_NAMES = (".sops.yaml", ".sops.yml")
_MAX_LEVELS = 100


def locate(start: str | None, env: Mapping[str, str], explicit: str | None = None,
           exists: Callable[[str], bool] = os.path.isfile) -> str | None:
    """The path of the config to use, or None: ``explicit`` (``--config``), else
    ``$SOPS_CONFIG`` (either must name a file: exit 61), else the first ``.sops.yaml`` or
    ``.sops.yml`` in the directory of ``start`` and its parents, then in the working
    directory and its parents. ``exists`` says whether a candidate is there (the pre-commit
    check asks the git index instead of the disk)."""
    given = explicit or env.get("SOPS_CONFIG")
    if given:
        if not os.path.isfile(given):
            raise SecretOpsError(f"config file {given} not found",
                                 code=ExitCode.CONFIG_FILE_NOT_FOUND)
        return given
    starts = [os.path.dirname(os.path.abspath(start))] if start else []
    starts.append(os.getcwd())
    for d in starts:
        for _ in range(_MAX_LEVELS):
            for name in CONFIG_NAMES:
                p = os.path.join(d, name)
                if exists(p):
                    return p
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    return None
