"""Names that say which run made a temporary file, and removal of what dead runs left behind.

Every temporary name secretops makes — the ``.secretops-PID-START-….tmp`` file next to a file
being written, and the ``secretops-PID-START-…`` private directory of ``edit`` and
``exec-file`` — carries the process id and its start time (clock ticks since boot, from
``/proc/PID/stat``). ``kill -9`` leaves such a name behind; the next secretops command that
writes into that directory (or the next ``edit``/``exec-file``) removes it with :func:`sweep`,
but only when all of these hold:

* the name has exactly our pattern;
* it belongs to the user running the command (``st_uid == euid``) and is of the expected kind
  (a regular file, or a directory; never a symbolic link);
* its run is over: no process has that id, or the process with that id started at another
  time (the id was reused), or it is a zombie (it has ended and runs no code, but nothing has
  reaped it yet: a killed many-file run's workers are reparented to PID 1, which in a
  container may reap them late or never). A process we cannot see (``/proc`` mounted with
  ``hidepid``) counts as alive, so a doubt always keeps the file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

TEMP_PREFIX = ".secretops-"
TEMP_SUFFIX = ".tmp"
DIR_PREFIX = "secretops-"


def _stat(pid: int) -> tuple[bytes, int] | None:
    """The state and start time (fields 3 and 22 of ``/proc/PID/stat``), or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        fields = line[line.rindex(b")") + 2:].split()
        return fields[0], int(fields[19])
    except (ValueError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (field 22 of ``/proc/PID/stat``), or ``None`` if it cannot be read."""
    got = _stat(pid)
    return None if got is None else got[1]


_TAG: list[tuple[int, str]] = []  # (pid, tag): read from /proc once per process


def run_tag() -> str:
    """``PID-START`` of this process, the middle of every temporary name it makes (read once
    per process; a forked worker has another pid and reads its own)."""
    pid = os.getpid()
    if not _TAG or _TAG[0][0] != pid:
        _TAG[:] = [(pid, f"{pid}-{start_time(pid) or 0}")]
    return _TAG[0][1]


def _parse(name: str, prefix: str, suffix: str) -> tuple[int, int] | None:
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    parts = name[len(prefix):len(name) - len(suffix)].split("-", 2)
    if len(parts) != 3 or not (parts[0].isdecimal() and parts[1].isdecimal()) or not parts[2]:
        return None
    return int(parts[0]), int(parts[1])


def run_is_over(pid: int, started: int) -> bool:
    """True only when the run ``pid``/``started`` certainly ended."""
    if pid <= 0:
        return False
    got = _stat(pid)
    if got is not None:
        state, now = got
        if started != 0 and now == started and state in (b"Z", b"X"):
            return True  # a zombie runs no code: killed, its parent not yet reaped it
        return started != 0 and now != started  # 0: made where /proc was not readable
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, but another user's: a doubt keeps the file
    return False  # alive but hidden from /proc (hidepid)


def _sweep(directory: str | int, prefix: str, suffix: str,
           kind: Callable[[int], bool], remove: Callable[[str, os.DirEntry[str]], None]) -> int:
    euid = os.geteuid()
    removed = 0
    try:
        entries = os.scandir(directory)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            run = _parse(entry.name, prefix, suffix)
            if run is None:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid != euid or not kind(st.st_mode) or not run_is_over(*run):
                continue
            with contextlib.suppress(OSError):
                remove(entry.name, entry)
                removed += 1
    return removed


def sweep_temp_files(dir_fd: int) -> int:
    """Remove dead runs' ``.secretops-PID-START-….tmp`` files from the directory ``dir_fd``."""
    return _sweep(dir_fd, TEMP_PREFIX, TEMP_SUFFIX, stat.S_ISREG,
                  lambda name, _: os.unlink(name, dir_fd=dir_fd))


def sweep_private_dirs(base: str, remove: Callable[[str], None]) -> int:
    """Remove dead runs' ``secretops-PID-START-…`` directories from ``base`` with ``remove``."""
    return _sweep(base, DIR_PREFIX, "", stat.S_ISDIR,
                  lambda _, entry: remove(entry.path))


def remove_tree(directory: str) -> None:
    """Overwrite then delete every regular file (best effort on tmpfs), then the directory."""
    import shutil

    for root, _, files in os.walk(directory):
        for f in files:
            p = os.path.join(root, f)
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    continue  # a FIFO: opening it would block
                with open(p, "r+b") as fh:
                    fh.write(b"\0" * st.st_size)
    shutil.rmtree(directory, ignore_errors=True)
