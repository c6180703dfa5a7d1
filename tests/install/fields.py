"""Unknown or mistyped fields in built-in Kubernetes objects, offline.

``kubectl apply --validate=strict`` against the emulator checks custom resources against their
CRDs' schemas, but the emulator carries no OpenAPI of the built-in kinds. The official client's
models (``kubernetes.client.models``) are generated from Kubernetes' OpenAPI: each names its
fields (``attribute_map``) and their types (``openapi_types``). Walking a manifest along them
finds what a real API server's strict field validation refuses: a field the kind does not have
(a typo, a field at the wrong level) or a scalar of the wrong type.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes.client import models

# the client writes List[X] and Dict[str, X] (older releases: list[X], dict(str, X))
_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict\[str, (.+)\]|dict\(str, (.+)\))$")
_SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float),
                                         "bool": (bool,), "datetime": (str,), "date": (str,),
                                         "bytes": (str,)}


def model_for(doc: dict[str, Any]) -> str | None:
    """The model class name of a built-in object (``V1Deployment``), or None (a custom kind)."""
    version = str(doc.get("apiVersion", "")).rpartition("/")[2]
    name = f"{version[:1].upper()}{version[1:]}{doc.get('kind', '')}"
    return name if hasattr(models, name) else None


def problems(doc: dict[str, Any]) -> list[str]:
    """Every unknown or mistyped field of a built-in object (empty for a custom kind)."""
    model = model_for(doc)
    return [] if model is None else _walk(doc, model, doc.get("kind", "?"))


def _walk(value: Any, type_name: str, path: str) -> list[str]:
    if value is None:
        return []
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            return [f"{path}: a list expected, not {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in _walk(item, m[1], f"{path}[{i}]")]
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            return [f"{path}: a map expected, not {type(value).__name__}"]
        inner = m[1] or m[2]
        return [p for k, v in value.items() for p in _walk(v, inner, f"{path}.{k}")]
    if type_name == "object":  # IntOrString, RawExtension, JSON: anything
        return []
    if type_name in _SCALARS:
        allowed = _SCALARS[type_name]
        # resource quantities are strings in the models; the API server also takes numbers
        if type_name == "str" and re.search(r"\.(limits|requests|capacity)\.[^.]+$", path):
            allowed = (str, int, float)
        if isinstance(value, bool) and bool not in allowed:
            return [f"{path}: {type_name} expected, not a boolean"]
        return [] if isinstance(value, allowed) else [
            f"{path}: {type_name} expected, not {type(value).__name__}"]
    cls = getattr(models, type_name)
    if not isinstance(value, dict):
        return [f"{path}: an object ({type_name}) expected, not {type(value).__name__}"]
    fields = {json_name: cls.openapi_types[py] for py, json_name in cls.attribute_map.items()}
    found: list[str] = []
    for k, v in value.items():
        if k not in fields:
            found.append(f"{path}.{k}: unknown field of {type_name}")
        else:
            found.extend(_walk(v, fields[k], f"{path}.{k}"))
    return found
