"""Many files rewritten at once, each atomically, made durable together.

A one-file command writes through :func:`secretops.fileio.write_file`, which makes each file
durable on its own: an fsync of the new data before the rename, an fsync of the directory
after it (on ext4 each is a journal commit and a disk cache flush, ~2.6 ms a file together).
A many-file run (:mod:`secretops.bulk.pool`) writes inside :func:`secretops.fileio.batched`,
and its writes go through a :class:`Batch`:

1. **stage**: each file's new content goes into a temp file in its target's directory, held
   open, with its final mode, not synced — :func:`secretops.staging.stage`, as ``write_file``
   does: unnamed (``O_TMPFILE``), or on a filesystem without that a named 0600
   ``.secretops-PID-START-….tmp`` file;
2. **commit**, at the end of the pool's batch of files (up to 16): one ``syncfs(2)`` per
   filesystem makes all the staged data durable at once (where ``syncfs`` is missing, or
   fails, an fsync per file); then each file is named and renamed over its target
   (:func:`secretops.staging.put_in_place`, which copies an unnamed file that cannot be
   linked into a named, fsynced one); then one fsync of each directory written into makes
   the new names durable. Only then does the pool report the batch's files done.

What a crash leaves, at any moment, is what ``write_file`` leaves: each target is exactly its
old content or exactly its new content. Before the data is synced nothing has a name and the
target is untouched; a rename happens only after the data it names is durable, so no target is
ever an empty or truncated file after a power cut; between naming and renaming one file a
complete temp file may be left, which the next secretops write into that directory removes
(:mod:`secretops.leftovers`). A file whose job failed is dropped unstaged, its target untouched;
one that cannot be put in place (its fsync or rename fails) is reported failed, and the others
are committed all the same; so are the files put into a directory whose fsync then fails (they
are in place, but may not survive a crash).

``syncfs`` also writes out what other programs left dirty on the same filesystem; it is the
one call that covers every file of the batch, where per-file fsyncs cost a journal commit
each. The names are made durable by directory fsyncs rather than a second ``syncfs``: as
cheap on ext4 (the first commits the journal with every rename in it) and steadier when
other programs keep writing (measured: 16 files over 4 directories, ~3.4 ms a batch either
way, but a second ``syncfs`` now and then took 15–30 ms). On Linux before 5.8 ``syncfs``
does not report write errors, so there the files are fsynced one by one.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import NamedTuple

from secretops.errors import SecretOpsError
from secretops.fileio import sweep_once, write_error
from secretops.staging import Staged, discard, not_durable, put_in_place, stage, sync_directory


class _Staged(NamedTuple):
    owner: int
    path: str  # as the caller named it, for messages
    directory: str
    name: str
    file: Staged  # the new content, complete but not yet synced, in the batch's ``directory``
    exclusive: bool


class Batch:
    """Atomic replacements of many files, made durable together (module docstring).

    Writes made while ``owner`` is N belong to N (a many-file run's item); :meth:`drop`
    discards N's staged writes (its job failed), :meth:`commit` puts everything staged in
    place, and ``failed`` maps the owners whose file could not be put in place to the error.
    """

    def __init__(self) -> None:
        self.owner = 0
        self.failed: dict[int, SecretOpsError] = {}
        self._staged: list[_Staged] = []
        self._dirs: dict[str, tuple[int, int]] = {}  # directory → descriptor, st_dev

    def stage(self, final: str, data: bytes, mode: int, exclusive: bool, path: str) -> None:
        """Write ``data`` into a temp file in ``final``'s directory, to go in place at the
        next :meth:`commit` (not synced: the commit syncs the whole batch at once)."""
        directory, name = os.path.split(final)
        file = stage(self._dir(directory), data, mode, sync=False)
        self._staged.append(_Staged(self.owner, path, directory, name, file, exclusive))

    def before_reading(self, final: str) -> None:
        """A file about to be read for a rewrite that is staged already (the same file under
        two names) is put in place first: the second job reads what the first one wrote."""
        directory, name = os.path.split(final)
        if any(s.directory == directory and s.name == name for s in self._staged):
            self.commit()

    def drop(self, owner: int) -> None:
        """Discard ``owner``'s staged writes: its targets stay as they are."""
        keep = []
        for s in self._staged:
            if s.owner == owner:
                discard(s.file)
            else:
                keep.append(s)
        self._staged = keep

    def commit(self) -> None:
        """Sync the staged data (one ``syncfs`` per filesystem), put each file in place, make
        the names durable (an fsync of each directory written into; the files of one whose
        fsync fails are failed)."""
        staged = self._staged  # emptied as it goes: an interruption leaves the rest to close()
        if not staged:
            return
        synced = {dev for dev, dfd in self._devices(s.file.dfd for s in staged).items()
                  if syncfs(dfd)}
        placed: dict[int, list[_Staged]] = {}  # directory descriptor -> the files put there
        while staged:
            s = staged.pop(0)
            try:
                if self._dirs[s.directory][1] not in synced:
                    os.fsync(s.file.fd)
                put_in_place(s.file, s.name, s.exclusive)
                placed.setdefault(s.file.dfd, []).append(s)
            except OSError as e:
                self.failed[s.owner] = write_error(_publish_error(e, s.exclusive), s.path)
            finally:
                discard(s.file)
        for dfd, done in placed.items():  # on ext4 the first commits the journal: the rest cheap
            try:
                sync_directory(dfd)
            except OSError as e:
                for s in done:
                    self.failed.setdefault(s.owner, write_error(not_durable(e), s.path))

    def close(self) -> None:
        """Discard what is staged and close the directories."""
        for s in self._staged:
            discard(s.file)
        self._staged = []
        for dfd, _ in self._dirs.values():
            os.close(dfd)
        self._dirs = {}

    def _dir(self, directory: str) -> int:
        got = self._dirs.get(directory)
        if got is None:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sweep_once(dfd)
                got = self._dirs[directory] = (dfd, os.fstat(dfd).st_dev)
            except BaseException:
                os.close(dfd)
                raise
        return got[0]

    def _devices(self, dfds: Iterable[int]) -> dict[int, int]:
        """One directory descriptor per filesystem among ``dfds``: the first opened, before
        any of the batch's data there was written (``syncfs`` reports the write errors since
        the descriptor it is given was opened)."""
        wanted = set(dfds)
        out: dict[int, int] = {}
        for dfd, dev in self._dirs.values():  # in the order opened
            if dfd in wanted:
                out.setdefault(dev, dfd)
        return out


def _publish_error(e: OSError, exclusive: bool) -> str:
    if isinstance(e, FileExistsError) and exclusive:
        return "the file appeared while it was written: not replaced"
    return f"cannot write: {e.strerror or e}"


_SYNCFS: list[Callable[[int], int] | None] = []


#: Filesystems whose ``syncfs`` writes out and commits every file's data, as an fsync of each
#: would. Elsewhere it may do nothing (FUSE but virtiofs: no FUSE_FSYNC is sent) or is absent
#: (CIFS, 9p, NFS leave it to each file's flush), so each file is fsynced there.
SYNCFS_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs",
                                "overlay", "zfs", "bcachefs"})
