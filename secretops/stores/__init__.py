"""Stores: codecs between a file's bytes and document trees. No file access happens here.

A store turns bytes into a :class:`Loaded` (the documents as :class:`~secretops.core.tree.Branch`
trees, the raw ``sops`` metadata branch if the file carries one, and an opaque *layout* the store
may use to write the file back faithfully) and writes trees back to bytes:

* ``load(data)`` — parse a plaintext or an encrypted file. The ``sops`` entry, when present, is
  removed from the documents and returned as ``metadata``.
* ``emit(docs, metadata, layout)`` — write documents; with ``metadata`` (a wire branch from
  :meth:`Metadata.to_wire`) the result is an encrypted file, without it a plaintext one. Where
  ``layout`` is given the store keeps everything but the values (and comments) as they were.

One module per format: ``yaml``, ``json``, ``dotenv``, ``ini``, ``binary``. Bad input raises
:class:`~secretops.errors.FormatError` with a message that names the line where it can.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from secretops.core.tree import Branch
from secretops.errors import ExitCode, SecretOpsError

FORMATS = ("yaml", "json", "dotenv", "ini", "binary")


class Loaded(NamedTuple):
    """A parsed file."""

    docs: list[Branch]
    metadata: Branch | None = None
    layout: Any = None


class Store(Protocol):
    name: str

    def load(self, data: bytes) -> Loaded: ...

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes: ...


class StoreOptions(NamedTuple):
    """Per-format settings from ``.sops.yaml``'s ``stores:`` section."""

    indent: int | None = None


def format_for_path(path: str) -> str:
    """The format sops would pick from a file name (``binary`` when nothing matches)."""
    lower = path.lower()
    if lower.endswith((".yaml", ".yml")):
        return "yaml"
    if lower.endswith(".json"):
        return "json"
    if lower.endswith(".env"):
        return "dotenv"
    if lower.endswith(".ini"):
        return "ini"
    return "binary"


def get_store(name: str, options: StoreOptions | None = None) -> Store:
    """The store for a format name; imports only that store's module."""
    options = options or StoreOptions()
    if name == "yaml":
        from secretops.stores.yaml import YamlStore

        return YamlStore(options)
    if name == "json":
        from secretops.stores.json import JsonStore

        return JsonStore(options)
    if name == "dotenv":
        from secretops.stores.dotenv import DotenvStore

        return DotenvStore(options)
    if name == "ini":
        from secretops.stores.ini import IniStore

        return IniStore(options)
    if name == "binary":
        from secretops.stores.binary import BinaryStore

        return BinaryStore(options)
    raise SecretOpsError(
        f"unknown format {name!r} (expected one of {', '.join(FORMATS)})",
        code=ExitCode.CONFLICTING_PARAMETERS,
    )
