"""Operations on an opened encrypted file, shared by the CLI's commands and the git drivers.

:func:`open_file` loads a file, recovers its data key and decrypts it into an
:class:`OpenedFile` (:func:`open_sealed` stops before the decryption); the other functions
write an opened file back after a change — the same plaintext (:func:`reencrypt`), an edited
plaintext (:func:`reencrypt_plaintext`), one value set or removed, new key entries
(:func:`rewrite_metadata`). A new data key is :mod:`secretops.rotation`'s. Unchanged values
keep their ciphertext (the minimal-diff seam). Nothing here touches files: callers read and
write them (:mod:`secretops.fileio`). Internal: the stable API is :mod:`secretops.api`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from secretops.core.cipher import ValueCipher
from secretops.core.document import open_documents, seal
from secretops.core.metadata import Metadata
from secretops.core.tree import Branch, Seq
from secretops.errors import ExitCode, FormatError, MetadataError, SecretOpsError
from secretops.stores import Loaded, StoreOptions, get_store

if TYPE_CHECKING:
    from secretops.config import Config
    from secretops.keys import Identity

def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(data: bytes, fmt: str, options: StoreOptions) -> tuple[Any, Loaded]:
    store = get_store(fmt, options)
    loaded = store.load(data)
    return store, loaded



class OpenedFile(NamedTuple):
    """A decrypted file: plaintext trees, metadata, the cipher (for IV reuse) and the layout."""

    docs: list[Branch]
    metadata: Metadata
    data_key: bytes
    cipher: ValueCipher
    loaded: Loaded
    store: Any


class SealedFile(NamedTuple):
    """An encrypted file loaded and its data key recovered, no value decrypted yet
    (``rotate`` decrypts and encrypts each value in one walk, :mod:`secretops.rotation`)."""

    metadata: Metadata
    data_key: bytes
    loaded: Loaded
    store: Any


def open_sealed(
    data: bytes,
    *,
    format: str,
    env: Mapping[str, str] | None = None,
    options: StoreOptions | None = None,
    identities: Callable[[str], list[Identity]] | None = None,
    data_key_for: Callable[[Metadata], bytes] | None = None,
) -> SealedFile:
    """Load and find the data key: :func:`open_file` without the decryption."""
    from secretops.keys import decryption_order
    from secretops.keys.datakey import lazy_identities, recover_data_key

    env = os.environ if env is None else env
    store, loaded = load(data, format, options or StoreOptions())
    if loaded.metadata is None:
        raise MetadataError(
            "sops metadata not found: the file is not encrypted",
            hints=("is this the right file, and the right --input-type?",),
        )
    metadata = Metadata.from_wire(loaded.metadata)
    if data_key_for is not None:
        data_key = data_key_for(metadata)
    else:
        data_key = recover_data_key(metadata, identities or lazy_identities(env),
                                    decryption_order(env))
    return SealedFile(metadata, data_key, loaded, store)


def open_file(
    data: bytes,
    *,
    format: str,
    ignore_mac: bool = False,
    env: Mapping[str, str] | None = None,
    options: StoreOptions | None = None,
    keep_ivs: bool = True,
    identities: Callable[[str], list[Identity]] | None = None,
    data_key_for: Callable[[Metadata], bytes] | None = None,
) -> OpenedFile:
    """Load, find the data key, decrypt and verify: the shared first half of most commands.

    ``keep_ivs=False`` is for reading only: the cipher then cannot reproduce old ciphertexts
    (see :mod:`secretops.core.document`), and saves remembering one IV per value.
    ``identities``: a lookup by kind to reuse across files (many-file commands load them once
    per process); by default the environment's, loaded as they are needed. ``data_key_for``
    recovers the data key instead (``secretops log`` reuses data keys across versions).
    """
    s = open_sealed(data, format=format, env=env, options=options, identities=identities,
                    data_key_for=data_key_for)
    docs, cipher = open_documents(
        s.loaded.docs, s.metadata, s.data_key, random=os.urandom, ignore_mac=ignore_mac,
        keep_ivs=keep_ivs,
    )
    return OpenedFile(docs, s.metadata, s.data_key, cipher, s.loaded, s.store)


_INDENTED = ("yaml", "json")  # output formats that .sops.yaml's stores: section shapes


def decrypt_data(
    data: bytes,
    *,
    format: str | None = None,
    output_format: str | None = None,
    filename: str | None = None,
    ignore_mac: bool = False,
    extract_path: str | None = None,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    identities: Callable[[str], list[Identity]] | None = None,
    config_for: Callable[[str | None], Config | None] | None = None,
) -> bytes:
    """:func:`secretops.api.decrypt`, with ``identities`` to reuse across files (a many-file
    ``decrypt`` loads them once per process) and ``config_for`` (a file's config, found once
    per directory in such a run): the same output for the same input."""
    from secretops.compose import load_config_for, store_options
    from secretops.stores import format_for_path

    env = os.environ if env is None else env
    fmt = format or (format_for_path(filename) if filename else "yaml")
    out_fmt = output_format or fmt
    cfg = None
    if config or out_fmt != fmt or fmt in _INDENTED:  # .sops.yaml's stores: section
        try:
            cfg = (config_for(filename) if config_for is not None
                   else load_config_for(filename, env, config))
        except SecretOpsError:
            if config:
                raise
    opened = open_file(
        data, format=fmt, ignore_mac=ignore_mac, env=env, options=store_options(cfg, fmt),
        keep_ivs=False, identities=identities,
    )
    out_store = opened.store if out_fmt == fmt else get_store(out_fmt, store_options(cfg, out_fmt))
    if extract_path:
        value = extract(opened.docs, parse_tree_path(extract_path))
        return render_extracted(value, out_store, opened.docs)
    layout = opened.loaded.layout if out_fmt == fmt else None
    return bytes(out_store.emit(opened.docs, None, layout))


def reencrypt(
    opened: OpenedFile, docs: list[Branch] | None = None, *, lastmodified: str | None = None,
    output: Any = None,
) -> bytes:
    """Write ``docs`` (default: the file's own plaintext) back into the opened file.

    The minimal-diff seam: values that did not change keep their exact ciphertext (IV reuse
    through the opened file's cipher), the file keeps its layout, and only changed values,
    ``lastmodified`` and ``mac`` differ. The data key and recipients are kept.
    """
    metadata = opened.metadata
    sealed = seal(
        opened.docs if docs is None else docs,
        metadata,
        opened.data_key,
        random=os.urandom,
        lastmodified=lastmodified or now(),
        cipher=opened.cipher,
    )
    return emit_sealed(opened, sealed, metadata, opened.loaded.layout, output)


def reencrypt_plaintext(opened: OpenedFile, plaintext: bytes, output: Any = None) -> bytes:
    """Encrypt an edited plaintext of the opened file with the file's data key and keys.

    The minimal-diff path of ``edit`` and ``encrypt --reuse``: a value that is unchanged at its
    path keeps its exact ciphertext; the result takes the layout of ``plaintext``. When no value
    or comment changed at all, ``lastmodified`` and ``mac`` are kept too, so the file does not
    change.
    """
    loaded = opened.store.load(plaintext)
    if loaded.metadata is not None:
        raise SecretOpsError(
            "the plaintext carries sops metadata: it is an encrypted file, not its plaintext",
            code=ExitCode.FILE_ALREADY_ENCRYPTED,
        )
    unchanged = loaded.docs == opened.docs
    lastmodified = opened.metadata.lastmodified if unchanged else now()
    sealed = seal(loaded.docs, opened.metadata, opened.data_key, random=os.urandom,
                  lastmodified=lastmodified, cipher=opened.cipher)
    return emit_sealed(opened, sealed, opened.metadata, loaded.layout, output)


def reencrypt_with_metadata(opened: OpenedFile, text: bytes, output: Any = None) -> bytes:
    """``edit -s``: ``text`` holds the plaintext *and* a ``sops`` block, which the user may
    have edited (keys added or removed, rules changed). As sops does, the file is written with
    that metadata and the file's data key; unchanged values keep their ciphertext."""
    loaded = opened.store.load(text)
    if loaded.metadata is None:
        raise FormatError("the sops metadata was removed from the edited text",
                          hints=("with -s, keep the sops block below the values",))
    metadata = Metadata.from_wire(loaded.metadata)
    if not any(metadata.key_groups):
        raise FormatError("no master keys were provided, so the file cannot be encrypted",
                          hints=("with -s, keep at least one key in the sops block",))
    sealed = seal(loaded.docs, metadata, opened.data_key, random=os.urandom,
                  lastmodified=now(), cipher=opened.cipher)
    return emit_sealed(opened, sealed, metadata, loaded.layout, output)


class PathNotFound(SecretOpsError):
    """A tree path names a key or list item the file does not have (sops: exit 1)."""

    code = ExitCode.GENERIC


def _path_error(path: list[str | int], err: Any) -> SecretOpsError:
    from secretops.errors import format_path

    where = format_path(path[: err.index + 1])
    if err.missing:
        return PathNotFound(f"component not found in the file ({err.why})", path=where)
    return SecretOpsError(f"cannot use this path here: {err.why}", code=ExitCode.GENERIC,
                          path=where)


def set_value(opened: OpenedFile, path: list[str | int], value: Any,
              output: Any = None) -> bytes | None:
    """The file with ``value`` at ``path`` (in the first document), with sops's ``set``
    semantics (:func:`secretops.core.tree.set_path`); None when sops would call it unchanged.

    Other values keep their ciphertext. Changing a scalar keeps the file's layout; adding a key
    or changing a value's shape writes the document in the store's standard layout. ``output``
    is another format's store to write the file in (``--output-type``).
    """
    from secretops.core.tree import PathError, from_plain, same_shape, set_path

    if not opened.docs:
        opened.docs.append(Branch())
    doc = opened.docs[0]
    before = _copy_tree(doc)
    try:
        tree = value if isinstance(value, Branch | Seq) else from_plain(value)
        changed = set_path(doc, path, tree)
    except PathError as e:
        raise _path_error(path, e) from None
    if not changed:
        return None
    return _emit_changed(opened, same_shape(before, doc), output)


def unset_value(opened: OpenedFile, path: list[str | int], output: Any = None) -> bytes:
    """The file without the key or list item at ``path`` (in the first document);
    :class:`PathNotFound` when it is not there."""
    from secretops.core.tree import PathError, unset_path

    try:
        unset_path(opened.docs[0] if opened.docs else Branch(), path)
    except PathError as e:
        raise _path_error(path, e) from None
    return _emit_changed(opened, False, output)


def _copy_tree(node: Any) -> Any:
    from secretops.core.tree import copy_tree

    return copy_tree(node)


def _emit_changed(opened: OpenedFile, keep_layout: bool, output: Any = None) -> bytes:
    metadata = opened.metadata
    sealed = seal(opened.docs, metadata, opened.data_key, random=os.urandom,
                  lastmodified=now(), cipher=opened.cipher)
    layout = opened.loaded.layout if keep_layout else indent_only(opened.loaded.layout)
    return emit_sealed(opened, sealed, metadata, layout, output)


def emit_sealed(opened: OpenedFile | SealedFile, sealed: list[Branch], metadata: Metadata,
                layout: Any, output: Any) -> bytes:
    """The sealed documents in the file's own format and layout, or in ``output``'s format
    (``--output-type``: another store, which starts from no layout)."""
    if output is not None and output.name != opened.store.name:
        return bytes(output.emit(sealed, metadata.to_wire(), None))
    return bytes(opened.store.emit(sealed, metadata.to_wire(), layout))


def indent_only(layout: Any) -> Any:
    """The layout with only what survives a change of shape (YAML: the indentation)."""
    reemit = getattr(layout, "for_reemit", None)
    return reemit() if reemit is not None else layout


def rewrite_metadata(opened: OpenedFile | SealedFile, metadata: Metadata) -> bytes:
    """Write the file's encrypted values unchanged under new metadata (same data key).

    For changing recipients (``updatekeys``): every value's ciphertext, ``lastmodified`` and
    ``mac`` stay byte-identical; only the key entries change.
    """
    from secretops.stores.yaml import YamlStore

    loaded = opened.loaded
    wire = metadata.to_wire()
    if isinstance(opened.store, YamlStore):  # only the sops block changes: splice it alone
        spliced = opened.store.emit_metadata(loaded.docs, wire, loaded.layout)
        if spliced is not None:
            return spliced
    return bytes(opened.store.emit(loaded.docs, wire, loaded.layout))


_PATH_PART = re.compile(r"""\[(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(-?\d+))\]""")


def parse_tree_path(text: str) -> list[str | int]:
    """``["data"]["password"][0]`` → ``["data", "password", 0]``."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_PART.match(text, pos)
        if m is None:
            raise SecretOpsError(
                f"invalid tree path {text!r}: expected a form like '[\"data\"][\"key\"][0]'",
                code=ExitCode.INVALID_TREE_PATH_FORMAT,
            )
        if m.group(3) is not None:
            parts.append(int(m.group(3)))
        else:
            dq = m.group(1)
            parts.append(dq.replace('\\"', '"') if dq is not None else m.group(2))
        pos = m.end()
    if not parts:
        raise SecretOpsError("empty tree path", code=ExitCode.INVALID_TREE_PATH_FORMAT)
    return parts


def extract(docs: list[Branch], path: list[str | int]) -> Any:
    """The value at ``path`` in the first document, found as sops's ``Truncate`` finds it (a
    list index counts comments); :class:`PathNotFound` when it is not there."""
    from secretops.errors import format_path

    node: Any = docs[0] if docs else Branch()
    for i, part in enumerate(path):
        where = format_path(path[: i + 1])
        if type(part) is int:
            if not isinstance(node, Seq):
                raise SecretOpsError("an index, but this part of the file is not a list",
                                     code=ExitCode.GENERIC, path=where)
            if not -len(node) <= part < len(node):
                raise PathNotFound("component not found in the file (index out of bounds)",
                                   path=where)
            node = node[part]
            continue
        if not isinstance(node, Branch):
            raise SecretOpsError("a key, but this part of the file is not a map",
                                 code=ExitCode.GENERIC, path=where)
        sentinel = object()
        node = node.get(str(part), sentinel)
        if node is sentinel:
            raise PathNotFound("component not found in the file", path=where)
    return node


def render_extracted(value: Any, store: Any, docs: Sequence[Branch] = ()) -> bytes:
    """What sops prints for ``--extract``: a string as its raw text; a map as a whole file in
    the output format (with the file's other documents after it, as sops does); anything else
    as the output format writes one value (:meth:`secretops.stores.Store.emit_value`)."""
    from secretops.core.tree import Comment

    if isinstance(value, Branch):
        return bytes(store.emit([value, *docs[1:]], None, None))
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and not isinstance(value, Comment):
        return value.encode("utf-8", "surrogateescape")
    return bytes(store.emit_value(value))


def is_encrypted(data: bytes, format: str) -> bool:
    """Does ``data`` carry sops metadata? (``filestatus``)"""
    try:
        _, loaded = load(data, format, StoreOptions())
    except FormatError:
        return False
    return loaded.metadata is not None
