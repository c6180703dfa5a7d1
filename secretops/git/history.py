"""``secretops log -p``: the history of encrypted files with their values decrypted, in one
process.

git prints the log — ``git log -z --raw -p`` with the user's options, without textconv or
external diff drivers (:mod:`.logstream` reads it) — and everything it prints is passed on as
it is, except the patch of a file version that is encrypted. For those, the versions on both
sides are read through one ``git cat-file --batch`` process, shown as the textconv driver
shows them (:mod:`.textconv`, reusing data keys and texts: :mod:`.versions`) and diffed
(:mod:`.hunks`); git's own header lines for the file (``diff --git``, modes, renames,
``index``) are kept. The result is what ``git log -p`` prints with ``secretops git
textconv`` as the diff driver of every file, without a process per version.

Memory: one commit's list of changed files, one file's two versions, and the caches of
:mod:`.versions`. A version over the limit on input is never decrypted: its patch is passed
on as git printed it (ciphertext), with a warning.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from secretops.errors import SecretOpsError
from secretops.git import textconv
from secretops.git.catfile import CatFile
from secretops.git.hunks import META, RESET, hunks, split_lines
from secretops.git.logstream import Changes, Entry, PatchLine, Text, read_log
from secretops.git.versions import Version, Versions

if TYPE_CHECKING:
    from secretops.keys import Identity

_SGR = re.compile(rb"(?:\x1b\[[0-9;]*m)*")
_COMMIT = re.compile(rb"(?:commit )?([0-9a-f]{7,64})\b")
_ZERO = re.compile(r"0+")
_BODY = (b"@@", b"Binary files ", b"GIT binary patch")
_STDERR_KEPT = 16 * 1024
_REGULAR = 0o100000
_TYPE = 0o170000


@dataclass
class Summary:
    """What a run of :func:`write_log` met, for the note at its end."""

    masked: int = 0  # versions shown masked: no key
    masked_files: set[bytes] = field(default_factory=set)
    problems: int = 0  # versions that could not be decrypted or read (each warned about)
    unwrapped: int = 0  # times the master keys were asked for a data key


@dataclass
class Options:
    """How hunks are written: context lines, inter-hunk context, colour, the key trailer."""

    context: int = 3
    inter_hunk: int = 0
    color: bool = False
    trailer: bool = True


def _plain(line: bytes) -> bytes:
    return line[_SGR.match(line).end():]  # type: ignore[union-attr]


def _split_types(entries: list[Entry]) -> list[Entry]:
    """git diffs a file that became a symlink (or the reverse) as a deletion and a creation."""
    out: list[Entry] = []
    zero = "0" * 40
    for e in entries:
        valid = not _ZERO.fullmatch(e.old_oid) and not _ZERO.fullmatch(e.new_oid)
        if valid and (e.old_mode & _TYPE) != (e.new_mode & _TYPE):
            out.append(Entry(e.old_mode, 0, e.old_oid, zero, "D", e.old_path, e.old_path))
            out.append(Entry(0, e.new_mode, zero, e.new_oid, "A", e.new_path, e.new_path))
        else:
            out.append(e)
    return out


def _quote(path: bytes) -> bytes:
    """A path as git writes it in a patch label (``core.quotePath`` on, git's default)."""
    if not any(c < 0x20 or c >= 0x7F or c in b'"\\' for c in path):
        return path
    out = bytearray(b'"')
    names = {0x07: b"a", 0x08: b"b", 0x09: b"t", 0x0A: b"n", 0x0B: b"v", 0x0C: b"f",
             0x0D: b"r", 0x22: b'"', 0x5C: b"\\"}
    for c in path:
        if c in names:
            out += b"\\" + names[c]
        elif c < 0x20 or c >= 0x7F:
            out += b"\\%03o" % c
        else:
            out.append(c)
    return bytes(out + b'"')


def _label(sign: bytes, prefix: bytes, path: bytes | None, color: bool) -> bytes:
    if path is None:
        name = b"/dev/null"
    else:
        quoted = _quote(prefix + path)
        name = quoted + (b"\t" if b" " in quoted else b"")
    line = sign + b" " + name
    return (META + line + RESET if color else line) + b"\n"


class _Run:
    def __init__(self, out: IO[bytes], versions: Versions, options: Options,
                 warn: Callable[[str], None]) -> None:
        self.out = out
        self.versions = versions
        self.opt = options
        self.warn = warn
        self.summary = Summary()
        self.commit = "?"
        self.entries: list[Entry] = []
        # the file whose patch is being replaced: its entry, texts, and git's lines kept
        self.entry: Entry | None = None
        self.texts: tuple[bytes, bytes] = (b"", b"")
        self.head: list[bytes] = []
        self.labels: list[bytes] = []
        self.in_body = False

    def text(self, data: bytes) -> None:
        self.finish()
        m = _COMMIT.match(_plain(data))
        if m:
            self.commit = m.group(1).decode()[:12]
        self.out.write(data)

    def line(self, ev: PatchLine) -> None:
        if ev.starts:
            self.finish()
            self.start(ev.data)
        elif self.entry is None:
            self.out.write(ev.data)
        elif not self.in_body:
            plain = _plain(ev.data)
            if plain.startswith((b"--- ", b"+++ ")):
                self.labels.append(ev.data)
            elif plain.startswith(_BODY):
                self.in_body = True
            else:
                self.head.append(ev.data)

    def _side(self, oid: str, mode: int, path: bytes) -> Version | None:
        if _ZERO.fullmatch(oid) or (mode & _TYPE) != _REGULAR:
            return None
        import os

        got = self.versions.get(oid, os.fsdecode(path))
        name = os.fsdecode(path)
        if got.shown is None:
            if got.fresh:
                self.summary.problems += 1
                self.warn(f"{name} in commit {self.commit}: " + (
                    "this version is missing from the repository" if got.size < 0 else
                    f"this version is {got.size:,} bytes, over the limit on input: shown as "
                    "stored, not decrypted"))
        elif got.shown.outcome == textconv.NO_KEY:
            self.summary.masked += got.fresh
            self.summary.masked_files.add(path)
        elif got.fresh and got.shown.outcome == textconv.UNREADABLE:
            self.summary.problems += 1
            self.warn(f"{name} in commit {self.commit}: cannot decrypt: "
                      f"{' '.join(got.shown.reason.split())}; shown masked")
        elif got.fresh and got.shown.outcome == textconv.MAC_MISMATCH:
            self.summary.problems += 1
            self.warn(f"{name} in commit {self.commit}: the MAC does not match: this version "
                      "was changed outside sops")
        return got

    def start(self, line: bytes) -> None:
        if not self.entries:
            raise SecretOpsError("git log printed more patches than changed files")
        e = self.entries.pop(0)
        old = self._side(e.old_oid, e.old_mode, e.old_path)
        new = self._side(e.new_oid, e.new_mode, e.new_path)
        sides = [v for v in (old, new) if v is not None]
        unread = any(v.shown is None for v in sides)
        if unread or all(v.shown is not None and v.shown.outcome == textconv.PLAIN
                         for v in sides):
            self.out.write(line)  # git's patch is the right one
            return
        self.entry = e
        self.texts = tuple(  # type: ignore[assignment]
            v.shown.text if v is not None and v.shown is not None else b"" for v in (old, new))
        self.head = [line]
        self.labels = []
        self.in_body = False

    def finish(self) -> None:
        e = self.entry
        if e is None:
            return
        self.entry = None
        o = self.opt
        lines = list(hunks(split_lines(self.texts[0]), split_lines(self.texts[1]),
                           context=o.context, inter_hunk=o.inter_hunk, color=o.color))
        must_show = (e.status in "ADRC" or e.old_mode != e.new_mode)
        if not lines and not must_show:
            return  # the decrypted texts are equal: git shows nothing for the file either
        self.out.write(b"".join(self.head))
        if lines:
            labels = self.labels or [
                _label(b"---", b"a/", None if e.status == "A" else e.old_path, o.color),
                _label(b"+++", b"b/", None if e.status == "D" else e.new_path, o.color)]
            self.out.write(b"".join(labels))
            self.out.write(b"".join(lines))


def _git_stderr(proc: subprocess.Popen[bytes], kept: list[bytes]) -> threading.Thread:
    def drain() -> None:
        assert proc.stderr is not None
        size = 0
        for chunk in iter(lambda: proc.stderr.read(4096), b""):  # type: ignore[union-attr]
            if size < _STDERR_KEPT:
                kept.append(chunk)
                size += len(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return t


def write_log(git_args: list[str], out: IO[bytes], *, env: Mapping[str, str],
              options: Options | None = None, cwd: str | None = None,
              identities: Callable[[str], list[Identity]] | None = None,
              warn: Callable[[str], None] = lambda _: None) -> Summary:
    """Run ``git log -p`` with ``git_args`` (options, revisions, ``--`` and paths, checked by
    the caller) in ``cwd`` and write it to ``out`` with encrypted files decrypted."""
    opt = options or Options()
    argv = ["git", "log", "-z", "--raw", "-p", "--no-textconv", "--no-ext-diff",
            f"--color={'always' if opt.color else 'never'}", *git_args]
    blobs = CatFile(cwd)
    try:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as e:
        blobs.close()
        raise SecretOpsError(f"cannot run git: {e.strerror}") from None
    errors: list[bytes] = []
    drain = _git_stderr(proc, errors)
    run = _Run(out, Versions(blobs, env, trailer=opt.trailer, identities=identities), opt, warn)
    try:
        assert proc.stdout is not None
        for ev in read_log(proc.stdout):
            if isinstance(ev, Changes):
                run.entries = _split_types(ev.entries)
            elif isinstance(ev, PatchLine):
                run.line(ev)
            else:
                run.text(ev.data)
                if isinstance(ev, Text) and ev.data == b"\n":
                    out.flush()  # a commit is complete: let a pager show it
        run.finish()
        out.flush()
    finally:
        if proc.poll() is None and proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()  # a reader that stopped early: git gets SIGPIPE
        code = proc.wait()
        drain.join(timeout=10)
        blobs.close()
    run.summary.unwrapped = run.versions.keys.unwrapped
    if code != 0:
        text = b"".join(errors).decode("utf-8", "replace").strip().splitlines()
        first = text[0] if text else f"exit status {code}"
        raise SecretOpsError(f"git log failed: {first.removeprefix('fatal: ')}")
    return run.summary
