"""Typed values for server-side apply: the schema of an object and structured-merge-diff's walks.

kube-apiserver converts every object to a structured-merge-diff typed value before it tracks
field ownership; what a field *is* decides how it is owned and merged:

* a **struct** field (declared in the schema) is not itself a member of a field set unless it is
  empty or null; a **map** key (``labels``, ``data``, ``additionalProperties``) always is;
* a list is **atomic** (owned and replaced whole: the default of CRD lists), a **set** of scalars
  (``x-kubernetes-list-type: set``, items ``v:``), or an **associative list** keyed by
  ``x-kubernetes-list-map-keys`` (items ``k:``; a missing key takes the key field's default);
* ``x-kubernetes-map-type: atomic`` maps are owned whole; ``x-kubernetes-preserve-unknown-fields``
  makes undeclared fields "deduced" (maps granular, lists atomic).

Schemas come from a CRD's ``openAPIV3Schema`` (as kube-openapi's schemaconv converts it) or, for
built-in kinds whose OpenAPI the emulator does not carry, from rules: objects are structs, lists
merge by the strategic-merge keys of :mod:`.patch` (container and Service ``ports`` by port and
protocol, defaulting ``TCP``), ``finalizers`` is a set, other lists are atomic.

The functions mirror structured-merge-diff's walkers (``typed/tofieldset.go``, ``compare.go``,
``merge.go``, ``remove.go``, ``validate.go``); values are JSON-like Python values and ``MISSING``
stands for an absent field (``None`` is JSON null).
"""

from __future__ import annotations

from typing import Any

from .fieldpath import PE, FieldSet, Path, go_json
from .patch import MERGE_KEYS, PRIMITIVE_MERGE


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class T:
    """A schema node: ``scalar``, ``map`` (a struct's declared fields and/or map elements),
    ``list``, ``deduced`` (typed by its value) or ``untyped`` (atomic whatever it holds)."""

    __slots__ = ("atomic", "defaults", "elem", "fields", "keys", "kind", "path", "scalar")

    def __init__(self, kind: str, *, fields: dict[str, T] | None = None, elem: T | None = None,
                 atomic: bool = False, keys: tuple[str, ...] = (),
                 defaults: dict[str, Any] | None = None, scalar: str = "untyped",
                 path: tuple[str, ...] | None = None) -> None:
        self.kind, self.fields, self.elem, self.atomic = kind, fields or {}, elem, atomic
        self.keys, self.defaults, self.scalar, self.path = keys, defaults or {}, scalar, path

    def child(self, name: str) -> tuple[T | None, bool]:
        """The type of a map entry and whether it is a declared (struct) field."""
        if self.path is not None:  # a built-in kind's struct: every field is declared
            return _builtin(self.path, name), True
        if name in self.fields:
            return self.fields[name], True
        return self.elem, False


SCALAR = T("scalar")
UNTYPED = T("untyped")
DEDUCED = T("deduced")
_DEDUCED_MAP = T("map", elem=DEDUCED)
_UNTYPED_MAP = T("map", elem=UNTYPED, atomic=True)
_ATOMIC_LIST = T("list", elem=UNTYPED, atomic=True)
# built-in nodes by path: made once, as every write walks them
_BUILTIN: dict[tuple[str, tuple[str, ...]], T] = {}


def _cached(kind: str, path: tuple[str, ...], make: Any) -> T:
    t = _BUILTIN.get((kind, path))
    if t is None:
        t = make()
        if len(_BUILTIN) < 50_000:
            _BUILTIN[(kind, path)] = t
    return t


def resolve(t: T, v: Any) -> T:
    """The node as it applies to this value (deduced and untyped nodes follow the value)."""
    if t.kind == "deduced":
        if isinstance(v, dict):
            return _DEDUCED_MAP
        return _ATOMIC_LIST if isinstance(v, list) else SCALAR
    if t.kind == "untyped":
        if isinstance(v, dict):
            return _UNTYPED_MAP
        return _ATOMIC_LIST if isinstance(v, list) else SCALAR
    if t.kind == "builtin":
        path = t.path or ()
        if isinstance(v, dict):
            return _cached("map", path, lambda: T("map", path=path))
        if isinstance(v, list):
            return _cached("list", path, lambda: _builtin_list(path))
        return SCALAR
    return t


# ---- schemas ---------------------------------------------------------------------------------
def _string_map() -> T:
    return T("map", elem=SCALAR)


