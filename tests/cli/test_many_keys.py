"""updatekeys and rotate over trees (someone left: their key goes from every file), progress
on a terminal, key services throttling a parallel run, a worker process dying, the limits."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_terminal import _on_terminal
from tests.fixtures.openbao import OpenBao
from tests.helpers import CANARY, AgeKey, data_of, git_init, make_age_key, secretops, sops

TEXT = f"password: {CANARY}\nuser: admin\n"


def _rules(repo: Path, *recipients: str) -> None:
    (repo / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n"
        f"    age: {','.join(recipients)}\n")


def _tree(repo: Path, count: int) -> list[str]:
    names = [f"secrets/team{n % 3}/s{n}.yaml" for n in range(count)]
    for name in names:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(TEXT)
    r = secretops("encrypt", "-i", "--all", cwd=repo)
    assert r.code == 0, r.err
    return names


def test_someone_leaves_updatekeys_over_the_tree(tmp_path: Path, age_key: AgeKey,
                                                 sops_bin: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The workflow of docs/workflows/many-files.md: their recipient leaves .sops.yaml, one
    updatekeys over the tree, then the real sops opens every file with a remaining key and
    not with theirs."""
    leaver = make_age_key(tmp_path, "leaver.txt")
    repo = git_init(tmp_path / "repo")
    _rules(repo, age_key.recipient, leaver.recipient)
    names = _tree(repo, 9)
    (repo / "secrets" / "notes.yaml").write_text("plain: yes\n")  # no sops: passed over
    before = {n: (repo / n).read_text() for n in names}
    _rules(repo, age_key.recipient)
    r = secretops("updatekeys", "--yes", "-j", "2", ".", cwd=repo)
    assert r.code == 0, r.err
    assert r.text.count(f"- age recipient {leaver.recipient}") == len(names)
    assert r.text.endswith(f"updated {len(names)} of {len(names)} files\n")
    for name in names:
        after = (repo / name).read_text()
        assert leaver.recipient not in after
        # values, lastmodified and mac are as they were: only key entries changed
        assert [ln for ln in after.splitlines() if "ENC[" in ln] == [
            ln for ln in before[name].splitlines() if "ENC[" in ln]
        assert data_of(sops(sops_bin, "decrypt", name, cwd=repo).out, "yaml") == data_of(
            TEXT.encode(), "yaml")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(leaver.path))
    assert all(sops(sops_bin, "decrypt", n, cwd=repo).code == 128 for n in names[:2])
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.path))
    again = secretops("updatekeys", "--yes", ".", cwd=repo)
    assert again.code == 0 and again.text.count("already up to date") == len(names)


def test_updatekeys_without_yes_and_terminal_changes_nothing(tmp_path: Path,
                                                             age_key: AgeKey) -> None:
    repo = git_init(tmp_path / "repo")
    _rules(repo, age_key.recipient)
    names = _tree(repo, 3)
    before = {n: (repo / n).read_bytes() for n in names}
    _rules(repo, age_key.recipient, make_age_key(tmp_path, "new.txt").recipient)
    r = secretops("updatekeys", "secrets", cwd=repo)
    assert r.code == 155 and "no terminal" in r.err
    assert {n: (repo / n).read_bytes() for n in names} == before


def test_rotate_a_list_then_sops_reads_every_file(tmp_path: Path, age_key: AgeKey,
                                                  sops_bin: str) -> None:
    repo = git_init(tmp_path / "repo")
    _rules(repo, age_key.recipient)
    names = _tree(repo, 6)
    before = {n: (repo / n).read_bytes() for n in names}
    listing = "".join(f"{n}\n" for n in names[:4]).encode()
    r = secretops("rotate", "-i", "--files-from", "-", input=listing, cwd=repo)
    assert r.code == 0, r.err
    assert r.text.splitlines() == [*(f"{n}: rotated" for n in names[:4]),
                                   "rotated 4 of 4 files"]
    for n in names:
        assert ((repo / n).read_bytes() != before[n]) is (n in names[:4])
        assert data_of(sops(sops_bin, "decrypt", n, cwd=repo).out, "yaml") == data_of(
            TEXT.encode(), "yaml")


def test_progress_bar_on_a_terminal_only(tmp_path: Path, age_key: AgeKey) -> None:
    repo = git_init(tmp_path / "repo")
    _rules(repo, age_key.recipient)
    _tree(repo, 4)
    os.environ["SECRETOPS_PROGRESS_AFTER"] = "0"  # the setting (a second by default)
    try:
        code, seen = _on_terminal(["rotate", "-i", "secrets"], cwd=repo)
        assert code == 0, seen
        assert b"rotate  [" in seen and b"4/4" in seen  # click's bar, with the count
        r = secretops("rotate", "-i", "secrets", cwd=repo)
    finally:
        del os.environ["SECRETOPS_PROGRESS_AFTER"]
    assert r.code == 0 and "[" not in r.err and r.err == ""


