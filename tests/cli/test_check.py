"""secretops check and git setup --hook: the pre-commit guard, in real git repositories."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from secretops.cli.git import HOOK_MARKER
from tests.helpers import CANARY, AgeKey, Result, git, git_init, make_age_key, run, secretops, sops

SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: {CANARY}
"""
RULES = "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {recipient}\n"


@pytest.fixture
def key(tmp_path: Path) -> AgeKey:
    """A recipient to encrypt to; its identity is never exported, so nothing can decrypt."""
    return make_age_key(tmp_path, "never-exported.txt")


@pytest.fixture
def repo(tmp_path: Path, key: AgeKey) -> Path:
    r = git_init(tmp_path / "repo")
    (r / ".sops.yaml").write_text(RULES.format(recipient=key.recipient))
    (r / "secrets").mkdir()
    (r / "k8s").mkdir()
    installed = secretops("git", "setup", "--no-drivers", "--hook", cwd=r)
    assert installed.code == 0, installed.err
    assert "pre-commit hook installed" in installed.text
    return r


def _commit(repo: Path, *paths: str) -> Result:
    git(repo, "add", "--", *paths)
    return run(["git", "-C", str(repo), "commit", "-qm", "change"])


def _committed(repo: Path) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()


def _encrypt(path: Path, recipient: str, *extra: str) -> None:
    r = secretops("encrypt", "-i", "--age", recipient, *extra, str(path))
    assert r.code == 0, r.err


def test_no_key_is_available() -> None:
    assert not any(v.startswith("SOPS_AGE") for v in os.environ)


def test_hook_blocks_a_plaintext_secret_and_allows_an_encrypted_one(repo: Path,
                                                                    key: AgeKey) -> None:
    manifest = repo / "k8s" / "db.yaml"  # no creation rule matches k8s/
    manifest.write_text(SECRET)
    blocked = _commit(repo, "k8s/db.yaml")
    assert blocked.code != 0
    out = blocked.text + blocked.err
    assert 'k8s/db.yaml: ["stringData"]["password"]: plaintext value in a Kubernetes Secret' in out
    assert "secretops: error: plaintext secrets found" in out
    assert CANARY not in out
    assert run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", "HEAD"]).code != 0

    _encrypt(manifest, key.recipient, "--encrypted-regex", "^(data|stringData)$")
    allowed = _commit(repo, "k8s/db.yaml")
    assert allowed.code == 0, allowed.text + allowed.err
    assert _committed(repo) == ["k8s/db.yaml"]
    assert CANARY not in allowed.text + allowed.err


def test_staged_content_is_checked_not_the_working_tree(repo: Path, key: AgeKey) -> None:
    plain = repo / "secrets" / "app.yaml"
    plain.write_text(f"password: {CANARY}\n")
    git(repo, "add", "secrets/app.yaml")
    _encrypt(plain, key.recipient)  # encrypted on disk, but the index still holds plaintext
    r = run(["git", "-C", str(repo), "commit", "-qm", "x"])
    assert r.code != 0
    assert ("secrets/app.yaml: creation_rules[0] (path_regex secrets/.*\\.yaml$) says this "
            "file must be encrypted, but it has no sops metadata") in r.text + r.err
    assert CANARY not in r.text + r.err
    assert secretops("check", "secrets", cwd=repo).code == 0  # the working tree is fine
    assert _commit(repo, "secrets/app.yaml").code == 0

    # the other way round: encrypted in the index, plaintext on disk
    plain.write_text(f"password: {CANARY}\n")
    staged = secretops("check", "--staged", cwd=repo)
    assert staged.code == 0, staged.text
    assert "checked 0 files" in staged.text  # nothing staged
    tree = secretops("check", cwd=repo)
    assert tree.code == 158
    assert "secrets/app.yaml: creation_rules[0]" in tree.text


def test_staged_check_applies_the_staged_sops_yaml(repo: Path, key: AgeKey) -> None:
    """What the commit will contain decides: a .sops.yaml allowlisting a plaintext file on
    disk only does not let it through; one that is staged does."""
    notes = repo / "secrets" / "notes.yaml"
    notes.write_text(f"password: {CANARY}\n")
    git(repo, "add", ".sops.yaml", "secrets/notes.yaml")
    allowing = RULES.format(recipient=key.recipient) + "secretops:\n  check:\n    allow:\n" \
        "      - secrets/notes.yaml\n"
    (repo / ".sops.yaml").write_text(allowing)  # on disk only
    blocked = secretops("check", "--staged", cwd=repo)
    assert blocked.code == 158, blocked.text
    assert "secrets/notes.yaml: creation_rules[0]" in blocked.text
    assert secretops("check", "secrets", cwd=repo).code == 0  # the working tree allows it
    git(repo, "add", ".sops.yaml")
    allowed = secretops("check", "--staged", cwd=repo)
    assert allowed.code == 0, allowed.text
    assert "1 allowlisted" in allowed.text
    # and a rule only on disk does not apply to the index either
    (repo / ".sops.yaml").write_text("creation_rules: []\n")
    again = secretops("check", "--staged", cwd=repo)
    assert again.code == 0 and "1 allowlisted" in again.text, again.text
    below = secretops("check", "--staged", cwd=repo / "k8s")  # the index is the whole repo's
    assert below.code == 0 and "1 allowlisted" in below.text, below.text
    assert CANARY not in blocked.text + allowed.text + again.text


