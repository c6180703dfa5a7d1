"""``secretops log``: the history of encrypted files, checked against ``git log -p`` itself with
the textconv drivers (``secretops git textconv`` and ``sops decrypt``) on a real repository
whose versions the real sops binary made (edits, a rotation, an updatekeys, a PGP key added),
with plain files, a file added and deleted, and a rename."""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CANARY, AgeKey, assert_no_canary, git, git_init, make_age_key, sops

REGEX = "^(data|stringData)$"
SECRET = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n"
          f"  password: {CANARY}\n  user: admin\n  host: db.internal\n")
DRIVER = f"{shlex.quote(sys.executable)} -m secretops git textconv"


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                       stdin=subprocess.DEVNULL, env=env, check=True, timeout=120)
    return p.stdout


def _log(repo: Path, *args: str, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "secretops", "log", *args], cwd=repo,
                          capture_output=True, stdin=subprocess.DEVNULL, env=env, timeout=120)


def _commit(repo: Path, message: str, n: int) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message, date=f"@{1767225600 + 60 * n} +0000")


def _run_sops(sops_bin: str, repo: Path, *args: str) -> None:
    r = sops(sops_bin, *args, cwd=repo)
    assert r.code == 0, r.err


@pytest.fixture
def history(tmp_path: Path, age_key: AgeKey, sops_bin: str, gpg_key: str) -> Path:
    """Commits made the way teams make them: sops and secretops edits of one Secret, a new
    recipient through updatekeys, a rotation, a PGP key added, a JSON file added and then
    deleted, a rename, and plain files changing alongside."""
    repo = git_init(tmp_path / "repo")
    newcomer = make_age_key(tmp_path, "newcomer.txt")
    (repo / "db.enc.yaml").write_text(SECRET)
    _run_sops(sops_bin, repo, "encrypt", "-i", "--age", age_key.recipient,
              "--encrypted-regex", REGEX, "db.enc.yaml")
    (repo / "README.md").write_text("# deploy\n")
    _commit(repo, "add the db secret", 0)
    _run_sops(sops_bin, repo, "set", "db.enc.yaml", '["stringData"]["user"]', '"root"')
    (repo / "README.md").write_text("# deploy\n\nsecrets live in *.enc.yaml\n")
    _commit(repo, "db: user root (sops set)", 1)
    from tests.helpers import secretops

    assert secretops("set", str(repo / "db.enc.yaml"), '["stringData"]["host"]',
                     '"db2.internal"').code == 0
    _commit(repo, "db: host db2 (secretops set)", 2)
    (repo / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: \\.enc\\.(yaml|json)$\n"
        f"    encrypted_regex: {REGEX}\n"
        f"    age: {age_key.recipient},{newcomer.recipient}\n")
    _run_sops(sops_bin, repo, "updatekeys", "-y", "db.enc.yaml")
    _commit(repo, "db: a newcomer can read it (updatekeys)", 3)
    _run_sops(sops_bin, repo, "rotate", "-i", "db.enc.yaml")
    _commit(repo, "db: rotate the data key", 4)
    _run_sops(sops_bin, repo, "rotate", "-i", "--add-pgp", gpg_key, "db.enc.yaml")
    _commit(repo, "db: the ops PGP key too", 5)
    (repo / "app.enc.json").write_text(f'{{"stringData": {{"token": "{CANARY}-app"}}}}\n')
    _run_sops(sops_bin, repo, "encrypt", "-i", "app.enc.json")
    (repo / "logo.bin").write_bytes(bytes(range(256)))
    _commit(repo, "app: a token", 6)
    _run_sops(sops_bin, repo, "set", "app.enc.json", '["stringData"]["token"]', '"t2"')
    git(repo, "mv", "db.enc.yaml", "database.enc.yaml")
    _commit(repo, "app: new token; rename the db secret", 7)
    git(repo, "rm", "-q", "app.enc.json")
    (repo / "logo.bin").write_bytes(bytes(range(255, -1, -1)))
    _commit(repo, "app: gone", 8)
    return repo


def _with_driver(repo: Path, command: str) -> None:
    """What `git setup` does, for git log -p to compare with (in .git/info, not committed)."""
    _git(repo, "config", "diff.enc.textconv", command)
    _git(repo, "config", "diff.enc.cachetextconv", "false")
    (repo / ".git" / "info" / "attributes").write_text("*.enc.yaml diff=enc\n*.enc.json diff=enc\n")


def _without_driver(repo: Path) -> None:
    (repo / ".git" / "info" / "attributes").write_text("")


def test_log_p_is_git_log_p_with_the_textconv_driver(history: Path) -> None:
    ours = _log(history, "-p")
    assert ours.returncode == 0, ours.stderr
    assert ours.stderr == b""
    _with_driver(history, DRIVER)
    theirs = _git(history, "log", "-p")
    assert ours.stdout == theirs
    text = ours.stdout.decode()
    assert f"+    password: {CANARY}" in text and "ENC[AES256_GCM" not in text
    assert f'+\t\t"token": "{CANARY}-app"' in text and f'-\t\t"token": "{CANARY}-app"' in text
    assert "+# PGP key " in text and "rename to database.enc.yaml" in text
    assert "Binary files a/logo.bin and b/logo.bin differ" in text


