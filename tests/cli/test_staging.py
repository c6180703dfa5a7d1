"""Staging a file's new content and putting it in place (``secretops/staging.py``), shared by
one-file writes (``fileio.write_file``) and many-file batches (``batchwrite``).

Where unnamed (``O_TMPFILE``) files are refused — no ``O_TMPFILE`` on the filesystem, or
naming one through ``/proc/self/fd`` refused (gVisor, seccomp, no ``/proc``, ``EXDEV``) — both
fall back to a named ``.secretops-PID-START-….tmp`` file, with the same bytes, the same modes
and nothing left behind. No filesystem or sandbox here refuses them, so the refusal is made in
the process (``tests/fixtures/unnamed.py``: ``os.open`` or ``os.link`` raise as the kernel
would); everything else is the real filesystem. And a directory fsync that fails after the
rename is reported: the file is in place, but whether it survives a crash is not known.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from secretops import staging
from secretops.errors import SecretOpsError
from secretops.fileio import batched, default_mode, write_file
from tests.fixtures import unnamed
from tests.helpers import CANARY, AgeKey, run, secretops

SECRET = f"password: {CANARY}\n".encode()


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test learns anew which filesystems refuse unnamed files."""
    monkeypatch.setattr(staging, "_NAMED_ONLY", set())


def _write_all_kinds(d: Path) -> dict[int, SecretOpsError]:
    """In one batch: our own 0644 file rewritten (keeps 0644), a new plaintext (0600), a new
    public file (``0666 & ~umask``), a new plaintext linked under its own name (exclusive)."""
    d.mkdir()
    (d / "own.yaml").write_text("old\n")
    (d / "own.yaml").chmod(0o644)
    with batched() as batch:
        for n, (name, private, exclusive) in enumerate((
                ("own.yaml", True, False), ("plain.yaml", True, False),
                ("public.yaml", False, False), ("new.yaml", True, True))):
            batch.owner = n
            write_file(str(d / name), SECRET + name.encode(), private=private,
                       rewrite=name == "own.yaml", exclusive=exclusive)
        batch.commit()
    return batch.failed


def _listing(d: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.lstat().st_mode)) for p in d.iterdir()}


@pytest.mark.parametrize("way", unnamed.WAYS)
def test_a_batch_falls_back_to_named_files_where_unnamed_ones_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """The same files, bytes and modes as with unnamed files, none failed, no temp file left.
    (Before staging.py, a batch whose unnamed file could not be linked failed the file.)"""
    assert _write_all_kinds(tmp_path / "unnamed") == {}
    unnamed.refuse(way, monkeypatch.setattr)
    assert _write_all_kinds(tmp_path / "named") == {}
    want = _listing(tmp_path / "unnamed")
    assert {name: mode for name, (_, mode) in want.items()} == {
        "own.yaml": 0o644, "plain.yaml": 0o600, "public.yaml": default_mode(False),
        "new.yaml": 0o600}
    assert _listing(tmp_path / "named") == want


@pytest.mark.parametrize("way", unnamed.WAYS)
def test_one_file_falls_back_to_a_named_file_where_unnamed_ones_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    unnamed.refuse(way, monkeypatch.setattr)
    d = tmp_path / "d"
    d.mkdir()
    write_file(str(d / "s.yaml"), SECRET, private=True)
    write_file(str(d / "k.txt"), SECRET, private=True, exclusive=True)
    with pytest.raises(FileExistsError):
        write_file(str(d / "k.txt"), b"other", private=True, exclusive=True)
    assert _listing(d) == {"s.yaml": (SECRET, 0o600), "k.txt": (SECRET, 0o600)}


