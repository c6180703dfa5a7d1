"""Encrypting and decrypting whole trees, and the MAC that binds their values together.

This is sops's ``Tree.Encrypt`` / ``Tree.Decrypt``: walk every document in order, encrypt (or
decrypt) each selected leaf with its key path as associated data, and feed every value's
plaintext bytes to one SHA-512 running over all documents of the file. The digest, as uppercase
hex, is encrypted with ``lastmodified`` as associated data and stored as ``mac``.

What the MAC covers, and what it does not (see ``docs/security.md``):

* covered: every non-null, non-empty scalar value, in order (unencrypted ones too, unless
  ``mac_only_encrypted``), so changing, removing, adding, reordering or swapping values fails;
* not covered: comments, ``null`` values and empty strings (they hash to nothing), key names of
  maps holding no values, the ``type:`` tag beyond what decryption itself checks, and the
  metadata (recipients and wrapped keys).

Pure functions: no I/O, no clock, no randomness except through the :class:`ValueCipher`.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes

from secretops.core.cipher import CipherError, ValueCipher
from secretops.core.selection import Selection
from secretops.core.tree import Branch, Comment, Seq
from secretops.core.values import to_bytes, type_name
from secretops.errors import DecryptionError, ExitCode, MacMismatchError, SecretOpsError

# sha256(b"sops"): seeds the hash when mac_only_encrypted is set, so the two MAC kinds differ.
MAC_ONLY_ENCRYPTED_INIT = bytes.fromhex(
    "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
)


class _LeafError(Exception):
    """Internal: a leaf failed; carries the path segments collected on the way up."""

    def __init__(self, cause: str, segments: list[str | int]) -> None:
        self.cause = cause
        self.segments = segments


def _display(segments: list[str | int]) -> str:
    from secretops.errors import format_path

    return format_path(segments)


class _Walk:
    """One walk over a file's documents, encrypting or decrypting."""

    __slots__ = ("by_path", "cipher", "decrypting", "hash_all", "hasher", "key_matches",
                 "selection", "wanted")

    def __init__(self, selection: Selection, cipher: ValueCipher, encrypt: bool,
                 hasher: Any) -> None:
        self.selection = selection
        self.by_path = not selection.uses_comments
        # with path rules only, a leaf is encrypted when ``matched`` (some key on its path
        # matched the rule) equals ``wanted`` — Selection.decide, without a call per leaf
        self.wanted = selection.decide(True)
        self.hash_all = not selection.mac_only_encrypted
        self.key_matches = selection.key_matches
        self.cipher = cipher
        self.hasher = hasher
        self.decrypting = not encrypt

    # ``aad`` is a node's key path as sops authenticates it (``a:b:``; ``:`` at the top), made
    # once per key on the way down; ``path`` is the same as a list, for the comment rules, and
    # ``levels`` the comments seen so far in each open collection. The walk keeps its own stack
    # of open collections instead of recursing: a file may nest as deep as the limits allow.
    def walk(self, doc: Branch) -> Branch:
        leaf = self.leaf_function()
        key_matches = self.key_matches
        by_path = self.by_path
        path: list[str] = []
        where: list[str | int] = []  # the open collections' keys / indexes, for errors
        levels: list[list[str]] = [[]]
        root = Branch()
        # an open collection: [items, out, is_branch, aad, base, matched, index, pushed_path]
        frames: list[list[Any]] = [[iter(doc), root, True, ":", "", False, -1, False]]
        while frames:
            frame = frames[-1]
            items, out, is_branch, aad, base, matched = frame[:6]
            level = levels[-1]
            append = out.append
            child: Any = None
            if is_branch:
                for item in items:
                    if type(item) is not tuple:  # a comment line
                        level.append(str(item))
                        append(self._leaf_at(leaf, item, path, aad, levels, matched, where))
                        continue
                    key, value = item
                    if not isinstance(key, str):
                        raise _LeafError(
                            f"keys must be strings, found the {type(key).__name__} key "
                            f"{key!r}", list(where))
                    hit = matched or key_matches(key)
                    if value is None:
                        append((key, None))
                    elif isinstance(value, (Branch, Seq)):
                        child = Branch() if type(value) is Branch else Seq()
                        append((key, child))
                        path.append(key)
                        where.append(key)
                        key_aad = f"{base}{key}:"
                        frames.append([iter(value), child, type(value) is Branch, key_aad,
                                       key_aad, hit, -1, True])
                        break
                    else:
                        if not by_path:
                            path.append(key)
                        try:
                            append((key, leaf(value, path, f"{base}{key}:", levels, hit)))
                        except _LeafError as e:
                            e.segments[:0] = [*where, key]
                            raise
                        finally:
                            if not by_path:
                                path.pop()
                    level.clear()
            else:
                for value in items:
                    frame[6] += 1
                    if isinstance(value, Comment):
                        level.append(str(value))
                        append(self._leaf_at(leaf, value, path, aad, levels, matched, where))
                        continue
                    if isinstance(value, (Branch, Seq)):
                        child = Branch() if type(value) is Branch else Seq()
                        append(child)
                        where.append(frame[6])
                        frames.append([iter(value), child, type(value) is Branch, aad, aad,
                                       matched, -1, False])
                        break
                    if value is None:
                        append(None)
                    else:
                        try:
                            append(leaf(value, path, aad, levels, matched))
                        except _LeafError as e:
                            e.segments[:0] = [*where, frame[6]]
                            raise
                    level.clear()
            if child is not None:
                levels.append([])
                continue
            frames.pop()  # done with this collection: back to its parent's next item
            levels.pop()
            if frames:
                where.pop()
                if frame[7]:
                    path.pop()
                levels[-1].clear()
        return root

    def leaf_function(self) -> Any:
        """What the walk does with each leaf."""
        return self.decrypt_leaf if self.decrypting else self.encrypt_leaf

    @staticmethod
    def _leaf_at(leaf: Any, value: Any, path: list[str], aad: str, levels: list[list[str]],
                 matched: bool, where: list[str | int]) -> Any:
        """A comment's leaf call: its errors name the collection it is in."""
        try:
            return leaf(value, path, aad, levels, matched)
        except _LeafError as e:
            e.segments[:0] = where
            raise

    def by_rules(self, value: Any, path: list[str], stack: list[list[str]]) -> bool:
        """Encrypt this leaf? The full rules, for selections that look at comments (the leaves
        decide ``matched == self.wanted`` themselves otherwise)."""
        return self.selection.should_encrypt(path, stack, isinstance(value, Comment))

    def encrypt_leaf(self, value: Any, path: list[str], aad: str, stack: list[list[str]],
                     matched: bool) -> Any:
        encrypted = (matched == self.wanted if self.by_path
                     else self.by_rules(value, path, stack))
        if type(value) is str:  # the common leaf, without the dispatch of to_bytes
            plain, type_ = value.encode("utf-8", "surrogateescape"), "str"
        else:
            try:
                plain, type_ = to_bytes(value), type_name(value)
            except TypeError as e:
                raise _LeafError(str(e), []) from None
        is_comment = type_ == "comment"
        if not is_comment and (encrypted or self.hash_all):
            self.hasher.update(plain)
        if not encrypted:
            return value
        if not plain and isinstance(value, str):
            return value  # an empty string stays empty, as in sops
        try:
            enc = self.cipher.seal(plain, type_, aad)
        except ValueError as e:
            raise _LeafError(str(e), []) from None
        return Comment(enc) if is_comment else enc

    def decrypt_leaf(self, value: Any, path: list[str], aad: str, stack: list[list[str]],
                     matched: bool) -> Any:
        encrypted = (matched == self.wanted if self.by_path
                     else self.by_rules(value, path, stack))
        if encrypted:
            if isinstance(value, Comment):
                try:
                    out = self.cipher.decrypt(str(value), aad)
                except CipherError:
                    return value  # an unencrypted comment (older files), as sops allows
                return out if isinstance(out, Comment) else Comment(str(out))
            if not isinstance(value, str):
                raise _LeafError("the value should be encrypted but is not an ENC[...] string", [])
            try:
                out, plain = self.cipher.open(value, aad)
            except CipherError as e:
                raise _LeafError(str(e), []) from None
            if type(out) is str:  # its bytes are the plaintext: no need to encode it again
                self.hasher.update(plain)
                return out
        else:
            out = value
        # sops decides on the decrypted value: a list item of type:comment is a comment
        if not isinstance(out, Comment) and (encrypted or self.hash_all):
            self.hasher.update(to_bytes(out))
        return out


