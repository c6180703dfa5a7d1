"""Field managers: ``metadata.managedFields`` kept on every write, and server-side apply.

What kube-apiserver's field manager does (``apimachinery/pkg/util/managedfields/internal``, its
wrappers in the order ``NewDefaultFieldManager`` stacks them, over structured-merge-diff's
``merge.Updater``):

* **Update** (create, PUT, JSON/merge/strategic patch): the fields the request added or changed
  become the manager's (an ``Update`` entry per manager, apiVersion and subresource), taken from
  whoever owned them; removed fields leave every set. The manager is ``?fieldManager=`` or the
  User-Agent up to its first ``/``. An update of an object without managedFields is not
  tracked; a request that sets ``managedFields: []`` (or one empty entry) clears them; a
  subresource request cannot set them. Beyond ten Update entries the oldest are merged into
  ``ancient-changes``.
* **Apply** (``application/apply-patch+yaml``): the applied configuration is merged into the live
  object (:func:`.typed.merge`); its field set becomes the manager's ``Apply`` entry; what the
  manager applied before and no longer applies is removed unless another manager owns it; a
  different value for a field another manager owns is a 409 conflict naming field and manager,
  unless ``force=true`` (then the field changes hands). An object without managedFields first gets
  a ``before-first-apply`` entry owning everything. kubectl's own apply (manager ``kubectl``)
  may take fields its client-side apply annotation records, and keeps that annotation current.

``apiVersion``, ``kind`` and the system fields of ``metadata`` are never owned (stripmeta.go);
the reset fields of the endpoint (``status`` on the main resource, ``spec`` on ``/status``) are
ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import errors
from .errors import ApiError, Cause
from .fieldpath import PE, FieldSet, go_json, path_string
from .typed import MISSING, Comparison, T, compare, ensure_named, merge, remove_items, to_field_set

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
_STRIP = FieldSet.of(
    (PE.field("apiVersion"),), (PE.field("kind"),), (PE.field("metadata"),),
    *((PE.field("metadata"), PE.field(n)) for n in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion")))


@dataclass
class Entry:
    fields: FieldSet
    api_version: str
    applied: bool
    time: str | None = None


Managed = dict[str, Entry]  # manager identifier -> entry


# the same few identifiers come back on every write: computed once each (bounded)
@lru_cache(maxsize=4096)
def identifier(manager: str, operation: str, api_version: str, subresource: str = "") -> str:
    """BuildManagerIdentifier: the entry as JSON without time and fields (and, for appliers,
    without apiVersion)."""
    ident: Obj = {"manager": manager or "unknown", "operation": operation}
    if operation == "Update":
        ident["apiVersion"] = api_version
    if subresource:
        ident["subresource"] = subresource
    return go_json(ident)


@lru_cache(maxsize=4096)
def _name(ident: str) -> Mapping[str, Any]:
    """The identifier's fields (shared between calls: read them, never change them)."""
    out: Obj = json.loads(ident)
    return out


def decode(entries: Any) -> Managed:
    """managedFields as stored; ValueError if they cannot be decoded."""
    managed: Managed = {}
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ValueError("managedFields is not a list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"managed fields entry {i} is not an object")
        if e.get("operation") not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        if not e.get("apiVersion"):
            raise ValueError("apiVersion must not be empty")
        if e.get("fieldsType") != "FieldsV1":
            raise ValueError(f"missing fieldsType in managed fields entry {i}" if not
                             e.get("fieldsType") else f"invalid fieldsType in entry {i}")
        ident = identifier(e.get("manager", ""), e["operation"], e["apiVersion"],
                           e.get("subresource", ""))
        if e.get("manager", "") == "":
            ident = ident.replace('"manager":"unknown",', "")
        fields = FieldSet.from_fields(e.get("fieldsV1") or {})
        managed[ident] = Entry(fields, e["apiVersion"], e["operation"] == "Apply", e.get("time"))
    return managed


def encode(managed: Managed) -> list[Obj] | None:
    out = []
    for ident, entry in managed.items():
        e: Obj = {k: v for k, v in _name(ident).items() if k != "subresource"}
        e["operation"] = "Apply" if entry.applied else "Update"
        e["apiVersion"] = entry.api_version
        if entry.time:
            e["time"] = entry.time
        e["fieldsType"] = "FieldsV1"
        e["fieldsV1"] = entry.fields.to_fields()
        if _name(ident).get("subresource"):
            e["subresource"] = _name(ident)["subresource"]
        out.append(e)
    out.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e.get("manager", ""),
                            e["apiVersion"], e.get("subresource", "")))
    return out or None


