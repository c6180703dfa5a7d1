"""Three-way merge of encrypted files, value by value (the git merge driver).

git cannot merge two branches that changed one encrypted file: every change re-encrypts values
and rewrites ``lastmodified`` and ``mac``, so the text conflicts even when the branches touched
different secrets. This driver merges the *plaintext trees* and re-encrypts the result.

Rules, for each map key (recursively):

* the same on both sides (including both deleted): taken;
* changed on one side only (added, changed or deleted): that side's version wins;
* changed differently on both sides: when all are maps, merged key by key; else a **conflict**
  at that path.

A list is one value: its items share one key path in the SOPS format, so two branches that
changed one list differently conflict on the whole list. Comments in a map follow the side
that changed them (both changing them differently is a conflict on that map).

Keys and the data key:

* master keys (and Shamir groups/threshold) changed on one side are carried into the result;
  changed differently on both sides: a conflict;
* the selection rules (``encrypted_regex``, …) likewise;
* the result keeps the data key of ours, unless only theirs rotated it, then theirs'; values
  taken from the side whose key was not kept are encrypted under the kept key, and every value
  that is unchanged relative to the kept side keeps its exact ciphertext.

When ours or theirs equals the base byte for byte, the other side is the result, and no key is
needed. A conflict writes nothing: the caller keeps ours and reports the paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from secretops.core.tree import Branch, Comment, Seq
from secretops.errors import ExitCode, SecretOpsError, format_path

MISSING: Any = object()


def is_sops_file(data: bytes, fmt: str) -> bool:
    """Does this version of a file carry sops metadata? (A plain file never gets parsed.)"""
    from secretops.git.textconv import looks_like_sops

    if not looks_like_sops(data):
        return False
    from secretops import fileops

    try:
        return fileops.is_encrypted(data, fmt)
    except SecretOpsError:
        return True  # sops-like but damaged: the value merge reports what is wrong


class MergeConflict(SecretOpsError):
    """Both sides changed the same thing differently."""

    code = ExitCode.GENERIC

    def __init__(self, paths: list[str]) -> None:
        super().__init__(f"merge conflict in {len(paths)} place(s): {', '.join(paths)}",
                         hints=("resolve with: secretops edit FILE (see theirs with: git show "
                                ":3:FILE | secretops decrypt --filename-override FILE)",))
        self.paths = paths


def canon(node: Any) -> Any:
    """A hashable form of a value, types included (1 != 1.0 != True), comments included."""
    if isinstance(node, Branch):
        return ("map", tuple(("#", str(i)) if isinstance(i, Comment) else (i[0], canon(i[1]))
                             for i in node))
    if isinstance(node, Seq):
        return ("seq", tuple(canon(v) for v in node))
    if isinstance(node, Comment):
        return ("#", str(node))
    return (type(node).__name__, node)


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return bool(canon(a) == canon(b))


def _comments(branch: Branch) -> list[tuple[Any, str]]:
    """Comments anchored to the key before them (None: at the start)."""
    out: list[tuple[Any, str]] = []
    anchor: Any = None
    for item in branch:
        if isinstance(item, Comment):
            out.append((anchor, str(item)))
        else:
            anchor = item[0]
    return out


def merge_branch(base: Branch, ours: Branch, theirs: Branch, path: list[str | int],
                 conflicts: list[str]) -> Branch:
    b, o, t = (dict((i[0], i[1]) for i in x if type(i) is tuple) for x in (base, ours, theirs))
    order = [i[0] for i in ours if type(i) is tuple]
    for n, item in enumerate(i for i in theirs if type(i) is tuple):
        key = item[0]
        if key not in o:  # added by theirs, or deleted by ours: after its predecessor there
            before = [i[0] for i in theirs if type(i) is tuple][:n]
            pos = max((order.index(k) + 1 for k in before if k in order), default=0)
            order.insert(pos, key)
    values: dict[Any, Any] = {}
    for key in order:
        bv, ov, tv = b.get(key, MISSING), o.get(key, MISSING), t.get(key, MISSING)
        if _same(ov, tv):
            chosen = ov
        elif _same(ov, bv):
            chosen = tv
        elif _same(tv, bv):
            chosen = ov
        elif isinstance(ov, Branch) and isinstance(tv, Branch) and (
                bv is MISSING or isinstance(bv, Branch)):
            chosen = merge_branch(bv if bv is not MISSING else Branch(), ov, tv,
                                  [*path, key], conflicts)
        else:
            conflicts.append(format_path([*path, key]))
            chosen = ov
        if chosen is not MISSING:
            values[key] = chosen
    oc, tc, bc = _comments(ours), _comments(theirs), _comments(base)
    if oc == tc or tc == bc:
        comments = oc
    elif oc == bc:
        comments = tc
    else:
        conflicts.append((format_path(path) or "the top level") + " (comments)")
        comments = oc
    out = Branch()
    pending = [text for anchor, text in comments if anchor is None or anchor not in values]
    out.extend(Comment(c) for c in pending)
    for key, value in values.items():
        out.append((key, value))
        out.extend(Comment(text) for anchor, text in comments if anchor == key)
    return out


def _key_set(metadata: Any) -> Any:
    from secretops.keys import key_identity

    return (tuple(tuple(sorted(key_identity(e.kind, e.fields) for e in g))
                  for g in metadata.key_groups),
            metadata.shamir_threshold if len(metadata.key_groups) > 1 else 0)


def _pick(base: Any, ours: Any, theirs: Any, what: str, conflicts: list[str]) -> str:
    """Which side's version of a whole-file property to take: 'ours' or 'theirs'."""
    if ours == theirs or theirs == base:
        return "ours"
    if ours == base:
        return "theirs"
    conflicts.append(what)
    return "ours"


