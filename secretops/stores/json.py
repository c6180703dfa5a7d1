"""The JSON store: a JSON object ↔ one document tree, written exactly as sops 3.11 writes it.

Reading follows sops's token-by-token decoder (``stores/json/store.go``):

* the top level must be an object; objects become :class:`Branch` in file order, arrays
  :class:`Seq`; **duplicate keys are kept** (sops keeps every occurrence and writes them all back);
* every number becomes a ``float`` (Go decodes JSON numbers as float64), so ``1`` is encrypted as
  ``type:float`` and a big integer is rounded to the nearest double; a number out of float64 range
  is an error, as in Go;
* strings with invalid UTF-8 or lone surrogate escapes get U+FFFD for each bad unit, as Go does;
* the top-level ``sops`` entry is removed and returned as the metadata branch. Text after the
  top-level object is ignored in a plaintext file (sops does) but rejected in an encrypted one
  (sops reads the metadata with ``json.Unmarshal``, which is strict).

Writing reproduces ``json.Marshal`` + ``json.Indent``: a tab per level by default
(``indent=N`` gives N spaces, ``0`` gives newlines without indentation), ``"key": value``,
``{}``/``[]`` for empty containers, Go's HTML-safe escaping (``<``, ``>``, ``&``, U+2028 and
U+2029 become ``\\u003c``…), non-ASCII written as UTF-8, floats in Go's form (``1``, ``0.5``,
``1e+21``, ``1e-7``), and one trailing newline. Comments are dropped. With metadata, ``"sops"`` is
written last with the wire branch's field order.
"""

from __future__ import annotations

import base64
import json
import math
import re
from decimal import Decimal
from typing import Any

from secretops.core.tree import Branch, Comment, Seq
from secretops.core.values import format_float
from secretops.errors import DumpError, ExitCode, FormatError
from secretops.jsonload import json_values, raw_decode
from secretops.limits import check_indent, check_input_size
from secretops.stores import Loaded, StoreOptions
from secretops.stores._output import check_indentation, check_writable

_WS = " \t\r\n"
_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML = re.compile("[<>&\u2028\u2029]")
_HTML_ESC = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
             "\u2029": "\\u2029"}  # fmt: skip
_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)


class JsonStore:
    """``.json`` files (and the envelope of encrypted binary files)."""

    name = "json"

    def __init__(self, options: StoreOptions) -> None:
        self.options = options

    def load(self, data: bytes) -> Loaded:
        check_input_size(data)
        doc = parse_object(data)
        metadata = None
        if any(type(i) is tuple and i[0] == "sops" for i in doc):
            values = [i[1] for i in doc if type(i) is tuple and i[0] == "sops"]
            metadata = values[-1]  # json.Unmarshal keeps the last duplicate
            if not isinstance(metadata, Branch):
                raise FormatError("the top-level sops entry is not a JSON object")
            doc = doc.without("sops")
            _check_no_trailing_data(data)
        return Loaded(docs=[doc], metadata=metadata)

    def emit(self, docs: list[Branch], metadata: Branch | None, layout: Any = None) -> bytes:
        if not docs:
            raise FormatError("there is no document to write")
        text = dump_json(docs[0], self.options.indent, metadata)
        return check_writable(text.encode("utf-8", "surrogateescape") + b"\n", metadata,
                              lambda: json_values(text))

    def emit_value(self, value: Any) -> bytes:
        """sops's ``encodeValue`` then ``json.Indent``: no newline after it; a comment is
        sops's ``Comment`` struct."""
        if isinstance(value, Comment):
            value = Branch([("Value", str(value))])
        out: list[str] = []
        _write(value, out, "\n", _unit(self.options.indent), False)
        return "".join(out).encode("utf-8", "surrogateescape")


# ---- reading ----------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise FormatError("invalid character looking for beginning of value")


def _number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise FormatError("a number is out of the float64 range")
    return value


def _seq(items: list[Any]) -> Seq:
    """A JSON array (and the arrays in it, without recursion) as a :class:`Seq`."""
    top = Seq(items)
    todo = [top]
    while todo:
        seq = todo.pop()
        for i, v in enumerate(seq):
            if type(v) is list:
                seq[i] = child = Seq(v)
                todo.append(child)
    return top


