"""The one place plaintext may touch disk: a private temporary file for ``edit`` (and
``exec-file``).

:func:`private_file` creates a 0700 directory — on ``/dev/shm`` (memory, never written to a
disk) where it exists, else in the system temp directory — holding one 0600 file with the
plaintext, and removes the directory when the ``with`` block ends: normally, on an exception,
on Ctrl-C, and on SIGTERM / SIGHUP (turned into :class:`Terminated` for the duration, so the
``finally`` clauses run). Only SIGKILL can leave it behind, which no program can prevent: the
directory's name, ``secretops-PID-START-…``, says which run made it, and the next
``edit``/``exec-file`` removes the directories of runs that are over
(:mod:`secretops.leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from types import FrameType

from secretops.leftovers import DIR_PREFIX, remove_tree, run_tag, sweep_private_dirs
from secretops.staging import write_all

_SHM = "/dev/shm"


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while plaintext was on disk."""


def _base() -> str:
    if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK | os.X_OK):
        return _SHM
    return tempfile.gettempdir()


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` inside the block."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def private_dir(owner: tuple[int, int] | None = None) -> Iterator[str]:
    """A fresh 0700 directory (memory-backed where possible), removed with its content after.
    ``owner`` (uid, gid) gives it to another user (``exec-file --user``), still 0700."""
    base = _base()
    sweep_private_dirs(base, remove_tree)  # what runs killed with SIGKILL left
    with terminate_as_exception():
        directory = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{run_tag()}-", dir=base)
        try:
            if owner is not None:
                os.chown(directory, *owner)
            yield directory
        finally:
            remove_tree(directory)


@contextlib.contextmanager
def private_file(name: str, data: bytes,
                 owner: tuple[int, int] | None = None) -> Iterator[str]:
    """A 0600 file called ``name`` holding ``data`` in a fresh 0700 directory; removed after.
    ``owner`` (uid, gid): both belong to that user."""
    with private_dir(owner) as directory:
        path = os.path.join(directory, os.path.basename(name) or "secret")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            write_all(fd, data)
        finally:
            os.close(fd)
        yield path