def test_commit_all_and_commit_paths_are_checked(repo: Path, key: AgeKey) -> None:
    manifest = repo / "k8s" / "db.yaml"
    manifest.write_text(SECRET)
    _encrypt(manifest, key.recipient, "--encrypted-regex", "^(data|stringData)$")
    assert _commit(repo, "k8s/db.yaml").code == 0
    manifest.write_text(SECRET)  # tracked, changed, not staged: commit -a / commit PATH stage it
    for args in (["-a"], ["--", "k8s/db.yaml"]):
        r = run(["git", "-C", str(repo), "commit", "-qm", "x", *args])
        assert r.code != 0, args
        assert 'k8s/db.yaml: ["stringData"]["password"]' in r.text + r.err
    assert git(repo, "status", "--porcelain", "k8s") == " M k8s/db.yaml\n"


def test_staged_from_a_subdirectory_and_limited_to_paths(repo: Path) -> None:
    (repo / "secrets" / "a.yaml").write_text("a: 1\n")
    (repo / "k8s" / "db.yaml").write_text(SECRET)
    git(repo, "add", "-A")
    r = secretops("check", "--staged", cwd=repo / "k8s")
    assert r.code == 158
    assert 'db.yaml: ["stringData"]["password"]' in r.text.splitlines()[0]
    assert "../secrets/a.yaml: creation_rules[0]" in r.text
    only = secretops("check", "--staged", "secrets", cwd=repo)
    assert only.code == 158
    assert "k8s/db.yaml" not in only.text
    assert "checked 1 file: 1 problem in 1 file" in only.text


def test_allowlist_in_sops_yaml_and_marker(repo: Path, key: AgeKey, sops_bin: str) -> None:
    (repo / ".sops.yaml").write_text(RULES.format(recipient=key.recipient)
                                     + "secretops:\n  check:\n    allow:\n"
                                       "      - fixtures/\n      - secrets/example.yaml\n")
    (repo / "fixtures").mkdir()
    (repo / "fixtures" / "secret.yaml").write_text(SECRET)
    (repo / "secrets" / "example.yaml").write_text("password: example\n")
    (repo / "k8s" / "dummy.yaml").write_text("# secretops: allow-plaintext\n" + SECRET)
    (repo / "k8s" / "dummy.json").write_text(  # JSON cannot carry the marker
        '{"apiVersion": "v1", "kind": "Secret", "data": {"a": "# secretops: allow-plaintext"}}')
    r = secretops("check", cwd=repo)
    assert r.code == 158
    assert r.text.splitlines() == [
        'k8s/dummy.json: ["data"]["a"]: plaintext value in a Kubernetes Secret\'s data',
        "secretops: checked 4 files (3 allowlisted): 1 problem in 1 file",
    ]
    os.remove(repo / "k8s" / "dummy.json")
    assert _commit(repo, ".").code == 0
    # sops itself accepts the secretops: entry in .sops.yaml
    target = repo / "secrets" / "real.yaml"
    target.write_text(f"password: {CANARY}\n")
    made = sops(sops_bin, "encrypt", "-i", "secrets/real.yaml", cwd=repo)
    assert made.code == 0, made.err
    assert _commit(repo, "secrets/real.yaml").code == 0


def test_a_file_encrypted_by_sops_passes(repo: Path, sops_bin: str) -> None:
    (repo / "secrets" / "db.yaml").write_text(SECRET)
    made = sops(sops_bin, "encrypt", "-i", "--encrypted-regex", "^(data|stringData)$",
                "secrets/db.yaml", cwd=repo)
    assert made.code == 0, made.err
    (repo / "secrets" / "app.yaml").write_text(f"password: {CANARY}\nuser_unencrypted: x\n")
    assert sops(sops_bin, "encrypt", "-i", "secrets/app.yaml", cwd=repo).code == 0
    r = _commit(repo, ".")
    assert r.code == 0, r.text + r.err
    assert sorted(_committed(repo)) == [".sops.yaml", "secrets/app.yaml", "secrets/db.yaml"]


