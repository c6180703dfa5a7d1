"""Protobuf request bodies (``application/vnd.kubernetes.protobuf``) decoded into JSON objects.

client-go's typed clients, and so ``kubectl create secret|configmap|namespace|serviceaccount|
deployment|service|role|...``, ``kubectl create token`` and ``kubectl auth whoami``, send built-in
objects as protobuf: the magic ``k8s\\x00``, then a ``runtime.Unknown`` (1 typeMeta {1 apiVersion,
2 kind}, 2 raw, 3 contentEncoding, 4 contentType) whose ``raw`` is the object's message. This
module reads the wire format by hand (varints, length-delimited fields, maps as repeated
key/value entries) and turns a message into the JSON object the apiserver would have decoded
from JSON, after the field numbers of kube's ``generated.proto`` (:mod:`.prototypes`):

* gogo-protobuf writes every non-pointer field, zero or not; a zero of an ``omitempty`` field is
  dropped, as Go's JSON encoder drops it; a non-pointer struct is always there (``"spec": {}``),
  ``metav1.Time`` zero is ``null``; a pointer field is there when it was sent;
* ``bytes`` are base64 (Secret ``data``), ``Time`` is RFC 3339, ``MicroTime`` RFC 3339 with six
  fractional digits, ``IntOrString`` an int or a string, ``Quantity`` its string.

A field the tables do not know is skipped when its value is a zero (it could not have changed the
JSON object); any other unknown field is a 415 naming it, so nothing is silently lost. Custom
resources have no protobuf form: the apiserver's protobuf serializer cannot decode into an
Unstructured, which it reports as 400 (see :func:`custom_resource_error`).
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from typing import Any

from . import errors
from .errors import ApiError
from .prototypes import KINDS, MESSAGES, Field

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
GAP = "the emulator does not decode"  # in the 415 for what the tables lack
_ZERO_JSON = {"string": "", "bytes": "", "int32": 0, "int64": 0, "bool": False,
              "time": None, "microtime": None, "intorstring": 0, "quantity": "0"}


class Malformed(ValueError):
    """Bytes that are not a valid protobuf message."""


class Unsupported(ValueError):
    """A field this emulator does not decode."""


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise Malformed("unexpected EOF")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): an int for varints and fixed, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise Malformed("illegal tag 0")
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 2:
            size, pos = varint(buf, pos)
            if pos + size > len(buf):
                raise Malformed("unexpected EOF")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise Malformed("unexpected EOF")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        else:
            raise Malformed(f"illegal wireType {wire} for field {num}")
        yield num, wire, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _timestamp(buf: bytes, micro: bool) -> str | None:
    seconds = nanos = 0
    for num, _, value in fields(buf):
        if num == 1:
            seconds = _signed(value)
        elif num == 2:
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None  # the zero Time marshals as null
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(buf: bytes) -> int | str:
    kind, ival, sval = 0, 0, ""
    for num, _, value in fields(buf):
        if num == 1:
            kind = _signed(value)
        elif num == 2:
            ival = _signed(value)
        elif num == 3:
            sval = value.decode()
    return sval if kind == 1 else ival


def _scalar(typ: str, wire: int, value: Any) -> Any:
    if (wire != 0) if typ in ("int32", "int64", "bool") else (wire != 2):
        raise Malformed(f"wrong wireType {wire} for a {typ}")
    if typ == "string":
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise Malformed("invalid UTF-8 in a string") from None
    if typ == "bytes":
        return base64.b64encode(value).decode()
    if typ == "bool":
        return value != 0
    if typ in ("int32", "int64"):
        return _signed(value)
    if typ in ("time", "microtime"):
        return _timestamp(value, typ == "microtime")
    if typ == "intorstring":
        return _int_or_string(value)
    if typ == "strings":  # ExtraValue and the like: a []string as a message
        return [v.decode() for n, _, v in fields(value) if n == 1]
    if typ == "fieldsv1":
        raw = next((v for n, _, v in fields(value) if n == 1), b"{}")
        try:
            return json.loads(raw)
        except ValueError:
            raise Malformed("fieldsV1 is not JSON") from None
    if typ == "quantity":
        return next((v.decode() for n, _, v in fields(value) if n == 1), "0")
    raise Malformed(f"no decoder for {typ}")


def _value(typ: str, wire: int, value: Any) -> Any:
    if typ in MESSAGES:
        if wire != 2:
            raise Malformed(f"wrong wireType {wire} for a message")
        return message(typ, value)
    return _scalar(typ, wire, value)


def _zero(v: Any) -> bool:
    return v in ("", 0, False, None) and not isinstance(v, dict)


def message(name: str, buf: bytes) -> dict[str, Any]:
    """A message as the JSON object Go's encoder writes for the struct it decodes to."""
    table = MESSAGES[name]
    out: dict[str, Any] = {}
    for num, wire, value in fields(buf):
        f = table.get(num)
        if f is None:
            if (wire == 0 and value == 0) or (wire == 2 and not value):
                continue
            raise Unsupported(f"field {num} of {name}")
        _put(out, f, wire, value)
    for f in table.values():
        _settle(out, f)
    return out


