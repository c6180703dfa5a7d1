"""A reference for what ESO renders: Go ``text/template`` semantics for the subset that
``secretops convert-eso`` translates, written from Go's and sprig's sources, independently of
``secretops/esogo.py``. No Go toolchain is available here, so this stands in for the original.

``render(template, values)`` → the bytes ESO would write, or :class:`GoError` where ESO's
template fails (``missingkey=error``). :class:`Unsupported` for what this reference does not
model (the converter must refuse those). Values are bytes; as in ESO they become Go strings
(arbitrary bytes), here ``str`` with surrogateescape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any


class GoError(Exception):
    """Go's template execution or parse fails."""


class Unsupported(Exception):
    """Outside the modelled subset."""


_GO_SPACE = " \t\r\n"  # trim markers (text/template/parse/lex.go: isSpace)
_STR = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`', re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a",
                   "b": "\b", "f": "\f", "v": "\v"}


def _unquote(tok: str) -> str:
    """strconv.Unquote for the escapes text/template accepts."""
    if tok.startswith("`"):
        return tok[1:-1].replace("\r", "")
    out, i, body = [], 0, tok[1:-1]
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == "u":
            cp = int(body[i + 2:i + 6], 16)
            if 0xD800 <= cp <= 0xDFFF:
                raise GoError("invalid escape")
            out.append(chr(cp))
            i += 6
        else:
            raise Unsupported(f"escape \\{e}")
    return "".join(out)


def _lex(template: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, trim = 0, False
    while True:
        start = template.find("{{", pos)
        text = template[pos:] if start < 0 else template[pos:start]
        if trim:
            text = text.lstrip(_GO_SPACE)
        if start < 0:
            out.append(("text", text))
            return out
        i = start + 2
        if template[i:i + 1] == "-" and template[i + 1:i + 2] in tuple(_GO_SPACE):
            text, i = text.rstrip(_GO_SPACE), i + 2
        out.append(("text", text))
        j, quote = i, ""
        if template.startswith("/*", i):
            close = template.find("*/", i)
            if close < 0:
                raise GoError("unclosed comment")
            j = close + 2
        while True:
            if j >= len(template):
                raise GoError("unclosed action")
            ch = template[j]
            if quote:
                if ch == "\\" and quote != "`":
                    j += 2
                    continue
                quote = "" if ch == quote else quote
            elif ch in "\"`'":
                quote = ch
            elif template.startswith("}}", j):
                break
            j += 1
        body = template[i:j]
        trim = len(body) >= 2 and body[-1] == "-" and body[-2] in _GO_SPACE
        out.append(("action", body[:-2] if trim else body))
        pos = j + 2


def _words(stage: str) -> list[str]:
    words, pos = [], 0
    while pos < len(stage):
        if stage[pos].isspace():
            pos += 1
            continue
        m = _STR.match(stage, pos) or re.compile(r"[^\s]+").match(stage, pos)
        assert m is not None
        words.append(m.group(0))
        pos = m.end()
    return words


def _stages(body: str) -> list[list[str]]:
    stages, cur, pos = [], "", 0
    while pos < len(body):
        m = _STR.match(body, pos)
        if m:
            cur += m.group(0)
            pos = m.end()
        elif body[pos] == "|":
            stages.append(cur)
            cur, pos = "", pos + 1
        else:
            cur += body[pos]
            pos += 1
    return [_words(s) for s in [*stages, cur]]


def _arg(word: str, values: Mapping[str, str]) -> str:
    if word[0] in "\"`":
        return _unquote(word)
    if re.fullmatch(r"\.[A-Za-z_][A-Za-z0-9_]*", word):
        if word[1:] not in values:
            raise GoError("map has no entry for key")  # missingkey=error
        return values[word[1:]]
    raise Unsupported(word)


def _printf(fmt: str, *args: str) -> str:
    out, rest = [], list(args)
    for part in re.split(r"(%.)", fmt):
        if part == "%%":
            out.append("%")
        elif part in ("%s", "%v"):
            out.append(rest.pop(0) if rest else f"%!{part[1]}(MISSING)")
        elif part.startswith("%") and len(part) == 2:
            raise Unsupported(part)
        else:
            out.append(part)
    out += [f"%!(EXTRA string={a})" for a in rest]
    return "".join(out)


def _b64enc(v: str) -> str:
    return base64.b64encode(v.encode("utf-8", "surrogateescape")).decode()


def _b64dec(v: str) -> str:  # sprig: StdEncoding.DecodeString, its error text on failure
    raw = v.encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(b"\n", b"")
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return "illegal base64 data"


FUNCS: dict[str, Callable[..., str]] = {
    "b64enc": _b64enc,
    "b64dec": _b64dec,
    "sha256sum": lambda v: hashlib.sha256(v.encode("utf-8", "surrogateescape")).hexdigest(),
    "toString": lambda v: v,
    "replace": lambda old, new, src: src.replace(old, new),
    "default": lambda d, given: given or d,
    "printf": _printf,
}


def _call(words: list[str], piped: str | None, values: Mapping[str, str]) -> str:
    head, rest = words[0], words[1:]
    if head == "index":
        if piped is not None or len(rest) != 2 or rest[0] != ".":
            raise Unsupported("index")
        return values.get(_unquote(rest[1]), "")  # index of a missing map key: zero value
    args = [_arg(w, values) for w in rest] + ([piped] if piped is not None else [])
    if head in FUNCS:
        func = FUNCS[head]
        if head != "printf" and func.__code__.co_argcount != len(args):
            raise GoError("wrong number of args")
        if head == "printf" and not args:
            raise GoError("wrong number of args")
        return func(*args)
    if piped is None and not rest:
        return _arg(head, values)
    raise Unsupported(head)


def render(template: str, values: Mapping[str, bytes]) -> bytes:
    strs = {k: v.decode("utf-8", "surrogateescape") for k, v in values.items()}
    out: list[str] = []
    for kind, body in _lex(template):
        if kind == "text":
            out.append(body)
            continue
        if body.strip().startswith("/*"):
            continue
        piped: Any = None
        for words in _stages(body):
            if not words:
                raise GoError("missing command")
            piped = _call(words, piped, strs)
        out.append(piped)
    return "".join(out).encode("utf-8", "surrogateescape")
