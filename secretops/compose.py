"""Where a file meets its settings: the one composition point every command goes through.

A command names a file (and maybe ``--input-type``, ``--config``); before anything is read it
needs the file's format, the ``.sops.yaml`` that applies to it and that config's store options
(``stores: yaml: indent: 4`` …). :func:`settings` works them out the same way for every
command, and :func:`open_path` adds the read and the decryption (:func:`secretops.fileops.
open_file`). The rules, in one place:

* the format is ``--input-type``, else the one the name (or ``--filename-override``) implies;
* the config is ``--config`` / ``$SOPS_CONFIG``, else ``.sops.yaml`` searched upwards from the
  file (:func:`secretops.configpath.locate`);
* the store options are the config's ``stores:`` section for that format (defaults without a
  config), unless the command line gave sops's global ``--indent``: then every store writes
  anew with that indentation, whatever the config says (:func:`store_options`). sops reads
  ``--indent`` only in its global mode (``sops -d --indent 2 f``), never after a subcommand,
  so the CLI does not pass it as a subcommand option: it runs the subcommand inside
  :func:`indent_given`.

``lenient=True`` is for ``edit``, which uses the config of an existing file only to format its
output: a config that cannot be found (``--config`` naming no file) then means default
options; one that is found but malformed still fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from secretops.stores import StoreOptions, format_for_path

if TYPE_CHECKING:
    from secretops.config import Config
    from secretops.fileops import OpenedFile, SealedFile
    from secretops.keys import Identity


_INDENT: ContextVar[int | None] = ContextVar("secretops_indent", default=None)


@contextmanager
def indent_given(indent: int) -> Iterator[None]:
    """Within the block, every store writes output anew with ``indent`` (sops's ``--indent``,
    which overrides ``.sops.yaml``'s ``stores:`` section for YAML, JSON and binary alike)."""
    token = _INDENT.set(indent)
    try:
        yield
    finally:
        _INDENT.reset(token)


def store_options(config: Config | None, fmt: str) -> StoreOptions:
    """The options of format ``fmt``'s store: ``--indent`` if given (see :func:`indent_given`),
    else ``config``'s ``stores:`` section, else the defaults."""
    indent = _INDENT.get()
    if indent is not None:
        return StoreOptions(indent=indent, reindent=True)
    return config.store_options(fmt) if config is not None else StoreOptions()


class Settings(NamedTuple):
    """A file's format, the config that applies to it (if any) and its store options."""

    format: str
    config: Config | None
    options: StoreOptions


def load_config_for(file: str | None, env: Mapping[str, str],
                    config_path: str | None = None) -> Config | None:
    """The ``.sops.yaml`` that applies to ``file`` (``config_path`` first), loaded; or None.
    Where there is none, the config module (pathlib, the shape checks) is never imported."""
    from secretops.configpath import locate

    path = locate(file, env, config_path)
    if path is None:
        return None
    from pathlib import Path

    from secretops.config import load_config

    return load_config(Path(path))


def settings(file: str, *, input_type: str | None = None, name: str | None = None,
             config_path: str | None = None, env: Mapping[str, str] | None = None,
             lenient: bool = False) -> Settings:
    """The format, config and store options for ``file`` (``name`` picks the format instead of
    the file's own name)."""
    env = os.environ if env is None else env
    fmt = input_type or format_for_path(name or file)
    from secretops.configpath import locate

    try:
        path = locate(file, env, config_path)
    except Exception:
        if not lenient:
            raise
        path = None
    cfg = load_config_for(file, env, path) if path is not None else None
    return Settings(fmt, cfg, store_options(cfg, fmt))


def open_path(file: str, *, input_type: str | None = None, name: str | None = None,
              config_path: str | None = None, env: Mapping[str, str] | None = None,
              rewrite: bool = False, ignore_mac: bool = False,
              given: Settings | None = None, keep_ivs: bool = True,
              identities: Callable[[str], list[Identity]] | None = None) -> OpenedFile:
    """Read and decrypt ``file`` with its settings (or ``given`` ones). ``rewrite``: the
    command will write the file back, so it must be a regular file (:mod:`secretops.fileio`);
    ``keep_ivs=False``: it only reads; ``identities``: a lookup to reuse across files
    (:func:`secretops.fileops.open_file`)."""
    from secretops.fileio import read_input
    from secretops.fileops import open_file

    env = os.environ if env is None else env
    s = given or settings(file, input_type=input_type, name=name, config_path=config_path,
                          env=env)
    return open_file(read_input(file, rewrite=rewrite), format=s.format, env=env,
                     options=s.options, ignore_mac=ignore_mac, keep_ivs=keep_ivs,
                     identities=identities)


def open_sealed_path(file: str, given: Settings, *, env: Mapping[str, str], rewrite: bool,
                     identities: Callable[[str], list[Identity]] | None = None) -> SealedFile:
    """:func:`open_path` without the decryption (:func:`secretops.fileops.open_sealed`):
    ``rotate`` decrypts each value as it encrypts it again."""
    from secretops.fileio import read_input
    from secretops.fileops import open_sealed

    return open_sealed(read_input(file, rewrite=rewrite), format=given.format, env=env,
                       options=given.options, identities=identities)
