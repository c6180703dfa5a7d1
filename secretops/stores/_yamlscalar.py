"""YAML scalars as sops reads and writes them: go-yaml v3's resolution and rendering rules.

sops 3.11 reads YAML with go-yaml v3, a YAML 1.2 reader, and decodes every scalar into Go's
``interface{}``. Plain (unquoted) scalars are resolved by go-yaml's ``resolve``:

* ``null``: empty, ``~``, ``null``/``Null``/``NULL``
* ``bool``: ``true``/``True``/``TRUE``/``false``/``False``/``FALSE`` only (``yes``, ``on``,
  ``y`` are strings: YAML 1.2)
* ``int``: Go's ``ParseInt(s, 0, 64)`` after removing every ``_`` — so ``0x1F``, ``0o17``,
  ``0b101`` and also the YAML 1.1 octal ``0755`` (= 493) are ints; values above int64 that fit
  uint64 become ``uint64``, which sops cannot handle
* ``float``: YAML-style float syntax parsed by ``ParseFloat`` (overflow such as ``1e400`` stays a
  string), ``.inf``/``-.inf``/``.nan`` spellings, and a leading ``.`` (``.5``)
* timestamps (``2001-12-14``) decode into ``interface{}`` as **strings**
* anything else is a string. Quoted and block scalars are always strings.

Rendering follows go-yaml's choices: a string that would resolve to something else is double
quoted, a string plain YAML cannot hold is single quoted (double quoted when it has characters
single quotes cannot carry), multi-line strings become literal blocks.
"""

from __future__ import annotations

import math
import re
from typing import Any

from secretops.core.values import Timestamp, format_float

_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = {
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
}  # fmt: skip
_SPECIAL_FLOATS = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}  # fmt: skip
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")
_GO_PARSE_INT = re.compile(
    r"[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z"
)


class UnsupportedScalar(ValueError):
    """A scalar sops cannot represent (an integer beyond int64, for example)."""


def _go_parse_int(s: str) -> int | None:
    """Go ``strconv.ParseInt(s, 0, 64)`` syntax (range checked by the caller)."""
    if not _GO_PARSE_INT.match(s):
        return None
    sign = -1 if s[0] == "-" else 1
    body = s.lstrip("+-")
    low = body[:2].lower()
    if low == "0x":
        v = int(body[2:], 16)
    elif low == "0o":
        v = int(body[2:], 8)
    elif low == "0b":
        v = int(body[2:], 2)
    elif len(body) > 1 and body[0] == "0":
        v = int(body[1:], 8)
    else:
        v = int(body)
    return sign * v


def resolve_plain(text: str) -> Any:
    """The value go-yaml v3 decodes a plain scalar into (as sops sees it)."""
    if text in _NULLS:
        return None
    first = text[0]
    if first in "tTfF":
        b = _BOOLS.get(text)
        if b is not None:
            return b
        return text
    if first == ".":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        if _YAML_FLOAT.match(text):
            return float(text)
        return text
    if first in "+-0123456789":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        if first.isdigit() and _TIMESTAMP.match(text):
            ts = parse_timestamp(text)
            if ts is not None:
                return ts
        plain = text.replace("_", "")
        if plain:
            iv = _go_parse_int(plain)
            if iv is not None:
                if -(2**63) <= iv < 2**63:
                    return iv
                if 0 <= iv < 2**64 and plain[0] != "-":
                    raise UnsupportedScalar(
                        "an integer does not fit in 64 bits (sops cannot encrypt it)"
                    )
            if _YAML_FLOAT.match(plain):
                try:
                    f = float(plain)
                except ValueError:
                    return text
                if math.isinf(f):
                    return text  # Go's ParseFloat reports a range error: go-yaml keeps the string
                return f
    return text


_TS_T = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?"
    r"(Z|[+-]\d{2}:\d{2})\Z"
)
_TS_SPACE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?\Z")
_TS_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})\Z")


