"""Per-resource rules (the apiserver's "strategies"): normalising, defaulting and validating writes.

:func:`prepare` is called by the store for every create and update of every resource, after the
generic metadata rules and before the object is stored. It returns the object to store, or
raises a 4xx :class:`~.errors.ApiError`. Kinds without rules of their own only get name and label
validation. CustomResourceDefinitions are validated here; the store serves them (see
:func:`crd_resource_type`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from . import errors
from .errors import Cause
from .resources import ResourceType
from .schema import CompiledSchema, structural_errors

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_SECRET_BYTES = 1024 * 1024


def validate_metadata(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    meta = obj["metadata"]
    name = meta.get("name", "")
    causes: list[Cause] = []
    pattern, what = (
        (DNS1123_LABEL, "a lowercase RFC 1123 label")
        if rt.plural == "namespaces"
        else (DNS1123_SUBDOMAIN, "a lowercase RFC 1123 subdomain")
    )
    if not pattern.match(name) or len(name) > (63 if rt.plural == "namespaces" else 253):
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": {what} must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
                "metadata.name",
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        if not _qualified_key(key):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": name part must consist '
                    "of alphanumeric characters, '-', '_' or '.'",
                    "metadata.labels",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {value!r}: a valid label must be "
                    "an empty string or consist of alphanumeric characters, '-', '_' or "
                    "'.', and must start and end with an alphanumeric character",
                    "metadata.labels",
                )
            )
    for key in meta.get("annotations") or {}:
        if not _qualified_key(key):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": name part must consist '
                    "of alphanumeric characters, '-', '_' or '.'",
                    "metadata.annotations",
                )
            )
    return causes


def _qualified_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


# metav1.MicroTime fields: decoded with time.Parse(RFC3339Micro): exactly 6 fractional digits.
_MICRO_TIMES = {
    ("coordination.k8s.io", "leases"): (("spec", "acquireTime"), ("spec", "renewTime")),
    ("", "events"): (("eventTime",), ("series", "lastObservedTime")),
    ("events.k8s.io", "events"): (("eventTime",), ("series", "lastObservedTime")),
}
_RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_MICRO_HEAD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_MICRO_ZONE = re.compile(r"Z|[+-][0-9]{2}:[0-9]{2}")


def _micro_time_error(value: Any) -> str | None:
    """Why Go's time.Parse(RFC3339Micro, value) fails (its wording, close enough), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "json: cannot unmarshal into Go value of type string"
    where = f"parsing time {json.dumps(value)} as {json.dumps(_RFC3339_MICRO)}: cannot parse"
    if not _MICRO_HEAD.match(value):
        return f"{where} {json.dumps(value)} as \"2006\""
    rest = value[19:]
    if not re.match(r"\.[0-9]{6}", rest):
        return f"{where} {json.dumps(rest)} as \".000000\""
    if not _MICRO_ZONE.fullmatch(rest[7:]):
        return f"{where} {json.dumps(rest[7:])} as \"Z07:00\""
    return None


def check_decodable(rt: ResourceType, obj: dict[str, Any]) -> None:
    """What the apiserver's decoder refuses before any validation (400, no field path)."""
    for path in _MICRO_TIMES.get(rt.key, ()):
        node: Any = obj
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        why = _micro_time_error(node)
        if why:
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.versions[0]}" cannot be handled as a {rt.kind}: {why}'
            )


def prepare(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The object to store; ``old`` is None on create."""
    check_decodable(rt, obj)
    if rt.key == ("", "secrets"):
        obj = _secret(obj, old)
    elif rt.key == ("", "namespaces"):
        obj = _namespace(obj, old)
    elif rt.group == "apps" and old is None:
        spec = dict(obj.get("spec") or {})
        if rt.plural != "daemonsets":
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        obj = {**obj, "spec": spec}
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        validate_crd(obj)
    elif rt.plural == "events" and old is None:
        causes = _event_causes(rt, obj)
        if causes:
            raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
    return obj


def check_view_create(rt: ResourceType, namespace: str, body: Any) -> None:
    """A create through a view (events.k8s.io/v1): its own rules, in its own field names."""
    if rt.plural != "events" or not isinstance(body, dict):
        return
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    obj = {**body, "metadata": {**meta, "namespace": namespace}}
    check_decodable(rt, obj)
    causes = _event_causes(rt, obj)
    if causes:
        raise errors.invalid(rt.kind, rt.group, str(meta.get("name") or ""), causes)


_EVENT_LIMITS = (("reportingInstance", 128), ("action", 128), ("reason", 128))


def _event_causes(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    """pkg/apis/core/validation/events.go: the legacy rules for every API version, and the
    strict ones for events.k8s.io. Field paths are the internal type's (``involvedObject``)."""
    core = rt.group == ""
    ns = obj["metadata"].get("namespace") or ""
    regarding = obj.get("involvedObject" if core else "regarding") or {}
    rns = regarding.get("namespace") or ""
    mismatch = Cause(
        "FieldValueInvalid",
        f"Invalid value: {json.dumps(rns)}: does not match event.namespace",
        "involvedObject.namespace",
    )
    causes: list[Cause] = []
    if not obj.get("eventTime"):
        if (rns and rns != ns) or (not rns and ns not in ("", "default")):
            causes.append(mismatch)
    else:
        if not rns and ns not in ("default", "kube-system"):
            causes.append(mismatch)
        controller = "reportingComponent" if core else "reportingController"
        if not obj.get(controller):
            causes.append(Cause("FieldValueRequired", "Required value", controller))
        for field, limit in _EVENT_LIMITS:
            value = obj.get(field) or ""
            if not value:
                causes.append(Cause("FieldValueRequired", "Required value", field))
            elif len(value) > limit:
                causes.append(Cause(
                    "FieldValueInvalid", f'Invalid value: "": can have at most {limit} characters',
                    field))
        if len(obj.get("message" if core else "note") or "") > 1024:
            causes.append(Cause(
                "FieldValueInvalid", 'Invalid value: "": can have at most 1024 characters',
                "message"))
    if not core:  # events.k8s.io/v1: the strict rules
        if not obj.get("eventTime"):
            causes.append(Cause("FieldValueRequired", "Required value", "eventTime"))
        if obj.get("type") not in ("Normal", "Warning"):
            causes.append(Cause(
                "FieldValueInvalid", f'Invalid value: "": has invalid value: {obj.get("type", "")}',
                "type"))
        for field in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount",
                      "deprecatedSource"):
            if obj.get(field):
                causes.append(Cause("FieldValueInvalid", 'Invalid value: "": needs to be unset',
                                    field))
    return causes


