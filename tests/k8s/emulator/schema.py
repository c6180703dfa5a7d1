"""CRD ``openAPIV3Schema`` handling: structural checks, pruning, defaulting and validation.

What a real apiserver does with a custom resource on every write, in this order:

1. **prune** fields the schema does not declare (kept under
   ``x-kubernetes-preserve-unknown-fields``), reporting them so
   ``fieldValidation=Strict`` can refuse them and ``Warn`` can warn;
   ``null`` values of non-``nullable`` fields are dropped;
2. **default** missing fields that declare a ``default``;
3. **validate** types, ``required``, ``enum`` and the other JSON-schema keywords, reporting each
   failure with its field path (``spec.items[0].name``) in the apiserver's wording.

Validation itself is the ``jsonschema`` library run on the schema converted from OpenAPI v3
(``nullable``, ``x-kubernetes-int-or-string``) to draft 4; :func:`structural_errors` is the subset
of the apiserver's structural-schema rules that catches a wrong CRD before it is applied.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import re
from collections import Counter
from typing import Any

import jsonschema

from .errors import Cause

TYPES = ("object", "array", "string", "integer", "number", "boolean")
_DROP = ("nullable", "default", "description", "example", "externalDocs")
_GO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_GO_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))")
# govalidator.IsBase64: padded standard base64 of at least one group (so "" fails too).
_GO_BASE64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
)


def _is_date(text: str) -> bool:
    """strfmt ``date``: Go's ``time.Parse("2006-01-02", s)``."""
    m = _GO_DATE.fullmatch(text)
    if not m:
        return False
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    """strfmt ``date-time`` (kube-openapi ``IsDateTime``): a date, ``t``, a time and a zone."""
    parts = text.lower().split("t")
    if len(text) < 4 or len(parts) < 2 or not _is_date(parts[0]):
        return False
    m = _GO_TIME.fullmatch(parts[1])
    return m is not None and m[1] <= "23" and m[2] <= "59" and m[3] <= "59"


# The formats the apiserver checks (kube-openapi's strfmt registry, names without dashes) that
# our CRDs use; other formats are not checked here (see docs/testing.md).
_FORMATS = {
    "byte": lambda s: _GO_BASE64.fullmatch(s) is not None,
    "date": _is_date,
    "datetime": _is_date_time,
}


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    for name, check in _FORMATS.items():
        for alias in {name, name.replace("datetime", "date-time")}:
            checker.checks(alias)(lambda v, c=check: not isinstance(v, str) or c(v))
    return checker


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, dict | list) else _type_name(value)


