"""ESO's Go templates (engine v2: ``text/template`` + sprig) → the sandbox's jinja2 dialect.

Pure, no I/O. The rule is a converter's: a template is translated only when the translation
renders the same bytes as ESO would for every input, or fails where ESO fails; anything else
raises :class:`Untranslatable` naming the construct. What that takes:

* **Go pipelines.** In ``{{ A | f x }}`` the whole pipeline left of ``|`` is the *last*
  argument of ``f``: ``f(x, A)``. Each stage is emitted as ``(input) | filter(args)``, always
  parenthesised, so jinja's tighter filter binding (``a ~ b | f`` is ``a ~ (b | f)``) cannot
  regroup it: ``printf "%s:%s" .u .p | b64enc`` becomes ``((u ~ ":" ~ p)) | b64enc``.
* **Missing values.** ESO renders with ``missingkey=error``: ``.name`` of a missing value fails,
  ``index . "name"`` gives ``""``. Values are forced with ``| string`` wherever jinja would
  otherwise carry an undefined value through unused (filter arguments), and ``index`` falls
  back to ``""``.
* **Text.** Go's ``{{-``/``-}}`` trim only space, tab, CR and LF; jinja's trim more. So the
  trimming is done here, on the literal text, and no trim marker is emitted. jinja turns CR
  into LF in template text; CRs are emitted as string literals. ``{%``, ``{#`` and a ``{``
  right before an action are escaped. Go comments produce nothing.
* **Functions** with an exact counterpart only: ``b64enc``, ``sha256sum``, ``toString``,
  ``replace``, ``default``, ``printf`` with ``%s``/``%v``/``%%`` over strings, ``index .
  "key"``. Refused because the sandbox's filter of the same name differs on some inputs:
  ``b64dec`` (sprig renders its error text on bad base64, Python decodes leniently: use the
  ref's ``decodingStrategy: Base64`` instead), ``quote`` (Go's ``%q`` escapes control
  characters), ``upper``/``lower``/``title``/``trim`` (Unicode case mapping, whitespace sets).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_SPACE = " \t\r\n"  # what Go's trim markers remove
_TOKEN = re.compile(r'\s+|"(?:[^"\\\n]|\\.)*"|`[^`]*`|\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_]'
                    r'[A-Za-z0-9_]*)*|\.|\||\(|\)|\$[A-Za-z0-9_]*|:?=|-?[0-9][0-9.]*'
                    r"|[A-Za-z_][A-Za-z0-9_]*|'(?:[^'\\]|\\.)+'|.", re.S)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue", "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "nil",
             "true", "false", "call", "slice", "print", "println", "html", "js", "urlquery"}
_INEXACT = {
    "b64dec": "sprig's b64dec renders its error text for input that is not strict base64, "
              "the sandbox's decodes leniently; decode with the ref's decodingStrategy: Base64",
    "quote": "Go's %q escapes control and non-printable characters, the sandbox's quote does not",
    "upper": "Go's strings.ToUpper and Python's upper map some Unicode text differently",
    "lower": "Go's strings.ToLower and Python's lower map some Unicode text differently",
    "title": "sprig's title keeps the rest of each word, jinja's lower-cases it",
    "trim": "Go's TrimSpace and Python's strip remove different whitespace",
}


class Untranslatable(ValueError):
    """A construct without an exact counterpart; the message names it."""


def _atom(expr: str) -> bool:
    return bool(re.fullmatch(r'values\["[^"\\]*"\]|"(?:[^"\\]|\\.)*"|\(.*\)', expr, re.S)) \
        and _balanced(expr)


def _balanced(expr: str) -> bool:
    if not expr.startswith("("):
        return True
    depth = 0
    for i, ch in enumerate(expr):  # the outer parentheses close only at the end
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and i < len(expr) - 1:
            return False
    return True


def _group(expr: str) -> str:
    return expr if _atom(expr) else f"({expr})"


def _forced(expr: str) -> str:
    """The expression as a string now: an undefined value fails here, as in Go."""
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', expr, re.S):
        return expr  # a literal is a string already
    return f"({_group(expr)} | string)"


def _go_string(tok: str) -> str:
    """A Go string literal's value."""
    if tok.startswith("`"):
        return tok[1:-1].replace("\r", "")  # Go drops CRs from raw strings
    if "\\/" in tok or re.search(r"\\u[dD][89a-fA-F]", tok):
        raise Untranslatable(f"the string {tok} (an escape Go does not read this way)")
    try:
        value = json.loads(tok)
    except ValueError:
        raise Untranslatable(f"the string {tok} uses escapes jinja2 lacks") from None
    assert isinstance(value, str)
    return value


