"""rotate --older-than: the data key's age from git history, scheduled-job exit codes."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, git, git_init, secretops, sops

TEXT = f"password: {CANARY}\nuser: admin\n"
OLD = (datetime.now(UTC) - timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%S+0000")
RECENT = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _statuses(out: str) -> dict[str, str]:
    """``path: status…`` report lines → {file name: status}."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+): (rotated|not due|would rotate)", line)
        if m:
            found[Path(m.group(1)).name] = m.group(2)
    return found


@pytest.fixture
def repo(tmp_path: Path, age_key: AgeKey) -> Path:
    r = git_init(tmp_path / "repo")
    (r / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {age_key.recipient}\n")
    (r / "secrets").mkdir()
    for name in ("a.yaml", "b.yaml"):
        (r / "secrets" / name).write_text(TEXT)
        assert secretops("encrypt", "-i", str(r / "secrets" / name)).code == 0
    (r / "secrets" / "plain.yaml").write_text("not: encrypted\n")  # a rule matches; skipped
    (r / "README.md").write_text("lastmodified ENC[AES256_GCM looks suspicious\n")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "secrets", date=OLD)
    return r


def test_rotates_due_files_then_nothing(repo: Path) -> None:
    before = {p: p.read_bytes() for p in (repo / "secrets").iterdir()}
    r = secretops("rotate", "-i", "--older-than", "90d", str(repo))
    assert r.code == 156, r.err
    assert _statuses(r.text) == {"a.yaml": "rotated", "b.yaml": "rotated"}
    assert "data key 200 days old" in r.text
    assert "rotated 2 of 2 files" in r.text
    assert CANARY not in r.text + r.err
    plain = repo / "secrets" / "plain.yaml"
    assert plain.read_bytes() == before[plain]
    git(repo, "commit", "-qam", "rotate")
    r = secretops("rotate", "-i", "--older-than", "90d", str(repo))
    assert r.code == 0, r.err
    assert _statuses(r.text) == {"a.yaml": "not due", "b.yaml": "not due"}


def test_edits_keep_the_age_and_rotations_reset_it(repo: Path, sops_bin: str) -> None:
    a, b = repo / "secrets" / "a.yaml", repo / "secrets" / "b.yaml"
    # an edit with the real sops binary re-encrypts values but keeps the data key
    assert sops(sops_bin, "set", str(a), '["user"]', '"root"').code == 0
    # sops rotate makes a new data key
    assert sops(sops_bin, "rotate", "-i", str(b)).code == 0
    git(repo, "commit", "-qam", "edit a, rotate b", date=RECENT)
    r = secretops("rotate", "-i", "--older-than", "90d", "--dry-run", str(repo))
    assert r.code == 0, r.err
    assert _statuses(r.text) == {"a.yaml": "would rotate", "b.yaml": "not due"}
    assert re.search(r"a\.yaml: would rotate: data key 200 days old", r.text)
    assert re.search(r"b\.yaml: not due: data key 10 days old", r.text)


def test_updatekeys_keeps_the_age(repo: Path, tmp_path: Path, age_key: AgeKey,
                                  sops_bin: str) -> None:
    from tests.helpers import make_age_key

    other = make_age_key(tmp_path, "other.txt")
    (repo / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n"
        f"    age: {age_key.recipient},{other.recipient}\n")
    assert sops(sops_bin, "updatekeys", "-y", "secrets/a.yaml", cwd=repo).code == 0
    git(repo, "commit", "-qam", "add a key", date=RECENT)
    r = secretops("rotate", "-i", "--older-than", "90d", "-n", str(repo / "secrets" / "a.yaml"))
    assert "would rotate: data key 200 days old" in r.text


def test_renames_are_followed(repo: Path) -> None:
    git(repo, "mv", "secrets/a.yaml", "secrets/c.yaml")
    git(repo, "commit", "-qm", "rename", date=RECENT)
    r = secretops("rotate", "-i", "--older-than", "90d", "-n", str(repo / "secrets" / "c.yaml"))
    assert "would rotate: data key 200 days old" in r.text


def test_unknown_age_is_due(repo: Path, tmp_path: Path, age_key: AgeKey) -> None:
    new = repo / "secrets" / "new.yaml"
    new.write_text(TEXT)
    assert secretops("encrypt", "-i", str(new)).code == 0
    outside = tmp_path / "outside.yaml"
    outside.write_text(TEXT)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(outside)).code == 0
    r = secretops("rotate", "-i", "--older-than", "90d", "-n", str(new), str(outside))
    assert "new.yaml: would rotate: data key age unknown (no committed version)" in r.text
    assert "outside.yaml: would rotate: data key age unknown (not in a git repository)" in r.text


def test_a_rotation_not_yet_committed_is_recent(repo: Path) -> None:
    a = repo / "secrets" / "a.yaml"
    assert secretops("rotate", "-i", str(a)).code == 0
    r = secretops("rotate", "-i", "--older-than", "1d", str(a))
    assert r.code == 0, r.err
    assert "not due: data key 0 days old (rotated since the last commit)" in r.text


def test_shallow_clone_cannot_tell(repo: Path, tmp_path: Path, sops_bin: str) -> None:
    a = repo / "secrets" / "a.yaml"
    assert sops(sops_bin, "set", str(a), '["user"]', '"root"').code == 0
    git(repo, "commit", "-qam", "edit", date=RECENT)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    r = secretops("rotate", "-i", "--older-than", "90d", str(clone / "secrets" / "a.yaml"))
    assert r.code == 157, r.err
    assert "shallow" in r.err and "fetch-depth: 0" in r.err
    # b was not touched since the old commit, which the clone cannot see either way
    r = secretops("rotate", "-i", "--older-than", "5d", "-n", str(clone / "secrets" / "a.yaml"))
    assert r.code == 157


def test_bad_duration(repo: Path) -> None:
    r = secretops("rotate", "-i", "--older-than", "90 days", str(repo))
    assert r.code == 8
    assert "invalid duration" in r.err


def test_a_version_over_the_input_limit_is_never_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # keyage read each historical version whole, whatever its size, and only then refused it
    # (one cat-file reader, with the limit on input, now serves secretops log and
    # rotate --older-than alike: a larger version is drained in chunks)
    import tracemalloc

    from secretops import keyage, limits

    r = git_init(tmp_path / "repo")
    f = r / "s.yaml"
    f.write_bytes(b"#" * (32 << 20))
    git(r, "add", "-A")
    git(r, "commit", "-qm", "a 32 MiB version", date=OLD)
    monkeypatch.setattr(limits, "MAX_INPUT_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        age = keyage.data_key_age(str(f), b"k" * 32, "yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert age.commit is None
    assert peak < 8 << 20, f"{peak:,} bytes held while reading history"
