"""Where git places a change that could sit at several spots: its change compaction.

Inserting a line into a run of equal lines (or a block whose last lines repeat the lines
before it) is the same change at several positions. git slides every group of changed lines
as far up and then down as it goes, merging with groups it meets, lines it up with a change
on the other side when it can, and otherwise picks the position its *indent heuristic* scores
best (on by default since git 2.14). This is a port of ``xdl_change_compact`` and the
heuristic's scoring from git's ``xdiff/xdiffi.c``, so that :mod:`.hunks` places changes
where ``git diff`` does. Pure: no I/O.
"""

from __future__ import annotations

from typing import NamedTuple

_MAX_INDENT = 200
_MAX_BLANKS = 20
_START_OF_FILE_PENALTY = 1
_END_OF_FILE_PENALTY = 21
_TOTAL_BLANK_WEIGHT = -30
_POST_BLANK_WEIGHT = 6
_RELATIVE_INDENT_PENALTY = -4
_RELATIVE_INDENT_WITH_BLANK_PENALTY = 10
_RELATIVE_OUTDENT_PENALTY = 24
_RELATIVE_OUTDENT_WITH_BLANK_PENALTY = 17
_RELATIVE_DEDENT_PENALTY = 23
_RELATIVE_DEDENT_WITH_BLANK_PENALTY = 17
_INDENT_WEIGHT = 60
_MAX_SLIDING = 100
_SPACE = frozenset(b" \t\n\v\f\r")


def _indent(line: bytes) -> int:
    """Columns of indentation (a tab to the next multiple of 8), -1 for a blank line."""
    ret = 0
    for c in line:
        if c not in _SPACE:
            return ret
        if c == 0x20:
            ret += 1
        elif c == 0x09:
            ret += 8 - ret % 8
        if ret >= _MAX_INDENT:
            return _MAX_INDENT
    return -1


def _score_split(recs: list[bytes], split: int) -> tuple[int, int]:
    """(effective indent, penalty) of splitting ``recs`` above line ``split``
    (``measure_split`` and ``score_add_split``)."""
    n = len(recs)
    end_of_file = split >= n
    indent = -1 if end_of_file else _indent(recs[split])
    pre_blank, pre_indent = 0, -1
    for i in range(split - 1, -1, -1):
        pre_indent = _indent(recs[i])
        if pre_indent != -1:
            break
        pre_blank += 1
        if pre_blank == _MAX_BLANKS:
            pre_indent = 0
            break
    post_blank, post_indent = 0, -1
    for i in range(split + 1, n):
        post_indent = _indent(recs[i])
        if post_indent != -1:
            break
        post_blank += 1
        if post_blank == _MAX_BLANKS:
            post_indent = 0
            break
    penalty = 0
    if pre_indent == -1 and pre_blank == 0:
        penalty += _START_OF_FILE_PENALTY
    if end_of_file:
        penalty += _END_OF_FILE_PENALTY
    blank_after = 1 + post_blank if indent == -1 else 0
    total_blank = pre_blank + blank_after
    penalty += _TOTAL_BLANK_WEIGHT * total_blank + _POST_BLANK_WEIGHT * blank_after
    eff = indent if indent != -1 else post_indent
    any_blanks = total_blank != 0
    if eff == -1 or pre_indent == -1 or eff == pre_indent:
        pass
    elif eff > pre_indent:
        penalty += (_RELATIVE_INDENT_WITH_BLANK_PENALTY if any_blanks
                    else _RELATIVE_INDENT_PENALTY)
    elif post_indent != -1 and post_indent > eff:
        penalty += (_RELATIVE_OUTDENT_WITH_BLANK_PENALTY if any_blanks
                    else _RELATIVE_OUTDENT_PENALTY)
    else:
        penalty += (_RELATIVE_DEDENT_WITH_BLANK_PENALTY if any_blanks
                    else _RELATIVE_DEDENT_PENALTY)
    return eff, penalty


def _better_or_equal(s1: tuple[int, int], s2: tuple[int, int]) -> bool:
    cmp_indents = (s1[0] > s2[0]) - (s1[0] < s2[0])
    return _INDENT_WEIGHT * cmp_indents + (s1[1] - s2[1]) <= 0


