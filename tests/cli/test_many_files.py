"""Many files per command: decrypt --output-dir / -i, encrypt -i (--all), filestatus, check over
trees, --files-from lists; the real sops reads every result. Transcript-like: each test builds
a small git repository, runs the command as users do, and looks at every file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, data_of, git, git_init, make_age_key, secretops, sops

# stores: what decrypt writes follows it, for one file or many
RULES = ("creation_rules:\n  - path_regex: secrets/.*\\.(yaml|json|env)$\n    age: {recipient}\n"
         "stores:\n  json:\n    indent: 3\n")
NAMES = ["secrets/app/db.yaml", "secrets/app/api.json", "secrets/web/.env",
         "secrets/web/with space.yaml", "secrets/deep/a/b/c.yaml"]


def _plain(name: str, n: int) -> str:
    if name.endswith(".json"):
        return f'{{"password": "{CANARY}-{n}", "port": {n}}}\n'
    if name.endswith(".env"):
        return f"PASSWORD={CANARY}-{n}\nPORT={n}\n"
    return f"db:\n  password: {CANARY}-{n}  # the password\n  port: {n}\n"


def _fmt(name: str) -> str:
    return "json" if name.endswith(".json") else "dotenv" if name.endswith(".env") else "yaml"


@pytest.fixture
def repo(tmp_path: Path, age_key: AgeKey) -> Path:
    """A work tree with plaintext files under secrets/ (a rule covers them) and a README."""
    r = git_init(tmp_path / "repo")
    (r / ".sops.yaml").write_text(RULES.format(recipient=age_key.recipient))
    for n, name in enumerate(NAMES):
        (r / name).parent.mkdir(parents=True, exist_ok=True)
        (r / name).write_text(_plain(name, n))
    (r / "README.md").write_text("not a secret\n")
    return r


def _encrypt_all_with_sops(repo: Path, sops_bin: str) -> dict[str, bytes]:
    for name in NAMES:
        r = sops(sops_bin, "encrypt", "-i", name, cwd=repo)
        assert r.code == 0, r.err
    return {name: (repo / name).read_bytes() for name in NAMES}


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_decrypt_output_dir_mirrors_the_tree_privately(repo: Path, tmp_path: Path,
                                                       sops_bin: str) -> None:
    encrypted = _encrypt_all_with_sops(repo, sops_bin)
    out = tmp_path / "plain"
    r = secretops("decrypt", "--output-dir", str(out), "secrets", "-j", "2", cwd=repo)
    assert r.code == 0, r.err
    assert r.text.endswith(f"decrypted {len(NAMES)} of {len(NAMES)} files\n")
    for n, name in enumerate(NAMES):
        got = out / name
        assert data_of(got.read_bytes(), _fmt(name)) == data_of(_plain(name, n).encode(),
                                                                _fmt(name))
        # the same bytes as decrypting the one file, and as sops's reading of it
        assert got.read_bytes() == secretops("decrypt", name, cwd=repo).out
        assert data_of(got.read_bytes(), _fmt(name)) == data_of(
            sops(sops_bin, "decrypt", name, cwd=repo).out, _fmt(name))
        assert _mode(got) == 0o600
        assert (repo / name).read_bytes() == encrypted[name]  # the sources are untouched
    dirs = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert len(dirs) == 7 and all(_mode(d) == 0o700 for d in dirs)
    assert not (out / "README.md").exists()  # not encrypted: passed over
    assert CANARY not in r.err + r.text


def test_decrypt_output_dir_refuses_to_overwrite(repo: Path, tmp_path: Path,
                                                 sops_bin: str) -> None:
    _encrypt_all_with_sops(repo, sops_bin)
    out = tmp_path / "plain"
    (out / "secrets" / "app").mkdir(parents=True)
    mine = out / "secrets" / "app" / "db.yaml"
    mine.write_text("mine\n")
    r = secretops("decrypt", "--output-dir", str(out), "secrets", cwd=repo)
    assert r.code == 180, r.err  # one of five failed
    assert f"secretops: error: secrets/app/db.yaml: {out}/secrets/app/db.yaml exists" in r.err
    assert "--overwrite" in r.err and f"1 of {len(NAMES)} files failed" in r.err
    assert mine.read_text() == "mine\n"
    assert (out / "secrets" / "app" / "api.json").exists()
    r = secretops("decrypt", "--output-dir", str(out), "secrets", cwd=repo)
    assert r.code == 3, r.err  # every file failed the same way: that way's code
    assert f"{len(NAMES)} of {len(NAMES)} files failed" in r.err
    r = secretops("decrypt", "--output-dir", str(out), "--overwrite", "secrets", cwd=repo)
    assert r.code == 0, r.err
    assert CANARY in mine.read_text()


def test_decrypt_output_dir_stays_out_of_the_source_tree(repo: Path, sops_bin: str) -> None:
    _encrypt_all_with_sops(repo, sops_bin)
    r = secretops("decrypt", "--output-dir", "plain", "secrets", cwd=repo)
    assert r.code == 3
    assert "inside the git work tree" in r.err and not (repo / "plain").exists()
    (repo / ".gitignore").write_text("/plain/\n")  # ignored by git: allowed
    r = secretops("decrypt", "--output-dir", "plain", "secrets", cwd=repo)
    assert r.code == 0, r.err
    assert git(repo, "status", "--porcelain", "--untracked-files=all").count("plain") == 0


def test_decrypt_output_dir_outside_git_never_into_the_tree(tmp_path: Path,
                                                            age_key: AgeKey) -> None:
    d = tmp_path / "plain-tree"
    d.mkdir()
    (d / "s.yaml").write_text(_plain("s.yaml", 1))
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(d / "s.yaml")).code == 0
    r = secretops("decrypt", "--output-dir", str(d / "out"), str(d))
    assert r.code == 3 and "overlaps" in r.err
    r = secretops("decrypt", "--output-dir", ".", "--overwrite", "plain-tree/s.yaml",
                  cwd=tmp_path)
    assert r.code == 3 and "would replace the encrypted file itself" in r.err
    assert b"ENC[AES256_GCM" in (d / "s.yaml").read_bytes()


def test_partial_failure_leaves_the_broken_file_untouched(repo: Path, tmp_path: Path,
                                                          sops_bin: str) -> None:
    """One file whose value was altered among many: the others are decrypted in place, the
    broken one keeps every byte, the exit code says "some files failed"."""
    encrypted = _encrypt_all_with_sops(repo, sops_bin)
    broken = repo / "secrets/app/db.yaml"
    text = broken.read_text()
    marker = "password: ENC[AES256_GCM,data:"
    start = text.index(marker) + len(marker)
    tampered = text[:start] + ("A" if text[start] != "A" else "B") + text[start + 1:]
    broken.write_text(tampered)
    r = secretops("decrypt", "-i", "secrets", "-j", "2", cwd=repo)
    assert r.code == 180, r.err
    assert broken.read_text() == tampered
    lines = r.err.splitlines()
    assert lines[0].startswith("secretops: error: secrets/app/db.yaml: ")
    assert lines[-1] == f"secretops: error: 1 of {len(NAMES)} files failed"
    for n, name in enumerate(NAMES[1:], 1):
        assert (repo / name).read_bytes() != encrypted[name]
        assert data_of((repo / name).read_bytes(), _fmt(name)) == data_of(
            _plain(name, n).encode(), _fmt(name))
    assert f"decrypted {len(NAMES) - 1} of {len(NAMES)} files, 1 failed" in r.text
    assert CANARY not in r.err


def test_every_file_failing_alike_gives_their_code(repo: Path, sops_bin: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    encrypted = _encrypt_all_with_sops(repo, sops_bin)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(make_age_key(repo.parent, "other.txt").path))
    r = secretops("decrypt", "-i", "secrets", cwd=repo)
    assert r.code == 128, r.err
    assert {name: (repo / name).read_bytes() for name in NAMES} == encrypted
    # the hints are said once, not once per file
    assert r.err.count("SOPS_AGE_KEY_FILE") == 1


def test_encrypt_all_follows_the_rules_and_git(repo: Path, sops_bin: str) -> None:
    """encrypt -i --all: what check would refuse, nothing else; what git ignores is left."""
    (repo / ".gitignore").write_text("secrets/web/.env\n")
    (repo / "secrets" / "fixture.yaml").write_text(
        "# secretops: allow-plaintext\nkey: value\n")
    r = secretops("encrypt", "-i", "--all", "-j", "2", cwd=repo)
    assert r.code == 0, r.err
    done = [n for n in NAMES if n != "secrets/web/.env"]
    assert r.text.splitlines() == [*sorted(f"{n}: encrypted" for n in done),
                                   f"encrypted {len(done)} of {len(done)} files"]
    for name in done:
        n = NAMES.index(name)
        plain = sops(sops_bin, "decrypt", name, cwd=repo)
        assert plain.code == 0, plain.err
        assert data_of(plain.out, _fmt(name)) == data_of(_plain(name, n).encode(), _fmt(name))
    assert (repo / "secrets/web/.env").read_text() == _plain("secrets/web/.env", 2)
    assert (repo / "secrets/fixture.yaml").read_text().endswith("key: value\n")
    assert (repo / "README.md").read_text() == "not a secret\n"
    assert secretops("check", cwd=repo).code == 0
    again = secretops("encrypt", "-i", "--all", cwd=repo)  # nothing left to do
    assert again.code == 0 and again.text == "encrypted 0 of 0 files\n"


def test_directories_skip_what_git_ignores(repo: Path, sops_bin: str) -> None:
    _encrypt_all_with_sops(repo, sops_bin)
    (repo / ".gitignore").write_text("*.json\n")
    r = secretops("filestatus", "secrets", cwd=repo)
    assert r.code == 0, r.err
    listed = [line for line in r.text.splitlines()]
    assert '{"file":"secrets/app/api.json","encrypted":true}' not in listed
    assert '{"file":"secrets/app/db.yaml","encrypted":true}' in listed
    assert len(listed) == len(NAMES) - 1
    git(repo, "add", "-f", "secrets/app/api.json")  # tracked: listed although ignored
    r = secretops("filestatus", "secrets", cwd=repo)
    assert '{"file":"secrets/app/api.json","encrypted":true}' in r.text.splitlines()


def test_files_from_stdin_nul_separated(repo: Path, tmp_path: Path, sops_bin: str,
                                        age_key: AgeKey) -> None:
    """``git ls-files -z | secretops decrypt --files-from - --null``: names with spaces and
    newlines arrive whole."""
    _encrypt_all_with_sops(repo, sops_bin)
    # no path_regex matches a newline: encrypted away from .sops.yaml, then moved in
    made = tmp_path / "odd.yaml"
    made.write_text(_plain("x.yaml", 9))
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(made)).code == 0
    odd = repo / "secrets" / "new\nline.yaml"
    made.rename(odd)
    names = [*NAMES, "secrets/new\nline.yaml"]
    listing = b"".join(os.fsencode(n) + b"\0" for n in names)
    out = tmp_path / "plain"
    r = secretops("decrypt", "--output-dir", str(out), "--files-from", "-", "--null",
                  input=listing, cwd=repo)
    assert r.code == 0, r.err
    got = (out / "secrets" / "new\nline.yaml").read_bytes()
    assert data_of(got, "yaml") == data_of(sops(sops_bin, "decrypt", str(odd)).out, "yaml")
    assert all((out / n).exists() for n in NAMES)
    # read one name per line, the same list is refused, pointing at --null
    r = secretops("decrypt", "--output-dir", str(tmp_path / "p2"), "--files-from", "-",
                  input=listing, cwd=repo)
    assert r.code == 150 and "--null" in r.err
    # and a newline-separated list from a file
    (tmp_path / "list.txt").write_text("secrets/app/db.yaml\nsecrets/web\n")
    r = secretops("filestatus", "--files-from", str(tmp_path / "list.txt"), cwd=repo)
    assert r.code == 0, r.err
    assert [line.split('"')[3] for line in r.text.splitlines()] == [
        "secrets/app/db.yaml", "secrets/web/.env", "secrets/web/with space.yaml"]


def test_named_files_that_are_not_encrypted_fail(repo: Path, sops_bin: str) -> None:
    _encrypt_all_with_sops(repo, sops_bin)
    r = secretops("decrypt", "-i", "secrets/app/db.yaml", "README.md", "missing.yaml",
                  cwd=repo)
    assert r.code == 180
    assert "secretops: error: README.md: " in r.err
    assert "secretops: error: missing.yaml: no such file" in r.err
    assert (repo / "README.md").read_text() == "not a secret\n"
    assert CANARY in (repo / "secrets/app/db.yaml").read_text()


def test_many_file_forms_need_a_destination(repo: Path) -> None:
    for args, what in ((["decrypt", "a", "b"], "--output-dir DIR or -i"),
                       (["encrypt", "a.yaml", "b.yaml"], "need -i"),
                       (["decrypt", "-i", "--extract", '["a"]', "secrets"], "--extract"),
                       (["decrypt", "--overwrite", "a"], "--overwrite goes with --output-dir"),
                       (["encrypt", "-i", "--all", "--output-type", "json"], "--output-type")):
        r = secretops(*args, cwd=repo)
        assert r.code == 8 and what in r.err, (args, r.err)
    # one directory without a destination stays what it was: "is a directory", exit 2
    for command in ("decrypt", "encrypt"):
        r = secretops(command, "secrets", cwd=repo)
        assert r.code == 2 and "is a directory" in r.err


def test_check_runs_over_a_tree_in_parallel(repo: Path, sops_bin: str) -> None:
    _encrypt_all_with_sops(repo, sops_bin)
    (repo / "k8s").mkdir()
    (repo / "k8s" / "secret.yaml").write_text(
        f"apiVersion: v1\nkind: Secret\nstringData:\n  password: {CANARY}\n")
    (repo / "k8s" / "ignored.yaml").write_text(
        f"apiVersion: v1\nkind: Secret\nstringData:\n  password: {CANARY}\n")
    (repo / ".gitignore").write_text("k8s/ignored.yaml\n")
    r = secretops("check", "-j", "2", cwd=repo)
    assert r.code == 158, r.err
    assert r.text.splitlines() == [
        'k8s/secret.yaml: ["stringData"]["password"]: plaintext value in a Kubernetes '
        "Secret's stringData",
        f"secretops: checked {len(NAMES) + 3} files: 1 problem in 1 file"]
    assert CANARY not in r.text + r.err
    r = secretops("check", "--files-from", "-", input=b"secrets\n", cwd=repo)
    assert r.code == 0 and f"checked {len(NAMES)} files" in r.text


def test_rotate_and_updatekeys_parse_each_found_file_once(
        repo: Path, sops_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory's encrypted files are opened once each (the real parser runs, counted);
    a file with sops's marker that is not sops's file is still skipped, and the parse that
    tells so is the only second one."""
    from secretops import fileops
    from secretops.bulk import pool
    from secretops.bulk.keyjobs import RotateJob, UpdateKeysJob
    from secretops.bulk.paths import expand

    _encrypt_all_with_sops(repo, sops_bin)
    (repo / "secrets" / "notes.yaml").write_text("about: ENC[AES256_GCM,data:x] is sops's\n")
    parses: list[int] = []
    real = fileops.load

    def counting(data: bytes, fmt: str, options: object) -> object:
        parses.append(1)
        return real(data, fmt, options)  # type: ignore[arg-type]

    monkeypatch.setattr(fileops, "load", counting)
    monkeypatch.chdir(repo)
    items = expand(["secrets"]).items
    env = dict(os.environ)
    for job in (RotateJob(env, input_type=None, config_path=None, add=[], remove=[],
                          max_age=None, dry_run=False),
                UpdateKeysJob(env, input_type=None, shamir=0, config_path=None)):
        parses.clear()
        outcomes = {o.file: o for o in pool.run(job, items, jobs=1)}
        assert outcomes["secrets/notes.yaml"].skipped
        assert [f for f, o in outcomes.items() if o.failure] == []
        assert sorted(f for f, o in outcomes.items() if not o.skipped) == sorted(NAMES)
        assert len(parses) == len(NAMES) + 2, type(job).__name__  # the decoy: twice
    for name in NAMES:  # rotated, and still what it was
        assert CANARY in sops(sops_bin, "decrypt", name, cwd=repo).text


