"""``secretops status``: the keyless inventory of a repository's encrypted files.

Transcripts over a small git repository whose files the real sops and secretops wrote: a
recipient leaves ``.sops.yaml`` → status names the stale files and the key no rule lists, and
exits 181; after ``updatekeys`` (ours, and sops's) it is clean. No key is ever read: the tests
run status with no identity at all, and with one whose command would leave a trace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import AgeKey, git, git_init, make_age_key, secretops, sops

RULES = ("creation_rules:\n  - path_regex: secrets/.*\\.(yaml|json)$\n"
         "    age: {recipients}\n")
SCHEMA = Path(__file__).parents[2] / "docs" / "status.schema.json"


class Repo:
    def __init__(self, path: Path, alice: AgeKey, carol: AgeKey) -> None:
        self.path, self.alice, self.carol = path, alice, carol

    def rules(self, *keys: AgeKey) -> None:
        (self.path / ".sops.yaml").write_text(
            RULES.format(recipients=",".join(k.recipient for k in keys)))

    def commit(self, message: str, date: str) -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message, date=date)


@pytest.fixture
def repo(tmp_path: Path, age_key: AgeKey, sops_bin: str) -> Repo:
    """alice (whose key the tests hold) and carol; files by sops and by secretops, committed
    on 2025-01-01."""
    carol = make_age_key(tmp_path, "carol.txt")
    r = Repo(git_init(tmp_path / "repo"), age_key, carol)
    r.rules(age_key, carol)
    (r.path / "secrets" / "app").mkdir(parents=True)
    (r.path / "secrets/app/db.yaml").write_text("password: s3cret-db\nport: 5432\n")
    (r.path / "secrets/app/api.json").write_text('{"token": "s3cret-api"}\n')
    (r.path / "secrets/web.yaml").write_text("key: s3cret-web\n")
    (r.path / "README.md").write_text("ENC[AES256_GCM, explained: not a secret\n")
    for name in ("secrets/app/db.yaml", "secrets/web.yaml"):
        res = sops(sops_bin, "encrypt", "-i", name, cwd=r.path)
        assert res.code == 0, res.err
    res = secretops("encrypt", "-i", "secrets/app/api.json", cwd=r.path)
    assert res.code == 0, res.err
    r.commit("secrets", "2025-01-01T12:00:00Z")
    return r


ENCRYPTED = ["secrets/app/api.json", "secrets/app/db.yaml", "secrets/web.yaml"]


@pytest.fixture
def keyless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No identity anywhere, and an age key command that would leave a trace if run."""
    trace = tmp_path / "key-command-ran"
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_CMD", f"touch {trace}")
    return trace


def _status(repo: Repo, *args: str) -> tuple[int, dict, str]:
    res = secretops("status", "--json", *args, cwd=repo.path)
    doc = json.loads(res.out)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert doc["exit_code"] == res.code
    return res.code, doc, res.err


def _files(doc: dict) -> dict[str, dict]:
    return {r["file"]: r for r in doc["files"]}


def test_clean_repository_exits_0_without_any_key(repo: Repo, keyless: Path) -> None:
    res = secretops("status", cwd=repo.path)
    assert res.code == 0, res.err
    lines = res.text.splitlines()
    assert lines[0].split() == ["FILE", "STATE", "MAC", "DATA", "KEY", "NEEDS"]
    for name in ENCRYPTED:
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.split()[1:3] == ["current", "yes"], row
    assert "README.md" not in res.text  # no rule covers it, although it holds the marker
    assert lines[-1] == "3 files: 3 current; 0 need action"
    assert not keyless.exists()


def test_removed_recipient_makes_files_stale_until_updatekeys(
        repo: Repo, keyless: Path, sops_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.rules(repo.alice)  # carol left
    repo.commit("carol left", "2025-02-01T12:00:00Z")

    code, doc, err = _status(repo)
    assert code == 181, err
    files = _files(doc)
    assert sorted(files) == ENCRYPTED
    gone = f"age recipient {repo.carol.recipient}"
    for r in files.values():
        assert r["state"] == "stale" and r["actions"] == ["updatekeys"]
        assert r["remove"] == [[gone]] and r["add"] == [[]]
        assert r["unlisted"] == [gone]
        assert r["rule_key_groups"] == [[f"age recipient {repo.alice.recipient}"]]
        assert sorted(r["key_groups"][0]) == sorted(
            [gone, f"age recipient {repo.alice.recipient}"])
    assert doc["unlisted_keys"] == {gone: ENCRYPTED}
    assert doc["summary"] == {"files": 3, "current": 0, "stale": 3, "plaintext": 0, "error": 0,
                              "needs_action": 3}

    table = secretops("status", cwd=repo.path)
    assert table.code == 181
    assert f"    - {gone}  (no rule lists it)" in table.text
    assert f"  {gone}: in 3 files" in table.text
    assert not keyless.exists()

    # the real sops updates one file, secretops the rest; status then agrees with both
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(repo.alice.path))
    monkeypatch.delenv("SOPS_AGE_KEY_CMD")
    res = sops(sops_bin, "updatekeys", "-y", "secrets/web.yaml", cwd=repo.path)
    assert res.code == 0, res.err
    code, doc, _ = _status(repo)
    assert code == 181
    assert _files(doc)["secrets/web.yaml"]["state"] == "current"
    assert doc["unlisted_keys"] == {gone: ENCRYPTED[:2]}
    res = secretops("updatekeys", "-y", "secrets", cwd=repo.path)
    assert res.code == 0, res.err

    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    code, doc, err = _status(repo)
    assert code == 0, err
    assert {r["state"] for r in doc["files"]} == {"current"}
    assert doc["unlisted_keys"] == {}