def _new_hasher(selection: Selection) -> Any:
    # cryptography's SHA-512: its library is loaded for AES-GCM already, where hashlib would
    # load the system's OpenSSL too (~3 ms of a small file's run)
    h = hashes.Hash(hashes.SHA512())
    if selection.mac_only_encrypted:
        h.update(MAC_ONLY_ENCRYPTED_INIT)
    return h


def _run(docs: list[Branch], walk: _Walk, failure_code: ExitCode) -> tuple[list[Branch], str]:
    out = []
    for doc in docs:
        try:
            out.append(walk.walk(doc))
        except _LeafError as e:
            raise SecretOpsError(
                e.cause, code=failure_code, path=_display(e.segments) or None
            ) from None
    return out, walk.hasher.finalize().hex().upper()


def encrypt_documents(
    docs: list[Branch], selection: Selection, cipher: ValueCipher
) -> tuple[list[Branch], str]:
    """Encrypt the selected leaves of every document; returns the new trees and the MAC (hex)."""
    return _run(
        docs, _Walk(selection, cipher, True, _new_hasher(selection)), ExitCode.ERROR_ENCRYPTING_TREE
    )


def decrypt_documents(
    docs: list[Branch], selection: Selection, cipher: ValueCipher, walk: _Walk | None = None
) -> tuple[list[Branch], str]:
    """Decrypt every selected leaf; returns the plaintext trees and the MAC (hex) they yield
    (``walk``: one that does more with each leaf, :func:`reencrypt_documents`)."""
    try:
        return _run(
            docs,
            walk or _Walk(selection, cipher, False, _new_hasher(selection)),
            ExitCode.ERROR_DECRYPTING_TREE,
        )
    except SecretOpsError as e:
        raise DecryptionError(e.message, path=e.path) from None


