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
