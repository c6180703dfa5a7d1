"""Options before a subcommand, help, version and ``completion``, side by side with sops.

Before a subcommand sops 3.11 reads only ``--config`` (its subcommands ask the global
context for it); every other global option is parsed there and ignored — ``sops -a KEY encrypt
f`` finds no key, ``sops --indent 2 decrypt f`` indents by 4. These tests pin that, and the
forms that print help, the version and shell completion scripts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.sidebyside import assert_same, run_both
from tests.helpers import CANARY, AgeKey, make_age_key, sops

PLAIN = f"user: admin\npassword: {CANARY}\nlist:\n  - a\n  - b\n"


@pytest.fixture
def enc(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> bytes:
    (tmp_path / "plain.yaml").write_text(PLAIN)
    r = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(tmp_path / "plain.yaml"))
    assert r.code == 0, r.err
    return r.out


def test_the_command_list_is_in_step() -> None:
    """The global-mode parser knows every subcommand (a FILE of that name is a command)."""
    from secretops.cli._globalmode import COMMANDS
    from secretops.cli.app import cli

    assert set(cli.commands) == COMMANDS - {"help", "h"}


# ---- --config before a subcommand: read -------------------------------------------------------

def test_config_before_encrypt(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    config = f"creation_rules:\n  - path_regex: s\\.yaml$\n    age: {age_key.recipient}\n"
    pair = run_both(sops_bin, ["--config", "ci/sops.yaml", "encrypt", "s.yaml"],
                    {"s.yaml": PLAIN, "ci/sops.yaml": config}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")


def test_config_before_decrypt(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """The config's store options apply (here the JSON indent of converted output)."""
    config = "stores:\n  json:\n    indent: 2\n"
    pair = run_both(sops_bin, ["--config=ci/sops.yaml", "decrypt", "--output-type", "json",
                               "s.enc.yaml"],
                    {"s.enc.yaml": enc, "ci/sops.yaml": config}, tmp_path)
    assert pair.sops.ok and b'\n  "user"' in pair.sops.out, pair
    assert_same(pair, stdout="bytes", files="bytes")