def _literal(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _operand(tok: str) -> str:
    if tok.startswith(("\"", "`")):
        return _literal(_go_string(tok))
    if re.fullmatch(r"\.[A-Za-z_][A-Za-z0-9_]*", tok):
        return f'values["{tok[1:]}"]'
    if tok.startswith(".") and tok != ".":
        raise Untranslatable(f"nested field {tok} (values are flat strings)")
    if tok.startswith("$"):
        raise Untranslatable("template variables ($)")
    if tok == ".":
        raise Untranslatable("the whole context (.) as a value")
    if re.fullmatch(r"-?[0-9][0-9.]*", tok):
        raise Untranslatable(f"the number {tok} (Go prints numbers its own way)")
    if tok in _KEYWORDS:
        raise Untranslatable(f"the control structure or operator {tok!r}")
    raise Untranslatable(f"{tok!r}")


def _printf(args: list[str], ops: list[str]) -> str:
    if not args or not args[0].startswith(("\"", "`")):
        raise Untranslatable("printf without a literal format")
    parts = re.split(r"(%[sv%])", _go_string(args[0]))
    if any("%" in p for p in parts if p not in ("%s", "%v", "%%")):
        raise Untranslatable("printf verbs other than %s and %v")
    values = iter(ops[1:])
    out: list[str] = []
    try:
        for p in parts:
            if p in ("%s", "%v"):
                out.append(_forced(next(values)))
            elif p:
                out.append(_literal(p.replace("%%", "%")))
    except StopIteration:
        raise Untranslatable("printf with fewer arguments than verbs") from None
    if next(values, None) is not None:
        raise Untranslatable("printf with more arguments than verbs")
    return " ~ ".join(out) or '""'


# name → (number of arguments, the jinja2 expression of the argument expressions)
_FUNCS: dict[str, tuple[int, Callable[[list[str]], str]]] = {
    "b64enc": (1, lambda a: f"{_group(a[0])} | b64enc"),
    "sha256sum": (1, lambda a: f"{_group(a[0])} | sha256sum"),
    "toString": (1, lambda a: f"{_group(a[0])} | string"),
    "replace": (3, lambda a: f"{_forced(a[2])} | replace({_forced(a[0])}, {_forced(a[1])})"),
    "default": (2, lambda a: f"{_forced(a[1])} | default({_forced(a[0])}, true)"),
}


def _command(words: list[str], piped: str | None) -> str:
    if not words:
        raise Untranslatable("an empty pipeline stage")
    head, args = words[0], words[1:]
    if head == "index":
        if piped is None and len(args) == 2 and args[0] == "." and args[1][0] in "\"`":
            # Go's index of a missing map key is "" (missingkey=error is for .name only)
            return f'values[{_literal(_go_string(args[1]))}] | default("", false)'
        raise Untranslatable('index other than index . "key"')
    ops = [_operand(a) for a in args] + ([piped] if piped is not None else [])
    if head == "printf":
        return _printf(args, ops)
    if head in _FUNCS:
        arity, render = _FUNCS[head]
        if len(ops) != arity:
            raise Untranslatable(f"{head} with {len(ops)} arguments")
        return render(ops)
    if head in _INEXACT:
        raise Untranslatable(f"{head!r}: no exact counterpart ({_INEXACT[head]})")
    if piped is None and not args:
        return _operand(head)
    if head in _KEYWORDS:
        raise Untranslatable(f"the control structure or operator {head!r}")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
        raise Untranslatable(f"the function {head!r} (no counterpart in the sandbox)")
    raise Untranslatable(f"{head!r}")


def _pipeline(body: str) -> str:
    tokens = [t for t in _TOKEN.findall(body) if not t.isspace()]
    if any(t in ("(", ")") for t in tokens):
        raise Untranslatable("parenthesised expressions")
    if any(t in (":=", "=") for t in tokens):
        raise Untranslatable("template variables ($x := …)")
    if tokens and tokens[0] in _KEYWORDS:
        raise Untranslatable(f"the control structure or operator {tokens[0]!r}")
    stages: list[list[str]] = [[]]
    for t in tokens:
        if t == "|":
            stages.append([])
        else:
            stages[-1].append(t)
    expr: str | None = None
    for words in stages:
        expr = _command(words, expr)
    assert expr is not None
    return expr


def _actions(text: str) -> list[tuple[str, str]]:
    """Go's lexing into ("text", t) and ("action", body) with trim markers applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if start < 0:
            out.append(("text", chunk))
            return out
        i = start + 2
        if text.startswith("-", i) and i + 1 < len(text) and text[i + 1] in _SPACE:
            chunk = chunk.rstrip(_SPACE)
            i += 2
        out.append(("text", chunk))
        end = _action_end(text, i)
        body = text[i:end]
        trim_next = len(body) >= 2 and body[-1] == "-" and body[-2] in _SPACE
        if trim_next:
            body = body[:-2]
        out.append(("action", body))
        pos = end + 2


def _action_end(text: str, i: int) -> int:
    """Where the action's ``}}`` is, outside string literals and comments."""
    if text.startswith("/*", i):
        close = text.find("*/", i + 2)
        if close < 0:
            raise Untranslatable("an unterminated comment")
        i = close + 2
    quote = ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"`'":
            quote = ch
        elif text.startswith("}}", i):
            return i
        i += 1
    raise Untranslatable("an unterminated action ({{ without }})")


def _text(chunk: str) -> str:
    """Literal text as jinja2 data that renders to exactly these characters."""
    return re.sub(r"\{%|\{#|\r|\{(?=\r|$)", lambda m: "{{ " + _literal(m.group(0)) + " }}",
                  chunk)


def convert_template(text: str) -> str:
    """An ESO template as a sandbox one with the same meaning; :class:`Untranslatable`
    (a ``ValueError``) names what has no exact counterpart."""
    parts: list[str] = []
    pending = ""
    for kind, chunk in _actions(text):
        if kind == "text":
            pending += chunk
            continue
        stripped = chunk.strip()
        if stripped.startswith("/*"):
            if not (chunk.startswith("/*") and chunk.endswith("*/")):
                raise Untranslatable("a comment not right inside its delimiters")
            continue  # a comment renders nothing; its neighbours' text joins up
        try:
            expr = _pipeline(chunk)
        except Untranslatable as e:
            raise Untranslatable(f"{e} in {{{{{chunk}}}}}") from None
        parts.append(_text(pending) + "{{ " + expr + " }}")
        pending = ""
    result = "".join(parts) + _text(pending)
    _check(result)
    return result


def _check(result: str) -> None:
    """The translation must survive the engine's own Go conversion unchanged, and parse."""
    from jinja2 import TemplateSyntaxError

    from secretops.sealing.template import convert_go, sandbox

    if convert_go(result) != result:
        raise Untranslatable("a string literal looks like a Go field reference (.name)")
    try:
        sandbox().parse(result)
    except TemplateSyntaxError as e:
        raise Untranslatable(f"the translation does not parse: {e.message}") from None
