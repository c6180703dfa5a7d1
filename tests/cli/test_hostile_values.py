"""A committed file with a broken ``ENC[…]`` value: every command gives one line, none a traceback.

The finding: a non-ASCII character in an ENC value's base64 (``ENC[AES256_GCM,data:é…``) made
every reader of the value raise a Python traceback, and one such committed file made
``git log -p`` stop with "unable to read files to diff" (git stops at the first textconv that
fails). Also: an ENC value full of delimiters took cubic time to parse (9 KB, 14 s).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import CANARY, AgeKey, git, git_init, secretops, sops

TEXT = f"db:\n    password: {CANARY}\n    user: admin\n"
BAD = "ENC[AES256_GCM,data:é"  # replaces the start of a well-formed value


@pytest.fixture
def broken(tmp_path: Path, age_key: AgeKey) -> Path:
    src = tmp_path / "s.enc.yaml"
    src.write_text(TEXT)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(src)).code == 0
    text = src.read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("user:"))
    src.write_text(text.replace(line, line.replace("ENC[AES256_GCM,data:", BAD)))
    return src


def _clean(code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert err.startswith("secretops: error: ") and "Traceback" not in err
    assert CANARY not in err


@pytest.mark.parametrize("args", [
    ["decrypt"], ["decrypt", "--extract", '["db"]["password"]'], ["rotate", "-i"],
    ["set", "FILE", '["db"]["x"]', '"1"'], ["edit"], ["exec-env", "FILE", "true"],
])
def test_every_reader_gives_one_line(args: list[str], broken: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITOR", "true")
    before = broken.read_bytes()
    argv = [str(broken) if a == "FILE" else a for a in args]
    if "FILE" not in args:
        argv.append(str(broken))
    r = secretops(*argv)
    _clean(r.code, r.err, 25)
    assert "base64 is malformed" in r.err and '["db"]["user"]' in r.err
    assert broken.read_bytes() == before


def test_filestatus_and_check(broken: Path) -> None:
    r = secretops("filestatus", str(broken))
    assert r.code == 0 and r.text.strip() == '{"encrypted":true}'
    r = secretops("check", str(broken))  # the pre-commit guard stops it from being committed
    assert r.code == 158 and '["db"]["user"]' in r.text + r.err and "Traceback" not in r.err


def test_textconv_shows_the_file_and_git_log_p_goes_on(tmp_path: Path, age_key: AgeKey) -> None:
    repo = git_init(tmp_path / "repo")
    (repo / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    age: {age_key.recipient}\n")
    f = repo / "s.enc.yaml"
    f.write_text(TEXT)
    assert secretops("encrypt", "-i", str(f)).code == 0
    assert secretops("git", "setup", cwd=repo).code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    text = f.read_text()
    f.write_text(text.replace("    user: ENC[AES256_GCM,data:", "    user: " + BAD, 1))
    git(repo, "commit", "-qam", "broken")
    assert secretops("set", str(f), '["db"]["user"]', '"root"').code != 0  # cannot open
    f.write_text(text)
    assert secretops("set", str(f), '["db"]["user"]', '"ops"').code == 0
    git(repo, "commit", "-qam", "repaired")
    log = subprocess.run(["git", "-C", str(repo), "log", "-p"], capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    out = log.stdout.decode("utf-8", "replace")
    assert log.returncode == 0, log.stderr
    assert "# secretops: cannot decrypt: " in out and "base64 is malformed" in out
    assert BAD in out  # the broken value is shown as it is
    assert "+    user: ops" in out and "+    user: admin" in out  # both sides of the history
    assert CANARY not in log.stderr.decode("utf-8", "replace")


def test_a_value_full_of_delimiters_parses_in_linear_time(tmp_path: Path,
                                                          age_key: AgeKey) -> None:
    src = tmp_path / "s.enc.yaml"
    src.write_text(TEXT)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(src)).code == 0
    soup = "ENC[AES256_GCM,data:" + ",iv:,tag:" * 20000  # backtracking: hours
    src.write_text(src.read_text().replace("    user: ENC[", f"    user: '{soup}'\n    x: ENC["))
    r = secretops("decrypt", str(src))
    _clean(r.code, r.err, 25)
    assert "not in sops's ENC" in r.err


@pytest.mark.parametrize(("field", "junk"), [("data", "!!"), ("data", "-_"), ("iv", "!"),
                                             ("tag", "*"), ("iv", "=")])
def test_base64_outside_the_alphabet_is_refused_as_sops_refuses_it(
        tmp_path: Path, age_key: AgeKey, sops_bin: str, field: str, junk: str) -> None:
    # Python's lenient base64 dropped characters outside the alphabet, so a value sops
    # refuses (exit 25, "illegal base64 data") decrypted here
    src = tmp_path / "s.enc.yaml"
    src.write_text(TEXT)
    made = sops(sops_bin, "encrypt", "-i", "--age", age_key.recipient, str(src))
    assert made.code == 0, made.err
    text = src.read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("user:"))
    head = "data:" if field == "data" else f",{field}:"
    src.write_text(text.replace(line, line.replace(head, head + junk, 1)))
    theirs = sops(sops_bin, "decrypt", str(src))
    assert theirs.code == 25 and "illegal base64 data" in theirs.err
    r = secretops("decrypt", str(src))
    _clean(r.code, r.err, 25)
    assert "base64 is malformed" in r.err and '["db"]["user"]' in r.err