class _EncryptFailed(Exception):
    """Internal: a leaf failed to encrypt during :func:`reencrypt_documents`."""


class _Rekey(_Walk):
    """One walk that decrypts each leaf with the file's cipher and encrypts it with a new one:
    :func:`decrypt_documents` then :func:`encrypt_documents`, leaf by leaf, without the
    plaintext tree between them. Only for path rules (the comment rules read the comments seen
    so far, which are ciphertext in one walk and plaintext in the other)."""

    __slots__ = ("new",)

    def __init__(self, selection: Selection, old: ValueCipher, new: ValueCipher) -> None:
        super().__init__(selection, old, False, _new_hasher(selection))
        self.new = _Walk(selection, new, True, _new_hasher(selection))

    def leaf_function(self) -> Any:
        decrypt_leaf, encrypt_leaf = self.decrypt_leaf, self.new.encrypt_leaf
        wanted, open_, seal = self.wanted, self.cipher.open, self.new.cipher.seal
        hash_all = self.hash_all
        old_hash, new_hash = self.hasher.update, self.new.hasher.update

        def rekey_leaf(value: Any, path: list[str], aad: str, stack: list[list[str]],
                       matched: bool) -> Any:
            if matched == wanted and type(value) is str:
                # an encrypted value (decrypt_leaf's steps, without its dispatch)
                try:
                    out, plain = open_(value, aad)
                except CipherError as e:
                    raise _LeafError(str(e), []) from None
                if type(out) is str:  # the common leaf: the same bytes go into both MACs
                    old_hash(plain)
                    new_hash(plain)
                    if not plain:
                        return out  # an empty string stays empty
                    try:
                        return seal(plain, "str", aad)
                    except ValueError:
                        raise _EncryptFailed() from None
                if not isinstance(out, Comment):
                    old_hash(to_bytes(out))
            elif type(value) is str:  # a string left in the clear: the same in both MACs
                if hash_all:
                    plain = value.encode("utf-8", "surrogateescape")
                    old_hash(plain)
                    new_hash(plain)
                return value
            else:
                out = decrypt_leaf(value, path, aad, stack, matched)
            try:
                return encrypt_leaf(out, path, aad, stack, matched)
            except _LeafError:
                raise _EncryptFailed() from None

        return rekey_leaf


def reencrypt_documents(
    docs: list[Branch], selection: Selection, old: ValueCipher, new: ValueCipher
) -> tuple[list[Branch], str, str] | None:
    """Decrypt every selected leaf with ``old`` and encrypt it with ``new``, in one walk: the
    new trees, the MAC (hex) of the values as decrypted and the MAC (hex) as encrypted — what
    :func:`decrypt_documents` and then :func:`encrypt_documents` of its trees return.

    ``None`` when one walk cannot give exactly that: comment rules, or a leaf that fails to
    encrypt (two walks report a failed decryption or MAC first). A leaf that fails to decrypt
    raises :class:`DecryptionError` as :func:`decrypt_documents` does.
    """
    if selection.uses_comments:
        return None
    walk = _Rekey(selection, old, new)
    try:
        out, old_mac = decrypt_documents(docs, selection, old, walk)
    except _EncryptFailed:
        return None
    return out, old_mac, walk.new.hasher.finalize().hex().upper()


def encrypt_mac(mac_hex: str, lastmodified: str, cipher: ValueCipher) -> str:
    """The stored ``mac`` field: the hex digest encrypted with ``lastmodified`` as AAD."""
    return cipher.encrypt(mac_hex, lastmodified)


def verify_mac(stored_mac: str, computed_hex: str, lastmodified: str, cipher: ValueCipher) -> None:
    """Raise :class:`MacMismatchError` unless the stored MAC matches the computed one."""
    if not stored_mac:
        raise SecretOpsError("the file has no MAC", code=ExitCode.MAC_NOT_FOUND)
    try:
        expected = cipher.decrypt(stored_mac, lastmodified)
    except CipherError:
        raise MacMismatchError(
            "MAC mismatch: the mac or lastmodified field was altered",
            hints=("use --ignore-mac only if you know why the file changed",),
        ) from None
    if expected != computed_hex:
        raise MacMismatchError(
            "MAC mismatch: values were changed, added, removed or reordered since the file "
            "was encrypted",
            hints=("use --ignore-mac only if you know why the file changed",),
        )