def test_log_p_no_trailer_is_git_log_p_with_sops_as_textconv(history: Path,
                                                             sops_bin: str) -> None:
    ours = _log(history, "-p", "--no-trailer")
    assert ours.returncode == 0, ours.stderr
    _with_driver(history, f"{shlex.quote(sops_bin)} decrypt")
    assert ours.stdout == _git(history, "log", "-p")


OPTIONS = [
    ["-p", "--color=always"],
    ["-p", "--oneline", "-U1"],
    ["-p", "--reverse", "--", "db.enc.yaml", "README.md"],
    ["-p", "-3", "--pretty=fuller", "--skip=1"],
    ["-p", "--follow", "--", "database.enc.yaml"],
    ["-p", "--author=Test", "--since=2025-12-31", "--until=2026-12-31", "--no-merges"],
    ["--oneline"],
]


def test_options_pass_through_as_git_log_takes_them(history: Path, sops_bin: str) -> None:
    # against sops as the driver (--no-trailer): the same comparison, ten times faster
    ours = [_log(history, "--no-trailer", *args) for args in OPTIONS]
    _with_driver(history, f"{shlex.quote(sops_bin)} decrypt")
    for args, got in zip(OPTIONS, ours, strict=True):
        assert got.returncode == 0, got.stderr
        assert got.stdout == _git(history, "log", *args), args


def test_without_a_key_values_are_masked_exit_0_and_one_note(history: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "empty-gnupg"))
    (tmp_path / "empty-gnupg").mkdir(mode=0o700)
    ours = _log(history, "-p")
    assert ours.returncode == 0
    err = ours.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("secretops: note: no key opened "), err
    assert "masked as ENC[type hash]" in err
    text = ours.stdout.decode()
    assert_no_canary(text + err, "secretops log without a key")
    assert "no key found to decrypt this file; values are masked" in text
    assert "+    password: ENC[str " in text
    _with_driver(history, DRIVER)
    assert ours.stdout == _git(history, "log", "-p")  # the driver masks the same way


def test_a_version_encrypted_for_someone_else_is_masked_the_others_decrypted(
        tmp_path: Path, age_key: AgeKey) -> None:
    from tests.helpers import secretops

    repo = git_init(tmp_path / "r")
    stranger = make_age_key(tmp_path, "stranger.txt")
    for name, recipient in (("ours.enc.yaml", age_key.recipient),
                            ("theirs.enc.yaml", stranger.recipient)):
        (repo / name).write_text(SECRET)
        assert secretops("encrypt", "-i", "--age", recipient, str(repo / name)).code == 0
    _commit(repo, "two secrets", 0)
    r = _log(repo, "-p")
    assert r.returncode == 0
    text = r.stdout.decode()
    ours, theirs = text.split("diff --git a/theirs.enc.yaml")
    assert f"+  password: {CANARY}" in ours
    assert "values are masked" in theirs and CANARY not in theirs
    assert r.stderr.decode() == ("secretops: note: no key opened 1 version of 1 file; their "
                                 "values are shown masked as ENC[type hash]\n")


def test_a_malformed_version_is_reported_without_a_traceback(history: Path) -> None:
    good = (history / "database.enc.yaml").read_text()
    broken = re.sub(r",iv:[^,]*,", ",iv:AAAA,", good, count=1)  # an IV of the wrong size
    (history / "database.enc.yaml").write_text(broken)
    _commit(history, "someone edited the ciphertext by hand", 9)
    (history / "database.enc.yaml").write_text(good)
    _commit(history, "put it back", 10)
    r = _log(history, "-p", "-2")
    assert r.returncode == 0
    err = r.stderr.decode()
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("secretops: warning: database.enc.yaml in commit ")
    assert "cannot decrypt" in err and "shown masked" in err
    assert "secretops: cannot decrypt: " in r.stdout.decode()
    assert_no_canary(err, "the warning about a malformed version")
    _with_driver(history, DRIVER)
    assert r.stdout == _git(history, "log", "-p", "-2")


