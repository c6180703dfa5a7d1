"""Operations on an opened encrypted file, shared by the CLI's commands and the git drivers.

:func:`open_file` loads a file, recovers its data key and decrypts it into an
:class:`OpenedFile`; the other functions write an opened file back after a change — the same
plaintext (:func:`reencrypt`), an edited plaintext (:func:`reencrypt_plaintext`), one value
set or removed, new key entries (:func:`rewrite_metadata`), a new data key (:func:`rotate`).
Unchanged values keep their ciphertext (the minimal-diff seam). Nothing here touches files:
callers read and write them (:mod:`secretops.fileio`). Internal: the stable API is
:mod:`secretops.api`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from secretops.core.cipher import ValueCipher
from secretops.core.document import open_documents, seal
from secretops.core.metadata import Metadata
from secretops.core.tree import Branch, Seq
from secretops.errors import ExitCode, FormatError, MetadataError, SecretOpsError
from secretops.stores import Loaded, StoreOptions, get_store

if TYPE_CHECKING:
    from secretops.keys.specs import KeySpec

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


def open_file(
    data: bytes,
    *,
    format: str,
    ignore_mac: bool = False,
    env: Mapping[str, str] | None = None,
    options: StoreOptions | None = None,
    keep_ivs: bool = True,
) -> OpenedFile:
    """Load, find the data key, decrypt and verify: the shared first half of most commands.

    ``keep_ivs=False`` is for reading only: the cipher then cannot reproduce old ciphertexts
    (see :mod:`secretops.core.document`), and saves remembering one IV per value.
    """
    from secretops.keys import DEFAULT_DECRYPTION_ORDER
    from secretops.keys.datakey import lazy_identities, recover_data_key

    env = os.environ if env is None else env
    store, loaded = load(data, format, options or StoreOptions())
    if loaded.metadata is None:
        raise MetadataError(
            "sops metadata not found: the file is not encrypted",
            hints=("is this the right file, and the right --input-type?",),
        )
    metadata = Metadata.from_wire(loaded.metadata)
    order_env = env.get("SOPS_DECRYPTION_ORDER")
    order = ([s.strip() for s in order_env.split(",") if s.strip()] if order_env
             else list(DEFAULT_DECRYPTION_ORDER))
    data_key = recover_data_key(metadata, lazy_identities(env), order)
    docs, cipher = open_documents(
        loaded.docs, metadata, data_key, random=os.urandom, ignore_mac=ignore_mac,
        keep_ivs=keep_ivs,
    )
    return OpenedFile(docs, metadata, data_key, cipher, loaded, store)


def reencrypt(
    opened: OpenedFile, docs: list[Branch] | None = None, *, lastmodified: str | None = None
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
    return bytes(opened.store.emit(sealed, metadata.to_wire(), opened.loaded.layout))


def reencrypt_plaintext(opened: OpenedFile, plaintext: bytes) -> bytes:
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
    return bytes(opened.store.emit(sealed, opened.metadata.to_wire(), loaded.layout))


def _tree_error(path: list[str | int], index: int, what: str) -> SecretOpsError:
    from secretops.errors import format_path

    return SecretOpsError(what, code=ExitCode.INVALID_TREE_PATH_FORMAT,
                          path=format_path(path[: index + 1]))


def set_value(opened: OpenedFile, path: list[str | int], value: Any) -> bytes | None:
    """The file with ``value`` at ``path`` (in the first document); None when already so.

    Other values keep their ciphertext. Changing a scalar keeps the file's layout; adding a key
    or changing a value's shape writes the document in the store's standard layout.
    """
    from secretops.core.tree import from_plain, same_shape, set_path

    if not opened.docs:
        opened.docs.append(Branch())
    doc = opened.docs[0]
    before = _copy_tree(doc)
    try:
        tree = value if isinstance(value, Branch | Seq) else from_plain(value)
        changed = set_path(doc, path, tree)
    except KeyError as e:
        raise _tree_error(path, e.args[0], "cannot set a value here: the path runs through "
                          "a value that is not a map, or past the end of a list") from None
    if not changed:
        return None
    return _emit_changed(opened, same_shape(before, doc))


def unset_value(opened: OpenedFile, path: list[str | int]) -> bytes:
    """The file without the key or list item at ``path`` (in the first document)."""
    from secretops.core.tree import unset_path

    try:
        unset_path(opened.docs[0] if opened.docs else Branch(), path)
    except KeyError as e:
        raise _tree_error(path, e.args[0], "component not found in the file") from None
    return _emit_changed(opened, False)


def _copy_tree(node: Any) -> Any:
    from secretops.core.tree import copy_tree

    return copy_tree(node)


def _emit_changed(opened: OpenedFile, keep_layout: bool) -> bytes:
    metadata = opened.metadata
    sealed = seal(opened.docs, metadata, opened.data_key, random=os.urandom,
                  lastmodified=now(), cipher=opened.cipher)
    layout = opened.loaded.layout if keep_layout else indent_only(opened.loaded.layout)
    return bytes(opened.store.emit(sealed, metadata.to_wire(), layout))


def indent_only(layout: Any) -> Any:
    """The layout with only what survives a change of shape (YAML: the indentation)."""
    reemit = getattr(layout, "for_reemit", None)
    return reemit() if reemit is not None else layout


def rewrite_metadata(opened: OpenedFile, metadata: Metadata) -> bytes:
    """Write the file's encrypted values unchanged under new metadata (same data key).

    For changing recipients (``updatekeys``): every value's ciphertext, ``lastmodified`` and
    ``mac`` stay byte-identical; only the key entries change.
    """
    loaded = opened.loaded
    return bytes(opened.store.emit(loaded.docs, metadata.to_wire(), loaded.layout))


def rotate(opened: OpenedFile, groups: Sequence[Sequence[KeySpec]], threshold: int = 0,
           env: Mapping[str, str] | None = None) -> bytes:
    """Re-encrypt the opened file under a new data key wrapped for ``groups``.

    Every value gets a new ciphertext (new key, new IVs), ``lastmodified`` and ``mac`` change,
    selection rules and the layout stay. Nothing is written: the caller writes atomically.
    """
    from secretops.keys.datakey import make_recipients, wrap_data_key

    env = os.environ if env is None else env
    recipients = make_recipients([g for g in groups if g], env)
    data_key = os.urandom(32)
    if len(recipients) > 1:
        threshold = threshold or len(recipients)
    metadata = Metadata(
        key_groups=wrap_data_key(recipients, data_key, threshold, os.urandom),
        shamir_threshold=threshold if len(recipients) > 1 else 0,
        selection=opened.metadata.selection,
        version=opened.metadata.version,
    )
    sealed = seal(opened.docs, metadata, data_key, random=os.urandom, lastmodified=now())
    return bytes(opened.store.emit(sealed, metadata.to_wire(), opened.loaded.layout))


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
    """The value at ``path`` in the first document."""
    from secretops.core.tree import Comment
    from secretops.errors import format_path

    node: Any = docs[0] if docs else Branch()
    for i, part in enumerate(path):
        if isinstance(node, Branch) and isinstance(part, str):
            sentinel = object()
            nxt = node.get(part, sentinel)
            if nxt is not sentinel:
                node = nxt
                continue
        elif isinstance(node, Seq) and isinstance(part, int):
            items = [v for v in node if not isinstance(v, Comment)]
            if -len(items) <= part < len(items):
                node = items[part]
                continue
        raise SecretOpsError(
            "component not found in the file",
            code=ExitCode.INVALID_TREE_PATH_FORMAT,
            path=format_path(path[: i + 1]),
        )
    return node


def render_extracted(value: Any, store: Any) -> bytes:
    """A string as its raw text; anything else in the output format."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, Branch):
        return bytes(store.emit([value], None, None))
    if isinstance(value, Seq):
        out = bytes(store.emit([Branch([("x", value)])], None, None))
        if store.name == "yaml":
            lines = out.decode().splitlines()[1:]
            indent = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
            return ("\n".join(line[indent:] for line in lines) + "\n").encode()
        return out
    from secretops.stores import render_number

    if value is None:
        return b"null\n"
    return (render_number(value) + "\n").encode()


def is_encrypted(data: bytes, format: str) -> bool:
    """Does ``data`` carry sops metadata? (``filestatus``)"""
    try:
        _, loaded = load(data, format, StoreOptions())
    except FormatError:
        return False
    return loaded.metadata is not None