def merge_files(base: bytes, ours: bytes, theirs: bytes, fmt: str,
                env: Mapping[str, str] | None = None, options: Any = None) -> bytes:
    """The merged encrypted file; raises :class:`MergeConflict` (or a decryption error).

    The three-way merge of trees recurses once per level where both sides changed a map: it
    runs on a stack of its own (:func:`secretops.jsonload.on_big_stack`), as files nest as deep
    as the limits on input allow."""
    from secretops.jsonload import on_big_stack

    return on_big_stack(lambda: _merge_files(base, ours, theirs, fmt, env, options))


def _merge_files(base: bytes, ours: bytes, theirs: bytes, fmt: str,
                 env: Mapping[str, str] | None, options: Any) -> bytes:
    if ours in (base, theirs):
        return theirs
    if theirs == base:
        return ours
    from secretops import fileops
    from secretops.core.document import seal
    from secretops.core.metadata import Metadata
    from secretops.keyops import apply_plan, plan_update, spec_of

    env = os.environ if env is None else env
    opened = {}
    for name, data in (("base", base), ("ours", ours), ("theirs", theirs)):
        try:
            opened[name] = fileops.open_file(data, format=fmt, env=env, options=options)
        except SecretOpsError as e:
            e.message = f"{name}: {e.message}"
            raise
    ob, oo, ot = opened["base"], opened["ours"], opened["theirs"]
    conflicts: list[str] = []
    if len(oo.docs) != len(ot.docs) or len(ob.docs) != len(oo.docs):
        raise MergeConflict(["the number of YAML documents"])
    single = len(oo.docs) == 1
    docs = [merge_branch(b, o, t, [] if single else [n], conflicts)
            for n, (b, o, t) in enumerate(zip(ob.docs, oo.docs, ot.docs, strict=True))]
    keys_from = _pick(_key_set(ob.metadata), _key_set(oo.metadata), _key_set(ot.metadata),
                      "the master keys", conflicts)
    sel_from = _pick(ob.metadata.selection, oo.metadata.selection, ot.metadata.selection,
                     "the selection rules", conflicts)
    if conflicts:
        raise MergeConflict(conflicts)
    rotated_theirs = ot.data_key != ob.data_key and oo.data_key == ob.data_key
    kept = ot if rotated_theirs else oo
    keyside = ot if keys_from == "theirs" else oo
    metadata = Metadata(key_groups=kept.metadata.key_groups,
                        shamir_threshold=kept.metadata.shamir_threshold,
                        selection=(ot if sel_from == "theirs" else oo).metadata.selection,
                        version=kept.metadata.version)
    if keyside is not kept and _key_set(keyside.metadata) != _key_set(kept.metadata):
        groups = [[spec_of(e) for e in g] for g in keyside.metadata.key_groups]
        plan = plan_update(kept.metadata, groups, keyside.metadata.shamir_threshold)
        new = apply_plan(kept.metadata, plan, kept.data_key, env)
        metadata.key_groups, metadata.shamir_threshold = new.key_groups, new.shamir_threshold
    other = oo if kept is ot else ot
    if other.data_key == kept.data_key:  # values only the other side changed keep its IVs
        kept.cipher.adopt(other.cipher)
    sealed = seal(docs, metadata, kept.data_key, random=os.urandom,
                  lastmodified=fileops.now(), cipher=kept.cipher)
    return bytes(kept.store.emit(sealed, metadata.to_wire(), _layout(docs, kept, oo, ot)))


def _layout(docs: list[Branch], *sides: Any) -> Any:
    """The layout of the first side whose trees have the merged shape (the text to splice
    into), else the first side's indentation only."""
    from secretops import fileops
    from secretops.core.tree import same_shape

    for side in sides:
        if all(same_shape(d, k) for d, k in zip(docs, side.docs, strict=True)):
            return side.loaded.layout
    return fileops.indent_only(sides[0].loaded.layout)
