"""A small YAML emitter in sops's output style.

Used where there is no original text to splice into: the ``sops:`` metadata block, documents
whose aliases had to be expanded, files converted from another format, and new files. Layout
follows what sops (go-yaml v3) writes: block style, ``indent`` spaces per level (sops's default
is 4), sequences indented under their key, list items' maps aligned after ``- ``, comments on
their own lines, multi-line strings as literal blocks.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from secretops.core.tree import Branch, Comment, Seq
from secretops.core.values import Timestamp
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


def emit_node(node: Any, level: int, step: int, out: list[str], item_map: bool = False) -> None:
    """Append the lines of a Branch or Seq whose items start at column ``level``."""
    _drive(_node(node, level, step, out, item_map))


def _node(node: Any, level: int, step: int, out: list[str], item_map: bool = False) -> _Emit:
    """:func:`emit_node`, as a generator for :func:`_drive`.

    ``item_map``: the Branch is a sequence item (``- key: …``); go-yaml then indents the
    block scalars and the nested collections of its entries by 2, not by ``step`` (deeper
    levels use ``step`` again).
    """
    pad = " " * level
    if isinstance(node, Branch):
        for item in node:
            if type(item) is not tuple:
                out.append(f"{pad}#{item}")
                continue
            key, value = item
            yield _entry(f"{pad}{_key(key)}:", value, level, step, out, 2 if item_map else step)
    else:
        for value in node:
            if isinstance(value, Comment):
                out.append(f"{pad}#{value}")
                continue
            if isinstance(value, Branch) and any(type(i) is tuple for i in value):
                sub: list[str] = []
                yield _node(value, level + 2, step, sub, item_map=True)
                first = next(i for i, line in enumerate(sub) if not line.lstrip().startswith("#"))
                out.extend(sub[:first])
                out.append(f"{pad}- {sub[first][level + 2:]}")
                out.extend(sub[first + 1:])
            elif isinstance(value, Seq) and value:
                out.append(f"{pad}-")
                yield _node(value, level + step, step, out)
            else:
                yield _entry(f"{pad}-", value, level, step, out)


def _entry(
    head: str, value: Any, level: int, step: int, out: list[str], block_step: int | None = None
) -> _Emit:
    child = level + (block_step or step)
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
        text = _scalar(value, " " * (level + (block_step or step)))
        out.append(f"{head} {text}")


def emit_document(doc: Branch, step: int) -> str:
    """A whole document (no ``---``), ending in a newline; ``{}`` for an empty one."""
    if not doc:
        return "{}\n"
    lines: list[str] = []
    emit_node(doc, 0, step, lines)
    return "\n".join(lines) + "\n"


def emit_entry(key: str, value: Any, step: int) -> str:
    """One top-level ``key: value`` entry (the ``sops:`` block), ending in a newline."""
    lines: list[str] = []
    _drive(_entry(f"{_key(key)}:", value, 0, step, lines))
    return "\n".join(lines) + "\n"