def test_a_filesystem_that_refused_is_named_from_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once an unnamed file could not be named there, the next files on that filesystem are
    not made unnamed first (each would be written twice)."""
    unnamed.refuse("link:EXDEV", monkeypatch.setattr)
    tries: list[int] = []
    real = os.open

    def count(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        tries.append(flags & unnamed.O_TMPFILE == unnamed.O_TMPFILE != 0)
        return real(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", count)
    d = tmp_path / "d"
    d.mkdir()
    for n in range(3):
        write_file(str(d / f"f{n}"), SECRET, private=True)
    assert sum(tries) == (1 if unnamed.O_TMPFILE else 0)
    assert sorted(p.name for p in d.iterdir()) == ["f0", "f1", "f2"]


@pytest.mark.parametrize("way", unnamed.WAYS)
def test_decrypt_output_dir_with_unnamed_files_refused_is_byte_identical(
        tmp_path: Path, age_key: AgeKey, way: str) -> None:
    """A many-file run in worker processes (``decrypt --output-dir``, new plaintext files named
    exclusively; then ``rotate -i``, files replaced): the refusing ``secretops`` writes the same
    plaintext, 0600, into 0700 directories, and leaves no temp file."""
    work = tmp_path / "work"
    (work / "secrets" / "sub").mkdir(parents=True)
    (work / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {age_key.recipient}\n")
    for n in range(24):
        (work / "secrets" / ("sub" if n % 2 else "") / f"s{n}.yaml").write_text(
            f"k: {CANARY}-{n}\n")
    r = secretops("encrypt", "-i", "secrets", cwd=work)
    assert r.code == 0, r.err
    assert all(b"sops:" in f.read_bytes() for f in work.rglob("s*.yaml"))
    outputs = {}
    for how in (None, way):
        env = {**os.environ, **unnamed.variables(how)}
        r = run([*_cli(), "rotate", "-i", "-j", "2", "secrets"], env=env, cwd=work)
        assert r.code == 0, r.err
        out = tmp_path / f"plain-{how}"
        r = run([*_cli(), "decrypt", "--output-dir", str(out), "-j", "2", "secrets"], env=env,
                cwd=work)
        assert r.code == 0, r.err
        outputs[how] = {str(p.relative_to(out)): (p.read_bytes() if p.is_file() else b"",
                                                  stat.S_IMODE(p.stat().st_mode))
                        for p in out.rglob("*")}
        assert not list(work.rglob(".secretops-*"))
    assert len(outputs[way]) == 24 + 2 and outputs[None] == outputs[way]
    assert sorted({mode for _, mode in outputs[way].values()}) == [0o600, 0o700]
    assert outputs[way]["secrets/sub/s1.yaml"][0] == f"k: {CANARY}-1\n".encode()


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "secretops"]


# -- a directory fsync that fails after the rename ---------------------------------------------


def _failing_dir_fsync(monkeypatch: pytest.MonkeyPatch, code: int,
                       which: Callable[[Path], bool] = lambda _: True) -> None:
    """``os.fsync`` of a directory (``which``) fails with ``code`` (an EIO from the disk cannot
    be made on demand here); files are synced for real."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode) and which(Path(os.readlink(f"/proc/self/fd/{fd}"))):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_failed_directory_fsync_fails_the_write(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The new content is in place (the rename happened), but the command must not claim it
    durable: exit 3 and a message that says so. (Before, the error was swallowed.)"""
    target = tmp_path / "d" / "s.yaml"
    target.parent.mkdir()
    target.write_bytes(b"old\n")
    _failing_dir_fsync(monkeypatch, errno.EIO)
    with pytest.raises(SecretOpsError) as e:
        write_file(str(target), SECRET, private=True)
    assert e.value.code == 3
    assert "may not survive a crash: cannot sync its directory: Input/output error" in str(
        e.value)
    assert CANARY not in str(e.value)
    assert target.read_bytes() == SECRET and [p.name for p in target.parent.iterdir()] == [
        "s.yaml"]


def test_a_failed_directory_fsync_fails_that_directorys_files_in_a_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir()
    good.mkdir()
    _failing_dir_fsync(monkeypatch, errno.EIO, lambda d: d == bad)
    with batched() as batch:
        for n, f in enumerate((bad / "a", good / "b", bad / "c")):
            batch.owner = n
            write_file(str(f), SECRET, private=True)
        batch.commit()
    assert sorted(batch.failed) == [0, 2]
    assert str(batch.failed[2]) == (f"{bad / 'c'}: written, but it may not survive a crash: "
                                    "cannot sync its directory: Input/output error")
    assert batch.failed[0].code == batch.failed[2].code == 3
    assert [p.read_bytes() for p in (bad / "a", good / "b", bad / "c")] == [SECRET] * 3


def test_a_filesystem_that_cannot_sync_directories_is_no_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EINVAL: the filesystem has no way to sync a directory; there is nothing to wait for."""
    _failing_dir_fsync(monkeypatch, errno.EINVAL)
    write_file(str(tmp_path / "s.yaml"), SECRET, private=True)
    with batched() as batch:
        write_file(str(tmp_path / "t.yaml"), SECRET, private=True)
        batch.commit()
    assert batch.failed == {}