def _seconds(t: str | None) -> str:
    return t or "0000"  # RFC 3339 seconds in UTC sort as the instants they name


def is_reset(entries: Any) -> bool:
    """``[]`` or one empty entry: the client asks for the managed fields to be cleared."""
    return bool(entries == [] or entries == [{}])


def user_agent_manager(user_agent: str) -> str:
    """prefixFromUserAgent: up to the first ``/``, printable characters, at most 128 bytes."""
    out = ""
    for ch in user_agent.split("/")[0]:
        if not ch.isprintable():
            continue
        if len((out + ch).encode()) > 128:
            break
        out += ch
    return out


@dataclass
class Context:
    """What the field manager knows of the endpoint."""

    schema: T
    api_version: str
    subresource: str  # "" or "status"
    reset: FieldSet  # the strategy's reset fields, ignored in every set
    skeleton: Obj  # an empty object of the kind as Go's zero value shows it
    now: str


def update(ctx: Context, live: Obj | None, new: Obj, requested: Any, manager: str) -> Obj:
    """``new`` (without managedFields) with its managedFields after an Update operation by
    ``manager``; ``requested`` is what the request's ``metadata.managedFields`` held."""
    live_meta = (live or {}).get("metadata") or {}
    if ctx.subresource:
        managed = _decode_or_empty(live_meta.get("managedFields"))
    elif is_reset(requested):
        managed = {}
    else:
        try:
            managed = decode(requested)
        except ValueError:
            managed = {}
        if not managed:
            managed = _decode_or_empty(live_meta.get("managedFields"))
    new = _strip_meta(new)
    if not managed and live_meta.get("uid"):
        return new  # skipNonAppliedManager: nothing tracked before, nothing tracked now
    managed = _tracked_update(ctx, live, new, managed, manager)
    return _with_managed(new, managed)


def _decode_or_empty(entries: Any) -> Managed:
    try:
        return decode(entries)
    except ValueError:
        return {}


def _with_managed(obj: Obj, managed: Managed) -> Obj:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    encoded = encode(managed)
    if encoded:
        meta["managedFields"] = encoded
    return {**obj, "metadata": meta}


def _typed(ctx: Context, obj: Obj | None) -> Any:
    """The object as Go's typed value shows it: zero-valued structs present."""
    if obj is None:
        return dict(ctx.skeleton)
    return _overlay(ctx.skeleton, obj)


def _overlay(zero: Obj, obj: Obj) -> Obj:
    out = dict(obj)
    for k, z in zero.items():
        if k not in out:
            out[k] = z
        elif isinstance(out[k], dict) and isinstance(z, dict) and z:
            out[k] = _overlay(z, out[k])
    return out


def _strip_meta(obj: Obj) -> Obj:
    return {**obj, "metadata": {k: v for k, v in (obj.get("metadata") or {}).items()
                                if k != "managedFields"}}


def _tracked_update(ctx: Context, live: Obj | None, new: Obj, managed: Managed,
                    manager: str) -> Managed:
    ident = identifier(manager, "Update", ctx.api_version, ctx.subresource)
    this = "current-operation"
    comparison = compare(_typed(ctx, live and _strip_meta(live)), _typed(ctx, new), ctx.schema)
    if not ctx.reset.empty():
        comparison.exclude(ctx.reset)
    if managed:
        managed = _take(managed, comparison, this, force=True)
    changed = comparison.added
    if not comparison.modified.empty():
        changed = changed.union(comparison.modified)
    changed = changed.difference(_STRIP)
    if not changed.empty():
        previous = managed.get(ident)
        fields = changed.union(previous.fields) if previous else changed
        managed[ident] = Entry(fields, ctx.api_version, False, ctx.now)
    managed.pop(this, None)
    return _cap(managed)


