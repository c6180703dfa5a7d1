"""Which files a many-file command works on: files named, directories walked, listed names.

:func:`expand` turns a command's arguments into :class:`Item` objects, each a path and
whether it was *named* (on the command line or in a ``--files-from`` list) or *found* in a
directory. A command treats the two differently: a named file that is not what it expects is
that file's failure; a found file that is not (an encrypted file for ``decrypt``, a file a
rule covers for ``encrypt --all`` …) is passed over in silence.

* **A file** named is taken as it is, even one that does not exist (its failure then says so).
* **A directory** is walked to the bottom. Inside a git work tree, git says which files it
  holds — ``git ls-files -z --cached --others --exclude-standard``, run in that directory — so
  what ``.gitignore``, ``.git/info/exclude`` and ``core.excludesFile`` ignore is skipped, as
  ``git add`` skips it, while a tracked file is always listed. A directory that git ignores as
  a whole is walked like one outside git when it is named. Outside a work tree (or when git
  cannot be run) every file below is taken. Either way hidden directories below the one named
  (``.git``, ``.venv``, ``.cache`` …), symbolic links, special files and ``.sops.yaml`` files
  are skipped; hidden *files* (``.env``) are not.
* **A list** (``--files-from FILE``, ``-`` for standard input) holds one name per line, or
  with ``--null`` one per NUL byte, as ``find -print0``, ``git ls-files -z`` and ``xargs -0``
  use; empty names are skipped. A newline list holding a NUL byte is refused (it was meant for
  ``--null``). Each name is a file or a directory, as if given on the command line.

A name is taken once (the first time), compared after normalising (``./a`` is ``a``). The list
(:data:`~secretops.limits.MAX_FILE_LIST_BYTES`) and the run (:data:`~secretops.limits.
MAX_FILES` names) are limited before more is read or walked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO, NamedTuple

from secretops.configpath import CONFIG_NAMES
from secretops.errors import ExitCode, SecretOpsError
from secretops.limits import MAX_FILE_LIST_BYTES, MAX_FILES, LimitError

_SKIPPED_NAMES = frozenset((*CONFIG_NAMES, ".git"))


class Item(NamedTuple):
    """One file of a many-file run."""

    path: str
    named: bool  # given by name (a failure if unsuitable), else found in a directory


def read_list(source: str, *, null: bool) -> list[str]:
    """The names in a ``--files-from`` list (``-``: standard input)."""
    try:
        if source == "-":
            data = _bounded(sys.stdin.buffer, source)
        else:
            with open(source, "rb") as f:
                data = _bounded(f, source)
    except OSError as e:
        raise SecretOpsError(f"cannot read the --files-from list: {e.strerror}", file=source,
                             code=ExitCode.COULD_NOT_READ_INPUT) from None
    if not null and b"\0" in data:
        raise SecretOpsError(
            "the --files-from list holds a NUL byte, but is read one name per line",
            file=source, code=ExitCode.INVALID_INPUT,
            hints=("a list from find -print0 or git ls-files -z needs --null (-0)",))
    sep = b"\0" if null else b"\n"
    return [os.fsdecode(name) for name in data.split(sep) if name]


def _bounded(f: BinaryIO, source: str) -> bytes:
    data = f.read(MAX_FILE_LIST_BYTES + 1)
    if len(data) > MAX_FILE_LIST_BYTES:
        raise LimitError(f"the --files-from list is over the limit of "
                         f"{MAX_FILE_LIST_BYTES:,} bytes", file=source,
                         hints=("split it, or name directories instead of every file",))
    return data


class Expanded(NamedTuple):
    """The files of a run, and the directories named (which ``--output-dir`` must avoid)."""

    items: list[Item]
    directories: list[str]


def expand(paths: Sequence[str], listed: Iterable[str] = ()) -> Expanded:
    """The files of ``paths`` (command-line arguments) and ``listed`` (a list's names), each
    once, in the order given (a directory's files sorted by their path in it)."""
    seen: set[str] = set()
    out: list[Item] = []
    directories: list[str] = []

    def add(path: str, named: bool) -> None:
        key = os.path.normpath(path)
        if key in seen:
            return
        if len(out) >= MAX_FILES:
            raise LimitError(f"more than {MAX_FILES:,} files in one run",
                             hints=("run it on parts of the tree",))
        seen.add(key)
        out.append(Item(path, named))

    for path in (*paths, *listed):
        if os.path.isdir(path):
            directories.append(path)
            for found in walk(path):
                add(found, False)
        else:
            add(path, True)
    return Expanded(out, directories)


def walk(directory: str) -> Iterator[str]:
    """The files below ``directory`` that a many-file command looks at (module docstring)."""
    listed = _git_files(directory)
    if listed is None:
        yield from _plain_walk(directory)
        return
    for rel in listed:
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts[:-1]) or parts[-1] in _SKIPPED_NAMES:
            continue
        path = _join(directory, *parts)
        if _regular(path):
            yield path


def _join(directory: str, *parts: str) -> str:
    """``directory/parts``, without a leading ``./`` for the current directory."""
    return os.path.join(*parts) if directory in (".", "./") else os.path.join(directory, *parts)


def _plain_walk(directory: str) -> Iterator[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, directory)
        found += [name if rel == os.curdir else os.path.join(rel, name) for name in files
                  if name not in _SKIPPED_NAMES]
    for name in sorted(found):  # the order git lists them in
        path = _join(directory, name)
        if _regular(path):
            yield path


def _regular(path: str) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:  # removed since it was listed
        return False


def _git(directory: str, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(["git", "-C", directory, *args], stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
    except OSError:  # no git: every file counts
        return None


def _git_files(directory: str) -> list[str] | None:
    """The paths below ``directory`` (relative to it, ``/``-separated) that git does not
    ignore; None outside a work tree, without git, or when ``directory`` is ignored whole."""
    p = _git(directory, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if p is None or p.returncode != 0:
        return None  # not a work tree (or git refuses it): walk it plainly
    # git lists untracked files apart from tracked ones: one order for both
    names = sorted(os.fsdecode(n) for n in p.stdout.split(b"\0") if n)
    if not names:
        ignored = _git(directory, "check-ignore", "-q", ".")
        if ignored is not None and ignored.returncode == 0:
            return None  # named on purpose although ignored: every file below
    return names


def in_work_tree(path: str) -> str | None:
    """The top directory of the git work tree ``path`` (a directory) is in, or None."""
    p = _git(path, "rev-parse", "--show-toplevel")
    if p is None or p.returncode != 0:
        return None
    return os.fsdecode(p.stdout.rstrip(b"\n")) or None


def ignored_by_git(directory: str, top: str) -> bool:
    """Does the work tree at ``top`` ignore ``directory`` (which need not exist yet)?"""
    # the trailing slash says "a directory", so a pattern such as `out/` applies before it exists
    path = os.path.join(os.path.abspath(directory), "")
    p = _git(top, "check-ignore", "-q", "--no-index", "--", path)
    return p is not None and p.returncode == 0