def test_status_and_updatekeys_agree_file_by_file(repo: Repo, age_key: AgeKey) -> None:
    """What status calls stale is exactly what updatekeys (without --yes: it only reports)
    would change; they share the planning function."""
    dave = make_age_key(repo.path.parent, "dave.txt")
    (repo.path / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: secrets/app/.*$\n"
        f"    age: {age_key.recipient},{dave.recipient}\n"
        f"  - path_regex: secrets/.*$\n    age: {age_key.recipient},{repo.carol.recipient}\n")
    _, doc, _ = _status(repo)
    for name, r in _files(doc).items():
        res = secretops("updatekeys", name, cwd=repo.path)  # no terminal, no --yes: reports
        changes = [line.strip() for line in res.text.splitlines()[1:]]
        assert [c.strip() for c in r["changes"]] == changes, (name, res.text)
        assert (r["state"] == "stale") == (res.code == 155)
    assert _files(doc)["secrets/web.yaml"]["state"] == "current"
    assert _files(doc)["secrets/app/db.yaml"]["unlisted"] == []  # carol: the second rule


def test_data_key_age_reads_git_history_as_rotate_does(repo: Repo, sops_bin: str,
                                                        age_key: AgeKey) -> None:
    first = git(repo.path, "rev-parse", "HEAD").strip()
    # sops set keeps the data key; updatekeys keeps it; rotate makes a new one
    res = sops(sops_bin, "set", "secrets/app/db.yaml", '["port"]', "5433", cwd=repo.path)
    assert res.code == 0, res.err
    res = secretops("rotate", "-i", "secrets/web.yaml", cwd=repo.path)
    assert res.code == 0, res.err
    repo.commit("edit and rotate", "2025-06-01T12:00:00Z")
    second = git(repo.path, "rev-parse", "HEAD").strip()
    repo.rules(repo.alice)
    res = sops(sops_bin, "updatekeys", "-y", "secrets/app/db.yaml", cwd=repo.path)
    assert res.code == 0, res.err
    repo.commit("carol left", "2025-07-01T12:00:00Z")

    _, doc, _ = _status(repo)
    ages = {name: r["data_key"] for name, r in _files(doc).items()}
    assert ages["secrets/app/db.yaml"]["commit"] == first
    assert ages["secrets/app/db.yaml"]["born"] == "2025-01-01T12:00:00Z"
    assert ages["secrets/web.yaml"]["commit"] == second
    assert ages["secrets/app/api.json"]["commit"] == first
    # rotate --older-than, with the key, tells the same commits
    res = secretops("rotate", "-n", "--older-than", "1d", "secrets", cwd=repo.path)
    for name, age in ages.items():
        line = next(x for x in res.text.splitlines() if x.startswith(name + ":"))
        assert f"(since commit {age['commit'][:12]})" in line, line

    # --older-than flags what rotate --older-than would rotate
    days = ages["secrets/web.yaml"]["days"]
    code, doc, _ = _status(repo, "--older-than", f"{days + 1}d")
    assert code == 181
    flagged = {n for n, r in _files(doc).items() if "rotate" in r["actions"]}
    assert flagged == {"secrets/app/db.yaml", "secrets/app/api.json"}
    # a change since the last commit is an age of 0
    res = secretops("rotate", "-i", "secrets/app/api.json", cwd=repo.path)
    assert res.code == 0, res.err
    _, doc, _ = _status(repo)
    assert _files(doc)["secrets/app/api.json"]["data_key"] == {
        "born": _files(doc)["secrets/app/api.json"]["data_key"]["born"], "days": 0,
        "commit": None, "why": "rotated since the last commit"}


def test_plaintext_a_rule_covers_needs_action(repo: Repo, keyless: Path) -> None:
    (repo.path / "secrets/new.yaml").write_text("password: s3cret-new\n")
    code, doc, _ = _status(repo)
    assert code == 181
    r = _files(doc)["secrets/new.yaml"]
    assert r["state"] == "plaintext" and r["actions"] == ["encrypt"]
    assert "s3cret" not in json.dumps(doc)


