"""edit, set/unset and encrypt --reuse: minimal diffs, and plaintext never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, data_of, git, git_init, secretops, sops

TEXT = f"db:\n  password: {CANARY}\n  user: admin\n# a comment\nport: 5432\n"


def _editor(tmp_path: Path, body: str, name: str = "editor") -> Path:
    """A Python editor script; it records the file it was given (path, modes) in LOG."""
    log = tmp_path / f"{name}.log"
    script = tmp_path / f"{name}.py"
    script.write_text(
        "import os, sys\n"
        "path = sys.argv[1]\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(f'{path} {os.stat(path).st_mode & 0o777:o} '\n"
        "            f'{os.stat(os.path.dirname(path)).st_mode & 0o777:o}\\n')\n"
        + body
    )
    return script


def _edit(script: Path, file: Path, **popen: object) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, EDITOR=f"{sys.executable} {script}")
    return subprocess.run([sys.executable, "-m", "secretops", "edit", str(file)],
                          stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60,
                          check=False)


def _temp_of(script: Path) -> Path:
    return Path((script.parent / f"{script.stem}.log").read_text().split()[0])


def _numstat(repo: Path) -> str:
    return git(repo, "diff", "--numstat").strip()


def _changed(repo: Path, file: str = "s.yaml") -> list[str]:
    """The keys of the lines ``git diff`` changes, after checking ``--numstat`` agrees.

    ``lastmodified`` is listed only when its second differs, so it is left out here; the
    numstat must count exactly the other lines plus lastmodified when it changed.
    """
    diff = git(repo, "diff", "-U0", "--", file).splitlines()
    added = [ln[1:] for ln in diff if ln.startswith("+") and not ln.startswith("+++")]
    keys = [ln.split(":")[0].strip() for ln in added]
    n = len(added)
    assert _numstat(repo) == f"{n}\t{n}\t{file}"
    return [k for k in keys if k != "lastmodified"]


@pytest.fixture
def repo(tmp_path: Path, age_key: AgeKey) -> Path:
    r = git_init(tmp_path / "repo")
    (r / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key.recipient}\n")
    (r / "s.yaml").write_text(TEXT)
    assert secretops("encrypt", "-i", str(r / "s.yaml")).code == 0
    git(r, "add", "-A")
    git(r, "commit", "-qm", "init")
    return r


def test_edit_changes_only_the_edited_value(repo: Path, tmp_path: Path, sops_bin: str) -> None:
    script = _editor(tmp_path, "t = open(path).read().replace('admin', 'root')\n"
                               "open(path, 'w').write(t)\n")
    p = _edit(script, repo / "s.yaml")
    assert p.returncode == 0, p.stderr
    assert _changed(repo) == ["user", "mac"]  # the value, (lastmodified,) mac
    temp = _temp_of(script)
    line = (tmp_path / "editor.log").read_text().split()
    assert line[1:] == ["600", "700"]
    assert not temp.exists() and not temp.parent.exists()
    if Path("/dev/shm").is_dir():
        assert str(temp).startswith("/dev/shm/")
    expected = TEXT.replace("admin", "root")
    assert data_of(sops(sops_bin, "decrypt", str(repo / "s.yaml")).out, "yaml") == data_of(
        expected.encode(), "yaml")
    assert CANARY.encode() not in p.stderr + p.stdout


def test_edit_without_change_writes_nothing(repo: Path, tmp_path: Path) -> None:
    before = (repo / "s.yaml").read_bytes()
    p = _edit(_editor(tmp_path, ""), repo / "s.yaml")
    assert p.returncode == 200
    assert (repo / "s.yaml").read_bytes() == before


@pytest.mark.parametrize("body, code", [
    ("sys.exit(3)\n", 201),
    ("os.kill(os.getpid(), 9)\n", 201),
    ("open(path, 'w').write('db: [unclosed\\n')\n", 150),
])
def test_failed_edits_leave_the_file_and_no_plaintext(
    repo: Path, tmp_path: Path, body: str, code: int
) -> None:
    before = (repo / "s.yaml").read_bytes()
    script = _editor(tmp_path, body)
    p = _edit(script, repo / "s.yaml")
    assert p.returncode == code, p.stderr
    assert (repo / "s.yaml").read_bytes() == before
    assert not _temp_of(script).parent.exists()
    assert CANARY.encode() not in p.stderr + p.stdout


def test_invalid_edit_without_terminal_keeps_an_encrypted_rescue_copy(
    repo: Path, tmp_path: Path, sops_bin: str
) -> None:
    script = _editor(tmp_path, f"open(path, 'w').write('db: [{CANARY}\\n')\n")
    p = _edit(script, repo / "s.yaml")
    assert p.returncode == 150
    rescues = list(repo.glob("s.yaml.rescue-*"))
    assert len(rescues) == 1
    assert CANARY.encode() not in rescues[0].read_bytes()
    assert rescues[0].stat().st_mode & 0o777 == 0o600
    assert str(rescues[0].name) in p.stderr.decode()
    r = secretops("decrypt", "--input-type", "binary", str(rescues[0]))
    assert r.out == f"db: [{CANARY}\n".encode()
    s = sops(sops_bin, "decrypt", "--input-type", "binary", "--output-type", "binary",
             str(rescues[0]))
    assert s.out == r.out


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_interrupted_edit_removes_the_plaintext(repo: Path, tmp_path: Path, how: str) -> None:
    before = (repo / "s.yaml").read_bytes()
    script = _editor(tmp_path, "import time\nwhile True: time.sleep(0.05)\n")
    env = dict(os.environ, EDITOR=f"{sys.executable} {script}")
    proc = subprocess.Popen([sys.executable, "-m", "secretops", "edit", str(repo / "s.yaml")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    log = tmp_path / "editor.log"
    deadline = time.monotonic() + 30
    while not log.exists() or not log.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "the editor never started"
        time.sleep(0.02)
    temp = _temp_of(script)
    assert temp.exists()
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:  # the terminal sends SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (85, 201), err
    assert not temp.parent.exists()
    assert (repo / "s.yaml").read_bytes() == before
    assert CANARY.encode() not in err


def test_edit_creates_a_new_file_from_the_template(repo: Path, tmp_path: Path,
                                                   sops_bin: str) -> None:
    script = _editor(tmp_path, "open(path, 'w').write('token: abc\\n')\n")
    p = _edit(script, repo / "new.yaml")
    assert p.returncode == 0, p.stderr
    assert data_of(sops(sops_bin, "decrypt", str(repo / "new.yaml")).out, "yaml") == [
        {"token": "abc"}]
    unchanged = _edit(_editor(tmp_path, "", "noop"), repo / "other.yaml")
    assert unchanged.returncode == 200
    assert not (repo / "other.yaml").exists()


def test_reuse_keeps_unchanged_ciphertext(repo: Path, sops_bin: str) -> None:
    plain = repo / "s.plain.yaml"
    plain.write_bytes(secretops("decrypt", str(repo / "s.yaml")).out)
    plain.write_text(plain.read_text().replace("5432", "6543"))
    r = secretops("encrypt", "--reuse", str(repo / "s.yaml"), "--output", str(repo / "s.yaml"),
                  str(plain))
    assert r.code == 0, r.err
    assert _changed(repo) == ["port", "mac"]
    assert b"6543" in sops(sops_bin, "decrypt", str(repo / "s.yaml")).out
    git(repo, "commit", "-qam", "port")
    # the same plaintext again: no change at all
    r = secretops("encrypt", "--reuse", str(repo / "s.yaml"), "--output", str(repo / "s.yaml"),
                  str(plain))
    assert r.code == 0 and _numstat(repo) == ""
    r = secretops("encrypt", "--reuse", str(repo / "s.yaml"), "--age", "age1x", str(plain))
    assert r.code == 8


def test_set_and_unset(repo: Path, sops_bin: str) -> None:
    f = repo / "s.yaml"
    r = secretops("set", str(f), '["db"]["user"]', '"root"')
    assert r.code == 0, r.err
    assert _changed(repo) == ["user", "mac"]
    p = subprocess.run([sys.executable, "-m", "secretops", "set", "--value-stdin", str(f),
                        '["db"]["token"]'], input=b'"t0ken"', capture_output=True, check=False)
    assert p.returncode == 0, p.stderr
    assert secretops("set", str(f), '["extra"]', '{"list": [1, "two"]}').code == 0
    assert secretops("unset", str(f), '["port"]').code == 0
    expected = {"db": {"password": CANARY, "user": "root", "token": "t0ken"},
                "extra": {"list": [1.0, "two"]}}
    assert data_of(sops(sops_bin, "decrypt", str(f)).out, "yaml") == [expected]
    assert data_of(secretops("decrypt", str(f)).out, "yaml") == [expected]
    r = secretops("unset", str(f), '["nope"]')
    assert r.code == 1 and '["nope"]' in r.err  # as sops
    assert secretops("unset", "--idempotent", str(f), '["nope"]').code == 0
    before = f.read_bytes()
    assert secretops("set", "--idempotent", str(f), '["db"]["user"]', '"root"').code == 0
    assert f.read_bytes() == before
    r = secretops("set", str(f), '["db"]["user"]', "root")
    assert r.code == 7 and "JSON" in r.err  # sops: 7 (ErrorInvalidSetFormat)


def test_set_matches_sops_types(repo: Path, sops_bin: str, tmp_path: Path) -> None:
    f = repo / "s.yaml"
    other = tmp_path / "copy.yaml"
    other.write_bytes(f.read_bytes())
    for path, value in (('["n"]', "5"), ('["f"]', "1.5"), ('["b"]', "true"), ('["s"]', '"x"')):
        assert secretops("set", str(f), path, value).code == 0
        assert sops(sops_bin, "set", str(other), path, value).code == 0

    def types(p: Path) -> list[str]:
        return [ln.rsplit("type:", 1)[1] for ln in p.read_text().splitlines()
                if ln.split(":")[0].strip('"') in ("n", "f", "b", "s")]

    assert types(f) == types(other)


def test_on_a_terminal_an_invalid_edit_can_be_reopened(repo: Path, tmp_path: Path,
                                                       sops_bin: str) -> None:
    """First save is broken; the user answers yes and fixes it in the reopened editor."""
    import pty
    import select

    counter = tmp_path / "count"
    script = _editor(tmp_path, (
        f"n = int(open({str(counter)!r}).read()) if os.path.exists({str(counter)!r}) else 0\n"
        f"open({str(counter)!r}, 'w').write(str(n + 1))\n"
        "t = open(path).read()\n"
        "t = t.replace('user: admin', 'user: [broken') if n == 0 else "
        "t.replace('user: [broken', 'user: fixed')\n"
        "open(path, 'w').write(t)\n"))
    master, slave = pty.openpty()
    env = dict(os.environ, EDITOR=f"{sys.executable} {script}")
    proc = subprocess.Popen([sys.executable, "-m", "secretops", "edit", str(repo / "s.yaml")],
                            stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        if not answered and b"editor again" in seen:
            os.write(master, b"y\n")
            answered = True
    proc.wait(timeout=30)
    os.close(master)
    assert answered, seen
    assert proc.returncode == 0, seen
    assert b"not valid" in seen and CANARY.encode() not in seen
    assert counter.read_text() == "2"
    assert data_of(sops(sops_bin, "decrypt", str(repo / "s.yaml")).out, "yaml")[0]["db"][
        "user"] == "fixed"
    assert not _temp_of(script).parent.exists()
