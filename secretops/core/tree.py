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


def iter_leaves(node: Any) -> Iterator[Any]:
    """Every leaf (scalars, ``None`` and comments) in walk order: the order of the MAC."""
    if isinstance(node, Branch):
        for item in node:
            if type(item) is tuple:
                value = item[1]
                if isinstance(value, Branch | Seq):
                    yield from iter_leaves(value)
                else:
                    yield value
            else:
                yield item
    elif isinstance(node, Seq):
        for value in node:
            if isinstance(value, Branch | Seq):
                yield from iter_leaves(value)
            else:
                yield value
    else:
        yield node


def to_plain(node: Any) -> Any:
    """Drop comments and turn branches into dicts and seqs into lists (for comparisons, JSON)."""
    if isinstance(node, Branch):
        return {item[0]: to_plain(item[1]) for item in node if type(item) is tuple}
    if isinstance(node, Seq):
        return [to_plain(v) for v in node if not isinstance(v, Comment)]
    return node


def from_plain(node: Any) -> Any:
    """Turn dicts/lists into a tree (the inverse of :func:`to_plain`)."""
    if isinstance(node, dict):
        return Branch((k, from_plain(v)) for k, v in node.items())
    if isinstance(node, list):
        return Seq(from_plain(v) for v in node)
    return node


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
    if isinstance(a, Branch):
        if not isinstance(b, Branch) or len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=True):
            if type(x) is tuple:
                if type(y) is not tuple or x[0] != y[0] or not same_shape(x[1], y[1]):
                    return False
            elif type(y) is tuple:
                return False
        return True
    if isinstance(a, Seq):
        return (isinstance(b, Seq) and len(a) == len(b)
                and all(same_shape(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, Comment) or isinstance(b, Comment):
        return isinstance(a, Comment) and isinstance(b, Comment)
    return not isinstance(b, Branch | Seq)
