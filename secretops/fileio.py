"""How secretops reads its input files and writes every file it writes.

:func:`write_file` is the only way the CLI writes a file. Its rules (``docs/security.md``,
"Writing files", is the user's version):

1. **A regular file, or a name that does not exist yet, is replaced atomically**
   (:mod:`secretops.staging`). The bytes go into an *unnamed* file in the target's directory
   (Linux ``O_TMPFILE``), are fsynced, and only then get a name,
   ``.secretops-PID-START-RANDOM.tmp``, that is at once renamed over the target; then the
   directory is fsynced, and should that fail the write is reported failed (exit 3: the new
   content is in place, but may not survive a crash). A ``kill -9`` before the naming leaves
   nothing on disk; one in the instant between naming and renaming leaves a complete temp
   file, which the next secretops process writing into that directory removes
   (:mod:`secretops.leftovers`; once per directory and process). Where ``O_TMPFILE`` is
   missing, or an unnamed file cannot be named (no ``/proc``, gVisor, seccomp, ``EXDEV``), the
   temp file is named (0600) from the start, or the unnamed one copied into it, and removed
   the same way.
2. **Anything else is written in place, never replaced or chmod-ed**, as sops does: a FIFO, a
   device, ``/dev/stdout``, ``/dev/fd/N`` (process substitution). A name for one of this
   process's own descriptors is written through that descriptor. A FIFO or device owned by
   another user (neither us nor root) is refused — whoever planted it would read what we
   write — and so is a socket (it cannot be opened as a file).
3. **Rewriting in place** (``-i``, ``set``, ``unset``, ``updatekeys``, ``rotate``, ``edit``,
   ``--merge-into``, the merge driver) accepts only a regular file: :func:`read_input` with
   ``rewrite=True`` refuses anything else before reading it (reading a FIFO would block), and
   :func:`write_file` with ``rewrite=True`` checks again.
4. **Modes.** The user's own existing file keeps its mode. A new file, or one another user
   owns, gets ``new_mode``: 0600 for plaintext (``private=True``), else by default
   ``0666 & ~umask`` as for any file a program creates.
5. **Many files at once** (inside :func:`batched`, as a many-file run's workers write): the
   same rules, but rule 1's fsyncs are made once for a whole batch of files — each file's
   data is staged unsynced, one ``syncfs`` makes the batch's data durable, then each file is
   renamed into place, then one fsync per directory makes the names durable — should it fail,
   that directory's files fail (:mod:`secretops.batchwrite`). A crash leaves each target old
   or new, as rule 1 says.

A symbolic link is followed, hop by hop (the link stays; the file it points to is replaced),
except one that another user owns in a sticky world-writable directory such as /tmp, the
links the kernel's ``protected_symlinks`` refuses to follow.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from secretops.errors import ExitCode, SecretOpsError
from secretops.leftovers import sweep_temp_files
from secretops.staging import discard, not_durable, put_in_place, stage, sync_directory, write_all

if TYPE_CHECKING:
    from secretops.batchwrite import Batch

_FD_DIR = re.compile(r"/proc/(\d+)(?:/task/\d+)?/fd")
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _fail(message: str, path: str) -> SecretOpsError:
    return SecretOpsError(message, code=ExitCode.COULD_NOT_WRITE_OUTPUT, file=path)


def write_error(message: str, path: str) -> SecretOpsError:
    """The error (exit 3) of a file that could not be written."""
    return _fail(message, path)


def _not_rewritable(kind: str, path: str) -> SecretOpsError:
    return SecretOpsError(
        f"{kind}, not a regular file: only a regular file is rewritten in place",
        code=ExitCode.COULD_NOT_WRITE_OUTPUT, file=path,
        hints=("copy it to a regular file first",),
    )


def _check_link(path: str, link: os.stat_result, parent: str) -> None:
    """Follow a symbolic link only where the kernel's ``protected_symlinks`` would: not one
    that another user owns in a sticky, world-writable directory such as /tmp (someone could
    point it at a file of theirs and receive the plaintext)."""
    if link.st_uid == os.geteuid():
        return
    mode = os.stat(parent).st_mode
    if mode & stat.S_ISVTX and mode & stat.S_IWOTH:
        raise _fail("refusing to write through a symbolic link another user owns in a shared "
                    "directory", path)


def _resolve(path: str) -> tuple[str, bool]:
    """Follow symbolic links one hop at a time; return the final name and whether it is an
    entry of a ``/proc/PID/fd`` directory (a descriptor, such as ``/dev/stdout``)."""
    p = os.path.abspath(path)
    for _ in range(40):
        parent = os.path.realpath(os.path.dirname(p))
        p = os.path.join(parent, os.path.basename(p))
        if _FD_DIR.fullmatch(parent):
            return p, True
        try:
            st = os.lstat(p)
        except OSError:
            return p, False
        if not stat.S_ISLNK(st.st_mode):
            return p, False
        _check_link(path, st, parent)
        p = os.path.join(parent, os.readlink(p))
    raise _fail("too many levels of symbolic links", path)


def default_mode(private: bool) -> int:
    """0600 for plaintext; else what a program's new file gets, ``0666 & ~umask``."""
    if private:
        return 0o600
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_file(path: str, data: bytes, *, private: bool, new_mode: int | None = None,
               rewrite: bool = False, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` by the rules of the module docstring.

    ``private``: the data is plaintext (new and foreign files become 0600). ``rewrite``: an
    in-place rewrite, refused for anything but a regular file. ``exclusive``: never replace a
    file (``keygen -o``); raises :class:`FileExistsError` if one is there.
    Every other failure is a :class:`SecretOpsError` with exit 3, and leaves the target as it
    was.
    """
    mode = default_mode(private) if new_mode is None else new_mode
    try:
        final, descriptor = _resolve(path)
        if descriptor:
            if rewrite:
                raise _not_rewritable("a file descriptor", path)
            _write_descriptor(final, data)
            return
        try:
            st: os.stat_result | None = os.stat(final)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            if rewrite:
                raise _not_rewritable(_kind(st.st_mode), path)
            _write_special(path, final, st, data)
            return
        if exclusive and os.path.lexists(path):
            raise FileExistsError(path)
        if st is not None and st.st_uid == os.geteuid():
            mode = stat.S_IMODE(st.st_mode)
        if _batch is not None:
            _batch.stage(final, data, mode, exclusive, path)
        else:
            _replace(final, data, mode, exclusive, path)
    except FileExistsError:
        if exclusive:
            raise
        raise _fail("cannot write: the file appeared while it was written", path) from None
    except OSError as e:
        raise _fail(f"cannot write: {e.strerror or e}", path) from None


def _write_descriptor(final: str, data: bytes) -> None:
    """``/dev/stdout``, ``/dev/fd/N``: write through our own descriptor N where it is one."""
    pid = _FD_DIR.fullmatch(os.path.dirname(final))
    number = os.path.basename(final)
    if pid is not None and int(pid[1]) == os.getpid() and number.isdecimal():
        fd = int(number)
        if fd in (1, 2):
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
        os.fstat(fd)  # EBADF: not open here
        write_all(fd, data)
        return
    fd = os.open(final, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)  # another process's
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, 0)
        write_all(fd, data)
    finally:
        os.close(fd)


def _write_special(path: str, final: str, st: os.stat_result, data: bytes) -> None:
    """A FIFO or device: opened (never created) and written in place, its mode untouched."""
    kind = _kind(st.st_mode)
    if stat.S_ISSOCK(st.st_mode) or stat.S_ISDIR(st.st_mode):
        raise _fail(f"cannot write: it is {kind}", path)
    if st.st_uid not in (os.geteuid(), 0):
        raise _fail(f"refusing to write into {kind} another user owns (they would read what "
                    "is written)", path)
    fd = os.open(final, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise _fail("cannot write: the file was replaced while it was opened", path)
        write_all(fd, data)
    finally:
        os.close(fd)


# Directories this process has swept already: a dead run's leftovers are there or not when we
# first write into one, and sweeping before every write would make a many-file run over one
# directory quadratic (every write listing every file).
_swept: set[tuple[int, int]] = set()


def sweep_once(dfd: int) -> None:
    """Remove dead runs' temp files from the directory ``dfd``, once per process."""
    st = os.fstat(dfd)
    if (st.st_dev, st.st_ino) not in _swept:
        sweep_temp_files(dfd)
        _swept.add((st.st_dev, st.st_ino))


def _replace(final: str, data: bytes, mode: int, exclusive: bool, path: str) -> None:
    directory, name = os.path.split(final)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sweep_once(dfd)
        staged = stage(dfd, data, mode, sync=True)
        try:
            put_in_place(staged, name, exclusive)
        finally:
            discard(staged)
        try:
            sync_directory(dfd)
        except OSError as e:
            raise _fail(not_durable(e), path) from None
    finally:
        os.close(dfd)


# -- many files at once: durable in batches (secretops.batchwrite) ---------------------------

_batch: Batch | None = None


@contextlib.contextmanager
def batched() -> Iterator[Batch]:
    """Within it, :func:`write_file`'s atomic replacements are staged in a
    :class:`~secretops.batchwrite.Batch` and made durable together at its commits, rather than
    one by one (rule 5); whatever is still staged when it ends is discarded."""
    from secretops.batchwrite import Batch

    global _batch
    if _batch is not None:
        raise RuntimeError("batches do not nest")
    _batch = batch = Batch()
    try:
        yield batch
    finally:
        _batch = None
        batch.close()


def read_bounded(f: BinaryIO, what: str = "the input") -> bytes:
    """All of ``f``, refused (:class:`~secretops.limits.LimitError`) past the input size limit
    without reading more than one byte beyond it."""
    from secretops.limits import MAX_INPUT_BYTES, check_input_size

    data = f.read(MAX_INPUT_BYTES + 1)
    check_input_size(data, what)
    return data


def read_input(path: str, *, rewrite: bool = False) -> bytes:
    """The bytes of ``path`` (``-`` is standard input), with a clean error; at most the
    input size limit (``docs/security.md``, "Limits on input").

    ``rewrite``: the file is about to be rewritten in place, so it must be a regular file;
    anything else is refused (exit 3) before a byte is read.
    """
    try:
        if path == "-":
            return read_bounded(sys.stdin.buffer)
        if rewrite:
            return _read_regular(path)
        with open(path, "rb") as f:
            return read_bounded(f)
    except SecretOpsError as e:
        raise e.with_file(path) from None
    except FileNotFoundError:
        raise SecretOpsError(
            "no such file", code=ExitCode.COULD_NOT_READ_INPUT, file=path
        ) from None
    except IsADirectoryError:
        raise SecretOpsError(
            "is a directory", code=ExitCode.COULD_NOT_READ_INPUT, file=path
        ) from None
    except OSError as e:
        raise SecretOpsError(
            f"cannot read: {e.strerror}", code=ExitCode.COULD_NOT_READ_INPUT, file=path
        ) from None


def _read_regular(path: str) -> bytes:
    final, descriptor = _resolve(path)
    if descriptor:
        raise _not_rewritable("a file descriptor", path)
    if _batch is not None:
        _batch.before_reading(final)
    st = os.stat(final)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(st.st_mode):
        raise _not_rewritable(_kind(st.st_mode), path)
    # O_NONBLOCK: should a FIFO be swapped in meanwhile, opening it does not wait
    fd = os.open(final, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_rewritable("not a regular file", path)
        return read_bounded(f)