def test_a_broken_file_among_many(repo: Repo, keyless: Path) -> None:
    good = (repo.path / "secrets/web.yaml").read_bytes()
    (repo.path / "secrets/broken.yaml").write_bytes(good[: len(good) // 2] + b"\n  - [\n")
    (repo.path / "secrets/no-mac.yaml").write_bytes(
        b"\n".join(line for line in good.splitlines() if not line.lstrip().startswith(b"mac:")))
    res = secretops("status", cwd=repo.path)
    assert res.code == 180, res.err
    assert res.err.splitlines()[0].startswith("secretops: error: secrets/broken.yaml: ")
    assert res.err.splitlines()[-1] == "secretops: error: 1 of 5 files failed"
    row = next(x for x in res.text.splitlines() if x.startswith("secrets/broken.yaml "))
    assert row.split()[1] == "error" and "fix (exit 150)" in row
    row = next(x for x in res.text.splitlines() if x.startswith("secrets/no-mac.yaml "))
    assert row.split()[1:3] == ["current", "NO"] and row.endswith("fix-mac")
    code, doc, _ = _status(repo)
    assert code == 180
    assert doc["errors"] == [{"file": "secrets/broken.yaml", "code": 150,
                              "message": doc["errors"][0]["message"]}]
    assert sorted(_files(doc)) == sorted([*ENCRYPTED, "secrets/no-mac.yaml"])
    # named alone, its own code
    res = secretops("status", "secrets/broken.yaml", cwd=repo.path)
    assert res.code == 150


def test_files_from_and_exit_codes_for_bad_input(repo: Repo, keyless: Path) -> None:
    res = secretops("status", "--json", "--files-from", "-", "--null", cwd=repo.path,
                    input=b"secrets/web.yaml\0secrets/app/db.yaml\0")
    assert res.code == 0, res.err
    assert [r["file"] for r in json.loads(res.out)["files"]] == ["secrets/web.yaml",
                                                                 "secrets/app/db.yaml"]
    assert secretops("status", "nope.yaml", cwd=repo.path).code == 2
    assert secretops("status", "README.md", cwd=repo.path).code == 151
    assert secretops("status", "--older-than", "soon", cwd=repo.path).code == 8
    (repo.path / ".sops.yaml").write_text("creation_rules: 3\n")
    assert secretops("status", "secrets/web.yaml", cwd=repo.path).code == 5


def test_empty_tree(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    res = secretops("status", "e")
    assert res.code == 0 and res.text == "no file a creation rule covers\n"
    assert os.listdir(tmp_path / "e") == []


def test_shallow_clone_age_is_unknown_and_older_than_refuses(repo: Repo, tmp_path: Path,
                                                            keyless: Path) -> None:
    repo.rules(repo.alice)
    repo.commit("carol left", "2025-02-01T12:00:00Z")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone))
    res = secretops("status", "--json", cwd=clone)
    assert res.code == 181, res.err  # stale, as before; the age alone is unknown
    ages = {r["data_key"]["why"] for r in json.loads(res.out)["files"]}
    assert ages == {"shallow clone: the history ends before the data key was made"}
    res = secretops("status", "--older-than", "90d", cwd=clone)
    assert res.code == 157, res.err
    assert "fetch-depth: 0" in res.err


def test_keyless_age_can_only_come_out_younger(repo: Repo, sops_bin: str) -> None:
    """The one documented gap (rotation.md): sops updatekeys and a change of every value
    squashed into one commit change every wrapped key, the MAC and every value, the data key
    kept. status then dates the key from that commit; rotate, opening the MAC with the key,
    from the first."""
    first = git(repo.path, "rev-parse", "HEAD").strip()
    repo.rules(repo.alice)
    res = sops(sops_bin, "updatekeys", "-y", "secrets/app/db.yaml", cwd=repo.path)
    assert res.code == 0, res.err
    for path, value in (('["port"]', "5433"), ('["password"]', '"other"')):
        res = sops(sops_bin, "set", "secrets/app/db.yaml", path, value, cwd=repo.path)
        assert res.code == 0, res.err
    repo.commit("squashed", "2025-03-01T12:00:00Z")
    squashed = git(repo.path, "rev-parse", "HEAD").strip()
    _, doc, _ = _status(repo, "secrets/app/db.yaml")
    assert _files(doc)["secrets/app/db.yaml"]["data_key"]["commit"] == squashed
    res = secretops("rotate", "-n", "--older-than", "1d", "secrets/app/db.yaml", cwd=repo.path)
    assert f"(since commit {first[:12]})" in res.text, res.text