def parse_timestamp(text: str) -> Timestamp | None:
    """go-yaml's timestamp forms, as Go's ``MarshalText`` prints them; None if not one.

    Accepted (Go layouts): ``2006-1-2T15:4:5.999999999Z07:00`` (also with ``t``),
    ``2006-1-2 15:4:5.999999999`` (UTC) and ``2006-1-2`` (UTC midnight).
    """
    import calendar

    m = _TS_T.match(text) or _TS_SPACE.match(text)
    if m:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        frac = m.group(7) or ""
        zone = m.group(8) if m.re is _TS_T else "Z"
    else:
        m = _TS_DATE.match(text)
        if not m:
            return None
        y, mo, d = (int(g) for g in m.groups())
        h = mi = sec = 0
        frac, zone = "", "Z"
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1]):
        return None
    if h > 23 or mi > 59 or sec > 59 or len(frac) > 9:
        return None
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    frac = frac.rstrip("0")
    return Timestamp(
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{'.' + frac if frac else ''}{zone}"
    )


def format_yaml_float(value: float) -> str:
    """go-yaml's float rendering: Go ``FormatFloat(v, 'g', -1, 64)`` with YAML specials.

    Shortest digits; exponent form when the decimal exponent is below -4 or at least 6 (Go's
    'g' uses precision 6 for that choice when the precision is -1): ``1e+06``, ``1.234568e+09``,
    ``1e-05``, but ``123456.5`` and ``0.0001``.
    """
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    r = repr(abs(value))
    mant, _, e = r.partition("e")
    exp = int(e) if e else 0
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    dp = len(ip) + exp - (len(ip + fp) - len((ip + fp).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    x = dp - 1
    sign = "-" if value < 0 else ""
    if x < -4 or x >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if x < 0 else '+'}{abs(x):02d}"
    return sign + format_float(abs(value))


def render_number(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_yaml_float(value)
    raise TypeError(type(value).__name__)


# go-yaml quotes these for the sake of YAML 1.1 readers, though it reads them as strings.
_OLD_BOOLS = frozenset(
    ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
     "n", "N", "no", "No", "NO", "off", "Off", "OFF")
)  # fmt: skip
# words spelled with letters that a plain scalar cannot keep as a string: YAML 1.2 nulls and
# bools, and the YAML 1.1 bools go-yaml quotes
_NOT_PLAIN_WORDS = _NULLS | _BOOLS.keys() | _OLD_BOOLS
# what an alphanumeric word led by a digit may resolve to: an int (also hex, octal, binary) or
# a float with an exponent — a superset; such words are left to the full rules
_MAYBE_NUMBER = re.compile(r"[0-9]+(?:[eE][0-9]+)?|0[xXoObB][0-9A-Fa-f]+")
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?\Z")
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_FLOW_FORBIDDEN = set(",[]{}")


_FIRST_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")
_FLOW_INDICATORS = frozenset(",?[]{}:")


def plain_allowed(s: str, flow: bool) -> bool:
    """Can ``s`` be written as a plain scalar (ignoring what it would resolve to)?

    libyaml's ``yaml_emitter_analyze_scalar`` indicator rules, as PyYAML and go-yaml apply them,
    without a per-character Python loop (this runs once per decrypted value).
    """
    if not s or s[0] in " \t" or s[-1] in " \t":
        return False
    if not s.isprintable() or "\ufeff" in s:
        return False  # a tab too: go-yaml double-quotes it, and not every reader takes it plain
    if s.startswith(("---", "...")):
        return False
    first = s[0]
    if first in _FIRST_INDICATORS:
        return False
    second = s[1] if len(s) > 1 else " "
    if first in "?:-" and second in " \t":
        return False  # an indicator followed by space, in any context
    if " #" in s or "\t#" in s:
        return False
    rest = s[1:]
    if flow:
        return first not in "?:" and _FLOW_INDICATORS.isdisjoint(rest)
    return ": " not in rest and ":\t" not in rest and not rest.endswith(":")


def plain_string(s: str) -> bool:
    """Does the plain scalar ``s`` certainly read as the string ``s``? (A cheap test for the
    common alphanumeric word: a False means "resolve it", not "not a string".)"""
    if not s.isalnum():
        return False
    if s[0].isdigit():
        return _MAYBE_NUMBER.fullmatch(s) is None
    return s not in _NULLS and s not in _BOOLS


def plain_word(s: str) -> bool:
    """Is ``s`` an alphanumeric word that is written plain, as it is?

    The common value, decided without resolving it: :func:`render_str_inline` returns such a
    word unchanged. Words that may be numbers or bools are left to it.
    """
    if not s.isalnum():
        return False
    if s[0].isdigit():
        return _MAYBE_NUMBER.fullmatch(s) is None
    return s not in _NOT_PLAIN_WORDS


def _printable(s: str) -> bool:
    return s.isprintable() and "\ufeff" not in s


_ESCAPES = {
    "\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v",
    "\f": "\\f", "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N",
    "\xa0": "\\_", "\u2028": "\\L", "\u2029": "\\P",
}  # fmt: skip


def double_quoted(s: str) -> str:
    out = []
    for c in s:
        esc = _ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif c.isprintable() and c != "\ufeff":
            out.append(c)
        elif ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02X}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(f"\\U{ord(c):08X}")
    return '"' + "".join(out) + '"'


