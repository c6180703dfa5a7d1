"""``kill -9`` at random moments of the commands that rewrite a large file in place (slow).

Each trial starts one of ``encrypt -i``, ``decrypt -i``, ``set``, ``updatekeys``, ``rotate``
on a file of tens of thousands of values, kills it after a random delay (seeded: replay a
failure with SECRETOPS_CRASH_SEED=<seed from the message>), and checks that

* the file is exactly the old version (byte for byte), or exactly the new one: byte for byte
  for ``decrypt -i``, whose output is known; for the others, whose output is new ciphertext,
  a file that decrypts (MAC checked, so a torn file fails) to exactly the expected plaintext,
  with the expected recipients;
* once the next command has run (the interrupted one again, as a user would, or ``encrypt -i``
  after a completed ``decrypt -i``), no plaintext is left anywhere: no temp name in the
  directory, no other file there, nothing in /dev/shm or $TMPDIR holds the canary.

It runs twice: with unnamed (``O_TMPFILE``) temp files, and with every secretops process
refusing to name them (``tests/fixtures/unnamed.py``: ``linkat`` through ``/proc/self/fd``
fails as in gVisor), so each write copies its unnamed file into a named temp file, which a
kill may leave behind for the next command to remove.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import unnamed
from tests.helpers import CANARY, make_age_key, secretops

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # about 40 runs of ~5 s each

VALUES = 30_000
KILLS = 36  # kills that landed while the command ran
SEED = int(os.environ.get("SECRETOPS_CRASH_SEED", "15"))
ON_ENCRYPTED = ("decrypt -i", "set", "updatekeys", "rotate")


def _argv(command: str, file: Path, trial: int) -> list[str]:
    return {
        "encrypt -i": ["encrypt", "-i", str(file)],
        "decrypt -i": ["decrypt", "-i", str(file)],
        "set": ["set", str(file), '["k0"]', f'"value {trial}"'],
        "updatekeys": ["updatekeys", "--yes", str(file)],
        "rotate": ["rotate", "-i", str(file)],
    }[command]


def _plaintext(canary: str, first: str) -> bytes:
    # every value holds the canary, so any fragment of plaintext that survives is found
    lines = [f"k0: {first}"] + [f"k{i}: {canary}-{i}" for i in range(1, VALUES)]
    return ("\n".join(lines) + "\n").encode()


def _writing(pid: int, work: Path) -> bool:
    """Whether ``pid`` holds a file open in ``work`` other than the one it reads: the unnamed
    (``/work/#123 (deleted)``) or named temp file it is filling."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{work}/") and (target.endswith(" (deleted)")
                                              or "/.secretops-" in target):
            return True
    return False


def _scan(roots: list[Path], canary: bytes, allowed: set[Path]) -> list[str]:
    found = []
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                p = Path(dirpath, name)
                if p in allowed or not p.is_file() or p.is_symlink():
                    continue
                try:
                    if canary in p.read_bytes():
                        found.append(str(p))
                except OSError:
                    pass
    return found


