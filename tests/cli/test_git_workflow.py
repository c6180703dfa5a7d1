"""The git workflow end to end in real repositories: setup, diff, log -p, merge."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, data_of, git, git_init, secretops, sops

TEXT = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n"
        f"  password: {CANARY}\n  user: admin\n  host: db.internal\n")


@pytest.fixture
def repo(tmp_path: Path, age_key: AgeKey) -> Path:
    r = git_init(tmp_path / "repo")
    (r / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: \\.enc\\.yaml$\n"
        f"    encrypted_regex: ^(data|stringData)$\n    age: {age_key.recipient}\n")
    (r / "db.enc.yaml").write_text(TEXT)
    assert secretops("encrypt", "-i", str(r / "db.enc.yaml")).code == 0
    assert secretops("git", "setup", cwd=r).code == 0
    git(r, "add", "-A")
    git(r, "commit", "-qm", "init")
    return r


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=check, timeout=120)


def test_setup_writes_attributes_and_config(repo: Path) -> None:
    attrs = (repo / ".gitattributes").read_text()
    assert "*.enc.yaml diff=secretops merge=secretops" in attrs
    assert _git(repo, "config", "diff.secretops.cachetextconv").stdout.strip() == "false"
    driver = _git(repo, "config", "merge.secretops.driver").stdout
    assert "git merge-driver %O %A %B %P %L" in driver
    assert secretops("git", "setup", cwd=repo).code == 0  # again: the block is replaced
    assert (repo / ".gitattributes").read_text() == attrs


def test_git_diff_shows_the_plaintext_change(repo: Path) -> None:
    assert secretops("set", str(repo / "db.enc.yaml"), '["stringData"]["user"]', '"root"').code == 0
    diff = _git(repo, "diff").stdout
    assert "-  user: admin" in diff and "+  user: root" in diff
    assert "ENC[" not in diff
    changed = [ln for ln in diff.splitlines() if ln.startswith(("+ ", "- ", "+\t", "-\t"))
               or re.match(r"^[+-]\s", ln)]
    assert len(changed) == 2, diff


def test_log_p_with_and_without_a_key(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n, user in enumerate(("root", "ops")):
        assert secretops("set", str(repo / "db.enc.yaml"), '["stringData"]["user"]',
                         f'"{user}"').code == 0
        git(repo, "commit", "-qam", f"change {n}")
    log = _git(repo, "log", "-p").stdout
    assert "+  user: ops" in log and "+  user: root" in log and "-  user: admin" in log
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    log = _git(repo, "log", "-p").stdout
    assert "no key found to decrypt this file; values are masked" in log
    assert CANARY not in log and "user: admin" not in log
    assert re.search(r"^\+  user: ENC\[str [0-9a-f]{8}\]$", log, re.M)


def test_cachetextconv_stays_off_so_no_plaintext_lands_in_git(repo: Path) -> None:
    assert secretops("set", str(repo / "db.enc.yaml"), '["stringData"]["user"]', '"r"').code == 0
    git(repo, "commit", "-qam", "x")
    _git(repo, "log", "-p")
    proc = subprocess.run(["grep", "-r", "-l", CANARY, str(repo / ".git")],
                          capture_output=True, stdin=subprocess.DEVNULL, check=False)
    assert proc.stdout == b""
    assert _git(repo, "notes", "--ref=textconv/secretops", "list", check=False).stdout == ""


def _branch_change(repo: Path, branch: str, path: str, value: str) -> None:
    git(repo, "checkout", "-q", "-b", branch, "main")
    assert secretops("set", str(repo / "db.enc.yaml"), path, value).code == 0
    git(repo, "commit", "-qam", f"{branch}: {path}")


def test_branches_changing_different_values_merge(repo: Path, sops_bin: str) -> None:
    _branch_change(repo, "a", '["stringData"]["user"]', '"alice"')
    _branch_change(repo, "b", '["stringData"]["host"]', '"db2.internal"')
    git(repo, "checkout", "-q", "a")
    merge = _git(repo, "merge", "--no-edit", "b", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    plain = sops(sops_bin, "decrypt", str(repo / "db.enc.yaml")).out
    expected = TEXT.replace("user: admin", "user: alice").replace("db.internal", "db2.internal")
    assert data_of(plain, "yaml") == data_of(expected.encode(), "yaml")
    assert _git(repo, "status", "--porcelain").stdout == ""


def test_a_conflict_leaves_no_plaintext_and_names_the_path(repo: Path) -> None:
    # values with '-' and '_': neither can occur in base64 ciphertext by chance
    _branch_change(repo, "a", '["stringData"]["user"]', '"alice-on_a"')
    _branch_change(repo, "b", '["stringData"]["user"]', '"bob-on_b"')
    git(repo, "checkout", "-q", "a")
    ours = (repo / "db.enc.yaml").read_bytes()
    merge = _git(repo, "merge", "--no-edit", "b", check=False)
    assert merge.returncode != 0
    out = merge.stdout + merge.stderr
    assert '["stringData"]["user"]' in out and "secretops edit" in out
    assert "alice-on_a" not in out and "bob-on_b" not in out and CANARY not in out
    assert (repo / "db.enc.yaml").read_bytes() == ours
    for stage in ("1", "2", "3"):
        blob = _git(repo, "show", f":{stage}:db.enc.yaml").stdout
        assert "alice-on_a" not in blob and "bob-on_b" not in blob and CANARY not in blob
    for f in repo.rglob("*"):
        if ".git" not in f.parts and f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f


def _plain_repo(tmp_path: Path) -> Path:
    """A repository whose attributes send every .yaml through the driver (git setup falls
    back to such globs when it cannot translate a path_regex, or finds no .sops.yaml)."""
    r = git_init(tmp_path / "plain-repo")
    assert secretops("git", "setup", cwd=r).code == 0
    assert "*.yaml diff=secretops merge=secretops" in (r / ".gitattributes").read_text()
    (r / "app.yaml").write_text("a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\n")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "init")
    return r


def test_plain_files_under_the_driver_merge_as_text(tmp_path: Path) -> None:
    r = _plain_repo(tmp_path)
    for branch, old, new in (("a", "a: 1", "a: 10"), ("b", "f: 6", "f: 60")):
        git(r, "checkout", "-q", "-b", branch, "main")
        (r / "app.yaml").write_text((r / "app.yaml").read_text().replace(old, new))
        git(r, "commit", "-qam", branch)
    git(r, "checkout", "-q", "a")
    merge = _git(r, "merge", "--no-edit", "b", check=False)
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert (r / "app.yaml").read_text() == "a: 10\nb: 2\nc: 3\nd: 4\ne: 5\nf: 60\n"


def test_a_plain_file_conflict_gets_conflict_markers(tmp_path: Path) -> None:
    r = _plain_repo(tmp_path)
    for branch, value in (("a", "b: ours"), ("b", "b: theirs")):
        git(r, "checkout", "-q", "-b", branch, "main")
        (r / "app.yaml").write_text((r / "app.yaml").read_text().replace("b: 2", value))
        git(r, "commit", "-qam", branch)
    git(r, "checkout", "-q", "a")
    merge = _git(r, "merge", "--no-edit", "b", check=False)
    assert merge.returncode != 0
    text = (r / "app.yaml").read_text()
    assert "<<<<<<< app.yaml (ours)\nb: ours\n=======\nb: theirs\n>>>>>>> app.yaml (theirs)" \
        in text


def test_textconv_passes_other_files_through(repo: Path) -> None:
    (repo / "plain.yaml").write_text("a: 1\n")
    out = subprocess.run([os.sys.executable, "-m", "secretops", "git", "textconv",
                          str(repo / "plain.yaml")], capture_output=True, check=True,
                         stdin=subprocess.DEVNULL)
    assert out.stdout == b"a: 1\n"
