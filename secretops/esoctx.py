"""The reading context of ``secretops convert-eso``: issues, and field readers that refuse
a value of the wrong shape instead of using it (no input can raise anything but a named
issue). Pure, no I/O; :mod:`secretops.eso` is the entry point.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$|^0$")
_GO_ZERO = re.compile(r"^0+(\.0+)?(ns|us|µs|ms|s|m|h)?$")


@dataclass(frozen=True)
class Issue:
    """One thing not translated: which manifest, which field (a dotted path), and why.
    ``refused``: the object was not written (else a note about an object that was)."""

    manifest: str  # e.g. "ExternalSecret web/db"
    path: str  # e.g. "spec.dataFrom[0].rewrite"
    message: str
    refused: bool = True

    def __str__(self) -> str:
        return f"{self.manifest}: {self.path}: {self.message}"


@dataclass(frozen=True)
class Store:
    cluster: bool
    namespace: str | None


class Skip(Exception):
    """The whole object cannot be translated; the issue was already recorded."""


class Ctx:
    def __init__(self, manifest: str) -> None:
        self.manifest = manifest
        self.issues: list[Issue] = []

    @property
    def refused(self) -> bool:
        return any(i.refused for i in self.issues)

    def warn(self, path: str, message: str) -> None:
        """A refusal: the object is not written (the other issues are still collected)."""
        self.issues.append(Issue(self.manifest, path, message))

    def note(self, path: str, message: str) -> None:
        self.issues.append(Issue(self.manifest, path, message, refused=False))

    def skip(self, path: str, message: str) -> Skip:
        self.warn(path, message)
        return Skip()

    def fields(self, obj: Any, path: str, known: Iterable[str],
               why: dict[str, str] | None = None,
               harmless: Iterable[str] = ()) -> dict[str, Any]:
        """``obj`` as a mapping; every key not in ``known`` refuses the object (with ``why``
        if given), but those in ``harmless`` are only noted. Not a mapping: refused."""
        if obj is None:
            return {}
        if not isinstance(obj, dict):
            self.warn(path, f"not translated: a mapping was expected, not {kind(obj)}")
            return {}
        known, harmless = set(known), set(harmless)
        for key in obj:
            if key in known:
                continue
            reason = (why or {}).get(str(key), "has no counterpart in secretops")
            (self.note if key in harmless else self.warn)(f"{path}.{key}",
                                                           f"not translated: {reason}")
        return obj

    def items(self, obj: Any, path: str) -> list[Any]:
        """``obj`` as a list (None: empty); anything else refuses the object."""
        if obj is None:
            return []
        if not isinstance(obj, list):
            self.warn(path, f"not translated: a list was expected, not {kind(obj)}")
            return []
        return obj

    def strings(self, obj: Any, path: str) -> dict[str, str]:
        """A mapping of strings to strings (labels, annotations, template data)."""
        out: dict[str, str] = {}
        for k, v in self.fields(obj, path, obj if isinstance(obj, dict) else ()).items():
            if isinstance(k, str) and isinstance(v, str):
                out[k] = v
            else:
                self.warn(f"{path}.{k}", f"not translated: not a string ({kind(v)})")
        return out


def kind(obj: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(obj), "null" if obj is None
                                                   else type(obj).__name__)


def duration(value: Any, path: str, ctx: Ctx) -> str | None:
    text = str(value).strip()
    if _GO_ZERO.match(text):
        return "0"
    if _DURATION.match(text):
        return text
    ctx.warn(path, f"not translated: {text!r} is not a duration secretops reads (e.g. 1h, 15m, "
                   "30s)")
    return None


def string_of(obj: Any, field: str, path: str, ctx: Ctx) -> str | None:
    """A string field (None when absent); another type refuses the object."""
    value = obj.get(field)
    if value is None or isinstance(value, str):
        return value
    ctx.warn(f"{path}.{field}", f"not translated: not a string ({kind(value)})")
    return None


def choice(obj: Any, field: str, path: str, ctx: Ctx, kept: tuple[str, ...],
            same: tuple[str, ...] = ()) -> str | None:
    """An enum field: one of ``kept`` (copied), ``same`` (ESO's default: left out), or refused."""
    value = obj.get(field)
    if value is None or value in same:
        return None
    if value in kept:
        return str(value)
    ctx.warn(f"{path}.{field}", f"not translated: {value!r} has no counterpart in secretops")
    return None