def single_quoted(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def render_str_inline(
    s: str, flow: bool, prefer: str | None = None, yaml11_safe: bool = True
) -> str:
    """A string as a single-line scalar: plain when safe, else quoted like go-yaml.

    ``prefer`` is the quoting style the value had (``'`` or ``"``), kept when it can hold ``s``.
    ``yaml11_safe`` quotes ``yes``/``on``/``1:20`` as go-yaml does; off when the value was
    written plain in the original file, which is kept as it was.
    """
    if prefer == '"':
        return double_quoted(s)
    if prefer == "'":
        if _printable(s) and "\n" not in s:
            return single_quoted(s)
        return double_quoted(s)
    try:
        resolved = resolve_plain(s) if s else None
    except UnsupportedScalar:
        resolved = 0
    if type(resolved) is not str or resolved != s or (
        yaml11_safe and (s in _OLD_BOOLS or _BASE60.match(s))
    ):
        return double_quoted(s)
    if plain_allowed(s, flow):
        return s
    if _printable(s) and "\n" not in s:
        return single_quoted(s)
    return double_quoted(s)


def literal_block(s: str, indent: str, folded: bool = False) -> str | None:
    """A ``|`` (or ``>``) block header and body for ``s`` at ``indent``, or None if impossible.

    The chomping indicator is derived from the value, so it round-trips exactly: no trailing
    newline → ``-``, one → clip, more → ``+``.
    """
    if not s or not _printable(s.replace("\n", "")) or "\r" in s:
        return None
    body = s
    if body.endswith("\n"):
        stripped = body.rstrip("\n")
        chomp = "" if len(body) - len(stripped) == 1 else "+"
        body = stripped if chomp == "" else body[:-1]
    else:
        chomp = "-"
    lines = body.split("\n")
    if folded:
        if any(line.startswith((" ", "\t")) or not line for line in lines) or chomp == "+":
            return None
        text_lines = []
        for i, line in enumerate(lines):
            if i:
                text_lines.append("")
            text_lines.append(line)
        lines = text_lines
    if not body.strip(" ") and chomp != "+":
        return None
    if lines and lines[0].startswith((" ", "\t")):
        return None  # would need an indentation indicator; quoted form is exact instead
    head = (">" if folded else "|") + chomp
    out = [head]
    for line in lines:
        out.append(indent + line if line else "")
    return "\n".join(out)
