"""Kubernetes manifests as bytes ↔ dicts: YAML (one or several documents) or JSON.

A ``kind: List`` (what ``kubectl get … -o yaml`` prints) is flattened into its items. Dumping
is deterministic (keys in the order given, long strings never folded), so a manifest that
secretops wrote and then changed in one value differs from the old one only in that value's
line.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from secretops import yamlload
from secretops.errors import FormatError
from secretops.limits import check_input_size

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_documents(data: bytes, source: str = "<input>") -> list[dict[str, Any]]:
    """Every object in ``data``, Lists flattened; empty documents are skipped. Within the
    limits on input (size, nesting, aliases: :mod:`secretops.limits`)."""
    try:
        check_input_size(data)
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text", file=source) from None
    except FormatError as e:
        raise e.with_file(source) from None
    if text.lstrip().startswith(("{", "[")):
        from secretops.jsonload import loads

        try:
            docs: list[Any] = [loads(text)]
        except ValueError as e:
            raise FormatError(f"not valid YAML or JSON ({e})", file=source) from None
        except FormatError as e:
            raise e.with_file(source) from None
    else:
        docs = yamlload.load_all(text, source)
    out: list[dict[str, Any]] = []
    for doc in docs:
        _json_only(doc, source)
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise FormatError("a document is not a mapping (a Kubernetes object)", file=source)
        if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List")
                                         and isinstance(doc.get("items"), list)):
            for item in doc.get("items") or []:
                if not isinstance(item, dict):
                    raise FormatError("a List item is not a mapping", file=source)
                out.append(item)
        else:
            out.append(doc)
    return out


_JSON_SCALARS = (str, int, float, bool, type(None))


def _json_only(doc: Any, source: str) -> None:
    """Refuse what YAML tags make and a Kubernetes object cannot hold (its API takes JSON):
    bytes (``!!binary``), timestamps, sets, keys of those kinds. Walked without recursion,
    each shared (aliased) node once."""
    stack, seen = [doc], set()
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, list):
                stack.extend(node)
                continue
            for key, value in node.items():
                if not isinstance(key, _JSON_SCALARS):
                    raise _not_json(key, source)
                stack.append(value)
        elif not isinstance(node, _JSON_SCALARS):
            raise _not_json(node, source)


def _not_json(value: Any, source: str) -> FormatError:
    return FormatError(f"a YAML {type(value).__name__} value (a timestamp, !!binary or !!set): a "
                       "Kubernetes object holds JSON values only", file=source,
                       hints=("quote it to make it a string",))


def detect_format(data: bytes) -> str:
    """``json`` when the text starts with ``{``, else ``yaml``."""
    return "json" if data.lstrip().startswith(b"{") else "yaml"


def dump(obj: Any, fmt: str = "yaml") -> bytes:
    """One manifest as YAML (block style, no folding) or JSON (two-space indent)."""
    if fmt == "json":
        return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    text = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1 << 30)
    return text.encode("utf-8")