_FSTYPES: dict[int, str | None] = {}  # st_dev -> its filesystem type, read once per process


def fs_type(fd: int) -> str | None:
    """The type of the filesystem ``fd`` is on, from ``/proc/self/mountinfo`` (the last mount
    of its device number); None when it cannot be told."""
    dev = os.fstat(fd).st_dev
    if dev not in _FSTYPES:
        want, found = f"{os.major(dev)}:{os.minor(dev)}", None
        with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8",
                                                errors="replace") as f:
            for line in f:
                mount, _, fs = line.partition(" - ")
                fields = mount.split()
                if len(fields) > 2 and fields[2] == want and fs.split():
                    found = fs.split()[0]
        _FSTYPES[dev] = found
    return _FSTYPES[dev]


def syncfs(fd: int) -> bool:
    """Linux ``syncfs(2)``: write out and commit everything on the filesystem of ``fd``; True
    when it ran and reported no error. False where it is missing (not Linux, no libc), on Linux
    before 5.8, whose ``syncfs`` does not report write errors, and on a filesystem not in
    :data:`SYNCFS_FILESYSTEMS` (its ``syncfs`` need not write the files' data out)."""
    if not _SYNCFS:
        _SYNCFS.append(_load_syncfs())
    call = _SYNCFS[0]
    return call is not None and fs_type(fd) in SYNCFS_FILESYSTEMS and call(fd) == 0


def _load_syncfs() -> Callable[[int], int] | None:
    version = re.match(r"(\d+)\.(\d+)", os.uname().release) if sys.platform == "linux" else None
    if version is None or (int(version[1]), int(version[2])) < (5, 8):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        return None
    call.argtypes, call.restype = [ctypes.c_int], ctypes.c_int
    return call