def test_missing_config_before_decrypt(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """Refused (sops exits 1, secretops 61: the config file named is not there)."""
    pair = run_both(sops_bin, ["--config", "nowhere.yaml", "decrypt", "s.enc.yaml"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert not pair.sops.ok
    assert_same(pair, code=False, files="bytes")
    assert pair.ours.code == 61


def test_config_before_updatekeys(sops_bin: str, enc: bytes, age_key: AgeKey,
                                  tmp_path: Path) -> None:
    other = make_age_key(tmp_path, "other.txt").recipient
    config = f"creation_rules:\n  - age: {age_key.recipient},{other}\n"
    pair = run_both(sops_bin, ["--config", "ci/sops.yaml", "updatekeys", "-y", "s.enc.yaml"],
                    {"s.enc.yaml": enc, "ci/sops.yaml": config}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="ignore", files="decrypted")
    assert other.encode() in pair.sops.files["s.enc.yaml"]
    assert other.encode() in pair.ours.files["s.enc.yaml"]


def test_missing_config_before_a_subcommand(sops_bin: str, age_key: AgeKey,
                                            tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--config", "nowhere.yaml", "encrypt", "-a", age_key.recipient,
                               "s.yaml"], {"s.yaml": PLAIN}, tmp_path)
    assert not pair.sops.ok
    assert_same(pair, code=False, files="bytes")
    assert pair.ours.code == 61


# ---- other options before a subcommand: accepted, ignored -------------------------------------

@pytest.mark.parametrize("before", [
    ["--indent", "2"], ["--indent=2"], ["-d"], ["-i"], ["--output", "x.yaml"],
    ["--extract", '["user"]'], ["--output-type", "json"], ["-s"], ["--verbose"],
    ["--disable-version-check"], ["--ignore-mac"], ["--age", "age1qqqq"],
    ["-a", "age1qqqq"], ["-k", "arn:aws:kms:us-east-1:0:key/x"], ["-p", "F00"],
    ["--decryption-order", "pgp"], ["--enable-local-keyservice"],
])
def test_ignored_before_decrypt(sops_bin: str, enc: bytes, tmp_path: Path,
                                before: list[str]) -> None:
    pair = run_both(sops_bin, [*before, "decrypt", "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")


@pytest.mark.parametrize("flag", ["-a", "--age"])
def test_key_flag_before_encrypt_is_ignored(sops_bin: str, age_key: AgeKey, tmp_path: Path,
                                            flag: str) -> None:
    """No key: sops exits 1 (no keys), secretops 111 as its encrypt does without a key; we
    warn where the flag went."""
    pair = run_both(sops_bin, [flag, age_key.recipient, "encrypt", "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    assert not pair.sops.ok
    assert_same(pair, code=False, files="bytes")
    assert f"{flag} before the subcommand is ignored" in pair.ours.err


def test_show_master_keys_before_edit_is_ignored(sops_bin: str, enc: bytes,
                                                 tmp_path: Path) -> None:
    env = dict(os.environ, EDITOR="true", SOPS_EDITOR="true")
    pair = run_both(sops_bin, ["-s", "edit", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path,
                    env=env)
    assert pair.sops.code == 200
    assert_same(pair, files="bytes")


def test_unknown_option_before_a_subcommand(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--nope", "decrypt", "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path)
    assert pair.sops.code == 1 and pair.ours.code == 2
    assert pair.ours.err.startswith("secretops: error: flag provided but not defined: -nope")


# ---- help and version ----------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["-help"], ["help"], ["h"],
                                  ["-d", "--help"], ["help", "decrypt"]])
def test_help(sops_bin: str, tmp_path: Path, argv: list[str]) -> None:
    pair = run_both(sops_bin, argv, {}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    assert b"Usage: secretops" in pair.ours.out
    if argv[-1] == "decrypt":
        assert b"secretops decrypt" in pair.ours.out


@pytest.mark.parametrize("argv", [["--version"], ["-v"], ["-version"],
                                  ["--disable-version-check", "--version"],
                                  ["--version", "--disable-version-check"],
                                  ["--check-for-updates", "-v"]])
def test_version(sops_bin: str, tmp_path: Path, argv: list[str]) -> None:
    if "--check-for-updates" in argv:  # sops would ask GitHub: only ours runs
        p = subprocess.run([sys.executable, "-m", "secretops", *argv], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 0 and p.stdout.startswith(b"secretops ")
        return
    pair = run_both(sops_bin, argv, {}, tmp_path)
    assert pair.sops.ok and pair.sops.out.startswith(b"sops 3.11")
    assert pair.ours.ok and pair.ours.out.startswith(b"secretops ")
    assert b"(sops format 3.11)" in pair.ours.out


@pytest.mark.parametrize("argv", [["--version"], ["--version", "--disable-version-check"],
                                  ["-v", "-d"]])
def test_version_under_the_name_sops(sops_bin: str, tmp_path: Path, argv: list[str]) -> None:
    """Linked as ``sops``, secretops's version line parses as sops 3.11.0's does for tools
    that choose their command lines by it (ansible's community.sops matches
    ``^sops ([0-9]+)\\.([0-9]+)\\.([0-9]+)``, and falls back to sops 3.7's forms without
    ``--filename-override`` when it cannot)."""
    import re
    import shutil

    link = tmp_path / "bin" / "sops"
    link.parent.mkdir()
    script = shutil.which("secretops", path=str(Path(sys.executable).parent))
    assert script is not None
    link.symlink_to(script)
    pattern = re.compile(r"^sops ([0-9]+)\.([0-9]+)\.([0-9]+)")
    versions = []
    for program in (sops_bin, str(link)):
        p = subprocess.run([program, *argv], capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        m = pattern.match(p.stdout.decode())
        assert m is not None, p.stdout
        versions.append(m.groups())
    assert versions[0] == versions[1] == ("3", "11", "0")


# ---- completion ----------------------------------------------------------------------------

def _bash_complete(program: str, words: list[str], path: str) -> list[str]:
    """What ``source <(PROGRAM completion bash)`` offers after ``words`` in a real bash."""
    name = Path(program).name
    line = (f'source <({program} completion bash) && complete -p {name} >/dev/null && '
            f'COMP_WORDS=({name} {" ".join(words)}); COMP_CWORD={len(words)}; '
            f'fn=$(complete -p {name} | sed -E "s/.* -F ([^ ]+) .*/\\1/"); '
            f'"$fn" {name} "{words[-1]}" "{words[-2] if len(words) > 1 else name}"; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, PATH=path))
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


@pytest.mark.parametrize("words, offered", [(["dec"], "decrypt"), (["upd"], "updatekeys"),
                                            (["decrypt", "--ext"], "--extract")])
def test_bash_completion(sops_bin: str, tmp_path: Path, words: list[str], offered: str) -> None:
    """Both scripts load in bash and complete subcommands and their options."""
    ours = Path(sys.executable).parent / "secretops"
    assert ours.exists()
    path = f"{Path(sops_bin).parent}:{ours.parent}:{os.environ['PATH']}"
    for program in ("sops", "secretops"):
        assert offered in _bash_complete(program, words, path), program


@pytest.mark.parametrize("argv", [["completion", "bash"], ["completion", "zsh"],
                                  ["completion"]])
def test_completion_scripts(sops_bin: str, tmp_path: Path, argv: list[str]) -> None:
    pair = run_both(sops_bin, argv, {}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    if argv[1:] == ["zsh"]:
        for side, name in ((pair.sops, b"sops"), (pair.ours, b"secretops")):
            assert b"#compdef " + name in side.out
            assert b"compdef " in side.out.split(b"#compdef " + name, 1)[1]
    if argv == ["completion"]:  # the command's help
        assert b"bash" in pair.sops.out and b"bash" in pair.ours.out


def test_completion_fish(sops_bin: str, tmp_path: Path) -> None:
    """sops 3.11 has no fish script (exit 3); secretops prints click's."""
    pair = run_both(sops_bin, ["completion", "fish"], {}, tmp_path)
    assert pair.sops.code == 3
    assert pair.ours.ok and b"complete " in pair.ours.out and b"secretops" in pair.ours.out


def test_completion_asks_no_file(tmp_path: Path) -> None:
    """The completion callback runs secretops with no argument: it must not meet the global
    mode's "no file specified"."""
    env = dict(os.environ, _SECRETOPS_COMPLETE="bash_complete", COMP_WORDS="secretops enc",
               COMP_CWORD="1")
    p = subprocess.run([sys.executable, "-m", "secretops"], capture_output=True, text=True,
                       env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "plain,encrypt" in p.stdout.split()


# ---- the short flags -a, -k, -p on encrypt and edit (as sops has them) -----------------------

def test_short_age_flag_on_subcommands(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["encrypt", "-a", age_key.recipient, "s.yaml"], {"s.yaml": PLAIN},
                    tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    script = tmp_path / "editor.sh"
    script.write_text("#!/bin/sh\nprintf 'a: b\\n' > \"$1\"\n")
    script.chmod(0o755)
    env = dict(os.environ, EDITOR=str(script), SOPS_EDITOR=str(script))
    pair = run_both(sops_bin, ["edit", "-a", age_key.recipient, "new.yaml"], {}, tmp_path,
                    env=env)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="decrypted", modes=False)


def test_short_pgp_flag_on_encrypt(sops_bin: str, gpg_key: str, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["encrypt", "-p", gpg_key, "s.yaml"], {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")


def test_short_kms_flag_on_encrypt(sops_bin: str, aws_kms: object, tmp_path: Path) -> None:
    arn = aws_kms.arns[0]  # type: ignore[attr-defined]
    pair = run_both(sops_bin, ["encrypt", "-k", arn, "s.yaml"], {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
