"""Correctness checks: a benchmark of wrong output is worthless.

* an encrypted file must parse, carry a ``sops`` block with an age stanza and a MAC, keep the
  unselected values as they were, and hold an ``ENC[AES256_GCM,...,type:T]`` string (of the
  right type) wherever the input had a selected value;
* every decryption must equal the input after parsing both with ``yaml.safe_load`` semantics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bench.inputs import InputSpec

try:
    # the libyaml loader: the same results as safe_load, faster
    _Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

_ENC = re.compile(r"^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,"
                  r"tag:[A-Za-z0-9+/=]+,type:(str|int|float|bool|bytes|comment)\]$")
_SELECTED = {"data", "stringData"}


def load(path: Path) -> Any:
    """``yaml.safe_load`` of a file (with the libyaml loader when available)."""
    with path.open("rb") as f:
        return yaml.load(f, Loader=_Loader)


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "str"


def _first_diff(a: Any, b: Any, path: str = "") -> str | None:
    """The first path where ``a`` and ``b`` differ (``None`` when they are equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() | b.keys():
            if k not in a or k not in b:
                return f"{path}/{k}: only in {'input' if k in a else 'output'}"
            d = _first_diff(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if type(a) is not type(b) or a != b:
        return f"{path}: {a!r:.60} != {b!r:.60}"
    return None


def _check_leaves(plain: Any, enc: Any, path: str, selected: bool, out: list[str]) -> None:
    if len(out) >= 5:
        return
    if isinstance(plain, dict):
        if not isinstance(enc, dict) or plain.keys() != enc.keys():
            out.append(f"{path}: keys differ")
            return
        for k, v in plain.items():
            sel = selected or (path == "" and k in _SELECTED)
            _check_leaves(v, enc[k], f"{path}/{k}", sel, out)
    elif isinstance(plain, list):
        if not isinstance(enc, list) or len(plain) != len(enc):
            out.append(f"{path}: list differs")
            return
        for i, (p, e) in enumerate(zip(plain, enc, strict=True)):
            _check_leaves(p, e, f"{path}[{i}]", selected, out)
    elif selected:
        m = _ENC.match(enc) if isinstance(enc, str) else None
        if m is None:
            out.append(f"{path}: not encrypted: {enc!r:.60}")
        elif m.group(1) != _type_name(plain):
            out.append(f"{path}: type:{m.group(1)}, expected {_type_name(plain)}")
    elif plain != enc:
        out.append(f"{path}: unselected value changed")


def check_encrypted(spec: InputSpec, plain: Any, enc_path: Path) -> list[str]:
    """Problems with an encrypted file (empty when it is right)."""
    try:
        enc = load(enc_path)
    except yaml.YAMLError as e:
        return [f"does not parse: {e}"]
    if not isinstance(enc, dict) or not isinstance(enc.get("sops"), dict):
        return ["no sops metadata block"]
    meta = enc.pop("sops")
    problems = []
    if not meta.get("age") or not _ENC.match(str(meta.get("mac", ""))):
        problems.append("sops block lacks an age stanza or an encrypted MAC")
    _check_leaves(plain, enc, "", spec.kind == "helm", problems)
    return problems


def check_decrypted(plain: Any, dec_path: Path) -> list[str]:
    """Problems with a decrypted file: it must equal the input after parsing."""
    try:
        dec = load(dec_path)
    except yaml.YAMLError as e:
        return [f"does not parse: {e}"]
    diff = _first_diff(plain, dec)
    return [f"differs from the input at {diff}"] if diff else []