class _File:
    """Lines and their changed flags, with git's sentinel unchanged line at both ends
    (``rchg[i + 1]`` is line ``i``)."""

    def __init__(self, recs: list[bytes], changed: list[bool]) -> None:
        self.recs = recs
        self.rchg = [False, *changed, False]

    def ch(self, i: int) -> bool:
        return self.rchg[i + 1]

    def set(self, i: int, v: bool) -> None:
        self.rchg[i + 1] = v


class _Group:
    __slots__ = ("end", "start")

    def __init__(self, f: _File) -> None:
        self.start = self.end = 0
        while f.ch(self.end):
            self.end += 1

    def next(self, f: _File) -> bool:
        if self.end == len(f.recs):
            return False
        self.start = self.end + 1
        self.end = self.start
        while f.ch(self.end):
            self.end += 1
        return True

    def previous(self, f: _File) -> bool:
        if self.start == 0:
            return False
        self.end = self.start - 1
        self.start = self.end
        while f.ch(self.start - 1):
            self.start -= 1
        return True

    def slide_down(self, f: _File) -> bool:
        if self.end < len(f.recs) and f.recs[self.start] == f.recs[self.end]:
            f.set(self.start, False)
            f.set(self.end, True)
            self.start += 1
            self.end += 1
            while f.ch(self.end):
                self.end += 1
            return True
        return False

    def slide_up(self, f: _File) -> bool:
        if self.start > 0 and f.recs[self.start - 1] == f.recs[self.end - 1]:
            self.start -= 1
            self.end -= 1
            f.set(self.start, True)
            f.set(self.end, False)
            while f.ch(self.start - 1):
                self.start -= 1
            return True
        return False


def _compact(f: _File, o: _File) -> None:
    """``xdl_change_compact`` with the indent heuristic, on ``f`` against ``o``."""
    g, go = _Group(f), _Group(o)
    while True:
        if g.end != g.start:
            while True:
                size = g.end - g.start
                end_matching_other = -1
                while g.slide_up(f):
                    go.previous(o)
                earliest_end = g.end
                if go.end > go.start:
                    end_matching_other = g.end
                while g.slide_down(f):
                    go.next(o)
                    if go.end > go.start:
                        end_matching_other = g.end
                if size == g.end - g.start:
                    break
            if g.end == earliest_end:
                pass
            elif end_matching_other != -1:
                while go.end == go.start:
                    g.slide_up(f)
                    go.previous(o)
            else:
                shift = max(earliest_end, g.end - size - 1, g.end - _MAX_SLIDING)
                best_shift, best = -1, (0, 0)
                for s in range(shift, g.end + 1):
                    a = _score_split(f.recs, s)
                    b = _score_split(f.recs, s - size)
                    score = (a[0] + b[0], a[1] + b[1])
                    if best_shift == -1 or _better_or_equal(score, best):
                        best, best_shift = score, s
                while g.end > best_shift:
                    g.slide_up(f)
                    go.previous(o)
        if not g.next(f):
            break
        go.next(o)


class Change(NamedTuple):
    """A run of changed lines: ``chg1`` old lines at ``i1`` became ``chg2`` new ones at
    ``i2`` (xdiff's ``xdchange_t``)."""

    i1: int
    chg1: int
    i2: int
    chg2: int


def compact(a: list[bytes], b: list[bytes], found: list[Change]) -> list[Change]:
    """``found`` (any correct diff of ``a`` and ``b``) with its groups placed as git
    places them."""
    ca, cb = [False] * len(a), [False] * len(b)
    for ch in found:
        ca[ch.i1:ch.i1 + ch.chg1] = [True] * ch.chg1
        cb[ch.i2:ch.i2 + ch.chg2] = [True] * ch.chg2
    fa, fb = _File(a, ca), _File(b, cb)
    _compact(fa, fb)
    _compact(fb, fa)
    out: list[Change] = []  # xdl_build_script, front to back
    i1 = i2 = 0
    n1, n2 = len(a), len(b)
    while i1 < n1 or i2 < n2:
        if fa.ch(i1) or fb.ch(i2):
            s1, s2 = i1, i2
            while fa.ch(i1):
                i1 += 1
            while fb.ch(i2):
                i2 += 1
            out.append(Change(s1, i1 - s1, s2, i2 - s2))
        else:
            i1 += 1
            i2 += 1
    return out
