"""A small YAML emitter in sops's output style.

Used where there is no original text to splice into, or where sops's output is asked for:
the ``sops:`` metadata block, documents whose aliases had to be expanded, files converted from
another format, new files, and every document under ``--indent`` or ``stores.yaml.indent``.
Layout is what sops (go-yaml v3) writes, byte for byte, for every step it takes: block style,
sequences indented under their key, a collection in a list item starting on the dash's line,
columns as go-yaml counts them (:func:`child_indent`), comments on their own lines,
multi-line strings as literal blocks.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from secretops.core.cipher import ENC_PREFIX
from secretops.core.tree import Branch, Comment, Seq
from secretops.core.values import Timestamp
from secretops.stores._output import check_indentation
from secretops.stores._yamlscalar import literal_block, render_number, render_str_inline


def _scalar(value: Any, indent: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, Timestamp):
        return str(value)
    if isinstance(value, str):
        if "\n" in value:
            block = literal_block(value, indent)
            if block is not None:
                return block
        return render_str_inline(value, flow=False)
    if isinstance(value, bool | int | float):
        return render_number(value)
    if isinstance(value, bytes):
        return render_str_inline(value.decode("utf-8", "surrogateescape"), flow=False)
    return render_str_inline(str(value), flow=False)


def _is_item(value: Any) -> bool:
    """Written as a list item: anything but a comment, or an encrypted comment."""
    return not isinstance(value, Comment) or (
        value.startswith(ENC_PREFIX) and value.endswith(",type:comment]"))


def _key(key: Any) -> str:
    if key == "<<":
        return "!!merge <<"  # go-yaml writes expanded merge keys with their tag
    return render_str_inline(str(key), flow=False) if key != "" else '""'


# The emitters are generators that yield the emitter of a nested collection instead of calling
# it; _drive runs them on a stack of its own, so a tree may nest as deep as the limits allow.
_Emit = Generator[Any, None, None]


def _drive(top: _Emit) -> None:
    stack = [top]
    while stack:
        try:
            stack.append(next(stack[-1]))
        except StopIteration:
            stack.pop()


def child_indent(indent: int, step: int) -> int:
    """go-yaml's column for what a map entry at ``indent`` holds on the lines below it (a
    nested collection, a block scalar's text): the next multiple of ``step`` ("everything else
    aligns to the chosen indentation", ``yaml_emitter_increase_indent``). What a sequence item
    holds goes 2 columns right of its dash instead."""
    return step * ((indent + step) // step)


def emit_node(node: Any, level: int, step: int, out: list[str]) -> None:
    """Append the lines of a Branch or Seq whose items start at column ``level``."""
    _drive(_node(node, level, step, out))


def _node(node: Any, level: int, step: int, out: list[str]) -> _Emit:
    """:func:`emit_node`, as a generator for :func:`_drive`.

    A collection inside a sequence item starts on the dash's line (``- key: …``, ``- - x``),
    its items 2 columns right of the dash; a map's nested collections and block scalars go to
    :func:`child_indent` — so with a ``step`` that is not 2 the two rules give different
    columns, as in go-yaml (``step`` 4: an item map at 6 has its nested map at 8).
    """
    pad = " " * level
    if isinstance(node, Branch):
        child = child_indent(level, step)
        for item in node:
            if type(item) is not tuple:
                out.append(f"{pad}#{item}")
                continue
            key, value = item
            yield _entry(f"{pad}{_key(key)}:", value, child, step, out)
    else:
        for value in node:
            if isinstance(value, Comment):
                # sops's encryption makes a comment in a list a string item: "- ENC[…]"
                out.append(f"{pad}- {value}" if _is_item(value) else f"{pad}#{value}")
                continue
            if (isinstance(value, Branch) and any(type(i) is tuple for i in value)) or (
                    isinstance(value, Seq) and any(_is_item(i) for i in value)):
                sub: list[str] = []
                yield _node(value, level + 2, step, sub)
                first = next(i for i, line in enumerate(sub) if not line.lstrip().startswith("#"))
                out.extend(sub[:first])
                out.append(f"{pad}- {sub[first][level + 2:]}")
                out.extend(sub[first + 1:])
            else:
                yield _entry(f"{pad}-", value, level + 2, step, out)


def _entry(head: str, value: Any, child: int, step: int, out: list[str]) -> _Emit:
    """``head`` (``key:`` or ``-``) and its value; what goes below it starts at ``child``."""
    if isinstance(value, Branch):
        if not any(type(i) is tuple for i in value) and not value:
            out.append(f"{head} {{}}")
            return
        out.append(head)
        yield _node(value, child, step, out)
    elif isinstance(value, Seq):
        if not value:
            out.append(f"{head} []")
            return
        out.append(head)
        yield _node(value, child, step, out)
    else:
        out.append(f"{head} {_scalar(value, ' ' * child)}")


def emit_document(doc: Branch, step: int) -> str:
    """A whole document (no ``---``), ending in a newline; ``{}`` for an empty one."""
    if not doc:
        return "{}\n"
    # every line is indented by its depth: bound that before writing any
    check_indentation(doc, lambda column: child_indent(column, step), lambda column: column + 2)
    lines: list[str] = []
    emit_node(doc, 0, step, lines)
    return "\n".join(lines) + "\n"


def emit_entry(key: str, value: Any, step: int) -> str:
    """One top-level ``key: value`` entry (the ``sops:`` block), ending in a newline."""
    lines: list[str] = []
    _drive(_entry(f"{_key(key)}:", value, child_indent(0, step), step, lines))
    return "\n".join(lines) + "\n"