def test_rotate_and_updatekeys_read_the_rules_once_per_run(
        repo: Path, sops_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config is searched for once per directory and each rule's keys read once per run,
    not once or twice per file (the real search and parser run, counted); every file is
    still done, and sops reads the results."""
    from secretops import config, configpath
    from secretops.bulk import pool
    from secretops.bulk.keyjobs import RotateJob, UpdateKeysJob
    from secretops.bulk.paths import expand
    from secretops.keys import specs

    _encrypt_all_with_sops(repo, sops_bin)
    searches: list[str] = []
    parsed: list[str] = []
    real_locate, real_from_rule = configpath.locate, specs.from_rule

    def locate(start: str | None, env: object, explicit: str | None = None,
               *args: object) -> str | None:
        if not explicit:
            searches.append(os.path.dirname(os.path.abspath(start or ".")))
        return real_locate(start, env, explicit, *args)  # type: ignore[arg-type]

    def from_rule(raw: object, where: str) -> object:
        parsed.append(where)
        return real_from_rule(raw, where)  # type: ignore[arg-type]

    for module in (configpath, config):
        monkeypatch.setattr(module, "locate", locate)
    monkeypatch.setattr(specs, "from_rule", from_rule)
    monkeypatch.chdir(repo)
    items = expand(["secrets"]).items
    env = dict(os.environ)
    for job in (RotateJob(env, input_type=None, config_path=None, add=[], remove=[],
                          max_age=None, dry_run=False),
                UpdateKeysJob(env, input_type=None, shamir=0, config_path=None)):
        searches.clear()
        parsed.clear()
        outcomes = list(pool.run(job, items, jobs=1))
        assert [o.file for o in outcomes if o.failure or o.skipped] == []
        assert sorted(searches) == sorted({os.path.dirname(str(repo / n)) for n in NAMES})
        assert parsed == ["creation_rules[0]"], type(job).__name__
    for name in NAMES:
        assert CANARY in sops(sops_bin, "decrypt", name, cwd=repo).text


def test_check_searches_for_the_config_once_per_directory(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``check`` over a tree asks the disk for each directory's ``.sops.yaml`` once, not for
    every file (the real search runs, counted), and still finds what it found before."""
    from secretops import config, configpath
    from secretops.bulk import pool
    from secretops.bulk.jobs import CheckJob
    from secretops.bulk.paths import expand

    searches: list[str] = []
    real_locate = configpath.locate

    def locate(start: str | None, env: object, explicit: str | None = None,
               *args: object) -> str | None:
        searches.append(os.path.dirname(os.path.abspath(start or ".")))
        return real_locate(start, env, explicit, *args)  # type: ignore[arg-type]

    for module in (configpath, config):
        monkeypatch.setattr(module, "locate", locate)
    monkeypatch.chdir(repo)
    outcomes = list(pool.run(CheckJob(dict(os.environ), None), expand(["."]).items, jobs=1))
    found = [line for o in outcomes for line in o.lines]
    assert len(found) == len(NAMES) and all("must be encrypted" in f or "plaintext" in f
                                             for f in found), found
    assert sorted(searches) == sorted(set(searches))
    assert len(searches) == len({os.path.dirname(str(repo / n)) for n in NAMES}) + 1  # README


def test_decrypt_in_place_searches_for_the_config_once_per_directory(
        repo: Path, sops_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``decrypt -i`` over a tree finds each directory's ``.sops.yaml`` (its ``stores:``
    section shapes the output) once, not for every file (the real search runs, counted), and
    writes what sops's decrypt writes for each file."""
    from secretops import config, configpath
    from secretops.bulk import pool
    from secretops.bulk.jobs import DecryptJob
    from secretops.bulk.paths import expand

    _encrypt_all_with_sops(repo, sops_bin)
    expected = {n: sops(sops_bin, "decrypt", n, cwd=repo).out for n in NAMES}
    assert b"\n   " in expected["secrets/app/api.json"]  # the config's json indent
    searches: list[str] = []
    real_locate = configpath.locate

    def locate(start: str | None, env: object, explicit: str | None = None,
               *args: object) -> str | None:
        searches.append(os.path.dirname(os.path.abspath(start or ".")))
        return real_locate(start, env, explicit, *args)  # type: ignore[arg-type]

    for module in (configpath, config):
        monkeypatch.setattr(module, "locate", locate)
    monkeypatch.chdir(repo)
    job = DecryptJob(dict(os.environ), out_dir=None, overwrite=False, input_type=None,
                     ignore_mac=False, config_path=None)
    outcomes = list(pool.run(job, expand(["secrets"]).items, jobs=1))
    assert [o.file for o in outcomes if o.failure or o.skipped] == []
    assert sorted(searches) == sorted({os.path.dirname(str(repo / n)) for n in NAMES})
    assert {n: (repo / n).read_bytes() for n in NAMES} == expected
