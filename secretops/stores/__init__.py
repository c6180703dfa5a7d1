"""Stores: codecs between a file's bytes and document trees. No file access happens here.

A store turns bytes into a :class:`Loaded` (the documents as :class:`~secretops.core.tree.Branch`
trees, the raw ``sops`` metadata branch if the file carries one, and an opaque *layout* the store
may use to write the file back faithfully) and writes trees back to bytes:

* ``load(data)`` — parse a plaintext or an encrypted file. The ``sops`` entry, when present, is
  removed from the documents and returned as ``metadata``.
* ``emit(docs, metadata, layout)`` — write documents; with ``metadata`` (a wire branch from
  :meth:`Metadata.to_wire`) the result is an encrypted file, without it a plaintext one. Where
  ``layout`` is given the store keeps everything but the values (and comments) as they were.

One module per format, listed in one table, :data:`TABLE`: each :class:`Format`'s name, the file
name endings that select it, its module and store class (imported only when that format is
used), and the template ``edit`` starts a new file from. The CLI's ``--input-type`` choices,
:func:`format_for_path` and :func:`get_store` all read it. Bad input raises
:class:`~secretops.errors.FormatError` with a message that names the line where it can.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple, Protocol

from secretops.core.tree import Branch
from secretops.errors import ExitCode, SecretOpsError


class Format(NamedTuple):
    """One file format."""

    name: str
    extensions: tuple[str, ...]  # lower-case name endings that pick it (sops's rules)
    store: str  # "module:Class"
    template: bytes  # a new file in `edit`


TABLE = (
    Format("yaml", (".yaml", ".yml"), "secretops.stores.yaml:YamlStore",
           b"# A new secrets file: replace this with your data. It is encrypted when you\n"
           b"# save and close the editor; leave it unchanged to create nothing.\n"
           b"password: change-me\n"),
    Format("json", (".json",), "secretops.stores.json:JsonStore",
           b'{\n    "password": "change-me"\n}\n'),
    Format("dotenv", (".env",), "secretops.stores.dotenv:DotenvStore", b"PASSWORD=change-me\n"),
    Format("ini", (".ini",), "secretops.stores.ini:IniStore",
           b"[secrets]\npassword = change-me\n"),
    # last: what any other name is
    Format("binary", (), "secretops.stores.binary:BinaryStore", b"change me\n"),
)
BY_NAME = {f.name: f for f in TABLE}
FORMATS = tuple(BY_NAME)


class Loaded(NamedTuple):
    """A parsed file."""

    docs: list[Branch]
    metadata: Branch | None = None
    layout: Any = None


class Store(Protocol):
    name: str

    def load(self, data: bytes) -> Loaded: ...

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes: ...

    def emit_value(self, value: Any) -> bytes:
        """One value that is neither a map nor a string (``--extract`` of a number, a list…),
        as sops's ``EmitValue`` of this format writes it; :class:`~secretops.errors.DumpError`
        where sops cannot write it either."""
        ...


class StoreOptions(NamedTuple):
    """Per-format output settings: ``.sops.yaml``'s ``stores:`` section, or sops's ``--indent``
    (:func:`secretops.compose.store_options` makes them).

    ``indent`` is sops's number: YAML takes 0 as its default 4, 1 and more than 9 as 2 (go-yaml's
    rule) and refuses a negative one; JSON takes -1 as a tab and 0 as newlines without
    indentation. ``reindent`` asks for the output sops writes — every document anew at
    ``indent`` — where without it the YAML store keeps the file's own layout and uses
    ``indent`` only for what it has to write anew (the ``sops:`` block, converted output).
    """

    indent: int | None = None
    reindent: bool = False


def format_for_path(path: str) -> str:
    """The format sops would pick from a file name (``binary`` when nothing matches)."""
    lower = path.lower()
    return next((f.name for f in TABLE if f.extensions and lower.endswith(f.extensions)),
                "binary")


def get_store(name: str, options: StoreOptions | None = None) -> Store:
    """The store for a format name; imports only that store's module."""
    fmt = BY_NAME.get(name)
    if fmt is None:
        raise SecretOpsError(
            f"unknown format {name!r} (expected one of {', '.join(FORMATS)})",
            code=ExitCode.CONFLICTING_PARAMETERS,
        )
    module, _, cls = fmt.store.partition(":")
    store: Store = getattr(importlib.import_module(module), cls)(options or StoreOptions())
    return store


def render_number(value: Any) -> str:
    """A number, boolean or null as sops prints a scalar (``--extract`` of one value)."""
    from secretops.stores._yamlscalar import render_number as render

    return render(value)


def val_to_string(value: Any) -> str:
    """sops's ``ValToString``: the text a non-string scalar gets in a flat file or in an
    environment variable (``exec-env``)."""
    from secretops.stores._flatten import val_to_string as convert

    return convert(value)
