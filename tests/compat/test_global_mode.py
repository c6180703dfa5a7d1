"""sops's global mode, side by side with the real sops: ``-d``, ``-e``, ``-r``, ``-i``,
``--set``, ``sops FILE``, and what sops does with flags after the file name.

Each test runs the same argv with sops and with secretops (``tests/compat/sidebyside.py``) and
compares the exit code, the output data and the files written or left untouched. Forms that
need an option a subcommand of ours lacks yet are expected to fail until it exists
(:func:`needs`), and must pass from then on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.compat.sidebyside import Pair, assert_same, decrypted, run_both
from tests.helpers import CANARY, AgeKey, assert_no_canary, make_age_key, sops

PLAIN = f"user: admin\npassword: {CANARY}\nlist:\n  - a\n  - b\nport: 5432\n"
JSON = f'{{"user": "admin", "password": "{CANARY}", "n": 1}}\n'


def needs(command: str, option: str) -> pytest.MarkDecorator:
    """Expected to fail while secretops's ``command`` has no ``option`` (another part of
    issue 17 adds it); strict, so the test must pass once it is there."""
    from secretops.cli.app import cli

    have = {o for p in cli.commands[command].params for o in (*p.opts, *p.secondary_opts)}
    return pytest.mark.xfail(option not in have, strict=True,
                             reason=f"secretops {command} has no {option} yet")


@pytest.fixture
def enc(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> bytes:
    """PLAIN encrypted by the real sops for the test's age key."""
    (tmp_path / "plain.yaml").write_text(PLAIN)
    r = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(tmp_path / "plain.yaml"))
    assert r.code == 0, r.err
    return r.out