def _take(managed: Managed, c: Comparison, applier: str, force: bool) -> Managed:
    """Updater.update: the fields a write changed leave their other owners (or conflict)."""
    conflicts: dict[str, FieldSet] = {}
    taken = c.modified.union(c.added)
    out: Managed = {}
    for ident, entry in managed.items():
        if ident == applier:
            out[ident] = entry
            continue
        clash = entry.fields.intersection(taken)
        if not clash.empty():
            conflicts[ident] = clash
        out[ident] = entry
    if conflicts and not force:
        raise _Conflicts(conflicts)
    for ident, entry in list(out.items()):
        if ident == applier:
            continue
        fields = entry.fields.difference(conflicts.get(ident, FieldSet())).difference(c.removed)
        if fields.empty():
            del out[ident]
        else:
            out[ident] = Entry(fields, entry.api_version, entry.applied, entry.time)
    return out


def _cap(managed: Managed) -> Managed:
    """capmanagers.go: more than ten Update entries merge the oldest into ancient-changes."""
    updaters = sorted((i for i, e in managed.items() if not e.applied),
                      key=lambda i: (_seconds(managed[i].time), i))
    length, first = len(updaters), {}
    for ident in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        entry = managed[ident]
        bucket = identifier("ancient-changes", "Update", entry.api_version)
        if entry.api_version not in first:
            first[entry.api_version] = ident
            continue
        if bucket not in managed:
            managed[bucket] = managed.pop(first[entry.api_version])
        managed[bucket] = Entry(entry.fields.union(managed[bucket].fields), entry.api_version,
                                False, entry.time)
        del managed[ident]
        length -= 1
    return managed


class _Conflicts(Exception):
    def __init__(self, by_manager: dict[str, FieldSet]) -> None:
        self.by_manager = by_manager

    def paths(self) -> set[str]:
        return {path_string(p) for s in self.by_manager.values() for p in s.paths()}


def apply(ctx: Context, live: Obj | None, config: Obj, manager: str, force: bool) -> Obj | None:
    """The object after ``manager`` applied ``config``; None when nothing at all changed."""
    live_meta = (live or {}).get("metadata") or {}
    try:
        managed = decode(live_meta.get("managedFields"))
    except ValueError as e:
        raise errors.server_error(f"failed to decode managed fields: {e}") from None
    if not managed and live is not None:
        managed = _tracked_update(ctx, None, live, managed, "before-first-apply")
    try:
        result, managed = _apply(ctx, live, config, managed, manager, force)
    except _Conflicts as c:
        allowed = _allowed_by_last_applied(ctx, live) if manager == "kubectl" else None
        if allowed is None or not c.paths() <= allowed:
            remaining = {i: FieldSet.of(*(p for p in s.paths()
                                          if allowed is None or path_string(p) not in allowed))
                         for i, s in c.by_manager.items()}
            raise conflict_error({i: s for i, s in remaining.items() if not s.empty()}) from None
        result, managed = _apply(ctx, live, config, managed, manager, True)
    if result is None:
        if live is None:
            return None
        unchanged = _with_managed(live, managed)
        return None if unchanged == live else unchanged
    if manager == "kubectl" and (result.get("metadata") or {}).get("annotations", {}).get(
            LAST_APPLIED):
        result = _sync_last_applied(result, config)
    return _with_managed(result, managed)


def _apply(ctx: Context, live: Obj | None, config: Obj, managed: Managed, manager: str,
           force: bool) -> tuple[Obj | None, Managed]:
    ident = identifier(manager, "Apply", ctx.api_version, ctx.subresource)
    managed = {i: Entry(e.fields, e.api_version, e.applied, e.time) for i, e in managed.items()}
    base = _typed(ctx, live and _strip_meta(live))
    merged = merge(base, config, ctx.schema)
    merged = {} if merged is MISSING else merged
    last = managed.get(ident)
    applied = to_field_set(config, ctx.schema).recursive_difference(ctx.reset)
    managed[ident] = Entry(applied, ctx.api_version, True, last.time if last else None)
    if last is not None and not last.fields.empty():
        merged = _prune(ctx.schema, merged, managed, last.fields)
    c = compare(base, merged, ctx.schema).exclude(ctx.reset)
    managed = _take(managed, c, ident, force)
    entry = managed[ident]
    fields = entry.fields.difference(_STRIP)
    if fields.empty():
        del managed[ident]
    else:
        managed[ident] = Entry(fields, entry.api_version, True, entry.time)
    if merged == base:
        return None, managed
    managed[ident].time = ctx.now if ident in managed else None
    return _drop_zero(ctx.skeleton, merged), managed