def field_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _convert(node: Any) -> Any:
    """An OpenAPI v3 schema node as JSON Schema draft 4."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-") or k in _DROP:
            continue
        if k in ("properties", "patternProperties"):
            out[k] = {n: _convert(x) for n, x in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = _convert(v)
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [_convert(x) for x in v]
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


_FORMAT_CHECKER = _format_checker()


class CompiledSchema:
    """One CRD version's schema, ready to prune, default and validate objects."""

    def __init__(self, openapi: dict[str, Any]) -> None:
        self.openapi = openapi
        root = _convert(openapi)
        # metadata is the apiserver's own ObjectMeta; the CRD schema may not constrain it.
        root.get("properties", {}).pop("metadata", None)
        if "required" in root:
            root["required"] = [r for r in root["required"] if r != "metadata"]
        self._root = root
        self._validator = jsonschema.Draft4Validator(root, format_checker=_FORMAT_CHECKER)
        # the memo of valid top-level fields (below) is exact only where the root checks
        # nothing across its fields: its type, its properties and the required ones
        self._memo = set(root) <= {"type", "properties", "required"}
        self._valid: set[tuple[str, bytes]] = set()  # (field, digest of a value found valid)
        self._validators: dict[frozenset[str], jsonschema.Draft4Validator] = {}
        self.validated: Counter[str] = Counter()  # top-level fields validated (tests count)

    def prune(self, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A pruned and defaulted copy of ``obj`` and the paths of the unknown fields dropped."""
        unknown: list[str] = []
        out: dict[str, Any] = {}
        props = self.openapi.get("properties", {})
        for k, v in obj.items():
            if k in ("apiVersion", "kind", "metadata"):
                out[k] = v
            elif k in props:
                kept = _prune(v, props[k], [k], unknown)
                if kept is not _DROPPED:
                    out[k] = kept
            elif self.openapi.get("x-kubernetes-preserve-unknown-fields"):
                out[k] = v
            else:
                unknown.append(k)
        _default_missing(out, self.openapi, skip=("apiVersion", "kind", "metadata"))
        return out, unknown

    def validate(self, obj: dict[str, Any]) -> list[Cause]:
        body = {k: v for k, v in obj.items() if k != "metadata"}
        if not self._memo:
            errs = list(self._validator.iter_errors(body))
        else:
            errs = self._validate_memo(body)
        causes: list[Cause] = []
        for err in sorted(errs, key=lambda e: list(map(str, e.path))):
            causes.extend(_causes(err))
        return causes

    def _validate_memo(self, body: dict[str, Any]) -> list[jsonschema.ValidationError]:
        """The errors of ``body``, skipping the top-level fields whose value (by its JSON
        digest) was found valid before: a subschema's verdict depends on nothing but the value
        below it (no ``$ref``, no keyword across fields at the root), so a status write does
        not validate the unchanged spec again. The same errors, in the same order, as a whole
        validation: a skipped field's subschema is replaced by ``{}``, which yields none."""
        props = self._root.get("properties") or {}
        digests = {k: _digest(v) for k, v in body.items() if k in props}
        known = frozenset(k for k, d in digests.items() if (k, d) in self._valid)
        validator = self._validators.get(known)
        if validator is None:
            root = {**self._root, "properties": {
                k: ({} if k in known else sub) for k, sub in props.items()}}
            validator = self._validators[known] = jsonschema.Draft4Validator(
                root, format_checker=_FORMAT_CHECKER)
        errs = list(validator.iter_errors(body))
        self.validated.update(k for k in digests if k not in known)
        bad = {e.absolute_path[0] for e in errs if e.absolute_path}
        if len(self._valid) > 100_000:  # bounded: one digest per distinct value
            self._valid.clear()
        self._valid.update((k, d) for k, d in digests.items() if k not in known and k not in bad)
        return errs


def _digest(value: Any) -> bytes:
    """A value's identity for validation: JSON keeps every distinction a schema can see
    (``1``, ``1.0``, ``true`` and ``"1"`` differ)."""
    return hashlib.blake2b(json.dumps(value, separators=(",", ":")).encode(),
                           digest_size=16).digest()


class _Dropped:
    pass


_DROPPED: Any = _Dropped()


def _prune(value: Any, schema: dict[str, Any], path: list[Any], unknown: list[str]) -> Any:
    if value is None:
        return None if schema.get("nullable") else _DROPPED
    if (
        isinstance(value, dict)
        and schema.get("type", "object") == "object"
        and not schema.get("x-kubernetes-int-or-string")
    ):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if props and k in props:
                kept = _prune(v, props[k], [*path, k], unknown)
            elif isinstance(extra, dict):
                kept = _prune(v, extra, [*path, k], unknown)
            elif preserve or extra is True:
                kept = v
            else:
                unknown.append(field_path([*path, k]))
                continue
            if kept is not _DROPPED:
                out[k] = kept
        _default_missing(out, schema)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = [_prune(v, schema["items"], [*path, i], unknown) for i, v in enumerate(value)]
        return [v for v in items if v is not _DROPPED]
    return value


def _default_missing(
    out: dict[str, Any], schema: dict[str, Any], skip: tuple[str, ...] = ()
) -> None:
    for name, sub in (schema.get("properties") or {}).items():
        if name not in out and name not in skip and isinstance(sub, dict) and "default" in sub:
            out[name] = _prune(copy.deepcopy(sub["default"]), sub, [name], [])


def _causes(err: jsonschema.ValidationError) -> list[Cause]:
    path = list(err.absolute_path)
    where = field_path(path)
    if err.validator == "required":
        missing = [n for n in err.validator_value if n not in (err.instance or {})]
        return [
            Cause("FieldValueRequired", "Required value", field_path([*path, n])) for n in missing
        ]
    if err.validator == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        got = _type_name(err.instance)
        return [
            Cause(
                "FieldValueTypeInvalid",
                f'Invalid value: "{got}": {where} in body must be of type {want}: "{got}"',
                where,
            )
        ]
    if err.validator == "format":
        return [
            Cause(
                "FieldValueTypeInvalid",
                f"Invalid value: {_value(err.instance)}: {where} in body must be of type "
                f"{err.validator_value}: {_value(err.instance)}",
                where,
            )
        ]
    if err.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in err.validator_value)
        return [
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {_value(err.instance)}: supported values: {allowed}",
                where,
            )
        ]
    return [
        Cause(
            "FieldValueInvalid",
            f"Invalid value: {_value(err.instance)}: {where} in body: {err.message}",
            where,
        )
    ]


def structural_errors(schema: Any, where: str) -> list[Cause]:
    """The structural-schema violations in a CRD version's ``openAPIV3Schema``."""
    if not isinstance(schema, dict):
        return [Cause("FieldValueRequired", "Required value: schemas are required", where)]
    causes: list[Cause] = []
    if schema.get("type") != "object":
        causes.append(
            Cause(
                "FieldValueRequired",
                "Required value: must not be empty at the root",
                f"{where}.type",
            )
        )
    _walk_structural(schema, where, causes, root=True)
    return causes


def _walk_structural(
    node: dict[str, Any], where: str, causes: list[Cause], root: bool = False
) -> None:
    t = node.get("type")
    exempt = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if not root and t is None and not exempt:
        causes.append(
            Cause(
                "FieldValueRequired",
                "Required value: must not be empty for specified object fields",
                f"{where}.type",
            )
        )
    if t is not None and t not in TYPES:
        allowed = ", ".join(f'"{x}"' for x in TYPES)
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{t}": supported values: {allowed}',
                f"{where}.type",
            )
        )
    if t == "array" and not isinstance(node.get("items"), dict):
        causes.append(
            Cause("FieldValueRequired", "Required value: must be specified", f"{where}.items")
        )
    if node.get("properties") and isinstance(node.get("additionalProperties"), dict):
        causes.append(
            Cause(
                "FieldValueForbidden",
                "Forbidden: additionalProperties and properties are mutual exclusive",
                f"{where}.additionalProperties",
            )
        )
    for name, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _walk_structural(sub, f"{where}.properties[{name}]", causes)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _walk_structural(node[key], f"{where}.{key}", causes)
