"""Label and field selectors, as ``?labelSelector=`` and ``?fieldSelector=`` take them.

Label selector grammar (``k8s.io/apimachinery/pkg/labels``): comma-separated requirements, each
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists) or ``!k``.
Field selectors: ``metadata.name``, ``metadata.namespace`` for every resource, plus the fields a
resource declares (``type`` for Secrets, ``involvedObject.*`` for Events); anything else is a 400,
as on a real apiserver.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import errors

Match = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(
    r"^\s*(!?)\s*([^\s!=,()]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=)\s*([^\s,]*))?\s*$"
)

FIELDS: dict[tuple[str, str], set[str]] = {
    ("", "secrets"): {"type"},
    ("", "events"): {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    ("", "namespaces"): {"status.phase"},
}


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def label_selector(text: str | None) -> Match | None:
    if not text:
        return None
    reqs: list[Match] = []
    for part in _split(text):
        m = _SET_RE.match(part)
        if not m:
            raise errors.bad_request(f"unable to parse requirement: {part!r}")
        neg, key, setop, values, op, value = m.groups()
        if neg and (setop or op):
            raise errors.bad_request(f"unable to parse requirement: {part!r}")
        reqs.append(_requirement(key, neg, setop, values, op, value))

    def match(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r(labels) for r in reqs)

    return match


def _requirement(
    key: str, neg: str, setop: str | None, values: str | None, op: str | None, value: str | None
) -> Match:
    if setop:
        allowed = {v.strip() for v in (values or "").split(",") if v.strip()}
        if setop == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if neg:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def _get(obj: dict[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if dotted == "source" and isinstance(cur, dict):
        return cur.get("component")
    return "" if cur is None else cur


def field_selector(text: str | None, key: tuple[str, str]) -> Match | None:
    if not text:
        return None
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS.get(key, set())
    reqs: list[tuple[str, bool, str]] = []
    for part in _split(text):
        m = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, op, value = m.groups()
        if name not in allowed:
            raise errors.bad_request(f"field label not supported: {name}")
        reqs.append((name, op != "!=", value))

    def match(obj: dict[str, Any]) -> bool:
        return all((str(_get(obj, n)) == v) is eq for n, eq, v in reqs)

    return match


def combine(*matches: Match | None) -> Match | None:
    active = [m for m in matches if m is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda obj: all(m(obj) for m in active)