def _put(out: dict[str, Any], f: Field, wire: int, value: Any) -> None:
    if f.map:
        key = val = None
        for n, w, v in fields(value):
            if n == 1:
                key = _scalar(f.map, w, v)
            elif n == 2:
                val = _value(f.typ, w, v)
        out.setdefault(f.json, {})[key if key is not None else ""] = (
            val if val is not None else _ZERO_JSON.get(f.typ, {}))
    elif f.repeated:
        if wire == 2 and f.typ in ("int32", "int64", "bool"):  # packed
            pos, items = 0, out.setdefault(f.json, [])
            while pos < len(value):
                v, pos = varint(value, pos)
                items.append(_scalar(f.typ, 0, v))
        else:
            out.setdefault(f.json, []).append(_value(f.typ, wire, value))
    elif f.inline:
        out.update(_value(f.typ, wire, value))
    else:
        out[f.json] = _value(f.typ, wire, value)


def _settle(out: dict[str, Any], f: Field) -> None:
    """Go's JSON of the field: omitempty zeros dropped, structs and kept zeros filled in."""
    if f.inline:
        return
    # a non-pointer struct is always written (Time and IntOrString by their own marshalers)
    always = (f.typ in MESSAGES or f.typ in ("time", "microtime", "intorstring", "quantity")) \
        and not (f.repeated or f.map or f.pointer or f.omitzero)
    if f.json in out:
        v = out[f.json]
        if not (f.pointer or f.keep or always) and (_zero(v) or v == [] or v == {}):
            del out[f.json]
        return
    if f.pointer:
        if f.keep:
            out[f.json] = None  # a nil pointer without omitempty
        return
    if f.repeated or f.map:
        if f.keep:
            out[f.json] = None  # a nil slice or map without omitempty
    elif always:
        out[f.json] = message(f.typ, b"") if f.typ in MESSAGES else _ZERO_JSON[f.typ]
    elif f.keep:
        out[f.json] = _ZERO_JSON[f.typ]


def decode(body: bytes, api_version: str, kind: str) -> dict[str, Any]:
    """The request body as a JSON object; 400 if it is not protobuf, 415 for a field or kind
    the emulator does not decode."""
    if len(body) == 0:
        raise errors.bad_request("empty data")
    if not body.startswith(MAGIC):
        raise errors.bad_request(
            "provided data does not appear to be a protobuf message, expected prefix "
            "[107 56 115 0]")
    if len(body) == len(MAGIC):
        raise errors.bad_request("empty body")
    try:
        type_meta: dict[str, str] = {}
        raw = b""
        for num, wire, value in fields(body[len(MAGIC):]):
            if num == 1 and wire == 2:
                for n, _, v in fields(value):
                    type_meta["apiVersion" if n == 1 else "kind"] = v.decode()
            elif num == 2 and wire == 2:
                raw = value
        sent_version = type_meta.get("apiVersion") or api_version
        sent_kind = type_meta.get("kind") or kind
        name = KINDS.get((sent_version, sent_kind))
        if name is None:
            raise Unsupported(f"the kind {sent_version} {sent_kind}")
        obj = message(name, raw)
    except Malformed as e:
        raise errors.bad_request(str(e)) from None
    except Unsupported as e:
        raise _unsupported(str(e)) from None
    return {"kind": sent_kind, "apiVersion": sent_version, **obj}


def _unsupported(what: str) -> ApiError:
    return errors.unsupported_media_type(
        f"{CONTENT_TYPE}; {GAP} {what}",
        ["application/json", "application/yaml"])


def custom_resource_error(body: bytes, api_version: str, kind: str) -> ApiError:
    """What a custom resource's handler answers a protobuf body: its protobuf serializer cannot
    decode into an Unstructured (errNotMarshalable), and transformDecodeError makes it a 400."""
    sent_kind, sent_version = kind, api_version.rpartition("/")[2]
    try:
        for num, wire, value in fields(body[len(MAGIC):]):
            if num == 1 and wire == 2:
                for n, _, v in fields(value):
                    if n == 1 and v:
                        sent_version = v.decode().rpartition("/")[2]
                    elif n == 2 and v:
                        sent_kind = v.decode()
    except (Malformed, UnicodeDecodeError) as e:
        return errors.bad_request(str(e))
    return errors.bad_request(
        f'{sent_kind} in version "{sent_version}" cannot be handled as a {kind}: object '
        "*unstructured.Unstructured does not implement the protobuf marshalling interface and "
        "cannot be encoded to a protobuf message")