OBJECT_META = T("map", fields={
    **{n: T("scalar", scalar="string") for n in (
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
        "creationTimestamp", "deletionTimestamp")},
    "generation": T("scalar", scalar="numeric"),
    "deletionGracePeriodSeconds": T("scalar", scalar="numeric"),
    "labels": _string_map(),
    "annotations": _string_map(),
    "ownerReferences": T("list", keys=("uid",), elem=T("builtin", path=("ownerReferences",))),
    "finalizers": T("list", elem=SCALAR),
    "managedFields": T("list", elem=UNTYPED, atomic=True),
})
_PORT_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("containers",): ("containerPort", "protocol"),  # Container.ports
    ("spec",): ("port", "protocol"),  # ServiceSpec.ports
}


def builtin_root() -> T:
    return T("map", path=())


def _builtin(path: tuple[str, ...], name: str) -> T:
    if name == "metadata" and (not path or path[-1] == "template"):
        return OBJECT_META
    child = (*path, name)
    return _cached("builtin", child, lambda: T("builtin", path=child))


def _builtin_list(path: tuple[str, ...]) -> T:
    elem = T("builtin", path=path)
    name = path[-1] if path else ""
    if name in PRIMITIVE_MERGE:
        return T("list", elem=SCALAR)
    if name == "ports":
        parent = path[-2:-1]
        keys = _PORT_KEYS.get(parent if parent != ("initContainers",) else ("containers",))
        if keys:
            return T("list", keys=keys, elem=elem, defaults={"protocol": "TCP"})
    if name in MERGE_KEYS:
        return T("list", keys=(MERGE_KEYS[name],), elem=elem)
    return T("list", elem=elem, atomic=True)


def from_openapi(s: Any, preserve: bool = False) -> T:
    """A CRD schema node as kube-openapi's schemaconv makes it a structured-merge-diff type."""
    if not isinstance(s, dict):
        return DEDUCED
    preserve = preserve or bool(s.get("x-kubernetes-preserve-unknown-fields"))
    typ = s.get("type", "")
    if s.get("x-kubernetes-int-or-string"):
        return SCALAR
    if typ in ("string", "integer", "number", "boolean"):
        return T("scalar", scalar="numeric" if typ in ("integer", "number") else str(typ))
    if typ == "array":
        ext = s.get("x-kubernetes-list-type", "atomic")
        items = s.get("items")
        item_t = from_openapi(items, preserve) if isinstance(items, dict) else UNTYPED
        if ext == "map":
            keys = tuple(s.get("x-kubernetes-list-map-keys") or ())
            props = (items or {}).get("properties") or {}
            defaults = {k: props[k]["default"] for k in keys if "default" in props.get(k, {})}
            return T("list", keys=keys, elem=item_t, defaults=defaults)
        return T("list", elem=item_t, atomic=ext != "set")
    props = s.get("properties") or {}
    if typ == "" and not props:
        return DEDUCED
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        elem: T | None = from_openapi(extra, preserve)
    elif extra is True or (extra is None and (preserve or not props)):
        elem = DEDUCED
    else:
        elem = None
    return T("map", fields={n: from_openapi(p, preserve) for n, p in props.items()}, elem=elem,
             atomic=s.get("x-kubernetes-map-type") == "atomic")