@pytest.mark.parametrize("refused", [None, "link:EXDEV"])
def test_kill_9_leaves_the_old_or_the_new_file_and_no_plaintext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str | None
) -> None:
    for name, value in unnamed.variables(refused).items():
        monkeypatch.setenv(name, value)
    canary = f"{CANARY}-{os.urandom(4).hex()}"  # this run's own: other tests' files never match
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    a, b = make_age_key(tmp_path, "a.txt"), make_age_key(tmp_path, "b.txt")
    keys = tmp_path / "keys.txt"
    keys.write_text(a.path.read_text() + b.path.read_text())
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(keys))
    work = tmp_path / "work"
    work.mkdir()
    config = work / ".sops.yaml"
    rule = {False: a.recipient, True: f"{a.recipient},{b.recipient}"}
    config.write_text(f"creation_rules:\n  - age: {rule[False]}\n")
    file = work / "s.yaml"
    plain = _plaintext(canary, f"{canary}-0")
    file.write_bytes(plain)
    assert secretops("encrypt", "-i", str(file)).code == 0
    both = False  # whether the file is encrypted for b too
    durations: dict[str, float] = {}
    rng = random.Random(SEED)
    landed = outcomes_old = outcomes_new = trials = 0
    kills: dict[str, int] = {}
    in_write = new_after_kill = 0
    temp_names_seen = 0

    def decrypted() -> bytes:
        r = secretops("decrypt", str(file))
        assert r.code == 0, f"seed={SEED} trial={trials}: {r.err}"
        return r.out

    def run(command: str) -> None:
        start = time.monotonic()
        r = secretops(*_argv(command, file, trials), cwd=work)
        assert r.code == 0, f"seed={SEED} trial={trials} {command}: {r.err}"
        durations[command] = time.monotonic() - start

    for command in ("decrypt -i", "encrypt -i", "set", "rotate"):  # how long each one takes
        run(command)
        plain = plain.replace(plain.split(b"\n", 1)[0], f"k0: value {trials}".encode(), 1) \
            if command == "set" else plain
    while landed < KILLS:
        trials += 1
        assert trials < KILLS * 4, f"seed={SEED}: only {landed} kills landed"
        state_plain = file.read_bytes() == plain
        command = "encrypt -i" if state_plain else rng.choice(ON_ENCRYPTED)
        if command == "updatekeys":
            config.write_text(f"creation_rules:\n  - age: {rule[not both]}\n")
        expected = plain
        if command == "set":
            expected = plain.replace(plain.split(b"\n", 1)[0], f"k0: value {trials}".encode(), 1)
        old = file.read_bytes()
        took = durations.get(command, durations["rotate"])
        # half the kills at any moment of the run; half once it has begun to write the file
        # (its temp file is open), a few milliseconds into the write, fsync, link or rename
        while_writing = rng.random() < 0.5
        delay = rng.uniform(0, 0.03) if while_writing else rng.uniform(0, took)
        proc = subprocess.Popen([sys.executable, "-m", "secretops", *_argv(command, file, trials)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=work)
        deadline = time.monotonic() + 60
        while while_writing and proc.poll() is None and not _writing(proc.pid, work):
            assert time.monotonic() < deadline, f"seed={SEED} trial={trials}: no write seen"
            time.sleep(0.0005)
        time.sleep(delay)  # the random moment of the kill is what this test varies
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            landed += 1
            kills[command] = kills.get(command, 0) + 1
            in_write += while_writing
        proc.wait(60)
        now = file.read_bytes()
        where = f"seed={SEED} trial={trials} {command} after {delay:.3f}s"
        if now == old:
            outcomes_old += 1
            redo = command  # the user runs it again
        else:
            outcomes_new += 1
            new_after_kill += proc.returncode == -signal.SIGKILL
            if command == "decrypt -i":
                assert now == expected, f"{where}: neither the old nor the new file"
            else:
                assert b"sops:" in now and decrypted() == expected, where
                if command == "updatekeys":
                    assert (b.recipient in now.decode()) == (not both), where
            redo = "encrypt -i" if command == "decrypt -i" else None
        plain = expected
        if command == "updatekeys" and now != old:
            both = not both
        temp_names_seen += sum(p.name.startswith(".secretops-") for p in work.iterdir())
        if redo is None:  # the kill came after the rename: the next command is another write
            redo = "rotate"
        if redo == "updatekeys":
            config.write_text(f"creation_rules:\n  - age: {rule[not both]}\n")
        run(redo)
        if redo == "updatekeys":
            both = not both
        if redo == "set":
            plain = expected
        if redo != "decrypt -i":
            assert decrypted() == plain, where
        else:
            assert file.read_bytes() == plain, where
        names = sorted(p.name for p in work.iterdir())
        assert names == [".sops.yaml", "s.yaml"], f"{where}: left {names}"
        allowed = {file} if file.read_bytes() == plain else set()
        leaks = _scan([work, tmpdir, Path("/dev/shm")], canary.encode(), allowed)
        assert leaks == [], f"{where}: plaintext left in {leaks}"
    print(f"\ncrash safety ({refused or 'unnamed'}): seed {SEED}, {trials} trials, "
          f"{landed} kills landed ({in_write} after the write had begun), "
          f"file old {outcomes_old} / new {outcomes_new} times "
          f"({new_after_kill} new though killed), "
          f"temp names seen before the next command: {temp_names_seen}, kills by command "
          f"{kills}")
