"""Scalar values and their byte form, exactly as sops (Go) writes and reads them.

A tree leaf is one of ``str``, ``int``, ``float``, ``bool``, ``bytes``, :class:`Timestamp` or
:class:`~secretops.core.tree.Comment`. sops turns a leaf into bytes with Go's formatting before
encrypting or hashing it (``ToBytes`` in sops.go), and parses it back with Go's ``strconv``
rules according to the ``type:`` tag. Both directions are reproduced here, including Go's quirks:
``True``/``False`` for booleans, floats in the shortest non-exponent form (``1e21`` is written
``1000000000000000000000``), and ``strconv.ParseBool``'s accepted spellings.
"""

from __future__ import annotations

import math
import re

from secretops.core.tree import Comment


class Timestamp(str):
    """A YAML timestamp, held as Go's ``time.Time.MarshalText`` form (RFC 3339, nanoseconds).

    sops encrypts it as ``type:time``; keeping the text avoids Python's microsecond limit.
    """

    __slots__ = ()


Scalar = str | int | float | bool | bytes | Timestamp | Comment | None


def type_name(value: object) -> str:
    """The sops ``type:`` tag for a leaf value."""
    if isinstance(value, Comment):
        return "comment"
    if isinstance(value, Timestamp):
        return "time"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, bytes):
        return "bytes"
    raise TypeError(f"cannot encrypt a value of type {type(value).__name__}")


def format_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest repr, never an exponent.

    This is the plaintext inside ``ENC[...,type:float]`` (and in the MAC). A decrypted file spells
    floats as its store does: go-yaml's 'g' form in YAML (``1.234568e+09``), encoding/json's in
    JSON (``1234568000``, ``1e+21``) — see :mod:`secretops.stores`.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        mantissa, _, exp_text = text.lower().partition("e")
        exp = int(exp_text)
        sign = ""
        if mantissa.startswith("-"):
            sign, mantissa = "-", mantissa[1:]
        int_part, _, frac_part = mantissa.partition(".")
        digits = (int_part + frac_part).lstrip("0") or "0"
        point = len(int_part) + exp  # position of the decimal point within int_part+frac_part
        lead_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
        point -= lead_zeros
        if point <= 0:
            text = "0." + "0" * (-point) + digits
        elif point >= len(digits):
            text = digits + "0" * (point - len(digits))
        else:
            text = digits[:point] + "." + digits[point:]
        text = sign + text
    if text.endswith(".0"):
        text = text[:-2]
    if text == "-0":
        return "-0"
    return text


def to_bytes(value: Scalar) -> bytes:
    """sops's ``ToBytes``: the bytes that are encrypted and fed to the MAC."""
    if isinstance(value, str):  # includes Comment
        return value.encode("utf-8", "surrogateescape")  # non-UTF-8 bytes of flat/binary files
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return format_float(value).encode()
    if isinstance(value, bytes):
        return value
    raise TypeError(f"cannot convert a value of type {type(value).__name__} to bytes")


_GO_INT = re.compile(r"[+-]?[0-9]+\Z")
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?[0-9]*(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)\Z",
    re.IGNORECASE,
)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z")
_GO_BOOL = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}  # fmt: skip


def from_bytes(data: bytes, type_: str) -> Scalar:
    """Parse decrypted bytes by their ``type:`` tag, with Go's ``strconv`` rules.

    Raises ``ValueError`` on a malformed value (the caller adds file and path).
    """
    if type_ == "str":
        return data.decode("utf-8", errors="surrogateescape")
    if type_ == "comment":
        return Comment(data.decode("utf-8", errors="surrogateescape"))
    text = data.decode("ascii")
    if type_ == "int":
        if not _GO_INT.match(text):
            raise ValueError("malformed int")
        v = int(text)
        if not -(2**63) <= v < 2**63:
            raise ValueError("int out of range")
        return v
    if type_ == "float":
        if not text or not _GO_FLOAT.match(text) or text in ("+", "-", ".", "+.", "-."):
            raise ValueError("malformed float")
        return float(text.replace("_", ""))
    if type_ == "bool":
        try:
            return _GO_BOOL[text]
        except KeyError:
            raise ValueError("malformed bool") from None
    if type_ == "bytes":
        return data
    if type_ == "time":
        if not _RFC3339.match(text):
            raise ValueError("malformed time")
        return Timestamp(text)
    raise ValueError(f"unknown data type {type_!r}")