def custom_root(openapi: dict[str, Any] | None) -> T:
    """A custom resource: its CRD schema, with apiVersion, kind and ObjectMeta as the
    apiserver's OpenAPI builder adds them."""
    root = from_openapi(openapi or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    if root.kind != "map":
        root = T("map", elem=DEDUCED)
    fields = {**root.fields, "apiVersion": T("scalar", scalar="string"),
              "kind": T("scalar", scalar="string"), "metadata": OBJECT_META}
    return T("map", fields=fields, elem=root.elem, atomic=root.atomic)


# ---- list items --------------------------------------------------------------------------------
class SchemaError(ValueError):
    """A value that does not fit its schema (structured-merge-diff's ValidationError)."""


def item_pe(t: T, item: Any) -> PE:
    """The path element of an item of an associative list or set."""
    if t.keys:
        if not isinstance(item, dict):
            if item is None:
                raise SchemaError("associative list with keys may not have a null element")
            raise SchemaError("associative list with keys may not have non-map elements")
        pairs = [(k, item[k] if k in item else t.defaults[k]) for k in t.keys
                 if k in item or k in t.defaults]
        if not pairs:
            raise SchemaError(
                f"associative list with keys has an element that omits all key fields "
                f"[{' '.join(t.keys)}] (and doesn't have default values for any key fields)")
        return PE.keys(pairs)
    if isinstance(item, dict):
        raise SchemaError("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise SchemaError("not supported: associative list with lists as elements")
    if item is None:
        raise SchemaError("associative list without keys has an element that's an explicit null")
    return PE("v", item)


def _pes(t: T, items: Any) -> list[tuple[PE, Any]]:
    return [(item_pe(t, i), i) for i in items] if isinstance(items, list) else []


def _granular(t: T) -> bool:
    return t.kind in ("map", "list") and not t.atomic


# ---- ToFieldSet --------------------------------------------------------------------------------
def to_field_set(v: Any, t: T) -> FieldSet:
    out = FieldSet()
    _tfs(v, t, (), out)
    return out


def _tfs(v: Any, t: T, path: Path, out: FieldSet) -> None:
    t = resolve(t, v)
    if not _granular(t) or not isinstance(v, dict | list):
        if t.kind == "scalar" or t.atomic:
            out.insert(path)
        return
    if t.kind == "list" and isinstance(v, list):
        pes = _pes(t, v)
        seen: dict[PE, int] = {}
        for pe, _ in pes:
            seen[pe] = seen.get(pe, 0) + 1
        for pe, item in pes:
            if seen[pe] > 1:
                out.insert((*path, pe))
                continue
            _tfs(item, t.elem or UNTYPED, (*path, pe), out)
            out.insert((*path, pe))
    elif t.kind == "map" and isinstance(v, dict):
        for k, val in v.items():
            ct, declared = t.child(k)
            pe = PE.field(k)
            _tfs(val, ct or UNTYPED, (*path, pe), out)
            if val is None or val == {} or not declared:
                out.insert((*path, pe))


# ---- Compare -----------------------------------------------------------------------------------
class Comparison:
    def __init__(self) -> None:
        self.added, self.removed, self.modified = FieldSet(), FieldSet(), FieldSet()

    def exclude(self, fields: FieldSet) -> Comparison:
        for name in ("added", "removed", "modified"):
            setattr(self, name, getattr(self, name).recursive_difference(fields))
        return self


def compare(lhs: Any, rhs: Any, t: T) -> Comparison:
    c = Comparison()
    _cmp(lhs, rhs, t, (), c)
    return c


def _side(lhs: Any, rhs: Any) -> Any:
    """The value that types a node: null is a wildcard taking the other side's form."""
    return rhs if rhs is not MISSING and rhs is not None else lhs


def _empty(v: Any) -> bool:
    return v is MISSING or v is None or v == {} or v == []


def _added(v: Any, t: T, path: Path, out: FieldSet) -> None:
    """_cmp with nothing on the left: every node of ``v`` is added (a create's common case)."""
    t = resolve(t, v)
    if t.kind == "map" and isinstance(v, dict) and v and not t.atomic:
        for k, val in v.items():
            ct, _ = t.child(k)
            _added(val, ct or UNTYPED, (*path, PE.field(k)), out)
    elif t.kind == "list" and isinstance(v, list) and v and not t.atomic:
        _cmp_list(MISSING, v, t, path, _Into(out))
    out.insert(path)


class _Into(Comparison):
    """A comparison whose additions go to a given set (only additions can happen)."""

    def __init__(self, added: FieldSet) -> None:
        super().__init__()
        self.added = added


def _cmp(lhs: Any, rhs: Any, t: T, path: Path, c: Comparison) -> None:
    if lhs is MISSING and rhs is not MISSING:
        _added(rhs, t, path, c.added)
        return
    if type(lhs) is type(rhs) and isinstance(lhs, dict | list) and lhs == rhs:
        # an unchanged subtree (a status write's spec and metadata): its walk would find no
        # leaf that differs, so nothing is added, removed or modified below it; one equality
        # test in C instead of a walk in Python
        return
    side = _side(lhs, rhs)
    t = resolve(t, side)
    container = (t.kind == "map" and isinstance(side, dict)) or (
        t.kind == "list" and isinstance(side, list))
    if not container or t.atomic or (_empty(lhs) and _empty(rhs)):
        if lhs is MISSING:
            c.added.insert(path)
        elif rhs is MISSING:
            c.removed.insert(path)
        elif lhs != rhs:
            c.modified.insert(path)
        return
    if t.kind == "list":
        _cmp_list(lhs, rhs, t, path, c)
    else:
        lm = lhs if isinstance(lhs, dict) else {}
        rm = rhs if isinstance(rhs, dict) else {}
        for k in [*lm, *(k for k in rm if k not in lm)]:
            ct, _ = t.child(k)
            _cmp(lm.get(k, MISSING), rm.get(k, MISSING), ct or UNTYPED, (*path, PE.field(k)), c)
    if lhs is MISSING:
        c.added.insert(path)
    elif rhs is MISSING:
        c.removed.insert(path)


def _cmp_list(lhs: Any, rhs: Any, t: T, path: Path, c: Comparison) -> None:
    lv: dict[PE, list[Any]] = {}
    rv: dict[PE, list[Any]] = {}
    for pe, item in _pes(t, lhs if isinstance(lhs, list) else []):
        lv.setdefault(pe, []).append(item)
    for pe, item in _pes(t, rhs if isinstance(rhs, list) else []):
        rv.setdefault(pe, []).append(item)
    elem = t.elem or UNTYPED
    for pe in [*lv, *(p for p in rv if p not in lv)]:
        ll, rl = lv.get(pe, []), rv.get(pe, [])
        if len(ll) <= 1 and len(rl) <= 1:
            _cmp(ll[0] if ll else MISSING, rl[0] if rl else MISSING, elem, (*path, pe), c)
        elif len(ll) >= 2 and len(rl) >= 2:
            if ll != rl:
                c.modified.insert((*path, pe))
        elif len(ll) >= 2:
            if rl:
                _cmp(MISSING, rl[0], elem, (*path, pe), c)
            c.removed.insert((*path, pe))
        else:
            if ll:
                _cmp(ll[0], MISSING, elem, (*path, pe), c)
            c.added.insert((*path, pe))


# ---- Merge -------------------------------------------------------------------------------------
def merge(lhs: Any, rhs: Any, t: T) -> Any:
    """The applied configuration ``rhs`` merged into the live object ``lhs``."""
    side = _side(lhs, rhs)
    t = resolve(t, side)
    container = (t.kind == "map" and isinstance(side, dict)) or (
        t.kind == "list" and isinstance(side, list))
    if not container or t.atomic or (_empty(lhs) and _empty(rhs)):
        return rhs if rhs is not MISSING else lhs
    if t.kind == "list":
        out_list = _merge_list(lhs if isinstance(lhs, list) else [],
                               rhs if isinstance(rhs, list) else [], t)
        return out_list if out_list else MISSING
    lm = lhs if isinstance(lhs, dict) else {}
    rm = rhs if isinstance(rhs, dict) else {}
    out: dict[str, Any] = {}
    for k in [*lm, *(k for k in rm if k not in lm)]:
        ct, _ = t.child(k)
        val = merge(lm.get(k, MISSING), rm.get(k, MISSING), ct or UNTYPED)
        if val is not MISSING:
            out[k] = val
    return out if out else MISSING


def _merge_list(lhs: list[Any], rhs: list[Any], t: T) -> list[Any]:
    """merge.go's visitListItems: live order kept, applied items placed in the applied order."""
    elem = t.elem or UNTYPED
    rpes = _pes(t, rhs)
    robs = {pe: item for pe, item in rpes}
    if len(robs) != len(rpes):
        dup = next(pe for i, (pe, _) in enumerate(rpes) if pe in {p for p, _ in rpes[:i]})
        raise SchemaError(f"duplicate entries for key {dup}")
    lpes = _pes(t, lhs)
    lobs: dict[PE, Any] = {}
    for pe, item in lpes:
        lobs[pe] = None if pe in lobs else item  # duplicated live items merge as nothing
    shared = [pe for pe, _ in rpes if pe in lobs]
    out: list[Any] = []
    merged: set[PE] = set()
    li = ri = 0
    nxt = shared.pop(0) if shared else None

    def put(pe: PE, lv: Any, rv: Any) -> None:
        val = merge(lv, rv, elem)
        if val is not MISSING:
            out.append(val)

    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li][0]
            if pe == rpes[ri][0]:
                merged.add(pe)
                put(pe, lobs[pe], robs[pe])
                li += 1
                ri += 1
                nxt = shared.pop(0) if shared else None
                continue
            if pe in robs and nxt is not None and nxt != pe:
                li += 1
                continue
        if li < len(lpes):
            pe, item = lpes[li]
            if pe not in robs:
                put(pe, item, MISSING)
                li += 1
                continue
            if pe in merged:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri][0]
            merged.add(pe)
            put(pe, lobs.get(pe, MISSING), robs[pe])
            ri += 1
            if nxt is not None and nxt == pe:
                nxt = shared.pop(0) if shared else None
    return out