@pytest.fixture
def throttled_vault(openbao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A transit key on a mount of its own whose rate-limit quota allows one request a
    second; the key's URI."""
    client = openbao.client()
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    client.sys.enable_secrets_engine("transit", path=mount)
    client.secrets.transit.create_key(name="k", mount_point=mount)
    monkeypatch.setenv("VAULT_ADDR", openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    yield f"{openbao.url}/v1/{mount}/keys/k"
    client.delete(f"sys/quotas/rate-limit/{mount}")
    client.sys.disable_secrets_engine(mount)


def test_vault_throttling_is_waited_out(tmp_path: Path, openbao: OpenBao,
                                        throttled_vault: str) -> None:
    """Vault answers 429 past its quota: the parallel decrypt backs off and every file opens."""
    repo = git_init(tmp_path / "repo")
    names = [f"secrets/s{n}.yaml" for n in range(6)]
    for name in names:
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text(TEXT)
        r = secretops("encrypt", "-i", "--hc-vault-transit", throttled_vault, name, cwd=repo)
        assert r.code == 0, r.err
    mount = throttled_vault.split("/v1/")[1].split("/keys/")[0]
    openbao.client().write_data(f"sys/quotas/rate-limit/{mount}",
                                data={"path": f"{mount}/", "rate": 1, "interval": "1s"})
    r = secretops("decrypt", "-i", "-j", "2", "secrets", cwd=repo)
    assert r.code == 0, r.err
    for name in names:
        assert (repo / name).read_text() == TEXT


def test_a_dying_worker_fails_only_its_files(tmp_path: Path, age_key: AgeKey,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed mid-run (here by an age plugin that kills the process running it):
    the files it held fail, the others are decrypted, nothing is half-written."""
    import runpy
    import sys

    plugin_dir = tmp_path / "bin"
    plugin_dir.mkdir()
    killer = plugin_dir / "age-plugin-killer"
    killer.write_text(f"#!{sys.executable}\nimport os, signal\n"
                      "os.kill(os.getppid(), signal.SIGKILL)\n")
    killer.chmod(0o755)
    script = Path(__file__).parent.parent / "plugin" / "age_plugin_xortest.py"
    encode = runpy.run_path(str(script))["bech32_encode"]
    keys = tmp_path / "keys.txt"  # ours first: the plugin runs only where ours does not fit
    keys.write_text(age_key.path.read_text()
                    + encode("age-plugin-killer-", os.urandom(32)).upper() + "\n")
    stranger = make_age_key(tmp_path, "stranger.txt")
    repo = git_init(tmp_path / "repo")
    names = [f"secrets/s{n:02}.yaml" for n in range(12)]
    for n, name in enumerate(names):
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text(TEXT)
        key = stranger if n == 5 else age_key
        assert secretops("encrypt", "-i", "--age", key.recipient, name, cwd=repo).code == 0
    before = {n: (repo / n).read_bytes() for n in names}
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(keys))
    monkeypatch.setenv("PATH", f"{plugin_dir}:{os.environ['PATH']}")
    r = secretops("decrypt", "-i", "-j", "2", "secrets", cwd=repo)
    assert r.code == 180, r.err
    assert f"secretops: error: {names[5]}: a worker process ended" in r.err
    assert (repo / names[5]).read_bytes() == before[names[5]]
    # every file is as it was or decrypted whole; every one reported done is decrypted (a file
    # the dead pool wrote but could not report counts as failed: "as it was, or written whole")
    done = [n for n in names if (repo / n).read_text() == TEXT]
    assert all((repo / n).read_bytes() == before[n] for n in names if n not in done)
    reported = [ln.split(": ")[0] for ln in r.text.splitlines() if "decrypted in place" in ln]
    assert reported and set(reported) <= set(done) and names[5] not in done
    assert f"{len(names) - len(reported)} of {len(names)} files failed" in r.err


def test_limits_on_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from secretops import limits
    from secretops.bulk import paths
    from secretops.errors import ExitCode, SecretOpsError

    listing = tmp_path / "list"
    listing.write_bytes(b"a\n" * 100)
    monkeypatch.setattr(paths, "MAX_FILE_LIST_BYTES", 199)
    with pytest.raises(SecretOpsError) as e:
        paths.read_list(str(listing), null=False)
    assert e.value.code == ExitCode.INVALID_INPUT and "over the limit of 199 bytes" in str(e.value)
    monkeypatch.setattr(paths, "MAX_FILE_LIST_BYTES", limits.MAX_FILE_LIST_BYTES)
    monkeypatch.setattr(paths, "MAX_FILES", 3)
    with pytest.raises(SecretOpsError) as e:
        paths.expand([], [f"f{n}" for n in range(4)])
    assert "more than 3 files" in str(e.value)
    assert len(paths.expand([], ["f1", "./f1", "f2", "f3"]).items) == 3
