"""Subcommand semantics, side by side with sops 3.11: what a form does, not only that it parses.

Decrypting across formats (every --input-type × --output-type for every format), --extract
with every output type, set's tree paths, exec-env's and exec-file's contract, age identities
from several sources, and a creation rule that names no key.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.compat.sidebyside import assert_same, run_both
from tests.compat.test_options import format_of_text, sops_encrypt
from tests.helpers import CANARY, AgeKey, assert_no_canary

FORMATS = ["yaml", "json", "dotenv", "ini", "binary"]
PLAINTEXTS = {
    "s.yaml": "a: 1\nb:\n    c: x\nl:\n    - 1\n    - two\n",
    "s.json": '{"a": 1, "b": {"c": "x"}, "l": [1, "two"]}',
    "s.env": "A=1\nB=two\n",
    "s.ini": "[sec]\nk = v\n",
    "s.bin": "raw bytes\n",
}


@pytest.fixture(scope="module")
def encrypted(sops_bin: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """Each format's plaintext encrypted by sops, with the key that opens them all."""
    from tests.helpers import make_age_key

    tmp = tmp_path_factory.mktemp("enc")
    key = make_age_key(tmp)
    return str(key.path), {name: sops_encrypt(sops_bin, tmp, name, text, key.recipient)
                           for name, text in PLAINTEXTS.items()}


def _exact(sops_code: int) -> bool:
    """Compare exact exit codes except for unparseable input, where sops exits 1 and
    secretops 150/151 on purpose (docs/exit-codes.md)."""
    return sops_code in (0, 4)