# ---- RemoveItems / EnsureNamedFieldsAreMembers --------------------------------------------------
def remove_items(v: Any, s: FieldSet, t: T) -> Any:
    """``v`` without the members of ``s`` (and what lies below them); emptied containers are
    null."""
    t = resolve(t, v)
    if t.kind == "scalar" or not isinstance(v, dict | list):
        return v
    if not v or t.atomic:
        return None
    if t.kind == "list" and isinstance(v, list):
        items = []
        for pe, item in _pes(t, v):
            if s.has((pe,)):
                continue
            sub = s.with_prefix(pe)
            items.append(remove_items(item, sub, t.elem or UNTYPED) if not sub.empty() else item)
        return items or None
    out: dict[str, Any] = {}
    for k, val in v.items():  # type: ignore[union-attr]
        pe = PE.field(k)
        if s.has((pe,)):
            continue
        sub = s.with_prefix(pe)
        ct, _ = t.child(k)
        out[k] = remove_items(val, sub, ct or UNTYPED) if not sub.empty() else val
    return out or None


def ensure_named(s: FieldSet, t: T) -> FieldSet:
    """``s`` plus the struct fields above its members (``a`` for ``a.b`` if ``a`` is declared)."""
    out = FieldSet()
    out.members = set(s.members)
    for pe, child in s.children.items():
        node = resolve(t, {} if pe.kind == "f" else [])
        ct: T | None = None
        if pe.kind == "f" and node.kind == "map":
            ct, declared = node.child(pe.value)
            if declared:
                out.members.add(pe)
        elif node.kind == "list":
            ct = node.elem
        out.children[pe] = ensure_named(child, ct or UNTYPED)
    return out


