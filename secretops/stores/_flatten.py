"""Helpers shared by the flat formats (dotenv, INI): metadata flattening and Go value strings.

Flat formats cannot nest, so sops writes its metadata as flat keys (``stores/flatten.go``): a map
entry adds ``__map_<key>``, a list element ``__list_<index>``, so the first age recipient becomes
``age__list_0__map_recipient`` (dotenv prefixes every key with ``sops_``). Empty lists and
``null`` values disappear; newlines in values are written as the two characters ``\\n``;
``shamir_threshold`` and ``mac_only_encrypted`` are written as text and read back typed (an
``int`` and a ``bool``), as sops's ``EncodeNonStrings`` / ``DecodeNonStrings`` do.

:func:`val_to_string` is sops's ``ValToString``: how a non-string value (a YAML int converted to
dotenv, say) is written into a flat file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from secretops.core.tree import Branch, from_plain
from secretops.core.values import Timestamp
from secretops.errors import MetadataError
from secretops.limits import MAX_DEPTH

MAP_SEP = "__map_"
LIST_SEP = "__list_"
_TOKEN = re.compile(f"({MAP_SEP}|{LIST_SEP})")
_FRACTION = re.compile(r"\.[0-9]+(?=Z|[+-][0-9]{2}:[0-9]{2}$)")


def flatten_metadata(wire: Branch) -> list[tuple[str, str]]:
    """The wire metadata branch as ``(flat key, text)`` pairs, in wire order."""
    out: list[tuple[str, str]] = []
    for key, value in _pairs(wire):
        _flatten_into(out, key, value, top=key)
    return out


def _pairs(node: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        return sorted(node.items())  # Go maps (a kms context) come out sorted
    return (i for i in node if type(i) is tuple)


def _flatten_into(out: list[tuple[str, str]], prefix: str, value: Any, top: str) -> None:
    if isinstance(value, Branch | dict):
        for k, v in _pairs(value):
            _flatten_into(out, f"{prefix}{MAP_SEP}{k}", v, top)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten_into(out, f"{prefix}{LIST_SEP}{i}", v, top)
    elif value is not None:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float) and top == "shamir_threshold":
            text = f"{value:.0f}"
        else:
            text = val_to_string(value)
        out.append((prefix, text.replace("\n", "\\n")))


def unflatten_metadata(flat: Iterable[tuple[str, str]]) -> Branch:
    """Rebuild the metadata branch from flat ``(key, text)`` pairs (later duplicates win)."""
    values: dict[str, Any] = {}
    for key, text in flat:
        values[key] = text.replace("\\n", "\n")
    if "mac_only_encrypted" in values:
        values["mac_only_encrypted"] = values["mac_only_encrypted"] == "true"
    if "shamir_threshold" in values:
        values["shamir_threshold"] = _threshold(values["shamir_threshold"])
    root: dict[str, Any] = {}
    for key, value in values.items():
        tokens = _tokenize(key)
        node: Any = root
        for token, nxt in zip(tokens, [*tokens[1:], None], strict=True):
            node = _step(node, token, nxt, value, key)
    return Branch((k, from_plain(v)) for k, v in root.items())


def _threshold(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)  # older sops versions wrote it as a float
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise MetadataError(f"shamir_threshold is not an integer: {text!r}")
    return int(number)


def _tokenize(key: str) -> list[str | int]:
    parts = _TOKEN.split(key)
    tokens: list[str | int] = [parts[0]]
    for sep, text in zip(parts[1::2], parts[2::2], strict=True):
        if sep == MAP_SEP:
            tokens.append(text)
        else:
            tokens.append(int(text) if text.isdigit() else 0)  # Go's Atoi error gives 0
    return tokens


def _step(node: Any, token: str | int, nxt: str | int | None, value: Any, key: str) -> Any:
    try:
        if nxt is None:
            node[token] = value
            return None
        if isinstance(node, list):
            child = node[token]  # type: ignore[index]
            if child is None:
                child = {} if isinstance(nxt, str) else []
                node[token] = child  # type: ignore[index]
        else:
            child = node.setdefault(token, {} if isinstance(nxt, str) else [])
        if isinstance(nxt, int) and nxt > MAX_DEPTH:
            # a list index in a key must not allocate a huge list: metadata lists are short
            raise MetadataError(f"the flattened metadata key {key!r} has a list index over "
                                f"{MAX_DEPTH:,}")
        if isinstance(nxt, int) and isinstance(child, list) and nxt >= len(child):
            child.extend([None] * (nxt + 1 - len(child)))
        if isinstance(nxt, str) != isinstance(child, dict):
            raise TypeError
        return child
    except (TypeError, IndexError):
        raise MetadataError(f"the flattened metadata key {key!r} conflicts with another") from None


# ---- Go value formatting ----------------------------------------------------------------------


def go_float_g(value: float) -> str:
    """``strconv.FormatFloat(v, 'G', -1, 64)``."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return sign + "0"
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = int(exp) + len(digits)  # digits are 0.d1d2... x 10^point
    e = point - 1
    if e < -4 or e >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}E{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def val_to_string(value: Any) -> str:
    """sops's ``ValToString``: the text a non-string value gets in a flat file."""
    if isinstance(value, Timestamp):
        return _FRACTION.sub("", value)  # time.RFC3339 drops the fractional seconds
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = go_float_g(value)
        if "." not in text and "E" not in text:
            text = (text + ".0") if value == value and abs(value) != float("inf") else text
        return text
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "<nil>"
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"  # Go's %v of a []byte
    return str(value)
