"""A file's new content, staged in its target's directory until it is put in place.

Every file secretops replaces — one at a time (:func:`secretops.fileio.write_file`) or a batch
at a time (:mod:`secretops.batchwrite`) — is written in the same steps:

1. :func:`stage` writes the content into a new file in the target's directory: an *unnamed*
   one (Linux ``O_TMPFILE``), or where the filesystem has none (``EOPNOTSUPP``; ``EISDIR`` on
   old kernels; not Linux) one named ``.secretops-PID-START-RANDOM.tmp``, the names
   :mod:`secretops.leftovers` sweeps once their run is over. Either is created 0600 and gets
   its final mode only once the data is complete; it is fsynced unless the caller makes a
   whole batch durable at once.
2. :func:`put_in_place` names it: linked under a temp name and renamed over the target, or
   (``exclusive``) linked under the target's own name, refused if that is taken. An unnamed
   file is linked through ``/proc/self/fd``; where that is refused (no ``/proc``, gVisor or a
   seccomp filter, ``EXDEV`` on some mounts) its content is copied into a named temp file,
   which is fsynced and put in place instead.
3. :func:`sync_directory` makes the new name durable. Its failure is reported: the new content
   is in place, but whether it survives a crash is not known.

A filesystem where an unnamed file could not be opened or named is remembered for the rest of
the process, and the next files there are named from the start (a matter of speed only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from secretops.leftovers import TEMP_PREFIX, TEMP_SUFFIX, run_tag

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)  # Linux only; elsewhere the named temp file
_NAMED_ONLY: set[int] = set()  # st_dev of the filesystems where unnamed files failed
_CHUNK = 1 << 20


class Staged:
    """A staged file: ``fd`` in the directory ``dfd``, named ``temp`` ("" while unnamed)."""

    __slots__ = ("dfd", "fd", "temp")

    def __init__(self, dfd: int, fd: int, temp: str) -> None:
        self.dfd, self.fd, self.temp = dfd, fd, temp


def temp_name() -> str:
    """A new temp file name for this run (:mod:`secretops.leftovers` removes it if we die)."""
    return f"{TEMP_PREFIX}{run_tag()}-{os.urandom(6).hex()}{TEMP_SUFFIX}"


def write_all(fd: int, data: bytes | memoryview) -> None:
    """All of ``data`` into ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_named(dfd: int) -> Staged:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    temp = temp_name()
    return Staged(dfd, os.open(temp, flags, 0o600, dir_fd=dfd), temp)


def _open(dfd: int) -> Staged:
    if _O_TMPFILE:
        dev = os.fstat(dfd).st_dev
        if dev not in _NAMED_ONLY:
            try:  # read-write: should naming it be refused, its content is copied
                return Staged(dfd, os.open(".", _O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600,
                                           dir_fd=dfd), "")
            except OSError:  # EOPNOTSUPP, EISDIR on old kernels, ...
                _NAMED_ONLY.add(dev)
    return _open_named(dfd)


def _fill(fd: int, data: bytes | memoryview, mode: int, sync: bool) -> None:
    write_all(fd, data)
    os.fchmod(fd, mode)  # after the data: a named temp file is 0600 while it fills
    if sync:
        os.fsync(fd)


def stage(dfd: int, data: bytes, mode: int, *, sync: bool) -> Staged:
    """``data`` in a new file in the directory ``dfd``, with ``mode``; fsynced unless ``sync``
    is False (the caller syncs the filesystem). :func:`discard` it once done with it."""
    s = _open(dfd)
    try:
        _fill(s.fd, data, mode, sync)
    except BaseException:
        discard(s)
        raise
    return s


def _copy_to_named(s: Staged) -> None:
    """Replace the unnamed ``s`` by a named, fsynced copy (its name could not be given)."""
    copy = _open_named(s.dfd)
    try:
        offset = 0
        while chunk := os.pread(s.fd, _CHUNK, offset):
            write_all(copy.fd, chunk)
            offset += len(chunk)
        os.fchmod(copy.fd, stat.S_IMODE(os.fstat(s.fd).st_mode))
        os.fsync(copy.fd)
    except BaseException:
        discard(copy)
        raise
    discard(s)
    s.fd, s.temp = copy.fd, copy.temp


def put_in_place(s: Staged, name: str, exclusive: bool) -> None:
    """Give the staged file ``name`` in its directory: renamed over it, or (``exclusive``)
    linked as it, raising :class:`FileExistsError` if it is taken. The data must be durable
    already (an fsync, a ``syncfs``); :func:`discard` still closes it."""
    if not s.temp:
        target = name if exclusive else temp_name()
        try:  # linkat(AT_SYMLINK_FOLLOW), which dst_dir_fd selects
            os.link(f"/proc/self/fd/{s.fd}", target, dst_dir_fd=s.dfd)
        except FileExistsError:
            raise
        except OSError:  # no /proc, a sandbox refusing linkat of it, EXDEV, ...
            _NAMED_ONLY.add(os.fstat(s.dfd).st_dev)
            _copy_to_named(s)
        else:
            if exclusive:
                return
            s.temp = target
    if exclusive:
        os.link(s.temp, name, src_dir_fd=s.dfd, dst_dir_fd=s.dfd)
    else:
        os.replace(s.temp, name, src_dir_fd=s.dfd, dst_dir_fd=s.dfd)
        s.temp = ""


def discard(s: Staged) -> None:
    """Close a staged file; a temp name still there (not renamed) is removed."""
    with contextlib.suppress(OSError):
        os.close(s.fd)
    if s.temp:
        with contextlib.suppress(OSError):
            os.unlink(s.temp, dir_fd=s.dfd)
        s.temp = ""


def sync_directory(dfd: int) -> None:
    """Make the names put in the directory ``dfd`` durable; an :class:`OSError` means they
    may not survive a crash. EINVAL is no error: the filesystem cannot sync a directory at
    all (as PostgreSQL's ``fsync_fname`` treats it), so there is nothing more to wait for."""
    try:
        os.fsync(dfd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise


def not_durable(e: OSError) -> str:
    """The message of a file put in place whose directory could not be synced."""
    return (f"written, but it may not survive a crash: cannot sync its directory: "
            f"{e.strerror or e}")