def _prune(schema: T, merged: Obj, managed: Managed, last: FieldSet) -> Obj:
    """Updater.prune: drop what the applier applied last time, no longer applies, and nobody
    else owns."""
    owned = FieldSet()
    for entry in managed.values():
        owned = owned.union(entry.fields)
    last_n = ensure_named(last, schema)
    pruned = remove_items(merged, last_n, schema) or {}
    merged_n = ensure_named(to_field_set(merged, schema), schema)
    keep = ensure_named(to_field_set(pruned, schema), schema).union(ensure_named(owned, schema))
    pruned = remove_items(merged, merged_n.difference(keep), schema) or {}
    pruned_n = ensure_named(to_field_set(pruned, schema), schema)
    out = remove_items(merged, merged_n.difference(pruned_n).intersection(last_n), schema)
    return out if isinstance(out, dict) else {}


def _drop_zero(zero: Obj, obj: Obj) -> Obj:
    """Drop the empty structs :func:`_typed` added that the merge left as they were."""
    out = {}
    for k, v in obj.items():
        z = zero.get(k, MISSING)
        if isinstance(z, dict) and isinstance(v, dict):
            v = _drop_zero(z, v)
            if v == {} and z is not MISSING:
                continue
        out[k] = v
    return out


def _allowed_by_last_applied(ctx: Context, live: Obj | None) -> set[str] | None:
    """lastappliedmanager.go: the fields kubectl's client-side apply annotation records and the
    live object still has, which kubectl's server-side apply may take over."""
    text = ((live or {}).get("metadata") or {}).get("annotations", {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        last = json.loads(text)
    except ValueError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != ctx.api_version:
        return None
    fields = to_field_set(last, ctx.schema)
    c = compare(last, _strip_meta(live or {}), ctx.schema)
    fields = fields.difference(c.modified).difference(c.added).difference(c.removed)
    return {path_string(p) for p in fields.paths()}


def _sync_last_applied(obj: Obj, config: Obj) -> Obj:
    meta = dict(config.get("metadata") or {})
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if "annotations" in meta:
        meta["annotations"] = notes
    text = json.dumps({**config, "metadata": meta}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    out_meta = dict(obj["metadata"])
    out_meta["annotations"] = {**out_meta["annotations"], LAST_APPLIED: text + "\n"}
    return {**obj, "metadata": out_meta}


def conflict_error(by_manager: dict[str, FieldSet]) -> ApiError:
    """conflict.go's NewConflictError: 409 Conflict, a cause per field naming its manager."""
    pairs = [(ident, p) for ident in sorted(by_manager) for p in by_manager[ident].paths()]
    causes = [Cause("FieldManagerConflict", f"conflict with {_print(i)}", path_string(p))
              for i, p in pairs]
    if len(pairs) == 1:
        message = f"Apply failed with 1 conflict: conflict with {_print(pairs[0][0])}: " \
                  f"{path_string(pairs[0][1])}"
    else:
        lines = []
        for ident in sorted(by_manager):
            lines.append(f"conflicts with {_print(ident)}:")
            lines += [f"- {path_string(p)}" for i, p in pairs if i == ident]
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": [c.as_dict() for c in causes]})


def _print(ident: str) -> str:
    e = _name(ident)
    text = json.dumps(e.get("manager", ""), ensure_ascii=False)
    if e.get("subresource"):
        text += f" with subresource {json.dumps(e['subresource'])}"
    if e.get("operation") == "Update":
        text += f" using {e.get('apiVersion', '')}"
    return text