def _editor(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose EDITOR is a shell script running ``body`` on the file ("$1")."""
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return dict(os.environ, EDITOR=str(script), SOPS_EDITOR=str(script))


def _ours_clean(pair: Pair) -> None:
    assert_no_canary(pair.ours.err, "secretops's stderr")


# ---- decrypt -------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["-d", "--decrypt", "-decrypt", "--decrypt=true"])
def test_decrypt(sops_bin: str, enc: bytes, tmp_path: Path, flag: str) -> None:
    pair = run_both(sops_bin, [flag, "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and pair.sops.out
    assert_same(pair, stdout="bytes", files="bytes")


def test_decrypt_json(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(JSON)
    enc = sops(sops_bin, "-e", "-a", age_key.recipient, str(tmp_path / "p.json")).out
    pair = run_both(sops_bin, ["-d", "s.enc.json"], {"s.enc.json": enc}, tmp_path)
    assert_same(pair, stdout="bytes", files="bytes", fmt="json")


@pytest.mark.parametrize("argv", [
    ["-d", "--output-type", "json", "s.enc.yaml"],
    ["-d", "--output-type=yaml", "s.enc.yaml"],
    ["-d", "--extract", '["list"][1]', "s.enc.yaml"],
    ["-d", "--extract", '["password"]', "s.enc.yaml"],
    ["-d", "--input-type", "yaml", "s.enc.yaml"],
    ["-d", "--filename-override", "other.enc.yaml", "s.enc.yaml"],
    ["-d", "--ignore-mac", "s.enc.yaml"],
    ["--disable-version-check", "--verbose", "-d", "s.enc.yaml"],
    ["-d", "--", "s.enc.yaml"],
    # key flags and other modes' options: read by sops only when they apply, else ignored
    ["-d", "-a", "age1qqqq", "--encrypted-regex", "x", "--add-pgp", "F00", "s.enc.yaml"],
])
def test_decrypt_options(sops_bin: str, enc: bytes, tmp_path: Path, argv: list[str]) -> None:
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")


def test_decrypt_in_place(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-d", "-i", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and pair.sops.out == b""
    assert_same(pair, stdout="bytes", files="data")
    _ours_clean(pair)


def test_decrypt_to_output(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-d", "--output", "out.yaml", "s.enc.yaml"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and "out.yaml" in pair.sops.files
    assert_same(pair, stdout="bytes", files="data", modes=False)
    assert pair.ours.modes["out.yaml"] == 0o600  # new plaintext: 0600 (sops: the umask's)


def test_indent_in_global_mode(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """sops reads --indent in the global mode (not before a subcommand: see
    test_global_options; every mode and value: test_indent)."""
    pair = run_both(sops_bin, ["--indent", "2", "-d", "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path)
    assert b"\n  - a" in pair.sops.out
    assert_same(pair, stdout="bytes", files="bytes")


@needs("decrypt", "--decryption-order")
def test_decryption_order_in_global_mode(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--decryption-order", "age,pgp", "-d", "s.enc.yaml"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok
    assert_same(pair, stdout="bytes", files="bytes")


# ---- encrypt -------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [["-e", "-a"], ["--encrypt", "--age"], ["-e", "-age"]])
def test_encrypt(sops_bin: str, age_key: AgeKey, tmp_path: Path, flags: list[str]) -> None:
    pair = run_both(sops_bin, [*flags, age_key.recipient, "s.yaml"], {"s.yaml": PLAIN},
                    tmp_path)
    assert pair.sops.ok
    assert_same(pair, stdout="decrypted", files="bytes")
    _ours_clean(pair)


def test_encrypt_in_place(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-e", "-i", "-a", age_key.recipient, "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok and pair.sops.out == b""
    assert_same(pair, stdout="bytes", files="decrypted")


def test_encrypt_to_output(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-e", "--output=s.enc.yaml", "-a", age_key.recipient, "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    assert "s.enc.yaml" in pair.sops.files
    assert_same(pair, stdout="bytes", files="decrypted")


def test_encrypt_with_recipients_from_env(sops_bin: str, age_key: AgeKey,
                                          tmp_path: Path) -> None:
    env = dict(os.environ, SOPS_AGE_RECIPIENTS=age_key.recipient)
    pair = run_both(sops_bin, ["-e", "s.yaml"], {"s.yaml": PLAIN}, tmp_path, env=env)
    assert pair.sops.ok
    assert_same(pair, stdout="decrypted", files="bytes")


def test_encrypt_with_a_creation_rule(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    config = f"creation_rules:\n  - path_regex: s\\.yaml$\n    age: {age_key.recipient}\n"
    pair = run_both(sops_bin, ["-e", "--output-type", "json", "s.yaml"],
                    {"s.yaml": PLAIN, ".sops.yaml": config}, tmp_path)
    assert pair.sops.ok
    assert_same(pair, stdout="decrypted", files="bytes", fmt="json")


def _doc(content: bytes) -> dict[str, Any]:
    """``content`` as plain YAML, its ``sops`` metadata included."""
    import yaml

    doc = yaml.safe_load(content)
    assert isinstance(doc, dict)
    return doc


def _encrypted_keys(out: bytes) -> dict[str, bool]:
    doc = _doc(out)
    return {k: str(v).startswith("ENC[") for k, v in doc.items() if k != "sops"}


@pytest.mark.parametrize("selection", [
    ["--encrypted-regex", "^pass"], ["--unencrypted-regex", "^user$"],
    ["--encrypted-suffix", "word"], ["--unencrypted-suffix", "_clear"],
    ["--encrypted-comment-regex", "sops:enc"], ["--unencrypted-comment-regex", "clear"],
    ["--mac-only-encrypted", "--encrypted-regex", "^pass"],
])
def test_encrypt_selection(sops_bin: str, age_key: AgeKey, tmp_path: Path,
                           selection: list[str]) -> None:
    text = ("# sops:enc\npassword: p\nuser: admin\nuser_clear: c\n# clear\nport: 1\n"
            "password_word: w\n")
    pair = run_both(sops_bin, ["-e", *selection, "-a", age_key.recipient, "s.yaml"],
                    {"s.yaml": text}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    assert _encrypted_keys(pair.sops.out) == _encrypted_keys(pair.ours.out)
    sops_mac_only = _doc(pair.sops.out)["sops"].get("mac_only_encrypted")
    assert _doc(pair.ours.out)["sops"].get("mac_only_encrypted") == sops_mac_only


def test_encrypt_with_pgp(sops_bin: str, gpg_key: str, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-e", "-p", gpg_key, "s.yaml"], {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    fprs = [[k["fp"] for k in _doc(s.out)["sops"]["pgp"]]
            for s in (pair.sops, pair.ours)]
    assert fprs[0] == fprs[1] == [gpg_key]


def test_encrypt_with_kms(sops_bin: str, aws_kms: object, tmp_path: Path) -> None:
    arn = aws_kms.arns[0]  # type: ignore[attr-defined]
    pair = run_both(sops_bin, ["-e", "-k", arn, "--encryption-context", "app:web", "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    kms = [_doc(s.out)["sops"]["kms"][0] for s in (pair.sops, pair.ours)]
    assert [(k["arn"], k["context"]) for k in kms] == [(arn, {"app": "web"})] * 2


def test_encrypt_with_aws_profile(sops_bin: str, aws_kms: object, tmp_path: Path) -> None:
    aws_kms.write_profile(Path(os.environ["AWS_CONFIG_FILE"]), "ci")  # type: ignore[attr-defined]
    arn = aws_kms.arns[0]  # type: ignore[attr-defined]
    pair = run_both(sops_bin, ["-e", "--kms", arn, "--aws-profile", "ci", "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    profiles = [_doc(s.out)["sops"]["kms"][0]["aws_profile"] for s in (pair.sops, pair.ours)]
    assert profiles == ["ci", "ci"]


def test_encrypt_with_vault(sops_bin: str, vault_key: str, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-e", "--hc-vault-transit", vault_key, "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")


# ---- rotate --------------------------------------------------------------------------------

def _data_key_changed(before: bytes, after: bytes) -> bool:
    b, a = (_doc(x)["sops"]["age"][0]["enc"] for x in (before, after))
    return a != b


@needs("rotate", "--output")
def test_rotate_prints(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """``-r FILE`` prints the rotated document and leaves FILE as it was."""
    pair = run_both(sops_bin, ["-r", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and _data_key_changed(enc, pair.sops.out)
    assert_same(pair, stdout="decrypted", files="bytes")
    assert _data_key_changed(enc, pair.ours.out)


def test_rotate_without_in_place_never_rewrites_the_file(sops_bin: str, enc: bytes,
                                                        tmp_path: Path) -> None:
    """Whether or not our rotate can print yet (above), ``-r FILE`` leaves FILE as sops does:
    printed, or refused in one line — never rewritten."""
    pair = run_both(sops_bin, ["-r", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and pair.sops.files == pair.before
    assert pair.ours.files == pair.before
    assert pair.ours.ok or pair.ours.err.startswith("secretops: error: -r/--rotate without -i")


@needs("rotate", "--output")
def test_rotate_in_place_prints_nothing(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-r", "-i", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert_same(pair, stdout="bytes", files="decrypted")


@pytest.mark.parametrize("flag", ["-r", "--rotate"])
def test_rotate_in_place(sops_bin: str, enc: bytes, tmp_path: Path, flag: str) -> None:
    pair = run_both(sops_bin, [flag, "-i", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok
    assert_same(pair, stdout="ignore", files="decrypted")
    assert _data_key_changed(enc, pair.ours.files["s.enc.yaml"])


@needs("rotate", "--output")
def test_rotate_to_output(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["-r", "--output", "new.enc.yaml", "s.enc.yaml"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert "new.enc.yaml" in pair.sops.files
    assert_same(pair, stdout="bytes", files="decrypted")


@pytest.mark.parametrize("op", ["add", "rm"])
def test_rotate_add_and_remove_keys(sops_bin: str, enc: bytes, age_key: AgeKey,
                                    tmp_path: Path, op: str) -> None:
    other = make_age_key(tmp_path, "other.txt").recipient
    if op == "rm":  # a file with both keys, made by sops
        (tmp_path / "e.enc.yaml").write_bytes(enc)
        r = sops(sops_bin, "rotate", "--add-age", other, str(tmp_path / "e.enc.yaml"))
        assert r.code == 0, r.err
        enc = r.out
    pair = run_both(sops_bin, ["-r", "-i", f"--{op}-age", other, "s.enc.yaml"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="ignore", files="decrypted")
    recipients = [sorted(k["recipient"] for k in _doc(s.files["s.enc.yaml"])["sops"]["age"])
                  for s in (pair.sops, pair.ours)]
    assert recipients[0] == recipients[1]
    assert (other in recipients[1]) == (op == "add")


def _master_keys(content: bytes) -> list[tuple[str, str]]:
    meta = _doc(content)["sops"]
    ident = {"age": "recipient", "pgp": "fp", "kms": "arn", "hc_vault": "key_name"}
    return sorted((kind, str(k[field])) for kind, field in ident.items()
                  for k in meta.get(kind) or [])


@pytest.fixture(params=["pgp", "kms", "hc-vault-transit"])
def other_key(request: pytest.FixtureRequest) -> str:
    """A master key of another source, for --add-*/--rm-* (its server or keyring is up)."""
    if request.param == "pgp":
        return f"pgp={request.getfixturevalue('gpg_key')}"
    if request.param == "kms":
        return f"kms={request.getfixturevalue('aws_kms').arns[1]}"
    return f"hc-vault-transit={request.getfixturevalue('vault_key')}"


def test_rotate_adds_and_removes_other_sources(sops_bin: str, enc: bytes, other_key: str,
                                               tmp_path: Path) -> None:
    flag, key = other_key.split("=", 1)
    added = run_both(sops_bin, ["-r", "-i", f"--add-{flag}", key, "s.enc.yaml"],
                     {"s.enc.yaml": enc}, tmp_path)
    assert added.sops.ok, added
    assert_same(added, stdout="ignore", files="decrypted")
    keys = [_master_keys(s.files["s.enc.yaml"]) for s in (added.sops, added.ours)]
    assert keys[0] == keys[1] and len(keys[0]) == 2
    both = added.sops.files["s.enc.yaml"]
    removed = run_both(sops_bin, ["--rotate", "--in-place", f"--rm-{flag}", key, "s.enc.yaml"],
                       {"s.enc.yaml": both}, tmp_path)
    assert removed.sops.ok, removed
    assert_same(removed, stdout="ignore", files="decrypted")
    keys = [_master_keys(s.files["s.enc.yaml"]) for s in (removed.sops, removed.ours)]
    assert keys[0] == keys[1] and len(keys[0]) == 1


# ---- set -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ['["user"] "root"', '["password"] {"a": [1, true]}',
                                   '["port"]  -1', '["list"][0] "x y"', '["new"]["k"] null'])
def test_set(sops_bin: str, enc: bytes, tmp_path: Path, value: str) -> None:
    pair = run_both(sops_bin, ["--set", value, "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    assert pair.sops.files["s.enc.yaml"] != enc
    assert_same(pair, stdout="bytes", files="decrypted")


def test_set_writes_the_file_whatever_output_says(sops_bin: str, enc: bytes,
                                                  tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--set", '["user"] "root"', "--output", "x.yaml", "s.enc.yaml"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and "x.yaml" not in pair.sops.files
    assert_same(pair, stdout="bytes", files="decrypted")


@pytest.mark.parametrize("value", ['["user"]"root"', 'user "root"', '["user" "root"'])
def test_set_bad_format(sops_bin: str, enc: bytes, tmp_path: Path, value: str) -> None:
    pair = run_both(sops_bin, ["--set", value, "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.code == 7
    assert_same(pair, files="bytes")


def test_set_value_not_json(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--set", '["user"] root', "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path)
    assert pair.sops.code == 7
    assert_same(pair, files="bytes")
    assert "not valid JSON" in pair.ours.err


# ---- edit ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["s.enc.yaml"], ["-i", "s.enc.yaml"],
                                  ["--ignore-mac", "s.enc.yaml"]])
def test_edit(sops_bin: str, enc: bytes, tmp_path: Path, argv: list[str]) -> None:
    env = _editor(tmp_path, "sed -i 's/admin/root/' \"$1\"")
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path, env=env)
    assert pair.sops.ok, pair
    assert decrypted(pair.sops.files["s.enc.yaml"], "yaml")[0]["user"] == "root"
    assert_same(pair, stdout="bytes", files="decrypted")
    _ours_clean(pair)


def test_edit_unchanged(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path,
                    env=_editor(tmp_path, "true"))
    assert pair.sops.code == 200
    assert_same(pair, files="bytes")


@needs("edit", "--show-master-keys")
def test_edit_show_master_keys(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    env = _editor(tmp_path, f"grep -c age1 \"$1\" >> {seen}")
    pair = run_both(sops_bin, ["-s", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path, env=env)
    assert pair.sops.code == 200
    assert_same(pair, files="bytes")
    counts = seen.read_text().split()
    assert counts[0] == counts[1] != "0"


def test_edit_a_new_file(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    env = _editor(tmp_path, "printf 'a: b\\n' > \"$1\"")
    pair = run_both(sops_bin, ["-a", age_key.recipient, "new.yaml"], {}, tmp_path, env=env)
    assert pair.sops.ok and "new.yaml" in pair.sops.files
    assert_same(pair, stdout="bytes", files="decrypted", modes=False)
    assert pair.ours.modes["new.yaml"] == 0o600


# ---- the parser: flags after the file, --, errors -------------------------------------------

def test_flags_after_the_file_are_ignored(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """sops warns and ignores everything after FILE: here --output is not written."""
    pair = run_both(sops_bin, ["-d", "s.enc.yaml", "--output", "x.yaml", "extra"],
                    {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and "x.yaml" not in pair.sops.files
    assert_same(pair, stdout="bytes", files="bytes")
    assert "ignored" in pair.ours.err


@pytest.mark.parametrize("argv", [["s.enc.yaml", "-d"], ["-d=false", "s.enc.yaml"]])
def test_file_first_means_edit(sops_bin: str, enc: bytes, tmp_path: Path,
                               argv: list[str]) -> None:
    """``sops FILE -d`` opens the editor (-d comes too late), as does ``-d=false``."""
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path,
                    env=_editor(tmp_path, "true"))
    assert pair.sops.code == 200
    assert_same(pair, files="bytes")


@pytest.mark.parametrize("argv, code", [
    ([], 100),  # no file
    (["-d"], 100),
    (["-d", "missing.yaml"], 100),
    (["-e", "-a", "age1x", "missing.yaml"], 100),
    (["-r", "missing.yaml"], 100),
    (["--add-age", "age1x", "missing.yaml"], 49),
    (["-d", "-i", "--output", "x", "s.enc.yaml"], 8),
])
def test_refusals(sops_bin: str, enc: bytes, tmp_path: Path, argv: list[str],
                  code: int) -> None:
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.code == code
    assert_same(pair, files="bytes")


@pytest.mark.parametrize("argv", [
    ["-di", "s.enc.yaml"],  # short flags do not combine
    ["--nope", "s.enc.yaml"],
    ["-d", "--output"],  # a value is missing
    ["---d", "s.enc.yaml"],
    ["--indent", "two", "-d", "s.enc.yaml"],
    ["--decrypt=maybe", "s.enc.yaml"],
])
def test_usage_errors(sops_bin: str, enc: bytes, tmp_path: Path, argv: list[str]) -> None:
    """Refused, nothing written (sops exits 1, secretops 2 as for every usage error)."""
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.code == 1 and pair.ours.code == 2, pair
    assert_same(pair, code=False, files="bytes")
    assert pair.ours.err.startswith("secretops: error: "), pair.ours.err


@pytest.mark.parametrize("argv, named", [
    (["--filename-override", "x.yaml", "--set", '["a"] 1', "s.enc.yaml"], "--filename-override"),
])
def test_not_supported_yet(enc: bytes, tmp_path: Path, argv: list[str], named: str) -> None:
    """What sops reads in a mode and secretops cannot do yet is refused in one line, exit 2,
    nothing written (not silently ignored). Ours only."""
    (tmp_path / "s.enc.yaml").write_bytes(enc)
    (tmp_path / "s.yaml").write_text(PLAIN)
    p = subprocess.run([sys.executable, "-m", "secretops", *argv], cwd=tmp_path,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith(f"secretops: error: {named} with "), p.stderr
    assert (tmp_path / "s.enc.yaml").read_bytes() == enc


def test_two_modes_are_refused(sops_bin: str, enc: bytes, age_key: AgeKey,
                               tmp_path: Path) -> None:
    """sops runs -d and -r both and prints only the last result (deprecated, it warns);
    secretops refuses, exit 8, and writes nothing."""
    pair = run_both(sops_bin, ["-d", "-r", "s.enc.yaml"], {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and "deprecated" in pair.sops.err
    assert pair.ours.code == 8 and pair.ours.files == pair.before


@pytest.mark.parametrize("argv", [["-r", "-i", "s.enc.yaml"], ["--set", '["a"] 1', "s.enc.yaml"],
                                  ["s.enc.yaml"], ["-d", "s.enc.yaml"]])
def test_a_config_without_a_rule_for_the_file(sops_bin: str, enc: bytes, tmp_path: Path,
                                              argv: list[str]) -> None:
    """sops loads the creation rule in every mode but -d: a .sops.yaml that has no rule for
    FILE fails -r, --set and edit (sops exits 1, secretops 5 as its encrypt does)."""
    config = "creation_rules:\n  - path_regex: nothing-matches\n    age: age1x\n"
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc, ".sops.yaml": config}, tmp_path,
                    env=_editor(tmp_path, "true"))
    assert pair.sops.ok == (argv[0] == "-d"), pair
    assert_same(pair, code=False, stdout="bytes", files="bytes")
    assert pair.sops.ok or "no creation rule matches" in pair.ours.err


def test_global_config_applies(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    config = f"creation_rules:\n  - age: {age_key.recipient}\n"
    pair = run_both(sops_bin, ["--config", "ci/sops.yaml", "-e", "s.yaml"],
                    {"s.yaml": PLAIN, "ci/sops.yaml": config}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")


# ---- the headline: sops -d secret.enc.yaml | kubectl apply -f - ------------------------------

SECRET = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\n"
          f"stringData:\n  password: {CANARY}\n  user: admin\n")


def test_decrypt_piped_into_kubectl_apply(sops_bin: str, age_key: AgeKey, k8s: object,
                                          tmp_path: Path) -> None:
    (tmp_path / "secret.yaml").write_text(SECRET)
    r = sops(sops_bin, "-e", "-a", age_key.recipient, "--encrypted-regex", "^stringData$",
             str(tmp_path / "secret.yaml"))
    (tmp_path / "secret.enc.yaml").write_bytes(r.out)
    got = {}
    for ns, prog in (("by-sops", sops_bin), ("by-secretops", f"{sys.executable} -m secretops")):
        k8s.kubectl("create", "namespace", ns)  # type: ignore[attr-defined]
        line = f"set -o pipefail; {prog} -d secret.enc.yaml | kubectl apply -n {ns} -f -"
        p = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "secret/db created\n"
        out = k8s.kubectl("get", "secret", "db", "-n", ns, "-o",  # type: ignore[attr-defined]
                          "jsonpath={.data}").stdout
        got[ns] = out
    assert got["by-sops"] == got["by-secretops"] != ""
