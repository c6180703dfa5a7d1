"""Field paths and field sets as server-side apply tracks them (structured-merge-diff's fieldpath).

A path is a tuple of :class:`PE` (path elements): a field name (``f:``), the keys of an item of an
associative list (``k:{"name":"app"}``), the value of an item of a set (``v:"a"``), or an index
(``i:0``). A :class:`FieldSet` is a tree of them, as ``metadata.managedFields[].fieldsV1`` encodes
it: each key is a serialised element, ``{}`` marks a member, ``".": {}`` marks a node that is a
member and has members below it. Elements sort as structured-merge-diff sorts them (field names,
then keys, then values, then indices; values numbers < strings < bools < lists < maps < null),
which is also the order of the keys of ``fieldsV1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def value_key(v: Any) -> tuple[Any, ...]:
    """A sort key giving structured-merge-diff's total order of values (value.Compare)."""
    if isinstance(v, bool):
        return (2, int(v))
    if isinstance(v, int | float):
        return (0, float(v))
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(value_key(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple((k, value_key(v[k])) for k in sorted(v)))
    return (5, 0)


def go_json(v: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, HTML characters escaped."""
    text = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def go_string(v: Any) -> str:
    """value.ToString: how a key or set value is printed in a path (strings as Go's %q)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(go_string(x) for x in v) + "]"
    if isinstance(v, dict):
        return "".join(f"{k}={go_string(x)}" for k, x in v.items())
    return str(v)


class PE:
    """One path element; hashable, ordered as structured-merge-diff orders them."""

    __slots__ = ("_hash", "ident", "kind", "sort", "value")

    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind
        self.value = value  # a name, ((key, value), ...) sorted by key, a value, or an index
        if kind == "k":
            inner: Any = tuple((n, value_key(x)) for n, x in value)
            self.ident: Any = (kind, go_json(dict(value)))
        elif kind == "v":
            inner = value_key(value)
            self.ident = (kind, go_json(value))
        else:
            inner = value
            self.ident = (kind, value)
        self.sort = (_RANK[kind], inner)
        self._hash = hash(self.ident)

    @classmethod
    def field(cls, name: str) -> PE:
        pe = _FIELDS.get(name)
        if pe is None:
            pe = cls("f", name)
            if len(_FIELDS) < 100_000:  # bounded: keys of maps are user data
                _FIELDS[name] = pe
        return pe

    @classmethod
    def keys(cls, pairs: list[tuple[str, Any]]) -> PE:
        return cls("k", tuple(sorted(pairs, key=lambda p: p[0])))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PE) and self.ident == other.ident

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: PE) -> bool:
        return bool(self.sort < other.sort)

    def __repr__(self) -> str:
        return self.serialize()

    def serialize(self) -> str:
        if self.kind == "f":
            return "f:" + str(self.value)
        if self.kind == "k":
            return "k:" + go_json(dict(self.value))
        if self.kind == "v":
            return "v:" + go_json(self.value)
        return f"i:{self.value}"

    def __str__(self) -> str:
        """PathElement.String(): ``.name``, ``[name="a",protocol="TCP"]``, ``[="v"]``, ``[0]``."""
        if self.kind == "f":
            return "." + str(self.value)
        if self.kind == "k":
            return "[" + ",".join(f"{n}={go_string(x)}" for n, x in self.value) + "]"
        if self.kind == "v":
            return f"[={go_string(self.value)}]"
        return f"[{self.value}]"

    @classmethod
    def parse(cls, text: str) -> PE | None:
        """A serialised element; None for an unknown type (dropped, as the apiserver does)."""
        if len(text) < 2 or text[1] != ":":
            raise ValueError(f"missing colon: {text}")
        kind, body = text[0], text[2:]
        if kind == "f":
            return cls.field(body)
        if kind == "v":
            return cls("v", json.loads(body))
        if kind == "k":
            obj = json.loads(body)
            if not isinstance(obj, dict):
                raise ValueError(f"a key element is not an object: {text}")
            return cls.keys(list(obj.items()))
        if kind == "i":
            return cls("i", int(body))
        return None


Path = tuple[PE, ...]
_FIELDS: dict[str, PE] = {}  # field elements are made for every key of every write: reuse them


def path_string(path: Path) -> str:
    return "".join(str(pe) for pe in path)


class FieldSet:
    """A set of field paths as a tree: members at this level and child sets below."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[PE] = set()
        self.children: dict[PE, FieldSet] = {}

    @classmethod
    def of(cls, *paths: Path) -> FieldSet:
        s = cls()
        for p in paths:
            s.insert(p)
        return s

    def insert(self, path: Path) -> None:
        node = self
        for pe in path[:-1]:
            child = node.children.get(pe)
            if child is None:
                child = node.children[pe] = FieldSet()
            node = child
        if path:
            node.members.add(path[-1])

    def empty(self) -> bool:
        return not self.members and all(c.empty() for c in self.children.values())

    def has(self, path: Path) -> bool:
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node.children.get(pe) if node else None
        return bool(node and path and path[-1] in node.members)

    def with_prefix(self, pe: PE) -> FieldSet:
        return self.children.get(pe) or FieldSet()

    def copy(self) -> FieldSet:
        out = FieldSet()
        out.members = set(self.members)
        out.children = {pe: c.copy() for pe, c in self.children.items()}
        return out

    def union(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members | other.members
        for pe in self.children.keys() | other.children.keys():
            a, b = self.children.get(pe), other.children.get(pe)
            out.children[pe] = a.union(b) if a and b else (a or b).copy()  # type: ignore[union-attr]
        return out

    def intersection(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members & other.members
        for pe, c in self.children.items():
            if pe in other.children:
                res = c.intersection(other.children[pe])
                if not res.empty():
                    out.children[pe] = res
        return out

    def difference(self, other: FieldSet) -> FieldSet:
        """parent − child = parent; child − parent = child (members only, not subtrees)."""
        out = FieldSet()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            if pe in other.children:
                diff = c.difference(other.children[pe])
                if not diff.empty():
                    out.children[pe] = diff
            else:
                out.children[pe] = c
        return out

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Also drops whatever lies below a member of ``other``."""
        out = FieldSet()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            if pe in other.members:
                continue
            if pe in other.children:
                diff = c.recursive_difference(other.children[pe])
                if not diff.empty():
                    out.children[pe] = diff
            else:
                out.children[pe] = c
        return out

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every member path, in order."""
        for pe in sorted(self.members | self.children.keys()):
            if pe in self.members:
                yield (*prefix, pe)
            if pe in self.children:
                yield from self.children[pe].paths((*prefix, pe))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and self.to_fields() == other.to_fields()

    # ---- fieldsV1 ------------------------------------------------------------------------------
    def to_fields(self) -> dict[str, Any]:
        """The ``fieldsV1`` object, keys in structured-merge-diff's order."""
        out: dict[str, Any] = {}
        for pe in sorted(self.members | {p for p, c in self.children.items() if not c.empty()}):
            child = self.children.get(pe)
            if child is None or child.empty():
                out[pe.serialize()] = {}
            else:
                inner = child.to_fields()
                out[pe.serialize()] = {".": {}, **inner} if pe in self.members else inner
        return out

    @classmethod
    def from_fields(cls, fields: Any) -> FieldSet:
        """Parse ``fieldsV1``; ValueError if it is not a valid encoding."""
        if not isinstance(fields, dict):
            raise ValueError("fieldsV1 is not an object")
        out = cls()
        for key, value in fields.items():
            if key == ".":
                continue
            pe = PE.parse(key)
            if pe is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"the value of {key} is not an object")
            if not value or "." in value:
                out.members.add(pe)
            if any(k != "." for k in value):
                out.children[pe] = cls.from_fields(value)
        return out