@pytest.mark.parametrize("output_type", FORMATS)
@pytest.mark.parametrize("input_type", FORMATS)
@pytest.mark.parametrize("name", list(PLAINTEXTS))
def test_decrypt_across_formats(name: str, input_type: str, output_type: str, sops_bin: str,
                                encrypted: tuple[str, dict], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file read as every format and written as every format: the same outcome, and
    where sops succeeds the same text (a JSON file read as YAML is YAML, block style)."""
    key, files = encrypted
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", key)
    pair = run_both(sops_bin, ["decrypt", "--input-type", input_type, "--output-type",
                               output_type, name], {name: files[name]}, tmp_path)
    assert_same(pair, code=_exact(pair.sops.code), stdout="bytes",
                files="bytes")


EXTRACT_YAML = ("a: 1\nf: 1.5\nt: true\nnul: null\ns: str\nm:\n    k: v\n    n: 2\n"
                "l:\n    # a comment\n    - 1\n    - two\n    - k: v\n"
                "ml: |\n    line1\n    line2\nbig: 1e+30\n")
EXTRACT_PATHS = ['["a"]', '["f"]', '["t"]', '["nul"]', '["s"]', '["m"]', '["m"]["n"]', '["l"]',
                 '["l"][0]', '["l"][1]', '["l"][3]', '["l"][9]', '["ml"]', '["big"]', '["zz"]',
                 "zz"]


@pytest.mark.parametrize("output_type", [None, *FORMATS])
@pytest.mark.parametrize("path", EXTRACT_PATHS)
def test_extract_with_every_output_type(path: str, output_type: str | None, sops_bin: str,
                                        age_key: AgeKey, tmp_path: Path) -> None:
    enc = sops_encrypt(sops_bin, tmp_path, "x.yaml", EXTRACT_YAML, age_key.recipient)
    argv = ["decrypt", "--extract", path, *(["--output-type", output_type] if output_type
                                            else []), "x.yaml"]
    pair = run_both(sops_bin, argv, {"x.yaml": enc}, tmp_path)
    assert_same(pair, stdout="bytes", files="bytes")


@pytest.mark.parametrize("path", ['["l"][2]', '["l"][3]', '["l"][9]', '["l"][2]["k"]',
                                  '["l"][8][1]', '["l"][1]["k"]', '["a"]["x"]', '["b"][0]',
                                  '["n"][0]', '["n"][3]', '["n"]["m"]', '["b"]["c"]',
                                  '["l"][0]', '["l"][1]'])
def test_set_paths(path: str, sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    """set past the end of a list appends (at any index past it, as sops), a scalar on the way
    is replaced, missing keys and lists are created, an index counts comments."""
    text = "a: 1\nb:\n    c: x\nl:\n    # first\n    - 1\n    - two\n"
    enc = sops_encrypt(sops_bin, tmp_path, "s.yaml", text, age_key.recipient)
    from tests.compat.sidebyside import decrypted

    pair = run_both(sops_bin, ["set", "s.yaml", path, '"z"'], {"s.yaml": enc}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    # by data: sops rewrites a file it encrypted in the same second byte for byte
    assert decrypted(pair.sops.files["s.yaml"], "yaml") == decrypted(pair.ours.files["s.yaml"],
                                                                      "yaml")


# --- exec-env and exec-file ----------------------------------------------------------------

FLAT_YAML = (f'k: v\nml: "l1\\nl2"\nb: true\nf: 1.5\nbig: 1e+30\nn: null\n"a-b": x\n# c\n'
             f"i: 12\nsecret: {CANARY}\n")


@pytest.fixture
def flat(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> bytes:
    return sops_encrypt(sops_bin, tmp_path, "s.yaml", FLAT_YAML, age_key.recipient)


SHOW_ENV = ("printf '%s|' \"$k\" \"$ml\" \"$b\" \"$f\" \"$big\" \"$n\" \"$i\"; "
            "test \"$secret\" = " + CANARY + " && echo ok")


@pytest.mark.parametrize("argv", [
    ["exec-env", "s.yaml", SHOW_ENV],
    ["exec-env", "--pristine", "s.yaml", "env | grep -v ^PWD= | LC_ALL=C sort"],
    ["exec-env", "s.yaml", "exit 3"],
    ["exec-env", "s.yaml", "kill -TERM $$"],
    ["exec-env", "--background", "--same-process", "s.yaml", "true"],
    ["exec-env", "--same-process", "s.yaml", SHOW_ENV],
    ["exec-env", "--same-process", "s.yaml", "exit 4"],
    ["exec-env", "--user", "no-such-user-here", "s.yaml", "true"],
    ["exec-file", "s.yaml", "cat {}"],
    ["exec-file", "--no-fifo", "s.yaml", "cat {}; cat {}"],
    ["exec-file", "--output-type", "json", "s.yaml", "cat {}"],
    ["exec-file", "--output-type", "dotenv", "s.yaml", "cat {}"],
    ["exec-file", "--input-type", "yaml", "s.yaml", "cat {}"],
    ["exec-file", "--filename", "app.conf", "s.yaml", "basename {}"],
    ["exec-file", "--no-fifo", "--filename", "app.conf", "s.yaml", "basename {}"],
    ["exec-file", "s.yaml", "basename {}"],
    ["exec-file", "s.yaml", "exit 5"],
    ["exec-file", "--user", "no-such-user-here", "s.yaml", "true"],
], ids=" ".join)
def test_exec_forms(argv: list[str], sops_bin: str, flat: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.yaml": flat}, tmp_path)
    how = "data" if "cat {}" in argv and "--output-type" not in argv else "bytes"
    assert_same(pair, stdout=how, files="bytes")  # type: ignore[arg-type]
    assert_no_canary(pair.ours.err, "stderr")


def test_exec_file_no_fifo_name_is_sops_random_name(sops_bin: str, flat: bytes,
                                                    tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["exec-file", "--no-fifo", "s.yaml", "basename {}"],
                    {"s.yaml": flat}, tmp_path)
    for side in (pair.sops, pair.ours):
        name = side.out.decode().strip()
        assert name.startswith("tmp-file") and name[len("tmp-file"):].isdigit(), pair


@pytest.mark.parametrize("argv", [
    ["exec-env", "s.yaml", "true"],
    ["exec-env", "--pristine", "s.yaml", "true"],
    ["exec-env", "--flatten", "s.yaml", 'printf %s "$b_c $l_1"'],
], ids=" ".join)
def test_exec_env_nested_values(argv: list[str], sops_bin: str, age_key: AgeKey,
                                tmp_path: Path) -> None:
    """sops refuses a nested value (exit 1); --flatten is secretops's explicit opt-in."""
    enc = sops_encrypt(sops_bin, tmp_path, "s.yaml", PLAINTEXTS["s.yaml"], age_key.recipient)
    pair = run_both(sops_bin, argv, {"s.yaml": enc}, tmp_path)
    if "--flatten" in argv:
        assert not pair.sops.ok  # sops has no such option
        assert pair.ours.ok and pair.ours.out == b"x two", pair
        return
    assert pair.sops.code == 1, pair
    assert_same(pair, stdout="bytes", files="bytes")


def test_exec_env_same_process_replaces_the_process(sops_bin: str, flat: bytes,
                                                    tmp_path: Path) -> None:
    """--same-process: the shell's parent is whoever started sops/secretops (this test)."""
    pair = run_both(sops_bin, ["exec-env", "--same-process", "s.yaml", "echo $PPID"],
                    {"s.yaml": flat}, tmp_path)
    me = f"{os.getpid()}\n".encode()
    assert pair.sops.out == me and pair.ours.out == me, pair
    child = run_both(sops_bin, ["exec-env", "s.yaml", "echo $PPID"], {"s.yaml": flat}, tmp_path)
    assert child.sops.out != me and child.ours.out != me, child


def _poll(path: Path, deadline: float = 20.0) -> bytes:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if path.exists() and path.read_bytes().endswith(b"\n"):
            return path.read_bytes()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_exec_env_background_returns_at_once(sops_bin: str, flat: bytes,
                                             tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = f'while [ ! -e {gate} ]; do sleep 0.05; done; echo "$k" > "$PWD/done.txt"'
    pair = run_both(sops_bin, ["exec-env", "--background", "s.yaml", script],
                    {"s.yaml": flat}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    assert "done.txt" not in pair.sops.files and "done.txt" not in pair.ours.files
    gate.write_text("")  # both commands were still waiting when their runs returned
    for side in ("sops", "secretops"):
        assert _poll(tmp_path / f"side-{side}" / "done.txt") == b"v\n"


def test_exec_file_background_is_refused(sops_bin: str, flat: bytes, tmp_path: Path) -> None:
    """sops starts the command and removes the file at once (the command races the removal);
    secretops refuses the form (docs/sops-compat.md). sops's own outcome is part of that race:
    it usually exits 0, and exited 1 once in a loaded fresh-clone run, so only its having run
    (0 or 1, never a usage error) is checked of it."""
    pair = run_both(sops_bin, ["exec-file", "--background", "s.yaml", "true"],
                    {"s.yaml": flat}, tmp_path)
    assert pair.sops.code in (0, 1) and pair.ours.code == 8, pair


@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root, as in sops")
@pytest.mark.parametrize("argv", [
    ["exec-env", "--user", "nobody", "s.yaml", 'id -u; id -g; printf %s "$k"'],
    ["exec-env", "--user", "nobody", "--same-process", "s.yaml", "id -u; id -g"],
    ["exec-file", "--user", "nobody", "s.yaml", "id -u; id -g; cat {}"],
    ["exec-file", "--user", "nobody", "--no-fifo", "s.yaml", "id -u; cat {}"],
], ids=" ".join)
def test_exec_user(argv: list[str], sops_bin: str, flat: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.yaml": flat}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")
    assert pair.ours.out.startswith(b"65534\n")


# --- age identities and creation rules -----------------------------------------------------

@pytest.mark.parametrize("key_file", ["missing", "malformed", "good", None])
@pytest.mark.parametrize("key_env", [True, False])
def test_age_identity_sources_combine(key_file: str | None, key_env: bool, sops_bin: str,
                                      age_key: AgeKey, tmp_path: Path) -> None:
    """SOPS_AGE_KEY is used when SOPS_AGE_KEY_FILE names a missing or malformed file; with no
    usable identity both exit 128."""
    enc = sops_encrypt(sops_bin, tmp_path, "s.yaml", PLAINTEXTS["s.yaml"], age_key.recipient)
    env = {k: v for k, v in os.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    bad = tmp_path / "bad.txt"
    bad.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    files = {"missing": str(tmp_path / "nope.txt"), "malformed": str(bad),
             "good": str(age_key.path)}
    if key_file:
        env["SOPS_AGE_KEY_FILE"] = files[key_file]
    if key_env:
        env["SOPS_AGE_KEY"] = age_key.secret
    pair = run_both(sops_bin, ["decrypt", "s.yaml"], {"s.yaml": enc}, tmp_path, env=env)
    assert pair.sops.ok == (key_env or key_file == "good"), pair
    assert_same(pair, stdout="bytes", files="bytes")
    assert "NOTAKEY" not in pair.ours.err


@pytest.mark.parametrize("config", [
    "creation_rules:\n  - path_regex: .*\n",
    "creation_rules:\n  - path_regex: .*\n    encrypted_regex: ^a$\n",
    "creation_rules:\n  - path_regex: .*\n    key_groups: []\n",
    "creation_rules:\n  - path_regex: .*\n    key_groups:\n      - age: []\n",
    'creation_rules:\n  - path_regex: .*\n    age: ""\n',
], ids=["no keys", "rules only", "no key groups", "empty key group", "empty age"])
@pytest.mark.parametrize("command", ["encrypt", "updatekeys"])
def test_creation_rule_without_keys(config: str, command: str, sops_bin: str,
                                    age_key: AgeKey, tmp_path: Path) -> None:
    """sops: "empty key group provided", exit 1, nothing written."""
    enc = sops_encrypt(sops_bin, tmp_path, "e.yaml", PLAINTEXTS["s.yaml"], age_key.recipient)
    argv = ["encrypt", "s.yaml"] if command == "encrypt" else ["updatekeys", "-y", "e.yaml"]
    pair = run_both(sops_bin, argv, {".sops.yaml": config, "s.yaml": PLAINTEXTS["s.yaml"],
                                     "e.yaml": enc}, tmp_path)
    assert pair.sops.code == 1, pair
    assert_same(pair, stdout="ignore", files="bytes")
    assert "empty key group provided" in pair.ours.err


def test_rotate_prints_and_leaves_the_file(sops_bin: str, age_key: AgeKey,
                                           tmp_path: Path) -> None:
    """rotate FILE without -i: the rotated document on stdout, FILE untouched, as sops."""
    enc = sops_encrypt(sops_bin, tmp_path, "s.yaml", PLAINTEXTS["s.yaml"], age_key.recipient)
    pair = run_both(sops_bin, ["rotate", "s.yaml"], {"s.yaml": enc}, tmp_path)
    assert pair.sops.ok and pair.sops.files["s.yaml"] == enc
    assert_same(pair, stdout="decrypted", files="bytes")
    assert pair.ours.out != enc and format_of_text(pair.ours.out) == "yaml"
