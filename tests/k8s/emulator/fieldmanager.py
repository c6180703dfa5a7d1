"""The request side of field management: who the manager is, and server-side apply requests.

The server asks :func:`tracker` for the :data:`~.store.Track` of every create, update and patch
(``?fieldManager=`` or the User-Agent's product, as ``managerOrUserAgent`` in the apiserver's
handlers) and sends ``application/apply-patch+yaml`` PATCHes to :func:`apply`, which checks
the request as ``handlers/patch.go`` and the field manager's wrappers do (``PatchOptions``,
object type, ``managedFields`` in the configuration, the configuration against the schema), then
creates the object or updates it through the store with the managed fields
:mod:`.managedfields` computed.
"""

from __future__ import annotations

from typing import Any

from . import errors, managedfields
from .errors import Cause
from .fieldpath import PE, FieldSet
from .managedfields import Context
from .params import go_bool
from .resources import ResourceType
from .store import Obj, Store, Track
from .typed import T, builtin_root, custom_root, validate

APPLY = "application/apply-patch+yaml"

# Go's zero value of each built-in kind: the non-pointer structs an empty object already has,
# so that setting a field below them does not make the parent "added" (no ".": {} for spec).
_TEMPLATE: Obj = {"metadata": {}, "spec": {}}
SKELETONS: dict[tuple[str, str], Obj] = {
    ("", "namespaces"): {"spec": {}, "status": {}},
    ("", "services"): {"spec": {}, "status": {"loadBalancer": {}}},
    ("", "events"): {"involvedObject": {}, "source": {}},
    ("apps", "deployments"): {"spec": {"template": _TEMPLATE, "strategy": {}}, "status": {}},
    ("apps", "statefulsets"): {"spec": {"template": _TEMPLATE, "updateStrategy": {}},
                               "status": {}},
    ("apps", "daemonsets"): {"spec": {"template": _TEMPLATE, "updateStrategy": {}},
                             "status": {}},
    ("coordination.k8s.io", "leases"): {"spec": {}},
    ("rbac.authorization.k8s.io", "rolebindings"): {"roleRef": {}},
    ("rbac.authorization.k8s.io", "clusterrolebindings"): {"roleRef": {}},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {
        "spec": {"names": {}}, "status": {"acceptedNames": {}}},
}
_schemas: dict[int, tuple[Any, T]] = {}


def schema_of(rt: ResourceType) -> T:
    if not rt.custom:
        return builtin_root()
    compiled = rt.schemas.get(rt.storage_version)
    cached = _schemas.get(id(compiled))
    if cached is None or cached[0] is not compiled:
        cached = _schemas[id(compiled)] = (compiled, custom_root(
            compiled.openapi if compiled is not None else None))
    return cached[1]


def context(store: Store, rt: ResourceType, version: str, subresource: str) -> Context:
    reset = FieldSet()
    if rt.status_subresource:
        reset.insert((PE.field("spec" if subresource == "status" else "status"),))
    skeleton = {"metadata": {}, **({} if rt.custom else SKELETONS.get(rt.key, {}))}
    return Context(schema_of(rt), rt.api_version(version), subresource, reset, skeleton,
                   store.now())


def manager_of(query: Any, user_agent: str, options: str) -> str:
    """The request's field manager, validated as ``ValidateFieldManager`` (422)."""
    manager = query.get("fieldManager") or ""
    causes = []
    if len(manager.encode()) > 128:
        causes.append(Cause("FieldValueTooLong", "Too long: may not be more than 128 bytes",
                            "fieldManager"))
    for i, ch in enumerate(manager):
        if not ch.isprintable():
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {manager!r}: invalid "
                                f"character U+{ord(ch):04X} (at position {i})", "fieldManager"))
    if causes:
        raise errors.invalid(options, "meta.k8s.io", "", causes)
    return manager or managedfields.user_agent_manager(user_agent)


def check_patch_options(query: Any, content_type: str) -> bool:
    """ValidatePatchOptions: ``force`` only with apply, ``fieldManager`` required for apply."""
    causes = []
    if content_type != APPLY and "force" in query:
        causes.append(Cause("FieldValueForbidden",
                            "Forbidden: may not be specified for non-apply patch", "force"))
    if content_type == APPLY and not query.get("fieldManager"):
        causes.append(Cause("FieldValueRequired", "Required value: is required for apply patch",
                            "fieldManager"))
    if causes:
        raise errors.invalid("PatchOptions", "meta.k8s.io", "", causes)
    return go_bool(query.get("force"))


def tracker(store: Store, rt: ResourceType, version: str, subresource: str,
            manager: str) -> Track:
    def track(old: Obj | None, new: Obj, requested: Any) -> Obj:
        ctx = context(store, rt, version, subresource)
        return managedfields.update(ctx, old, new, requested, manager)

    return track


def _gvk(api_version: Any, kind: Any) -> str:
    group, _, ver = str(api_version or "").rpartition("/")
    return f"{group}/{ver}, Kind={kind or ''}"


def apply(
    store: Store,
    rt: ResourceType,
    version: str,
    namespace: str,
    name: str,
    config: Any,
    manager: str,
    force: bool,
    subresource: str,
    *,
    dry_run: bool,
    strict: bool,
) -> tuple[Obj, list[str], bool]:
    """A server-side apply: the object and whether it was created."""
    if not isinstance(config, dict):
        raise errors.bad_request(
            "error decoding YAML: json: cannot unmarshal "
            f"{'array' if isinstance(config, list) else 'string'} into Go value of type "
            "map[string]interface {}")
    meta: Obj = config["metadata"] if isinstance(config.get("metadata"), dict) else {}
    if config.get("apiVersion") != rt.api_version(version) or config.get("kind") != rt.kind:
        raise errors.bad_request(
            f"invalid object type: {_gvk(config.get('apiVersion'), config.get('kind'))}")
    if meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    problems = validate(config, schema_of(rt))
    if problems:
        text = problems[0] if len(problems) == 1 else "errors:\n" + "\n".join(
            "  " + p for p in problems)
        raise errors.server_error(
            f"failed to create typed patch object ({meta.get('namespace', '')}/"
            f"{meta.get('name', '')}; {_gvk(config['apiVersion'], config['kind'])}): {text}")
    live = store.find(rt, namespace, name)
    if live is None and subresource:
        store.get(rt, namespace, name)  # 404
    if meta.get("name", "") != name:
        raise errors.bad_request(f"the name of the object ({meta.get('name', '')}) does not "
                                 f"match the name on the URL ({name})")
    ctx = context(store, rt, version, subresource)
    result = managedfields.apply(ctx, live, config, manager, force)
    if result is None:
        assert live is not None
        return live, [], False
    entries = (result.get("metadata") or {}).get("managedFields")

    def keep(old: Obj | None, new: Obj, requested: Any) -> Obj:
        meta = {k: v for k, v in new["metadata"].items() if k != "managedFields"}
        return {**new, "metadata": {**meta, **({"managedFields": entries} if entries else {})}}

    if live is None:
        obj, warnings = store.create(rt, namespace, result, dry_run=dry_run, strict=strict,
                                     track=keep)
        return obj, warnings, True
    obj, warnings = store.update(rt, namespace, name, result, subresource=subresource or None,
                                 dry_run=dry_run, strict=strict, track=keep)
    return obj, warnings, False