def test_a_version_over_the_size_limit_is_reported_not_decrypted(
        history: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from secretops import limits
    from secretops.git.history import write_log

    monkeypatch.chdir(history)
    sizes: dict[str, list[int]] = {}
    for path in ("db.enc.yaml", "app.enc.json"):
        for commit in _git(history, "log", "--format=%H", "--", path).decode().split():
            blob = f"{commit}:{path}"
            if subprocess.run(["git", "cat-file", "-e", blob], cwd=history).returncode == 0:
                sizes.setdefault(path, []).append(int(_git(history, "cat-file", "-s", blob)))
    limit = max(sizes["app.enc.json"])
    assert max(sizes["db.enc.yaml"]) > limit
    monkeypatch.setattr(limits, "MAX_INPUT_BYTES", limit)
    warnings: list[str] = []
    out = io.BytesIO()
    write_log(["--", "db.enc.yaml", "app.enc.json"], out, env=os.environ,
              warn=warnings.append)
    text = out.getvalue().decode()
    too_big = sum(size > limit for size in sizes["db.enc.yaml"])
    assert len(warnings) == too_big, warnings
    assert all(w.startswith("db.enc.yaml in commit ") and w.endswith(
        "bytes, over the limit on input: shown as stored, not decrypted") for w in warnings)
    assert "ENC[AES256_GCM" in text  # those versions' patches as git printed them
    assert f'"token": "{CANARY}-app"' in text  # the small file still decrypted


class _Counting:
    """A real identity that counts the times it is asked to unwrap a data key."""

    def __init__(self, inner: object, calls: list[int]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def unwrap(self, entry: object) -> bytes:
        self._calls.append(1)
        return self._inner.unwrap(entry)  # type: ignore[attr-defined, no-any-return]


def _counting_lookup(calls: list[int]) -> Callable[[str], list[Any]]:
    from secretops.keys.datakey import lazy_identities

    real = lazy_identities(os.environ)
    return lambda kind: [_Counting(i, calls) for i in real(kind)]


def test_a_data_key_is_unwrapped_once_for_all_the_versions_it_opens(
        tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from secretops.git.history import write_log
    from tests.helpers import secretops

    repo = git_init(tmp_path / "r")
    (repo / "db.enc.yaml").write_text(SECRET)
    assert secretops("encrypt", "-i", "--age", age_key.recipient,
                     str(repo / "db.enc.yaml")).code == 0
    _commit(repo, "v0", 0)
    for n in range(1, 6):
        assert secretops("set", str(repo / "db.enc.yaml"), '["stringData"]["user"]',
                         f'"user{n}"').code == 0
        _commit(repo, f"v{n}", n)
    monkeypatch.chdir(repo)
    calls: list[int] = []
    out = io.BytesIO()
    summary = write_log([], out, env=os.environ, identities=_counting_lookup(calls))
    text = out.getvalue().decode()
    assert all(f"+  user: user{n}" in text for n in range(1, 6))  # 6 versions decrypted
    assert len(calls) == 1 and summary.unwrapped == 1
    assert secretops("rotate", "-i", str(repo / "db.enc.yaml")).code == 0
    assert secretops("set", str(repo / "db.enc.yaml"), '["stringData"]["user"]',
                     '"after"').code == 0
    _commit(repo, "rotated and edited", 6)
    calls.clear()
    summary = write_log([], io.BytesIO(), env=os.environ, identities=_counting_lookup(calls))
    assert len(calls) == 2 and summary.unwrapped == 2  # one key before the rotation, one after


def test_the_pager_runs_only_on_a_terminal(history: Path, tmp_path: Path) -> None:
    mark = tmp_path / "pager-ran"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(mark))}\ncat\n")
    pager.chmod(0o755)
    env = {**os.environ, "GIT_PAGER": str(pager), "TERM": "xterm"}
    r = _log(history, "-p", "-1", env=env)
    assert r.returncode == 0 and b"diff --git" in r.stdout
    assert not mark.exists()
    out = _on_terminal(history, ["-p", "-1"], env)
    assert mark.exists()
    assert b"\x1b[33mcommit " in out and b"\x1b[31m-" in out  # colour on a terminal
    mark.unlink()
    out = _on_terminal(history, ["-p", "-1", "--no-pager"], {**env, "NO_COLOR": "1"})
    assert not mark.exists() and b"diff --git" in out and b"\x1b[" not in out


def _on_terminal(repo: Path, args: list[str], env: dict[str, str]) -> bytes:
    """Run ``secretops log`` with a pseudo-terminal as its standard output; what it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "secretops", "log", *args], cwd=repo,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    got = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: every writer is gone
                break
            if not chunk:
                break
            got += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=30) == 0, bytes(got)
    return bytes(got)


@pytest.mark.parametrize(("args", "what"), [
    (["-p", "--stat"], "--stat"),
    (["-p", "--graph"], "--graph"),
    (["-p", "--format=%H %s"], "--format"),
    (["-p", "--ext-diff"], "--ext-diff"),
    (["-p", "--pretty=format:%H"], "--pretty"),
])
def test_other_git_log_options_are_refused_in_one_line(tmp_path: Path, args: list[str],
                                                       what: str) -> None:
    r = _log(git_init(tmp_path / "r"), *args)
    err = r.stderr.decode()
    assert r.returncode == 8 and r.stdout == b""
    assert err.count("\n") == 1 and err.startswith("secretops: error: log: ") and what in err


def test_git_errors_are_one_line(history: Path, tmp_path: Path) -> None:
    r = _log(history, "-p", "no-such-branch")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().startswith("secretops: error: git log failed: ")
    assert r.stderr.count(b"\n") == 1
    r = _log(tmp_path, "-p")
    assert r.returncode == 1 and b"not a git repository" in r.stderr


def test_the_canary_only_in_decrypted_diff_lines(history: Path) -> None:
    r = _log(history, "-p", "--color=always")
    assert r.returncode == 0
    assert_no_canary(r.stderr.decode(), "secretops log's stderr")
    for line in r.stdout.decode().splitlines():
        if CANARY in line:
            assert line.startswith(("\x1b[31m-", "\x1b[32m+", " ")), line
