"""Start-up is a feature: what each invocation may import (checked with -X importtime)."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import click
import pytest

from tests.helpers import AgeKey, encrypted_tree, make_age_key, secretops

HEAVY = ("cryptography", "yaml", "pyrage", "grpc", "google")  # google: protobuf


def _imported(*args: str, cwd: Path | None = None) -> set[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "secretops", *args],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=cwd)
    assert p.returncode == 0, p.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}


@pytest.mark.parametrize("args", [
    ["--version"], ["-v"], ["--disable-version-check", "--version"], ["--version", "-d"],
    ["--help"], ["-h"], ["-d", "--help"], ["help"], ["help", "decrypt"], ["decrypt", "--help"],
    ["--config", "x.yaml", "decrypt", "--help"], ["completion", "bash"],
    ["keyservice", "--help"],
])
def test_help_and_version_skip_crypto_and_yaml(args: list[str]) -> None:
    """Also in sops's global forms (``-v``, ``-d --help``, ``help decrypt`` …)."""
    mods = _imported(*args)
    version = "--version" in args or "-v" in args
    assert ("click" in mods) == (not version)  # --version needs no click either
    assert not [m for m in mods if m.split(".")[0] in HEAVY]


@pytest.mark.parametrize("form", [["decrypt"], ["-d"], ["--decrypt", "--output-type", "yaml"],
                                  ["--config", "none.yaml", "decrypt"]])
def test_decrypt_skips_click_and_dataclasses(tmp_path: Path, age_key: AgeKey,
                                             form: list[str]) -> None:
    """``decrypt`` and sops's ``-d`` take the same click-free path."""
    src = tmp_path / "s.yaml"
    src.write_text("a: b\n")
    enc = tmp_path / "s.enc.yaml"
    enc.write_bytes(secretops("encrypt", "--age", age_key.recipient, str(src)).out)
    if "none.yaml" in form:
        (tmp_path / "none.yaml").write_text("{}\n")
    mods = _imported(*form, str(enc), cwd=tmp_path)
    assert "yaml" in mods and "secretops.core.cipher" in mods
    absent = ["click", "dataclasses", "inspect", "subprocess", "tempfile", "json",
              "secretops.stores.json", "grpc", "google.protobuf",
              "_hashlib"]  # the system's OpenSSL: the MAC uses cryptography's SHA-512
    if "none.yaml" not in form:
        # no .sops.yaml: the search (os.path only) finds none, the parser is not imported
        absent += ["secretops.config", "pathlib"]
    for name in absent:
        assert name not in mods, name


@pytest.mark.parametrize("command", [["decrypt"], ["check"], ["rotate", "-i"],
                                     ["updatekeys", "-y"], ["decrypt", "-i"]])
def test_a_subcommand_skips_the_global_mode_parser(tmp_path: Path, age_key: AgeKey,
                                                   command: list[str]) -> None:
    """An argv that starts with a subcommand needs no global-mode translation: its parser
    (options tables, two NamedTuple classes) is not imported."""
    _many_files(tmp_path, age_key)
    assert "secretops.cli._globalmode" in _imported("-d", "s/f0.yaml", cwd=tmp_path)
    target = "s/f0.yaml" if command == ["decrypt"] else "s"
    mods = _imported(*command, target, cwd=tmp_path)
    assert "secretops.cli._globalmode" not in mods
    if command[0] == "rotate":  # the data key's age (git history) is read for --older-than
        assert "secretops.keyage" not in mods


@pytest.mark.parametrize("form", [["encrypt", "--age"], ["-e", "-a"], ["--encrypt", "--age"]])
def test_encrypt_skips_click_and_dataclasses(tmp_path: Path, age_key: AgeKey,
                                             form: list[str]) -> None:
    src = tmp_path / "s.yaml"
    src.write_text("a: b\n")
    mods = _imported(*form, age_key.recipient, str(src), cwd=tmp_path)
    assert "pyrage" in mods
    for absent in ("click", "dataclasses", "inspect", "subprocess", "tempfile", "_hashlib"):
        assert absent not in mods, absent


@pytest.mark.parametrize("args", [["rotate", "--help"], ["updatekeys", "--help"],
                                  ["check", "--help"], ["vault", "--help"]])
def test_a_command_imports_its_own_module_only(args: list[str]) -> None:
    """Every other command's module stays unimported (all of them cost ~25 ms a run)."""
    from secretops.cli.app import _COMMANDS

    own = f"secretops.cli.{_COMMANDS[args[0]].split(':')[0]}"
    others = {f"secretops.cli.{where.split(':')[0]}" for where in _COMMANDS.values()} - {own}
    mods = _imported(*args)
    assert own in mods
    assert sorted(others & mods) == []


def test_every_command_is_found_under_its_name() -> None:
    from secretops.cli.app import _COMMANDS, cli

    assert sorted(cli.list_commands(click.Context(cli))) == sorted(_COMMANDS)
    for name in _COMMANDS:
        assert cli.commands[name].name == name


def _many_files(tmp_path: Path, age_key: AgeKey) -> None:
    encrypted_tree(tmp_path, age_key.recipient, 12)


@pytest.mark.parametrize("command", [["decrypt", "-i"], ["rotate", "-i"], ["check"],
                                     ["updatekeys", "-y"]])
def test_many_file_workers_share_what_the_parent_imported(tmp_path: Path, age_key: AgeKey,
                                                         command: list[str]) -> None:
    """With two workers, the modules a file's work needs are imported before they fork:
    once in the run, not once more in each worker (-X importtime reports the workers too).
    No module at all is imported twice — the batch writer, ctypes (its syncfs), calendar (the
    metadata's timestamp), json (a key source's module, which updatekeys's rules need) were."""
    _many_files(tmp_path, age_key)
    if command[0] == "updatekeys":  # a second recipient: every file is rewritten
        (tmp_path / ".sops.yaml").write_text((tmp_path / ".sops.yaml").read_text().rstrip()
                                             + f",{make_age_key(tmp_path, 'k2').recipient}\n")
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "secretops", *command,
                        "-j", "2", "s"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    names = [line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line]
    for name in ("yaml", "secretops.stores.yaml", "secretops.fileio", "secretops.core.cipher",
                 "cryptography"):
        assert names.count(name) == 1, name
    # a name tried and not found (nt, _winapi) shows each time it is tried
    twice = sorted({n for n in names if names.count(n) > 1 and find_spec(n) is not None})
    assert twice == []
