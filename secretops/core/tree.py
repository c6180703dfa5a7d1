"""The document tree every store produces and every core function walks.

A document is a :class:`Branch`: an ordered list whose items are ``(key, value)`` pairs and
:class:`Comment` lines. A value is a scalar, a nested :class:`Branch`, or a :class:`Seq` (a
list whose items are values and comments). This mirrors sops's ``TreeBranch`` closely enough that
the walk order — which the MAC depends on — is the same by construction.

Plain Python types are used for scalars so that stores can build trees cheaply.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Comment(str):
    """A comment line, without its leading ``#``. Never part of the MAC."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Comment({str.__repr__(self)})"


class Branch(list[Any]):
    """A mapping: a list of ``(key, value)`` tuples and :class:`Comment` items, in file order."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        for item in self:
            if type(item) is tuple and item[0] == key:
                return item[1]
        return default

    def keys(self) -> list[Any]:
        return [item[0] for item in self if type(item) is tuple]

    def without(self, key: str) -> Branch:
        return Branch(i for i in self if not (type(i) is tuple and i[0] == key))


class Seq(list[Any]):
    """A sequence: values and :class:`Comment` items, in file order."""

    __slots__ = ()


# The walks below keep their own stack instead of recursing: a tree may nest as deep as the
# limits on input allow (secretops.limits.MAX_DEPTH), far past Python's recursion limit.

def iter_leaves(node: Any) -> Iterator[Any]:
    """Every leaf (scalars, ``None`` and comments) in walk order: the order of the MAC."""
    if not isinstance(node, Branch | Seq):
        yield node
        return
    todo = [(type(node) is Branch, iter(node))]
    while todo:
        is_branch, items = todo[-1]
        for item in items:
            value = item[1] if is_branch and type(item) is tuple else item
            if isinstance(value, Branch | Seq):
                todo.append((type(value) is Branch, iter(value)))
                break
            yield value
        else:
            todo.pop()


def _rebuild(node: Any, mapping: Any, sequence: Any, leaf: Any) -> Any:
    """A copy of ``node`` made bottom-up: ``mapping(pairs)`` / ``sequence(values)`` build each
    collection from its converted children, ``leaf(item)`` converts the rest — ``_DROP`` from
    it drops the item (comments) — all without recursion."""
    def kind(value: Any) -> int:
        if isinstance(value, Branch | dict):
            return 1
        return 2 if isinstance(value, Seq | list) else 0

    top_kind = kind(node)
    if not top_kind:
        return node
    # an open collection: [items iterator, is mapping, converted children, key in the parent]
    todo: list[list[Any]] = [[iter(_pairs(node)) if top_kind == 1 else iter(node),
                              top_kind == 1, [], None]]
    while True:
        frame = todo[-1]
        items, is_map, done = frame[0], frame[1], frame[2]
        for item in items:
            key, value = item if is_map and type(item) is tuple else (None, item)
            if is_map and type(item) is not tuple:
                item = leaf(item)
                if item is not _DROP:
                    done.append(item)
                continue
            k = kind(value)
            if k:
                todo.append([iter(_pairs(value)) if k == 1 else iter(value), k == 1, [], key])
                break
            value = leaf(value) if not is_map else value
            if value is not _DROP:
                done.append((key, value) if is_map else value)
        else:
            todo.pop()
            built = (mapping if is_map else sequence)(done)
            if not todo:
                return built
            parent = todo[-1]
            parent[2].append((frame[3], built) if parent[1] else built)


_DROP = object()


def _pairs(node: Any) -> Any:
    return node.items() if isinstance(node, dict) else node


def _keep(value: Any) -> Any:
    return value


def _no_comments(value: Any) -> Any:
    return _DROP if isinstance(value, Comment) else value


def to_plain(node: Any) -> Any:
    """Drop comments and turn branches into dicts and seqs into lists (for comparisons, JSON)."""
    return _rebuild(node, dict, list, _no_comments)


def from_plain(node: Any) -> Any:
    """Turn dicts/lists into a tree (the inverse of :func:`to_plain`)."""
    return _rebuild(node, Branch, Seq, _keep)


def copy_tree(node: Any) -> Any:
    """A copy of a tree's collections (its scalars are immutable and shared)."""
    return _rebuild(node, Branch, Seq, _keep)


class PathError(Exception):
    """A tree path that does not fit the document: ``index`` is the failing component;
    ``missing`` tells a key or item that is not there from a path that cannot apply."""

    def __init__(self, index: int, why: str, *, missing: bool = False) -> None:
        super().__init__(why)
        self.index, self.why, self.missing = index, why, missing