def _secret(obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    data = dict(obj.get("data") or {})
    causes: list[Cause] = []
    for key, value in data.items():
        if not isinstance(value, str):
            raise errors.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: '
                f'illegal base64 data for key "{key}"'
            )
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: '
                f"illegal base64 data at input byte 0 (key {key!r})"
            ) from None
    for key, value in (obj.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    out = {k: v for k, v in obj.items() if k != "stringData"}
    if data or "data" in obj:
        out["data"] = data
    out.setdefault("type", "Opaque")
    for key in data:
        if not SECRET_KEY.match(key) or len(key) > 253:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": a valid config key must '
                    "consist of alphanumeric characters, '-', '_' or '.'",
                    f"data[{key}]",
                )
            )
    size = sum(len(base64.b64decode(v)) for v in data.values())
    if size > MAX_SECRET_BYTES:
        causes.append(
            Cause(
                "FieldValueTooLong", f"Too long: must have at most {MAX_SECRET_BYTES} bytes", "data"
            )
        )
    if old is not None:
        if out["type"] != old.get("type", "Opaque"):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{out["type"]}": field is immutable',
                    "type",
                )
            )
        if old.get("immutable") and (
            out.get("data") != old.get("data") or not out.get("immutable")
        ):
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set",
                    "data",
                )
            )
    if causes:
        raise errors.invalid("Secret", "", obj["metadata"].get("name", ""), causes)
    return out


def _namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    if old is None:
        return {**obj, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
    return {**obj, "spec": old.get("spec", {})}


def validate_crd(crd: dict[str, Any]) -> None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = crd["metadata"].get("name", "")
    causes: list[Cause] = []
    for f in ("group", "scope"):
        if not spec.get(f):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.{f}"))
    if spec.get("scope") and spec["scope"] not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{spec["scope"]}": supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    for f in ("plural", "kind"):
        if not names.get(f):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.names.{f}"))
    if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            Cause(
                "FieldValueRequired",
                "Required value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    for i, v in enumerate(versions):
        where = f"spec.versions[{i}].schema.openAPIV3Schema"
        causes.extend(structural_errors((v.get("schema") or {}).get("openAPIV3Schema"), where))
    if causes:
        raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)


def _version_priority(v: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first, others last."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", v)
    if not m:
        return (3, 0, 0)
    major, tier, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[tier], -major, -minor)


def crd_resource_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    versions = sorted((v["name"] for v in served), key=_version_priority) or [storage]
    storage_def = next(v for v in spec["versions"] if v["name"] == storage)
    rt = ResourceType(
        group=spec["group"],
        versions=versions,
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec["scope"] == "Namespaced",
        singular=names.get("singular", names["kind"].lower()),
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        subresources=["status"] if "status" in (storage_def.get("subresources") or {}) else [],
        generation=True,
        custom=True,
        storage_version=storage,
        unconditional_update=False,  # customresource/strategy.go
    )
    for v in spec["versions"]:
        rt.schemas[v["name"]] = CompiledSchema(v["schema"]["openAPIV3Schema"])
        rt.printer_columns[v["name"]] = list(v.get("additionalPrinterColumns") or [])
    return rt


def crd_accepted_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    names = dict(crd["spec"]["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": now,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": now,
        },
    ]
    stored = sorted(
        {v["name"] for v in crd["spec"]["versions"] if v.get("storage")}
        | set((crd.get("status") or {}).get("storedVersions") or [])
    )
    return {"conditions": conditions, "acceptedNames": names, "storedVersions": stored}
