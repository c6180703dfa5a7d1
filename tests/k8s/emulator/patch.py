"""The three PATCH formats of the Kubernetes API, picked by the request's Content-Type.

* ``application/merge-patch+json`` — JSON merge patch (RFC 7386): maps merge, ``null`` deletes,
  lists are replaced whole;
* ``application/json-patch+json`` — JSON patch (RFC 6902) by the ``jsonpatch`` library; a failed
  ``test`` (kopf guards finalizer patches with one on ``resourceVersion``) or an operation that
  does not apply is a 422;
* ``application/strategic-merge-patch+json`` — strategic merge patch for built-in types: the list
  fields of pod templates and object metadata merge by their merge keys (containers, volumes, env
  by ``name``, volumeMounts by ``mountPath``, container ports by ``containerPort``, ...), with the
  ``$patch: replace|delete|merge``, ``$deleteFromPrimitiveList/<f>``, ``$setElementOrder/<f>`` and
  ``$retainKeys`` directives. Custom resources refuse it with 415, as a real apiserver does.

Nothing here mutates its inputs: unchanged subtrees are shared with the original object, which
the store treats as immutable.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from . import errors

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
CUSTOM_TYPES = [JSON, MERGE, APPLY]
BUILTIN_TYPES = [JSON, MERGE, STRATEGIC, APPLY]

# merge keys of the list fields (patchStrategy=merge) the emulated types use.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "secrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
PRIMITIVE_MERGE = {"finalizers"}  # lists of scalars merged as sets


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902; 400 if the patch is malformed, 422 if it does not apply."""
    if not isinstance(ops, list):
        raise errors.bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    try:
        patch = jsonpatch.JsonPatch(ops)
    except (jsonpatch.InvalidJsonPatch, TypeError) as e:
        raise errors.bad_request(f"invalid JSON patch: {e}") from None
    try:
        return patch.apply(target)
    except jsonpatch.JsonPatchTestFailed as e:
        raise errors.unprocessable(f"test operation failed: {e}") from None
    except (
        jsonpatch.JsonPatchConflict,
        jsonpatch.JsonPointerException,
        jsonpatch.InvalidJsonPatch,
        KeyError,
        IndexError,
        TypeError,
    ) as e:
        raise errors.unprocessable(str(e) or type(e).__name__) from None


def _merge_key(path: tuple[str, ...]) -> str | None:
    field = path[-1]
    if field == "ports":
        return (
            "containerPort" if any(p in path for p in ("containers", "initContainers")) else "port"
        )
    return MERGE_KEYS.get(field)


def _strip(value: Any) -> Any:
    """A new value without SMP directives (for items added whole)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


_DELETE: Any = object()


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        raise errors.bad_request("strategic merge patch must be a JSON object")
    return _smp_map(target if isinstance(target, dict) else {}, patch, path)


def _smp_map(original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return _DELETE
    result = dict(original)
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
        elif k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in v]
        elif v is None:
            result.pop(k, None)
        elif isinstance(v, list):
            result[k] = _smp_list(result.get(k), v, (*path, k))
        elif isinstance(v, dict):
            merged = _smp_map(result[k] if isinstance(result.get(k), dict) else {}, v, (*path, k))
            if merged is _DELETE:
                result.pop(k, None)
            else:
                result[k] = merged
        else:
            result[k] = v
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _reorder(result[name], order, _merge_key((*path, name)))
    return result


def _smp_list(original: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    current = list(original) if isinstance(original, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if path[-1] in PRIMITIVE_MERGE:
        return current + [x for x in patch if x not in current]
    key = _merge_key(path)
    if key is None:
        return _strip(patch)  # atomic list: replaced whole
    for item in patch:
        if not isinstance(item, dict):
            raise errors.bad_request(f"{'.'.join(path)}: list items must be objects with key {key}")
        idx = next(
            (
                i
                for i, o in enumerate(current)
                if isinstance(o, dict) and o.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                del current[idx]
        elif idx is not None:
            current[idx] = _smp_map(current[idx], item, path)
        else:
            current.append(_strip(item))
    return current


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(x: Any) -> Any:
        return x.get(key) if key and isinstance(x, dict) else x

    wanted = [ident(o) for o in order]
    head = [i for w in wanted for i in items if ident(i) == w]
    return head + [i for i in items if ident(i) not in wanted]


def check_patch_type(content_type: str, custom: bool) -> None:
    """415 for a Content-Type the resource does not accept (checked before anything else)."""
    accepted = CUSTOM_TYPES if custom else BUILTIN_TYPES
    if content_type not in accepted:
        raise errors.unsupported_media_type(content_type, accepted)


def apply_patch(content_type: str, target: dict[str, Any], body: Any, custom: bool) -> Any:
    """The patched object; 415 for a Content-Type the resource does not accept. Server-side
    apply (``application/apply-patch+yaml``) is :mod:`.fieldmanager`'s."""
    if content_type == MERGE:
        if not isinstance(body, dict):
            raise errors.bad_request("merge patch must be a JSON object")
        return merge_patch(target, body)
    if content_type == JSON:
        return json_patch(target, body)
    if content_type == STRATEGIC and not custom:
        return strategic_merge_patch(target, body)
    raise errors.unsupported_media_type(content_type, CUSTOM_TYPES if custom else BUILTIN_TYPES)
