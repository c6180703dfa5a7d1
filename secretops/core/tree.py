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


def _items(seq: Seq) -> list[int]:
    """Indexes of a sequence's values (comments are not addressable)."""
    return [i for i, v in enumerate(seq) if not isinstance(v, Comment)]


def set_path(doc: Branch, path: list[str | int], value: Any) -> bool:
    """Set ``value`` at ``path``, creating missing maps (as sops's ``set``).

    Returns False when the path exists and already holds an equal value. Raises ``KeyError``
    with the index of the failing component when the path runs through a scalar or indexes a
    list out of range.
    """
    node: Any = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, Branch) and isinstance(part, str):
            for n, item in enumerate(node):
                if type(item) is tuple and item[0] == part:
                    if last:
                        if type(item[1]) is type(value) and item[1] == value:
                            return False
                        node[n] = (part, value)
                        return True
                    node = item[1]
                    break
            else:
                child: Any = value if last else Branch()
                node.append((part, child))
                if last:
                    return True
                node = child
        elif isinstance(node, Seq) and isinstance(part, int):
            idx = _items(node)
            if not -len(idx) <= part < len(idx):
                if last and part == len(idx):
                    node.append(value)  # appending one past the end, as sops does
                    return True
                raise KeyError(i)
            if last:
                old = node[idx[part]]
                if type(old) is type(value) and old == value:
                    return False
                node[idx[part]] = value
                return True
            node = node[idx[part]]
        else:
            raise KeyError(i)
    return True


def unset_path(doc: Branch, path: list[str | int]) -> None:
    """Remove the key or list item at ``path``; ``KeyError(index)`` when it does not exist."""
    node: Any = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, Branch) and isinstance(part, str):
            for n, item in enumerate(node):
                if type(item) is tuple and item[0] == part:
                    if last:
                        del node[n]
                        return
                    node = item[1]
                    break
            else:
                raise KeyError(i)
        elif isinstance(node, Seq) and isinstance(part, int):
            idx = _items(node)
            if not -len(idx) <= part < len(idx):
                raise KeyError(i)
            if last:
                del node[idx[part]]
                return
            node = node[idx[part]]
        else:
            raise KeyError(i)


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
