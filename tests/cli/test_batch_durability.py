"""Many-file runs make their files durable in batches (``secretops/batchwrite.py``): a
``syncfs`` and an fsync per directory for each batch instead of two fsyncs per file, and still
each file atomically — the old content or the new, whatever a ``kill -9`` interrupts, with no
temp file left once the next run has written into the directory.
"""
from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.fixtures import unnamed
from tests.helpers import CANARY, AgeKey, data_of, git_init, secretops, sops

BATCH = 16  # secretops.bulk.pool's largest batch of files: what a commit covers


def _text(n: int) -> str:
    return "".join(f"k{i}: {CANARY}-{n}-{i}\n" for i in range(20))


def _syncfs_reports_errors() -> bool:
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return sys.platform == "linux" and m is not None and (int(m[1]), int(m[2])) >= (5, 8)


def _tree(work: Path, recipient: str, count: int, dirs: int = 1) -> list[Path]:
    """``count`` files under ``work/secrets/dN/``, encrypted by one many-file run."""
    work.mkdir(exist_ok=True)
    (work / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {recipient}\n")
    files = []
    for n in range(count):
        f = work / "secrets" / f"d{n % dirs}" / f"s{n:03}.yaml"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(_text(n))
        files.append(f)
    r = secretops("encrypt", "-i", "secrets", cwd=work)
    assert r.code == 0, r.err
    return files


@pytest.mark.parametrize(("seen_as", "refused"), [(None, None), ("fuse.sshfs", None),
                                                  (None, "open")])
def test_a_many_file_run_syncs_per_batch_not_per_file(tmp_path: Path, age_key: AgeKey,
                                                      sops_bin: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      seen_as: str | None,
                                                      refused: str | None) -> None:
    """40 files rotated in one process, in one directory: per batch of 16, one syncfs for the
    data and one fsync of the directory, where writing them one by one fsyncs each file and
    its directory (80 calls). On a filesystem whose syncfs need not write the data out (FUSE,
    network filesystems: here the device's type as read from mountinfo is replaced), each file
    is fsynced. Without O_TMPFILE (``refused``: the files are staged named) the same calls."""
    if not _syncfs_reports_errors():
        pytest.skip("syncfs(2) reports write errors only on Linux 5.8 and later")
    from secretops import batchwrite
    from secretops.bulk import pool

    (tmp_path / "work").mkdir()
    dev = os.stat(tmp_path / "work").st_dev
    if seen_as is None:
        fd = os.open(tmp_path / "work", os.O_RDONLY)
        try:
            assert batchwrite.fs_type(fd) in batchwrite.SYNCFS_FILESYSTEMS
        finally:
            os.close(fd)
    else:
        monkeypatch.setitem(batchwrite._FSTYPES, dev, seen_as)
    from secretops.bulk.keyjobs import RotateJob
    from secretops.bulk.paths import expand

    if refused is not None:
        from secretops import staging

        monkeypatch.setattr(staging, "_NAMED_ONLY", set())
        unnamed.refuse(refused, monkeypatch.setattr)

    files = _tree(tmp_path / "work", age_key.recipient, 40)
    before = {f: f.read_bytes() for f in files}
    monkeypatch.chdir(tmp_path / "work")
    job = RotateJob(dict(os.environ), input_type=None, config_path=None, add=(), remove=(),
                    max_age=None, dry_run=False)
    items = expand([str(f) for f in files]).items
    calls: Counter[str] = Counter()

    def count(frame: FrameType, event: str, arg: Any) -> None:
        # os.fsync is a C function (a c_call); syncfs is whatever Python function of that name
        if event == "c_call" and arg is os.fsync:
            calls["fsync"] += 1
        elif event == "call" and frame.f_code.co_name == "syncfs":
            calls["syncfs"] += 1

    sys.setprofile(count)
    try:
        outcomes = list(pool.run(job, items, jobs=1))
    finally:
        sys.setprofile(None)
    assert [o.failure for o in outcomes] == [None] * len(files)
    assert all("done" in o.tags for o in outcomes)
    batches = math.ceil(len(files) / BATCH)
    if seen_as is None:
        assert calls["syncfs"] <= batches and calls["fsync"] <= batches, calls
    else:
        assert calls["fsync"] >= len(files), calls
    for n, f in enumerate(files):  # every file rotated, and the real sops reads it
        assert f.read_bytes() != before[f]
        r = sops(sops_bin, "decrypt", str(f))
        assert r.code == 0, r.err
        assert data_of(r.out, "yaml") == data_of(_text(n).encode(), "yaml")
    assert not [p for p in (tmp_path / "work").rglob(".secretops-*")]


def test_the_same_file_under_two_names_is_worked_on_in_order(tmp_path: Path,
                                                             age_key: AgeKey) -> None:
    """A file named twice (here through a symbolic link) in one batch: the second job reads
    what the first wrote, as when each file is written at once."""
    work = tmp_path / "work"
    (f,) = _tree(work, age_key.recipient, 1)
    (work / "link.yaml").symlink_to(f)
    r = secretops("decrypt", "-i", "-j", "1", str(f), "link.yaml", cwd=work)
    assert r.code != 0
    assert "secretops: error: link.yaml:" in r.err and CANARY not in r.err
    assert f.read_text() == _text(0)  # decrypted once, by the first job
    assert (work / "link.yaml").is_symlink()


def test_a_file_that_cannot_be_put_in_place_fails_alone(tmp_path: Path) -> None:
    """A commit where one target became a directory and another name appeared meanwhile:
    those two fail with a message, their targets untouched; the others are in place."""
    from secretops.fileio import batched, write_file

    d = tmp_path / "d"
    d.mkdir()
    names = ["a.yaml", "b.yaml", "c.yaml", "new.yaml"]
    for name in names[:3]:
        (d / name).write_text("old\n")
    with batched() as batch:
        for n, name in enumerate(names):
            batch.owner = n
            write_file(str(d / name), f"new {n}\n".encode(), private=True, rewrite=n < 3,
                       exclusive=name == "new.yaml")
        (d / "b.yaml").unlink()
        (d / "b.yaml").mkdir()  # a rename cannot replace a directory
        (d / "new.yaml").write_text("someone else's\n")
        batch.commit()
    assert sorted(batch.failed) == [1, 3]
    assert "b.yaml: cannot write: Is a directory" in str(batch.failed[1])
    assert "new.yaml: the file appeared while it was written: not replaced" in str(
        batch.failed[3])
    assert (d / "a.yaml").read_text() == "new 0\n" and (d / "c.yaml").read_text() == "new 2\n"
    assert (d / "b.yaml").is_dir() and (d / "new.yaml").read_text() == "someone else's\n"
    assert sorted(p.name for p in d.iterdir()) == ["a.yaml", "b.yaml", "c.yaml", "new.yaml"]


def test_a_failed_job_or_an_abandoned_batch_writes_nothing(tmp_path: Path) -> None:
    """A staged write whose job then failed (dropped), and a batch left without a commit
    (an exception, Ctrl-C): the targets stay as they were, and nothing else is left."""
    from secretops.fileio import batched, write_file

    d = tmp_path / "d"
    d.mkdir()
    (d / "a.yaml").write_text("old\n")
    (d / "b.yaml").write_text("old\n")
    with batched() as batch:
        batch.owner = 0
        write_file(str(d / "a.yaml"), b"new\n", private=False, rewrite=True)
        batch.drop(0)
        batch.owner = 1
        write_file(str(d / "b.yaml"), b"new\n", private=False, rewrite=True)
        batch.commit()
    assert (d / "a.yaml").read_text() == "old\n" and (d / "b.yaml").read_text() == "new\n"
    with pytest.raises(KeyboardInterrupt), batched() as batch:
        write_file(str(d / "a.yaml"), b"new\n", private=False, rewrite=True)
        raise KeyboardInterrupt
    assert (d / "a.yaml").read_text() == "old\n"
    assert sorted(p.name for p in d.iterdir()) == ["a.yaml", "b.yaml"]


# -- kill -9 in the middle of a many-file run ----------------------------------------------------

FILES = 128  # with -j 2 the pool's batches are of 16 files: the largest
KILLS = 9
SEED = int(os.environ.get("SECRETOPS_CRASH_SEED", "19"))


def _processes(root: int) -> list[int]:
    """``root`` and its descendants (the workers)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _wait_ended(pids: list[int]) -> None:
    """Until each process is gone or a zombie (one in the middle of a syscall such as
    ``syncfs`` ends when the call returns; until then its temp files are rightly kept)."""
    deadline = time.monotonic() + 60
    for pid in pids:
        while True:
            try:
                state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                break
            if state in (b"Z", b"X"):
                break
            assert time.monotonic() < deadline, f"process {pid} outlived SIGKILL"
            time.sleep(0.005)


def _staging(root: int, work: Path, named_only: bool) -> bool:
    """Whether a process of the run holds a temp file open in ``work`` (a batch is staged);
    ``named_only``: a named one (an unnamed one shows as ``/work/#123 (deleted)``)."""
    for pid in _processes(root):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(f"{work}/") and ("/.secretops-" in target or (
                    target.endswith(" (deleted)") and not named_only)):
                return True
    return False


def _sops_reads(sops_bin: str, files: list[Path], texts: dict[Path, str]) -> list[str]:
    def bad(f: Path) -> str | None:
        r = sops(sops_bin, "decrypt", str(f))
        if r.code != 0 or data_of(r.out, "yaml") != data_of(texts[f].encode(), "yaml"):
            return f"{f.name}: sops exit {r.code}"
        return None

    with ThreadPoolExecutor(2) as ex:
        return [b for b in ex.map(bad, files) if b]


# the named-from-the-start mode ("open") costs ~20 s and shares its code with link:EXDEV's
# fallback: it runs with -m slow
@pytest.mark.parametrize("refused", [None, pytest.param("open", marks=pytest.mark.slow),
                                     "link:EXDEV"])
def test_kill_9_of_a_many_file_run_leaves_each_file_old_or_new(
        tmp_path: Path, age_key: AgeKey, sops_bin: str, monkeypatch: pytest.MonkeyPatch,
        refused: str | None) -> None:
    """``rotate -i`` and ``decrypt -i`` of 128 files over 4 directories with 2 workers, the
    whole process tree killed with SIGKILL at seeded random moments (at any time, while a batch
    is staged, or among the commits once one batch is in place): every file is byte for byte
    its old content or its new one — a plaintext exactly as decrypted, or a file the real sops
    decrypts to its data — and once the run is repeated no temp file is left anywhere.
    ``refused``: every secretops process refuses unnamed files (``tests/fixtures/unnamed.py``)
    so each batch is staged in named temp files (``open``: from the start; ``link``: copied at
    the first commit, named from the start after it), which a kill leaves behind for the next
    run to sweep. Replay a failure with SECRETOPS_CRASH_SEED=<seed>."""
    for name, value in unnamed.variables(refused).items():
        monkeypatch.setenv(name, value)
    work = git_init(tmp_path / "work")
    files = _tree(work, age_key.recipient, FILES, dirs=4)
    texts = {f: _text(n) for n, f in enumerate(files)}
    rng = random.Random(SEED)
    took: dict[str, float] = {}
    for command in ("rotate", "decrypt"):  # how long an uninterrupted run takes
        start = time.monotonic()
        assert secretops(command, "-i", "-j", "2", "secrets", cwd=work).code == 0
        took[command] = time.monotonic() - start
    assert all(f.read_text() == texts[f] for f in files)
    assert secretops("encrypt", "-i", "secrets", cwd=work).code == 0
    landed = trials = killed_left = 0
    seen: Counter[str] = Counter()
    while landed < KILLS:
        trials += 1
        assert trials < KILLS * 4, f"seed={SEED}: only {landed} kills landed"
        command = ("rotate", "decrypt")[trials % 2]
        old = {f: f.read_bytes() for f in files}
        inodes = {f.stat().st_ino for f in files}
        # a third of the kills at any moment; a third once a batch is being staged; a third
        # once a first batch is in place, among the next ones' commits
        when = rng.choice(("any", "staging", "committed"))
        delay = rng.uniform(0, took[command]) if when == "any" else rng.uniform(0, 0.03)
        proc = subprocess.Popen([sys.executable, "-m", "secretops", command, "-i", "-j", "2",
                                 "secrets"], cwd=work, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        while (when == "staging" and proc.poll() is None
               and not _staging(proc.pid, work, named_only=refused == "open")):
            assert time.monotonic() < deadline, f"seed={SEED} trial={trials}: no write seen"
            time.sleep(0.0005)
        while (when == "committed" and proc.poll() is None
               and all(f.stat().st_ino in inodes for f in files)):
            assert time.monotonic() < deadline, f"seed={SEED} trial={trials}: no commit seen"
            time.sleep(0.001)
        time.sleep(delay)  # the random moment of the kill is what this test varies
        if proc.poll() is None:
            tree = _processes(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers at once
            landed += 1
            _wait_ended(tree)
        proc.wait(60)
        where = f"seed={SEED} trial={trials} {command} {when} + {delay:.3f}s"
        changed = [f for f in files if f.read_bytes() != old[f]]
        seen[f"{command} {when}: {len(changed)}"] += 1
        if command == "decrypt":
            assert all(f.read_text() == texts[f] for f in changed), where
        else:
            assert all(b"sops:" in f.read_bytes() for f in changed), where
            assert _sops_reads(sops_bin, changed, texts) == [], where
        killed_left += len(list(work.rglob(".secretops-*")))
        # the user runs it again: it finishes the work and sweeps what the kill left
        assert secretops(command, "-i", "-j", "2", "secrets", cwd=work).code == 0, where
        if command == "decrypt":
            assert all(f.read_text() == texts[f] for f in files), where
            assert secretops("encrypt", "-i", "secrets", cwd=work).code == 0, where
        left = [str(p) for p in work.rglob(".secretops-*")]
        assert left == [], f"{where}: left {left}"
    assert _sops_reads(sops_bin, files, texts) == []
    if refused == "open":  # staged batches were named, and the kills left some to sweep
        assert killed_left > 0
    print(f"\nmany-file crash safety ({refused or 'unnamed'}): seed {SEED}, {trials} trials, "
          f"{landed} kills; files changed before the kill, by command and moment: {dict(seen)}; "
          f"temp files the kills left: {killed_left}; runs took {took}")