# ---- validation of an applied configuration ---------------------------------------------------
def validate(v: Any, t: T, prefix: str = "") -> list[str]:
    """What structured-merge-diff refuses when it types an applied configuration."""
    t = resolve(t, v)
    if v is None:
        return []
    if t.kind == "scalar":
        return _scalar_error(v, t.scalar, prefix)
    if t.kind == "list":
        if not isinstance(v, list):
            return [f"{prefix}: expected list, got {go_json(v)}" if prefix else "expected list"]
        errs: list[str] = []
        seen: set[PE] = set()
        for i, item in enumerate(v):
            if t.atomic:
                errs += validate(item, t.elem or UNTYPED, f"{prefix}[{i}]")
                continue
            try:
                pe = item_pe(t, item)
            except SchemaError as e:
                return [*errs, f"{prefix}: element {i}: {e}"]
            if pe in seen:
                errs.append(f"{prefix}: duplicate entries for key {pe}")
            seen.add(pe)
            errs += validate(item, t.elem or UNTYPED, f"{prefix}{pe}")
        return errs
    if not isinstance(v, dict):
        return [f"{prefix}: expected map, got {go_json(v)}"]
    errs = []
    for k, val in v.items():
        ct, _ = t.child(k)
        if ct is None:
            return [*errs, f"{prefix}.{k}: field not declared in schema"]
        errs += validate(val, ct, f"{prefix}.{k}")
    return errs


def _scalar_error(v: Any, kind: str, where: str) -> list[str]:
    lead = f"{where}: " if where else ""
    if isinstance(v, dict | list):
        return [f"{lead}expected {'any scalar' if kind == 'untyped' else kind}, got {go_json(v)}"]
    if kind == "string" and not isinstance(v, str):
        return [f"{lead}expected string, got &value.valueUnstructured{{Value:{go_json(v)}}}"]
    if kind == "numeric" and (isinstance(v, bool) or not isinstance(v, int | float)):
        return [f"{lead}expected numeric (int or float), got {_go_type(v)}"]
    if kind == "boolean" and not isinstance(v, bool):
        return [f"{lead}expected boolean, got &value.valueUnstructured{{Value:{go_json(v)}}}"]
    return []


def _go_type(v: Any) -> str:
    return {bool: "bool", str: "string", int: "int64", float: "float64"}.get(type(v), "string")