def _pairs(pairs: list[tuple[str, Any]]) -> Branch:
    return Branch((k, _seq(v)) if type(v) is list else (k, v) for k, v in pairs)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_float=_number,
    parse_int=_number,
    parse_constant=_reject_constant,
)


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def parse_object(data: bytes) -> Branch:
    """Parse a JSON document whose top level must be an object; text after it is ignored."""
    text = _decode_text(data)
    start = len(text) - len(text.lstrip(_WS))
    if start == len(text):
        raise FormatError("the JSON input is empty")
    if text[start] != "{":
        raise FormatError("the top level of a JSON file must be an object")
    try:
        doc, _ = raw_decode(_DECODER, text, start)
    except json.JSONDecodeError as e:
        raise FormatError(f"invalid JSON at {_line_col(text, e.pos)}: {e.msg}") from None
    if _SURROGATE.search(text) or "\\u" in text:
        doc = _fix_surrogates(doc)
    return doc  # type: ignore[no-any-return]


def _check_no_trailing_data(data: bytes) -> None:
    text = _decode_text(data)
    start = len(text) - len(text.lstrip(_WS))
    _, end = raw_decode(json.JSONDecoder(), text, start)
    if text[end:].strip(_WS):
        raise FormatError(f"invalid JSON at {_line_col(text, end)}: extra data after the object")


def _fix(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


def _fix_surrogates(node: Any) -> Any:
    """Go turns invalid UTF-8 and lone surrogate escapes into U+FFFD; Python keeps them.
    (In place, without recursion.)"""
    todo = [node]
    while todo:
        coll = todo.pop()
        is_branch = type(coll) is Branch
        for i, item in enumerate(coll):
            value = item[1] if is_branch else item
            if isinstance(value, Branch | Seq):
                todo.append(value)
            elif isinstance(value, str):
                value = _fix(value)
            coll[i] = (_fix(item[0]), value) if is_branch else value
    return node


# ---- writing ----------------------------------------------------------------------------------


def go_json_string(s: str) -> str:
    """``json.Marshal`` of a Go string: HTML-safe escaping, UTF-8 kept as is."""
    out: str = _encode_basestring(s)
    if _HTML.search(out):
        out = _HTML.sub(lambda m: _HTML_ESC[m.group()], out)
    if _SURROGATE.search(out):  # bytes that were not UTF-8 (kept as surrogate escapes)
        out = _SURROGATE.sub(r"\\ufffd", out)
    return out


def go_json_float(value: float) -> str:
    """Go's JSON float form: 'f' format, or 'e' below 1e-6 and from 1e21 on."""
    if math.isnan(value) or math.isinf(value):
        # sops fails the same way, with its "error dumping tree" exit code
        raise FormatError(f"json: unsupported value: {format_float(value)}",
                          code=ExitCode.ERROR_DUMPING_TREE)
    a = abs(value)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        _, digits, exp = Decimal(repr(a)).normalize().as_tuple()
        d = "".join(map(str, digits))
        e = int(exp) + len(d) - 1
        mantissa = d[0] + ("." + d[1:] if len(d) > 1 else "")
        exp_text = f"{'-' if e < 0 else '+'}{abs(e):02d}"
        if e < 0 and abs(e) < 10:
            exp_text = f"-{abs(e)}"  # Go cleans e-07 up to e-7
        return ("-" if value < 0 else "") + mantissa + "e" + exp_text
    return format_float(value)


def _scalar(value: Any) -> str:
    if isinstance(value, str):  # a Timestamp holds Go's MarshalJSON text already
        return go_json_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value)
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    raise FormatError(f"cannot write a value of type {type(value).__name__} as JSON")