def test_hand_inserted_plaintext_in_an_encrypted_secret(repo: Path, key: AgeKey) -> None:
    manifest = repo / "secrets" / "db.yaml"
    manifest.write_text(SECRET)
    _encrypt(manifest, key.recipient, "--encrypted-regex", "^(data|stringData)$")
    text = manifest.read_text()
    manifest.write_text(text.replace("\nstringData:\n", f"\nstringData:\n  extra: {CANARY}\n"))
    r = secretops("check", "secrets/db.yaml", cwd=repo)
    assert r.code == 158
    assert r.text.splitlines()[0] == (
        'secrets/db.yaml: ["stringData"]["extra"]: plaintext value that the file\'s selection '
        "rule says is encrypted")
    assert CANARY not in r.text + r.err
    blocked = _commit(repo, "secrets/db.yaml")
    assert blocked.code != 0 and CANARY not in blocked.text + blocked.err


def test_malformed_metadata_blocks(repo: Path, key: AgeKey) -> None:
    f = repo / "secrets" / "a.yaml"
    f.write_text("password: x\n")
    _encrypt(f, key.recipient)
    f.write_text(re.sub(r"\n *mac: [^\n]*", "", f.read_text()))
    r = secretops("check", cwd=repo)
    assert r.code == 158
    assert "secrets/a.yaml: malformed sops metadata: no mac" in r.text


def test_ci_walk_skips_hidden_directories_and_reports_clean(repo: Path, key: AgeKey) -> None:
    (repo / ".cache").mkdir()
    (repo / ".cache" / "secret.yaml").write_text(SECRET)
    (repo / "README.md").write_text("kind: Secret, sops, ENC[AES256_GCM,\n")
    f = repo / "secrets" / "a.yaml"
    f.write_text("password: x\n")
    _encrypt(f, key.recipient)
    r = secretops("check", cwd=repo)
    assert r.code == 0, r.text + r.err
    assert r.text == "secretops: checked 2 files: no plaintext secrets\n"


def test_missing_path_and_outside_git(tmp_path: Path) -> None:
    r = secretops("check", "nope.yaml", cwd=tmp_path)
    assert r.code == 2
    assert r.err.startswith("secretops: error: nope.yaml: no such file or directory")
    r = secretops("check", "--staged", cwd=tmp_path)
    assert r.code == 1
    assert "secretops: error: git rev-parse failed" in r.err


# -- git setup --hook -------------------------------------------------------------------------

def test_hook_setup_is_idempotent_and_leaves_foreign_hooks_alone(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    assert HOOK_MARKER in hook.read_text() and os.access(hook, os.X_OK)
    again = secretops("git", "setup", "--no-drivers", "--hook", cwd=repo / "secrets")
    assert again.code == 0 and "already installed" in again.text

    hook.write_text("#!/bin/sh\necho mine\n")
    refused = secretops("git", "setup", "--no-drivers", "--hook", cwd=repo)
    assert refused.code == 1
    assert "a pre-commit hook that secretops did not write is in the way" in refused.err
    assert "--force" in refused.err
    assert hook.read_text() == "#!/bin/sh\necho mine\n"

    forced = secretops("git", "setup", "--no-drivers", "--hook", "--force", cwd=repo)
    assert forced.code == 0, forced.err
    assert HOOK_MARKER in hook.read_text()
    assert (repo / ".git" / "hooks" / "pre-commit.bak").read_text() == "#!/bin/sh\necho mine\n"


def test_a_refused_hook_stops_setup_before_anything_is_written(tmp_path: Path) -> None:
    r = git_init(tmp_path / "r")
    hook = r / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\necho mine\n")
    refused = secretops("git", "setup", "--hook", cwd=r)
    assert refused.code == 1
    assert not (r / ".gitattributes").exists()
    config = subprocess.run(["git", "-C", str(r), "config", "--get-regexp", "secretops"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert config.stdout == ""


def test_hook_setup_follows_core_hooks_path(tmp_path: Path) -> None:
    r = git_init(tmp_path / "r")
    git(r, "config", "core.hooksPath", "githooks")
    (r / "sub").mkdir()
    out = secretops("git", "setup", "--no-drivers", "--hook", cwd=r / "sub")
    assert out.code == 0, out.err
    assert HOOK_MARKER in (r / "githooks" / "pre-commit").read_text()
    assert not (r / ".git" / "hooks" / "pre-commit").exists()
    (r / "db.yaml").write_text(SECRET)
    assert _commit(r, "db.yaml").code != 0


def test_setup_needs_a_part_and_a_repository(tmp_path: Path) -> None:
    r = secretops("git", "setup", "--no-drivers", cwd=tmp_path)
    assert r.code == 2 and "nothing to set up" in r.err
    r = secretops("git", "setup", cwd=tmp_path)
    assert r.code == 1 and "not in a git repository" in r.err
    r = secretops("git", "setup", "--no-drivers", "--hook", cwd=tmp_path)
    assert r.code == 1 and "not in a git repository" in r.err


def test_pre_commit_framework_hook_definition() -> None:
    import yaml

    hooks = yaml.safe_load((Path(__file__).parents[2] / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["secretops-check"]
    hook = hooks[0]
    assert hook["entry"] == "secretops check"
    assert hook["language"] == "python" and hook["pass_filenames"] is True
