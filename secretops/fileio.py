"""File writes that never leave a half-written or wrongly-permissioned file.

:func:`atomic_write` writes to a temporary file in the target's directory, fsyncs it, and renames
it over the target, so a reader (or a crash) sees either the old file or the new one. An existing
file keeps its mode; a new file gets ``new_mode`` (0600 for decrypted output). A symbolic link
is written through, as sops does: the file it points to is replaced and the link stays — so
``encrypt -i link.yaml`` never leaves the plaintext behind at the link's target.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import BinaryIO

from secretops.errors import ExitCode, SecretOpsError


def _check_link(path: str) -> None:
    """Follow a symbolic link only where the kernel's ``protected_symlinks`` would: not one
    that another user owns in a sticky, world-writable directory such as /tmp (someone could
    point it at a file of theirs and receive the plaintext)."""
    try:
        link = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISLNK(link.st_mode) or link.st_uid == os.geteuid():
        return
    parent = os.stat(os.path.dirname(os.path.abspath(path)))
    if parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH:
        raise SecretOpsError(
            "refusing to write through a symbolic link another user owns in a shared "
            "directory", code=ExitCode.COULD_NOT_WRITE_OUTPUT, file=path,
        )


def atomic_write(path: str, data: bytes, new_mode: int = 0o600) -> None:
    _check_link(path)
    target = os.path.realpath(path)  # errors still name the path the user gave
    directory = os.path.dirname(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = new_mode
    except OSError as e:
        raise SecretOpsError(
            f"cannot write: {e.strerror}", code=ExitCode.COULD_NOT_WRITE_OUTPUT, file=path
        ) from None
    tmp = None
    try:
        tmp = os.path.join(directory, f".secretops-{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        tmp = None
        try:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    except OSError as e:
        raise SecretOpsError(
            f"cannot write: {e.strerror}", code=ExitCode.COULD_NOT_WRITE_OUTPUT, file=path
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def read_bounded(f: BinaryIO, what: str = "the input") -> bytes:
    """All of ``f``, refused (:class:`~secretops.limits.LimitError`) past the input size limit
    without reading more than one byte beyond it."""
    from secretops.limits import MAX_INPUT_BYTES, check_input_size

    data = f.read(MAX_INPUT_BYTES + 1)
    check_input_size(data, what)
    return data


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-`` is standard input), with a clean error; at most the
    input size limit (``docs/security.md``, "Limits on input")."""
    import sys

    try:
        if path == "-":
            return read_bounded(sys.stdin.buffer)
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