def dump_json(doc: Branch, indent: int | None, metadata: Branch | None = None) -> str:
    """``json.Indent`` of sops's encoding of ``doc`` (no trailing newline).

    ``metadata`` is appended as the ``sops`` entry. sops writes it with ``json.Marshal`` of its
    wire structs, where an empty list is a nil slice, written ``null`` (the always-present
    ``hc_vault`` / ``age`` of a key group); in the data an empty array stays ``[]``.
    """
    unit = _unit(indent)
    width = len(unit)  # each item on a line of its own, indented by its depth
    check_indentation(doc, lambda column: column + width, lambda column: column + width)
    out: list[str] = []
    if metadata is not None:
        doc = Branch([*doc, (_METADATA, metadata)])
    _write(doc, out, "\n", unit, False)
    return "".join(out)


def _unit(indent: int | None) -> str:
    if indent is None or indent == -1:
        return "\t"
    if indent < -1:  # sops's refusal, at the same point: writing (exit 4)
        raise DumpError("a JSON indentation smaller than -1 is not accepted",
                        hints=("-1 is a tab, 0 newlines without indentation",))
    check_indent(indent)
    return " " * indent


def go_marshal(value: Any) -> str:
    """Go's ``json.Marshal`` of a sops tree value, compact: a map is sops's ``TreeBranch``, a
    list of ``{"Key":…,"Value":…}`` items, and a comment its ``Comment`` struct (what sops's
    INI store prints for ``--extract``)."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, _Text):
            out.append(node)
        elif isinstance(node, Comment):
            out.append('{"Value":' + go_json_string(str(node)) + "}")
        elif isinstance(node, Branch | Seq):
            parts: list[Any] = [_Text("[")]
            for n, item in enumerate(node):
                if n:
                    parts.append(_Text(","))
                if isinstance(node, Branch):
                    if type(item) is tuple:
                        parts += [_Text('{"Key":' + _scalar(item[0]) + ',"Value":'), item[1],
                                  _Text("}")]
                    else:  # a comment line of a map: an item whose key is the comment
                        parts += [_Text('{"Key":'), item, _Text(',"Value":null}')]
                else:
                    parts.append(item)
            parts.append(_Text("]"))
            todo += reversed(parts)
        else:
            out.append(_scalar(node))
    return "".join(out)


class _Text(str):
    """Literal JSON text in :func:`go_marshal`'s work list (told apart from string values)."""

    __slots__ = ()


class _MetadataKey(str):
    """The ``sops`` key of the metadata entry (told apart from a data key named ``sops``)."""

    __slots__ = ()


_METADATA = _MetadataKey("sops")


def _write(node: Any, out: list[str], nl: str, unit: str, meta: bool) -> None:
    """Append ``node`` as indented JSON. Without recursion (a value may nest as deep as the
    limits allow); the indentation is ``nl`` and ``unit`` times the level, made per line."""
    # each open collection: (iterator over (key or None, value), level, closing bracket, meta)
    todo: list[tuple[Any, int, str, bool]] = []
    level = 0
    pending: list[Any] = [(None, node)]
    it: Any = iter(pending)
    close = ""
    first = True
    while True:
        entry: Any = next(it, _DONE)
        if entry is _DONE:
            if not todo:
                return
            out.append(nl + unit * (level - 1) + close)
            it, level, close, meta = todo.pop()
            first = False
            continue
        key, value = entry
        if todo or level:
            out.append(("" if first else ",") + nl + unit * level)
        first = False
        if key is not None:
            out.append(go_json_string(str(key)))
            out.append(": ")
        inner_meta = meta or type(key) is _MetadataKey
        if isinstance(value, Branch | dict):
            if isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value)]  # Go sorts map keys
            else:
                items = [i for i in value if type(i) is tuple]
            if not items:
                out.append("{}")
                continue
            out.append("{")
            todo.append((it, level, close, meta))
            it, level, close, meta, first = iter(items), level + 1, "}", inner_meta, True
        elif isinstance(value, list):  # Seq, or a plain list in metadata
            values = [(None, v) for v in value if not isinstance(v, Comment)]
            if not values:
                out.append("null" if inner_meta else "[]")
                continue
            out.append("[")
            todo.append((it, level, close, meta))
            it, level, close, meta, first = iter(values), level + 1, "]", inner_meta, True
        else:
            out.append(_scalar(value))


_DONE: Any = object()
