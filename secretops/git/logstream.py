"""Reading ``git log -z --raw -p`` as it streams: commit headers, changed files, patch lines.

``secretops log`` lets git print everything it can print itself — commit headers in the
user's format, colours, patches of files that are not encrypted — and replaces only the
patches of encrypted files. To know which patch belongs to which file, it asks git for the
raw list of changes too (``--raw``: modes, blob ids, status, paths) and for ``-z``, which
makes the stream unambiguous:

* ``medium``-like formats: header lines ending in ``\\n`` (with the blank line git prints
  before a diff); then, when the commit changed files, the raw records
  (``:<mode> <mode> <oid> <oid> <status>\\0<path>\\0`` plus a second path for renames and
  copies), an empty record (``\\0``) and the patch lines; commits are separated by ``\\0``
  (a blank line without ``-z``);
* ``--oneline``: the header line ends in ``\\0`` instead of a newline, and nothing separates
  commits.

Raw records start with ``:`` and end in NUL; header and patch lines end in a newline, so
neither can be taken for the other. :func:`read_log` turns the stream into events, holding
one line at a time (at most :data:`MAX_LINE` bytes); what it yields as :class:`Text` is what
``git log -p`` prints in the same place without ``-z``. Pure apart from reading the stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, NamedTuple

from secretops.errors import SecretOpsError
from secretops.limits import MAX_INPUT_BYTES

# a patch line holds at most one line of a version (each within the limit on input) plus
# git's colour codes; a longer one means the stream is not what git writes
MAX_LINE = 2 * MAX_INPUT_BYTES
_RAW = re.compile(
    rb":([0-7]{6}) ([0-7]{6}) ([0-9a-f]{4,64}) ([0-9a-f]{4,64}) ([ACDMRTUX])([0-9]{0,3})")
_SGR = re.compile(rb"(?:\x1b\[[0-9;]*m)*")


class LogFormatError(SecretOpsError):
    """The ``git log`` stream is not in the shape git writes."""


class Entry(NamedTuple):
    """One changed file of a commit, from its raw record."""

    old_mode: int
    new_mode: int
    old_oid: str  # all zeros when the file is new
    new_oid: str  # all zeros when the file was deleted
    status: str  # A C D M R T U X
    old_path: bytes
    new_path: bytes


class Text(NamedTuple):
    """Bytes to print as they are: a commit header, or the blank line between commits."""

    data: bytes


class Changes(NamedTuple):
    """The changed files of the commit whose header came last, before its patches."""

    entries: list[Entry]


class PatchLine(NamedTuple):
    """One line of a patch; ``starts`` when it is a ``diff --git`` line opening a file."""

    data: bytes
    starts: bool


Event = Text | Changes | PatchLine


class _Segments:
    """The stream cut after every newline and every NUL."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._read = getattr(stream, "read1", stream.read)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    def next(self) -> bytes:
        """The next segment with its terminator; the unterminated rest at the end; b"" after."""
        scan = self._pos
        while True:
            nl = self._buf.find(b"\n", scan)
            nul = self._buf.find(b"\0", scan, nl if nl >= 0 else len(self._buf))
            end = nul if nul >= 0 else nl
            if end >= 0 or self._eof:
                stop = end + 1 if end >= 0 else len(self._buf)
                out = bytes(self._buf[self._pos:stop])
                self._pos = stop
                return out
            if len(self._buf) - self._pos > MAX_LINE:
                raise LogFormatError(f"git log printed a line over {MAX_LINE:,} bytes")
            del self._buf[:self._pos]
            self._pos = 0
            scan = len(self._buf)
            chunk = self._read(1 << 16)
            if chunk:
                self._buf += chunk
            else:
                self._eof = True


def _entry(meta: bytes, seg: _Segments) -> Entry:
    m = _RAW.fullmatch(meta)
    if m is None:
        raise LogFormatError("git log: a raw change record is malformed")
    status = m.group(5).decode()
    paths = []
    for _ in range(2 if status in "RC" else 1):
        p = seg.next()
        if not p.endswith(b"\0") or len(p) < 2:
            raise LogFormatError("git log: a raw change record has no path")
        paths.append(p[:-1])
    return Entry(int(m.group(1), 8), int(m.group(2), 8), m.group(3).decode(),
                 m.group(4).decode(), status, paths[0], paths[-1])


def starts_file(line: bytes) -> bool:
    """Is this patch line a ``diff --git`` header (colour codes allowed)?"""
    return line[_SGR.match(line).end():].startswith(b"diff --git ")  # type: ignore[union-attr]


def read_log(stream: IO[bytes]) -> Iterator[Event]:
    """The events of a ``git log -z --raw -p`` stream, in order."""
    seg = _Segments(stream)
    header = b""
    in_patch = False
    while True:
        s = seg.next()
        if not s:
            if header:
                yield Text(header)
            return
        if not s.endswith(b"\0"):
            if in_patch:
                yield PatchLine(s, starts_file(s))
            else:
                header += s
            continue
        body = s[:-1]
        if in_patch:
            in_patch = False
            if body:  # a --oneline header straight after the last patch line
                header = body + b"\n"
            else:  # between commits: the blank line git prints without -z
                yield Text(b"\n")
            continue
        if body.startswith(b":"):
            yield Text(header)
            header = b""
            entries = [_entry(body, seg)]
            while True:
                nxt = seg.next()
                if nxt == b"\0":
                    break
                if not nxt.startswith(b":") or not nxt.endswith(b"\0"):
                    raise LogFormatError("git log: the raw change records end unexpectedly")
                entries.append(_entry(nxt[:-1], seg))
            yield Changes(entries)
            in_patch = True
        elif not body:  # a commit without changes, then the next one
            yield Text(header + b"\n")
            header = b""
        else:  # a --oneline header; the previous one had no changes
            if header:
                yield Text(header)
            header = body + b"\n"