def _from_path(path: list[str | int], leaf: Any) -> Any:
    """sops's ``valueFromPathAndLeaf``: ``leaf`` wrapped in the maps and lists ``path`` names."""
    node = leaf
    for part in reversed(path):
        node = Seq([node]) if type(part) is int else Branch([(part, node)])
    return node


def equal(a: Any, b: Any) -> bool:
    """sops's ``equals``: the same shape, keys and values, each of the same type (1 ≠ 1.0)."""
    todo = [(a, b)]
    while todo:
        a, b = todo.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, Branch | Seq):
            if len(a) != len(b):
                return False
            for x, y in zip(a, b, strict=True):
                if type(x) is tuple and type(y) is tuple:
                    if type(x[0]) is not type(y[0]) or x[0] != y[0]:
                        return False
                    todo.append((x[1], y[1]))
                else:
                    todo.append((x, y))
        elif a != b:
            return False
    return True


def set_path(doc: Branch, path: list[str | int], value: Any) -> bool:
    """Set ``value`` at ``path`` exactly as sops's ``set`` does; True when sops counts it a
    change (``--idempotent`` then writes nothing only on False).

    Missing keys are added with the maps and lists the rest of the path names; a list index at
    or past the end appends (one item, whatever the index); a scalar on the way is replaced by
    the structure the rest of the path names. A list index counts comments, as in sops's tree.
    An index on a map adds nothing, yet counts as a change (as sops). Raises :class:`PathError`
    for a key on a list (sops crashes there).
    """
    node: Any = doc
    parent: Any = None  # the collection holding ``node`` and its slot there, to replace it
    slot = 0
    for i, part in enumerate(path):
        rest = path[i + 1 :]
        if isinstance(node, Branch):
            for n, item in enumerate(node):
                if type(item) is tuple and item[0] == part:
                    if not rest:
                        node[n] = (part, value)
                        return not equal(item[1], value)
                    parent, slot, node = node, n, item[1]
                    break
            else:
                if type(part) is not int:
                    node.append((part, _from_path(rest, value)))
                return True
        elif isinstance(node, Seq):
            if type(part) is not int:
                raise PathError(i, "a list needs an index here, not a key")
            if part >= len(node):
                node.append(_from_path(rest, value))
                return True
            if part < -len(node):
                raise PathError(i, "index out of bounds")
            if not rest:
                old = node[part]
                node[part] = value
                return not equal(old, value)
            parent, slot, node = node, part, node[part]
        else:
            new = _from_path(path[i:], value)
            if isinstance(parent, Branch):
                parent[slot] = (parent[slot][0], new)
            else:
                parent[slot] = new
            return not equal(node, new)
    return True  # pragma: no cover - the loop returns at the last component


def unset_path(doc: Branch, path: list[str | int]) -> None:
    """Remove the key or list item at ``path``, as sops's ``unset`` does (a list index counts
    comments). :class:`PathError` with ``missing`` when the key or item is not there (what
    ``--idempotent`` accepts), without it when the path runs through a scalar."""
    node: Any = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, Branch):
            for n, item in enumerate(node):
                if type(item) is tuple and item[0] == part:
                    if last:
                        del node[n]
                        return
                    node = item[1]
                    break
            else:
                raise PathError(i, "key not found", missing=True)
        elif isinstance(node, Seq):
            if type(part) is not int:
                raise PathError(i, "a list needs an index here, not a key")
            if part >= len(node) or part < -len(node):
                raise PathError(i, "index out of bounds", missing=True)
            if last:
                del node[part]
                return
            node = node[part]
        else:
            raise PathError(i, "the path runs through a value that is not a map or a list")


def same_shape(a: Any, b: Any) -> bool:
    """Whether two trees have the same keys, list lengths and comment positions (values aside)."""
    todo = [(a, b)]
    while todo:
        a, b = todo.pop()
        if isinstance(a, Branch):
            if not isinstance(b, Branch) or len(a) != len(b):
                return False
            for x, y in zip(a, b, strict=True):
                if type(x) is tuple:
                    if type(y) is not tuple or x[0] != y[0]:
                        return False
                    todo.append((x[1], y[1]))
                elif type(y) is tuple:
                    return False
        elif isinstance(a, Seq):
            if not isinstance(b, Seq) or len(a) != len(b):
                return False
            todo += zip(a, b, strict=True)
        elif isinstance(a, Comment) or isinstance(b, Comment):
            if not (isinstance(a, Comment) and isinstance(b, Comment)):
                return False
        elif isinstance(b, Branch | Seq):
            return False
    return True
