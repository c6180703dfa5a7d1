"""JSON text as deep as the limits allow, with the standard library's parser.

Python's C JSON scanner recurses once per nesting level and stops at the interpreter's recursion
limit (1,000), far below what sops reads (Go's ``encoding/json`` allows 10,000 levels). Text
that nests deeper than the recursion limit allows is first measured — nesting past
:data:`~secretops.limits.MAX_DEPTH` is refused without parsing — and then parsed in a thread of
its own with a large stack and a recursion limit to match: raising the limit on the caller's
stack could overflow it (a crash, not an error), a dedicated stack cannot. Shallow text, nearly
every file, takes the ordinary path at no extra cost.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from secretops.limits import MAX_DEPTH, MAX_NODES, too_deep, too_many_nodes

T = TypeVar("T")
_STACK_BYTES = 512 * 1024 * 1024  # reserved, not used: pages are touched only as needed
_BRACKET = re.compile(r"[\[\]{}]")
_deep_lock = threading.Lock()
_ESCAPE = re.compile(r"\\.", re.S)
_PLAIN_STRING = re.compile(r'"[^"]*"')
_EMPTY = re.compile(r"\[\s*\]|\{\s*\}")


def _values_at_most(text: str) -> int:
    # each value follows a comma, or opens its array or object, or is the top one: exact once
    # strings are gone and empty arrays and objects (which hold no first value) are scalars
    return text.count(",") + text.count("[") + text.count("{") + 1


def check_nodes(text: str) -> None:
    """Refuse JSON of more than :data:`~secretops.limits.MAX_NODES` values, before the
    parser builds them (it builds a value in C for every two bytes of ``[1,1,…]``). A bound
    counted at C speed clears nearly every file; past it, the count outside strings decides."""
    if _values_at_most(text) > MAX_NODES and json_values(text) > MAX_NODES:
        raise too_many_nodes()


def json_values(text: str) -> int:
    """The values of JSON ``text``: objects, arrays and scalars (exact for valid JSON)."""
    return _values_at_most(_EMPTY.sub("0", _outside_strings(text)))


def _outside_strings(text: str) -> str:
    """``text`` without its strings, in linear time: escapes removed first, so each quote left
    opens or closes a string (a one-pass string regex backtracks from every quote of
    ``"\\"\\"\\…`` to the end: quadratic)."""
    return _PLAIN_STRING.sub("", _ESCAPE.sub("", text))


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped)."""
    level = deepest = 0
    for m in _BRACKET.finditer(_outside_strings(text)):
        if m.group() in "[{":
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def on_big_stack(fn: Callable[[], T]) -> T:
    """``fn()`` in a thread with a large stack and a recursion limit for :data:`MAX_DEPTH`
    levels, its result or its exception handed back."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller, re-raised there
            box["error"] = e

    with _deep_lock:  # the stack size and the recursion limit are process-wide settings
        old_stack = threading.stack_size(_STACK_BYTES)
        old_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old_limit, 3 * MAX_DEPTH + 1000))
        try:
            worker = threading.Thread(target=run, name="secretops-deep")
            worker.start()
        finally:
            threading.stack_size(old_stack)
        worker.join()
        sys.setrecursionlimit(old_limit)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def raw_decode(decoder: json.JSONDecoder, text: str, start: int = 0) -> tuple[Any, int]:
    """``decoder.raw_decode(text, start)``, at any depth within :data:`MAX_DEPTH` and of
    at most :data:`~secretops.limits.MAX_NODES` values."""
    check_nodes(text)
    try:
        return decoder.raw_decode(text, start)
    except RecursionError:
        pass
    if depth(text) > MAX_DEPTH:
        raise too_deep() from None
    return on_big_stack(lambda: decoder.raw_decode(text, start))


def loads(text: str) -> Any:
    """``json.loads(text)`` at any depth within :data:`MAX_DEPTH`."""
    value, end = raw_decode(json.JSONDecoder(), text, len(text) - len(text.lstrip()))
    if text[end:].strip():
        raise ValueError(f"extra data at character {end}")
    return value
