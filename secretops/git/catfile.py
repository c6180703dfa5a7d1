"""File versions from git, many through one ``git cat-file --batch`` process.

``secretops log`` reads every version of every changed file this way instead of starting a
process per version. The protocol: one object name per line in, and back for each either
``<oid> <type> <size>\\n`` followed by the content and a newline, or ``<name> missing\\n``
(``ambiguous``, ``excluded`` …). The content is read only up to the limit on input
(:data:`secretops.limits.MAX_INPUT_BYTES`, read when a reader is made): a larger version is
drained and reported as too large, never held in memory.

:class:`BatchReader` works on any pair of byte streams, so the fuzz tests drive it with
arbitrary answers; :class:`CatFile` runs the process.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from typing import IO, NamedTuple

from secretops import limits
from secretops.errors import SecretOpsError

_HEADER = re.compile(rb"([0-9a-f]{40}|[0-9a-f]{64}) ([a-z]+) ([0-9]{1,20})\n")
_MAX_HEADER = 4096
_CHUNK = 1 << 20


class GitProtocolError(SecretOpsError):
    """git answered something the protocol does not allow (or stopped answering)."""


class Blob(NamedTuple):
    """One object read: its full id, its size, and its bytes (None when over ``limit``)."""

    oid: str
    size: int
    data: bytes | None


class BatchReader:
    """The ``cat-file --batch`` conversation over ``requests`` (written) and ``answers``."""

    def __init__(self, requests: IO[bytes], answers: IO[bytes],
                 limit: int | None = None) -> None:
        self._requests = requests
        self._answers = answers
        self.limit = limits.MAX_INPUT_BYTES if limit is None else limit

    def read(self, name: str) -> Blob | None:
        """The blob called ``name`` (an object id); None when git says it is missing or it is
        not a blob."""
        if not name or any(c in name for c in "\n\r\0"):
            raise GitProtocolError(f"not an object name: {name[:80]!r}")
        self._requests.write(name.encode("ascii", "replace") + b"\n")
        self._requests.flush()
        line = self._answers.readline(_MAX_HEADER)
        if not line.endswith(b"\n"):
            raise GitProtocolError("git cat-file stopped answering"
                                   if not line else "git cat-file: answer header too long")
        m = _HEADER.fullmatch(line)
        if m is None:
            if line.rstrip(b"\n").endswith((b" missing", b" ambiguous", b" excluded")):
                return None
            raise GitProtocolError("git cat-file: unexpected answer "
                                   f"{line[:80].decode('ascii', 'replace')!r}")
        oid, kind, size = m.group(1).decode(), m.group(2), int(m.group(3))
        if size > self.limit:
            self._drain(size + 1)
            return Blob(oid, size, None)
        data = self._read_exact(size)
        if self._read_exact(1) != b"\n":
            raise GitProtocolError("git cat-file: content not followed by a newline")
        return Blob(oid, size, data) if kind == b"blob" else None  # not a file version

    def _read_exact(self, n: int) -> bytes:
        parts: list[bytes] = []
        left = n
        while left:
            got = self._answers.read(min(left, _CHUNK))
            if not got:
                raise GitProtocolError("git cat-file stopped in the middle of an object")
            parts.append(got)
            left -= len(got)
        return b"".join(parts)

    def _drain(self, n: int) -> None:
        while n:
            got = self._answers.read(min(n, _CHUNK))
            if not got:
                raise GitProtocolError("git cat-file stopped in the middle of an object")
            n -= len(got)


class CatFile(BatchReader):
    """A ``git cat-file --batch`` process in ``cwd``; close it with :meth:`close`."""

    def __init__(self, cwd: str | None = None, limit: int | None = None) -> None:
        try:
            self.proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=cwd,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
        except OSError as e:
            raise SecretOpsError(f"cannot run git: {e.strerror}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        super().__init__(self.proc.stdin, self.proc.stdout, limit)

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):  # git already gone
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
