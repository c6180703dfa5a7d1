"""What a ``kill -9`` can leave, and who removes it: temp files next to a written file, and
the private directory of ``edit``/``exec-file``. (Random kills: tests/cli/test_crash_safety.py.)
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretops import fileio
from secretops.leftovers import start_time
from secretops.privatefile import _base
from tests.helpers import CANARY, AgeKey, secretops

SECRET = f"password: {CANARY}\nuser: admin\n"
OTHER = 4242


@pytest.fixture
def enc(tmp_path: Path, age_key: AgeKey) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    f = work / "s.yaml"
    f.write_text(SECRET)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(f)).code == 0
    return f


@pytest.fixture
def dead_run() -> tuple[int, int]:
    """The pid and start time of a process that has ended."""
    p = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    started = start_time(p.pid)
    p.kill()
    p.wait(30)
    assert started is not None
    return p.pid, started


def _mine() -> tuple[int, int]:
    started = start_time(os.getpid())
    assert started is not None
    return os.getpid(), started


def _plant_file(directory: Path, name: str, uid: int | None = None) -> Path:
    p = directory / name
    p.write_text(SECRET)
    p.chmod(0o600)
    if uid is not None:
        os.chown(p, uid, uid)
    return p


@pytest.mark.parametrize("command", [["decrypt", "-i"], ["set", "--input-type", "yaml"]])
def test_the_next_write_removes_temp_files_of_dead_runs_only(
    enc: Path, dead_run: tuple[int, int], command: list[str]
) -> None:
    d = enc.parent
    pid, started = dead_run
    me, mine = _mine()
    dead = _plant_file(d, f".secretops-{pid}-{started}-0a1b2c.tmp")
    reused = _plant_file(d, f".secretops-{me}-{mine + 1}-0a1b2c.tmp")  # our pid, not our run
    kept = [
        _plant_file(d, f".secretops-{me}-{mine}-0a1b2c.tmp"),  # a live run's
        _plant_file(d, ".secretops-0a1b2c3d4e5f.tmp"),  # no pid to tell whose it is
        _plant_file(d, f".secretops-{pid}-{started}-0a1b2c.tmp.bak"),  # not our pattern
    ]
    link = d / f".secretops-{pid}-{started}-ffffff.tmp"
    link.symlink_to(kept[0])
    kept.append(link)
    if os.geteuid() == 0:
        kept.append(_plant_file(d, f".secretops-{pid}-{started}-eeeeee.tmp", uid=OTHER))
    args = [*command, str(enc)] + (['["user"]', '"root"'] if command[0] == "set" else [])
    r = secretops(*args)
    assert r.code == 0, r.err
    assert not dead.exists() and not reused.exists()
    assert all(os.path.lexists(p) for p in kept)
    assert sorted(p.name for p in d.iterdir()) == sorted([enc.name] + [p.name for p in kept])


def test_a_zombies_temp_files_are_removed(enc: Path) -> None:
    """A killed run that nothing has reaped yet (a many-file run's workers, reparented to a
    PID 1 that reaps late) runs no code: its temp files go, like a dead run's."""
    zombie = subprocess.Popen(["sh", "-c", "exit 0"], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{zombie.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.01)
        started = start_time(zombie.pid)
        left = _plant_file(enc.parent, f".secretops-{zombie.pid}-{started}-0a1b2c.tmp")
        r = secretops("decrypt", "-i", str(enc))
        assert r.code == 0, r.err
        assert not left.exists()
    finally:
        zombie.wait(30)


def _plant_dir(base: str, name: str) -> Path:
    p = Path(base) / name
    p.mkdir(mode=0o700)
    (p / "s.yaml").write_text(SECRET)
    return p


@pytest.fixture
def planted_dirs(dead_run: tuple[int, int]) -> Iterator[dict[str, Path]]:
    base = _base()
    pid, started = dead_run
    me, mine = _mine()
    tag = os.urandom(4).hex()
    dirs = {
        "dead": _plant_dir(base, f"secretops-{pid}-{started}-{tag}"),
        "reused": _plant_dir(base, f"secretops-{me}-{mine + 1}-{tag}"),
        "live": _plant_dir(base, f"secretops-{me}-{mine}-{tag}"),
        "legacy": _plant_dir(base, f"secretops-{tag}"),
    }
    if os.geteuid() == 0:
        dirs["foreign"] = _plant_dir(base, f"secretops-{pid}-{started}-{tag}x")
        os.chown(dirs["foreign"], OTHER, OTHER)
    yield dirs
    import shutil

    for p in dirs.values():
        shutil.rmtree(p, ignore_errors=True)


@pytest.mark.parametrize("command", ["exec-file", "edit"])
def test_the_next_edit_or_exec_file_removes_private_dirs_of_dead_runs_only(
    tmp_path: Path, enc: Path, planted_dirs: dict[str, Path], command: str
) -> None:
    if command == "edit":
        env = dict(os.environ, EDITOR="true")  # closes without a change: exit 200
        p = subprocess.run([sys.executable, "-m", "secretops", "edit", str(enc)],
                           stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60,
                           check=False)
        assert p.returncode == 200, p.stderr
    else:
        r = secretops("exec-file", str(enc), "true")
        assert r.code == 0, r.err
    assert not planted_dirs["dead"].exists() and not planted_dirs["reused"].exists()
    for what in ("live", "legacy", "foreign"):
        if what in planted_dirs:
            assert planted_dirs[what].exists(), what


def test_edit_killed_with_sigkill_leaves_plaintext_only_until_the_next_edit(
    tmp_path: Path, enc: Path
) -> None:
    log = tmp_path / "editor.log"
    script = tmp_path / "editor.py"
    script.write_text("import sys, time\n"
                      f"open({str(log)!r}, 'w').write(sys.argv[1] + '\\n')\n"
                      "while True: time.sleep(0.05)\n")
    env = dict(os.environ, EDITOR=f"{sys.executable} {script}")
    proc = subprocess.Popen([sys.executable, "-m", "secretops", "edit", str(enc)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not log.exists() or not log.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "the editor never started"
        time.sleep(0.02)
    temp = Path(log.read_text().strip())
    os.killpg(proc.pid, signal.SIGKILL)  # secretops and its editor, as a crash would
    proc.wait(30)
    assert CANARY in temp.read_text()  # nothing can clean up after SIGKILL ...
    r = secretops("exec-file", str(enc), "true")  # ... but the next run does
    assert r.code == 0, r.err
    assert not temp.parent.exists()


# --- the write itself: no name for the data until it is complete ------------------------------


def _probe(monkeypatch: pytest.MonkeyPatch, directory: Path) -> list[list[tuple[str, int]]]:
    """The directory (names, modes) once all the data is written, just before its final mode
    is set and it is named: the real calls run, this only looks."""
    seen: list[list[tuple[str, int]]] = []
    real = os.fchmod

    def probe(fd: int, mode: int) -> None:
        seen.append(sorted((p.name, stat.S_IMODE(p.lstat().st_mode))
                           for p in directory.iterdir()))
        real(fd, mode)

    monkeypatch.setattr(os, "fchmod", probe)
    return seen


def test_the_data_has_no_name_until_it_is_complete(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "d"
    d.mkdir()
    target = d / "out.yaml"
    target.write_text("old\n")
    target.chmod(0o600)
    seen = _probe(monkeypatch, d)
    fileio.write_file(str(target), SECRET.encode(), private=True)
    assert seen == [[("out.yaml", 0o600)]]  # while written, only the old file had a name
    assert target.read_text() == SECRET and [p.name for p in d.iterdir()] == ["out.yaml"]


def test_without_o_tmpfile_the_named_temp_file_is_private(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback for filesystems without O_TMPFILE: a 0600 temp name, gone afterwards."""
    from secretops import staging

    monkeypatch.setattr(staging, "_O_TMPFILE", 0)
    d = tmp_path / "d"
    d.mkdir()
    target = d / "out.yaml"
    target.write_text("old\n")
    target.chmod(0o644)  # our own file: its mode is kept, but only once the data is complete
    seen = _probe(monkeypatch, d)
    fileio.write_file(str(target), SECRET.encode(), private=True)
    [(name, mode)] = [e for e in seen[0] if e[0] != "out.yaml"]
    me, mine = _mine()
    assert name.startswith(f".secretops-{me}-{mine}-") and name.endswith(".tmp")
    assert mode == 0o600  # written while 0600; the kept 0644 is set just before the rename
    assert target.read_text() == SECRET and [p.name for p in d.iterdir()] == ["out.yaml"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_directory_is_swept_once_per_process(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A many-file run writes hundreds of files into one directory: listing it before every
    write would cost the square of its size; one sweep per process finds the same leftovers."""
    calls: list[int] = []
    real = fileio.sweep_temp_files
    monkeypatch.setattr(fileio, "sweep_temp_files", lambda fd: calls.append(fd) or real(fd))
    monkeypatch.setattr(fileio, "_swept", set())
    for n in range(5):
        fileio.write_file(str(tmp_path / f"f{n}"), b"x", private=True)
    (tmp_path / "sub").mkdir()
    fileio.write_file(str(tmp_path / "sub" / "g"), b"x", private=True)
    assert len(calls) == 2


def test_a_many_file_run_removes_dead_runs_temp_files(enc: Path,
                                                      dead_run: tuple[int, int]) -> None:
    pid, started = dead_run
    dead = _plant_file(enc.parent, f".secretops-{pid}-{started}-0a1b2c.tmp")
    other = enc.parent / "t.yaml"
    other.write_bytes(enc.read_bytes())
    r = secretops("decrypt", "-i", "-j", "2", str(enc), str(other))
    assert r.code == 0, r.err
    assert not dead.exists()


def test_run_tag_is_read_once_per_process_and_a_forked_child_gets_its_own() -> None:
    """The tag is kept after the first read; a child forked after that (a many-file run's
    worker) must not carry its parent's pid into the names it makes."""
    from secretops.leftovers import run_tag, start_time

    parent = run_tag()
    assert parent == f"{os.getpid()}-{start_time(os.getpid())}"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        os.write(w, run_tag().encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        child = f.read().decode()
    os.waitpid(pid, 0)
    assert run_tag() == parent
    assert child.split("-")[0] == str(pid) and child != parent
