"""Unified diff hunks of two texts, written the way ``git diff`` writes them.

``secretops log -p`` diffs decrypted versions itself (git only ever sees ciphertext), and its
output must read like ``git log -p`` with the textconv driver. What git decides is reproduced
here from its xdiff emitter (``xdl_emit_diff``, ``xdl_emit_hunk_hdr``) and ``diff.c``:

* changes closer than ``2 × context + inter-hunk context`` lines share a hunk; pre-context
  counts from the old text, context lines are printed from the new one;
* ``@@ -a,b +c,d @@`` omits a count of 1, and a count of 0 prints the line before;
* the hunk header names the nearest line before the hunk's context that starts with a letter,
  ``_`` or ``$`` (git's default funcname rule, its first 80 bytes, trailing blanks dropped),
  searching back no further than the previous hunk's search; a hunk that finds none repeats
  the previous name, as git's does;
* a last line without a newline is followed by ``\\ No newline at end of file``;
* with colour: git's default colours (meta bold, frag cyan, old red, new green) and trailing
  whitespace of added lines on red.

Which lines are paired comes from :mod:`difflib` on the lines between the common head and
tail (git trims those too); each group of changed lines is then placed where git places it
(:mod:`.slide`, git's compaction and indent heuristic). Where two different sets of changed
lines are equally small, git's Myers diff and difflib may still choose differently; both are
correct diffs. Pure: no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from secretops.git.slide import Change, compact

RESET = b"\x1b[m"
META = b"\x1b[1m"
FRAG = b"\x1b[36m"
OLD = b"\x1b[31m"
NEW = b"\x1b[32m"
WHITESPACE = b"\x1b[41m"
NO_NEWLINE = b"\\ No newline at end of file"
_FUNC_MAX = 80  # git's struct func_line buffer
_HEADER_MAX = 128  # xdl_emit_hunk_hdr's buffer, the newline included
# SequenceMatcher is quadratic in the lines between the common head and tail when they repeat
# much; past this many line pairs its "popular line" heuristic is let in to bound the time
_EXACT_PAIRS = 4_000_000


def split_lines(text: bytes) -> list[bytes]:
    """The lines of ``text``, each with its newline (the last one may lack it); like git,
    only a newline ends a line."""
    lines = [line + b"\n" for line in text.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return lines


def changes(a: list[bytes], b: list[bytes]) -> list[Change]:
    """The changed runs between ``a`` and ``b``, in order."""
    head = 0
    end = min(len(a), len(b))
    while head < end and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < end - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    mid_a, mid_b = a[head:len(a) - tail], b[head:len(b) - tail]
    if not mid_a or not mid_b:
        found = [Change(head, len(mid_a), head, len(mid_b))] if mid_a or mid_b else []
        return compact(a, b, found) if found else []
    junk = len(mid_a) * len(mid_b) > _EXACT_PAIRS
    matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=junk)
    found = [Change(head + i1, i2 - i1, head + j1, j2 - j1)
             for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]
    return compact(a, b, found)


def _funcname(line: bytes) -> bytes | None:
    """git's default funcname rule (xdiff's ``def_ff``)."""
    if not line or not (line[:1].isalpha() or line[:1] in b"_$"):
        return None
    return line[:_FUNC_MAX].rstrip(b" \t\n\v\f\r")


def _range(start: int, count: int) -> bytes:
    first = start if count else start - 1
    return str(first).encode() if count == 1 else f"{first},{count}".encode()


def _hunk_header(s1: int, c1: int, s2: int, c2: int, func: bytes, color: bool) -> bytes:
    head = b"@@ -" + _range(s1, c1) + b" +" + _range(s2, c2) + b" @@"
    room = _HEADER_MAX - len(head) - 2  # the space before the name, and the newline
    name = func[:max(room, 0)]
    if not color:
        return head + (b" " + name if name else b"") + b"\n"
    # diff.c's emit_hunk_header: the blank in the context colour, the name in func's
    return FRAG + head + RESET + (b" " + RESET + name + RESET if name else b"") + b"\n"


def _added(body: bytes, eof_blank: bool) -> bytes:
    """An added line in colour, whitespace errors marked as git's ``ws_check_emit`` marks them
    under the default ``core.whitespace`` (blank-at-eol, space-before-tab, blank-at-eof)."""
    if eof_blank:
        return WHITESPACE + b"+" + body + RESET
    out = [NEW, b"+", RESET]
    trailing = len(body.rstrip(b" \t\n\v\f\r"))
    written = 0
    for i in range(trailing):  # the indentation: tabs are written as they are
        c = body[i]
        if c == 0x20:
            continue
        if c != 0x09:
            break
        if written < i:  # a space before a tab
            out += [WHITESPACE, body[written:i], RESET, body[i:i + 1]]
        else:
            out.append(body[written:i + 1])
        written = i + 1
    if trailing > written:
        out += [NEW, body[written:trailing], RESET]
    if trailing < len(body):
        out += [WHITESPACE, body[trailing:], RESET]
    return b"".join(out)


def _record(sign: bytes, line: bytes, color: bool, eof_blank: bool = False) -> Iterator[bytes]:
    body, newline = (line[:-1], True) if line.endswith(b"\n") else (line, False)
    if not color:
        yield sign + body + b"\n"
    elif sign == b"+":
        yield _added(body, eof_blank) + b"\n"
    elif sign == b"-":
        yield OLD + b"-" + body + RESET + b"\n"
    else:
        yield b" " + body + RESET + b"\n"
    if not newline:
        yield NO_NEWLINE + (RESET if color else b"") + b"\n"


def _blank(line: bytes) -> bool:
    return not line.strip(b" \t\n\v\f\r")


def _trailing_blanks(lines: list[bytes]) -> int:
    n = 0
    while n < len(lines) and _blank(lines[-1 - n]):
        n += 1
    return n


def hunks(a: list[bytes], b: list[bytes], *, context: int = 3, inter_hunk: int = 0,
          color: bool = False) -> Iterator[bytes]:
    """The hunks of the diff from ``a`` to ``b`` (lines from :func:`split_lines`), line by
    line; nothing when they are equal."""
    found = changes(a, b)
    max_common = 2 * context + inter_hunk
    eof_at = None  # where the blank lines at the end begin, when lines were added to them
    if color:
        blank_a, blank_b = _trailing_blanks(a), _trailing_blanks(b)
        if blank_b > blank_a:
            eof_at = (len(a) - blank_a + 1, len(b) - blank_b + 1)
    func = b""
    prev = -1  # funclineprev: where the last hunk's name search began
    k = 0
    while k < len(found):
        last = k
        while (last + 1 < len(found)
               and found[last + 1].i1 - (found[last].i1 + found[last].chg1) <= max_common):
            last += 1
        first, end = found[k], found[last]
        s1 = max(first.i1 - context, 0)
        s2 = max(first.i2 - context, 0)
        lctx = min(context, len(a) - (end.i1 + end.chg1), len(b) - (end.i2 + end.chg2))
        e1 = end.i1 + end.chg1 + lctx
        e2 = end.i2 + end.chg2 + lctx
        line = s1 - 1
        while line != prev and 0 <= line < len(a):
            name = _funcname(a[line])
            if name is not None:
                func = name
                break
            line -= 1
        prev = s1 - 1
        yield _hunk_header(s1 + 1, e1 - s1, s2 + 1, e2 - s2, func, color)
        # diff.c's line numbers for blank-at-eof: from the header, counted before each line
        lno = [s1 + 1 if e1 - s1 else s1, s2 + 1 if e2 - s2 else s2]
        out: list[tuple[bytes, bytes]] = [(b" ", b[i]) for i in range(s2, first.i2)]
        p1, p2 = first.i1, first.i2
        for ch in found[k:last + 1]:
            out += [(b" ", b[i]) for i in range(p2, p2 + (ch.i1 - p1))]
            out += [(b"-", a[i]) for i in range(ch.i1, ch.i1 + ch.chg1)]
            out += [(b"+", b[i]) for i in range(ch.i2, ch.i2 + ch.chg2)]
            p1, p2 = ch.i1 + ch.chg1, ch.i2 + ch.chg2
        out += [(b" ", b[i]) for i in range(end.i2 + end.chg2, e2)]
        for sign, text in out:
            lno[0] += sign != b"+"
            lno[1] += sign != b"-"
            eof = (sign == b"+" and eof_at is not None and eof_at[0] <= lno[0]
                   and eof_at[1] <= lno[1] and _blank(text))
            yield from _record(sign, text, color, eof)
        k = last + 1
