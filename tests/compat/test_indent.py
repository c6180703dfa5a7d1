"""``--indent`` and ``.sops.yaml``'s ``stores: … indent``, side by side with sops 3.11.

sops reads ``--indent N`` in its global mode only (``sops -d --indent 2 f`` — refused after a
subcommand, ignored before one: ``test_options.py``, ``test_global_options.py``) and in every
mode of it: ``-d``, ``-e``, ``-r``, ``--set`` and the editor. It overrides the config's
``stores:`` indents and applies to YAML (0 is the default 4; 1 and more than 9 are 2; negative
is exit 4), JSON (-1 a tab, 0 newlines only, below -1 exit 4) and the JSON envelope of binary
files; dotenv and INI have no indentation. With the config alone, sops writes every YAML and
JSON output with the configured indent — and so does secretops: a configured indent is a
request for sops's output (``secretops: keep_layout: true`` keeps each file's own layout).

Plaintext output is compared byte for byte. Encrypted output differs in every ENC value and in
the key stanzas, so it is compared as :func:`shape`: the text with each ENC value reduced to
its type and the ``sops:`` block to its keys and indentation — every column, every line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.compat.sidebyside import Pair, assert_same, run_both
from tests.helpers import CANARY, AgeKey, assert_no_canary, sops

# nested lists, item maps with nested maps and lists, block scalars in maps and in lists,
# comments in maps and lists, empty collections: every rule of go-yaml's indentation
PLAIN = f"""# head
password: {CANARY}
b:
  c: x
  # in a map
  d:
    - e
    - f: g
      h: i
      j:
        k: l
        m:
          - o
      lit: |
        one
        two
    - - x
      # in a list
      - w
    - []
    - {{}}
l:
- |
  lit in a list
  two
- - - deep
    - deeper
  - q
- k: [1, 2]
  z:
  - - m
    - p
empty: {{}}
"""
JSON = f'{{"password": "{CANARY}", "b": {{"c": [1, [2, 3]], "d": {{}}}}, "e": []}}'

_ENC = re.compile(r"ENC\[AES256_GCM,data:[^\]]*,type:(\w+)\]")


_SOPS = re.compile(r'^(?:sops:|\s*"sops": \{)')
_FIELD = re.compile(r'^(\s*(?:- )?"?[\w.]*"?:?).*')


def shape(text: bytes) -> list[str]:
    """Every line with its indentation and keys, ENC values reduced to their type, the
    ``sops:`` block (YAML or JSON) to its field names: what is equal between two encryptions.
    The lines of an armored age stanza go (their number varies: age adds random stanzas)."""
    out = []
    inside = False
    for line in _ENC.sub(r"ENC[\1]", text.decode()).splitlines():
        inside = inside or bool(_SOPS.match(line))
        if inside:
            if not any(c in line for c in ':{}[]'):
                continue
            line = _FIELD.sub(r"\1", line)
        out.append(line)
    return out


@pytest.fixture
def enc(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> bytes:
    """PLAIN encrypted by sops (indented by 4, as sops writes without --indent)."""
    (tmp_path / "plain.yaml").write_text(PLAIN)
    r = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(tmp_path / "plain.yaml"))
    assert r.code == 0, r.err
    return r.out


@pytest.fixture
def enc_json(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> bytes:
    (tmp_path / "plain.json").write_text(JSON)
    r = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(tmp_path / "plain.json"))
    assert r.code == 0, r.err
    return r.out


def _same_shape(pair: Pair, *, out: bool = False, files: tuple[str, ...] = ()) -> None:
    assert pair.sops.code == pair.ours.code == 0, pair
    if out:
        assert shape(pair.ours.out) == shape(pair.sops.out), pair
    for name in files:
        assert shape(pair.ours.files[name]) == shape(pair.sops.files[name]), name
    assert_no_canary(pair.ours.err, "secretops's stderr")


# ---- --indent in the global mode -------------------------------------------------------------

@pytest.mark.parametrize("n", ["0", "1", "2", "3", "4", "9", "10", "010", "0x3", "+2", "1_0"])
def test_decrypt_yaml(n: str, sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """Every step go-yaml knows (0 → 4, 1 and > 9 → 2), values read as Go reads an int flag
    (``010`` is octal 8); the file is written anew although sops's own layout was 4."""
    pair = run_both(sops_bin, ["--indent", n, "-d", "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")


@pytest.mark.parametrize("n", ["-1", "0", "2", "5"])
def test_decrypt_json(n: str, sops_bin: str, enc_json: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, [f"--indent={n}", "-d", "s.enc.json"], {"s.enc.json": enc_json},
                    tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes", fmt="json")


@pytest.mark.parametrize("argv", [
    ["--indent", "3", "-d", "--output-type", "json", "s.enc.yaml"],
    ["--indent", "0", "-d", "--output-type", "json", "s.enc.yaml"],
    ["--indent", "2", "-d", "--extract", '["b"]', "s.enc.yaml"],
    # a list is written by go-yaml's Marshal in sops: 4, whatever --indent says
    ["--indent", "2", "-d", "--extract", '["b"]["d"]', "s.enc.yaml"],
    ["--indent", "3", "-d", "--extract", '["b"]["d"]', "--output-type", "json", "s.enc.yaml"],
    ["--indent", "2", "-d", "-i", "s.enc.yaml"],
    ["--indent", "2", "-d", "--output", "out.yaml", "s.enc.yaml"],
], ids=" ".join)
def test_decrypt_options(argv: list[str], sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes", modes=False)


@pytest.mark.parametrize("argv, name", [
    (["--indent", "-1", "-d", "s.enc.yaml"], "s.enc.yaml"),  # YAML: negative refused
    (["--indent", "-2", "-d", "s.enc.json"], "s.enc.json"),  # JSON: below -1 refused
    (["--indent", "-1", "-d", "--output-type", "yaml", "s.enc.json"], "s.enc.json"),
], ids=" ".join)
def test_negative_indent_is_exit_4(argv: list[str], name: str, sops_bin: str, enc: bytes,
                                   enc_json: bytes, tmp_path: Path) -> None:
    """sops refuses it when it writes the output: exit 4, nothing printed, nothing changed."""
    pair = run_both(sops_bin, argv, {name: enc if name.endswith("yaml") else enc_json},
                    tmp_path)
    assert pair.sops.code == 4 and pair.ours.code == 4, pair
    assert pair.sops.out == pair.ours.out == b""
    assert_same(pair, files="bytes")


def test_the_json_indent_limit(sops_bin: str, enc_json: bytes, tmp_path: Path) -> None:
    """Over 64 spaces a level secretops refuses (exit 4; docs/security.md, "Limits on input"),
    where sops writes the indentation whatever its size: every level of every line repeats it,
    so a number in a planted .sops.yaml would turn a small file into gigabytes."""
    pair = run_both(sops_bin, ["--indent", "65", "-d", "s.enc.json"],
                    {"s.enc.json": enc_json}, tmp_path)
    assert pair.sops.ok and b"\n" + b" " * 65 + b'"b"' in pair.sops.out, pair
    assert pair.ours.code == 4 and pair.ours.out == b"", pair
    assert "over the limit of 64" in pair.ours.err
    pair = run_both(sops_bin, ["--indent", "64", "-d", "s.enc.json"],
                    {"s.enc.json": enc_json}, tmp_path)
    assert_same(pair, stdout="bytes", files="bytes", fmt="json")


@pytest.mark.parametrize("value", [" 3", "08", "3.0", "1__0", "9223372036854775808"])
def test_values_go_refuses(value: str, sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """Not an int to Go's flag parser: a usage error on both sides (sops 1, secretops 2)."""
    pair = run_both(sops_bin, ["--indent", value, "-d", "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path)
    assert pair.sops.code == 1 and pair.ours.code == 2, pair
    assert_same(pair, code=False, files="bytes")


@pytest.mark.parametrize("n", ["2", "3", "0"])
def test_encrypt(n: str, sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--indent", n, "-e", "-a", age_key.recipient, "s.yaml"],
                    {"s.yaml": PLAIN}, tmp_path)
    _same_shape(pair, out=True)
    assert_same(pair, stdout="decrypted", files="bytes")


def test_encrypt_json_and_binary(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    for name, text in (("s.json", JSON), ("s.bin", f"{CANARY}\n")):
        pair = run_both(sops_bin, ["--indent", "2", "-e", "-a", age_key.recipient, name],
                        {name: text}, tmp_path / name)
        _same_shape(pair, out=True)
        assert b'\n  "data"' in pair.ours.out or b'\n  "b"' in pair.ours.out


def test_dotenv_has_no_indentation(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["--indent", "2", "-e", "-a", age_key.recipient, "s.env"],
                    {"s.env": f"PASSWORD={CANARY}\n"}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", fmt="dotenv")


@pytest.mark.parametrize("argv", [
    ["--indent", "2", "-r", "s.enc.yaml"],
    ["--indent", "3", "-r", "-i", "s.enc.yaml"],
    ["--indent", "2", "--set", '["b"]["c"] "y"', "s.enc.yaml"],
    ["--indent", "3", "--set", '["l"][1] 5', "s.enc.yaml"],
], ids=" ".join)
def test_rotate_and_set(argv: list[str], sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.enc.yaml": enc}, tmp_path)
    _same_shape(pair, out=True, files=("s.enc.yaml",))
    assert_same(pair, stdout="decrypted", files="decrypted")


@pytest.mark.parametrize("show", [[], ["-s"]], ids=["plain", "show-master-keys"])
def test_edit(show: list[str], sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """The editor sees the plaintext indented by 3 (the copy it leaves is compared byte for
    byte, less the metadata's random parts with -s) and the file is written back that way."""
    script = tmp_path / "editor.sh"
    script.write_text('#!/bin/sh\ncp "$1" shown.txt\nsed -i "s/deeper/deepest/" "$1"\n')
    script.chmod(0o755)
    env = dict(os.environ, EDITOR=str(script), SOPS_EDITOR=str(script))
    pair = run_both(sops_bin, ["--indent", "3", *show, "s.enc.yaml"], {"s.enc.yaml": enc},
                    tmp_path, env=env)
    _same_shape(pair, files=("s.enc.yaml", "shown.txt"))
    if not show:
        assert pair.ours.files["shown.txt"] == pair.sops.files["shown.txt"]
    assert b"\n   b:" not in pair.ours.files["shown.txt"]  # top level stays at 0
    assert b"\n   c: x" in pair.ours.files["shown.txt"]
    # with -s sops writes the old values back (docs/usage.md, "edit -s"): shapes only
    assert_same(pair, stdout="ignore", files="ignore" if show else "decrypted", modes=False,
                per_file={"shown.txt": "ignore"})


def test_nested_lists_in_converted_output(sops_bin: str, age_key: AgeKey,
                                          tmp_path: Path) -> None:
    """A list in a list starts on its parent's dash line (``- - x``), as go-yaml writes it,
    with or without --indent: JSON converted to YAML is written anew."""
    (tmp_path / "p.json").write_text(f'{{"a": [[1, [2, "{CANARY}"]], {{"b": [[3]], "c": {{}}}}]}}')
    enc = sops(sops_bin, "encrypt", "-a", age_key.recipient, str(tmp_path / "p.json")).out
    for argv in (["decrypt", "--output-type", "yaml", "s.json"],
                 ["--indent", "3", "-d", "--output-type", "yaml", "s.json"]):
        pair = run_both(sops_bin, argv, {"s.json": enc}, tmp_path / "run")
        assert b"- - 1\n" in pair.sops.out, pair
        assert_same(pair, stdout="bytes", files="bytes")


def test_multi_document(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    text = f"a:\n    b: {CANARY}\n---\nc:\n  - d\n  - - e\n"
    (tmp_path / "m.yaml").write_text(text)
    enc = sops(sops_bin, "encrypt", "-a", age_key.recipient, str(tmp_path / "m.yaml")).out
    pair = run_both(sops_bin, ["--indent", "2", "-d", "m.enc.yaml"], {"m.enc.yaml": enc},
                    tmp_path / "run")
    assert_same(pair, stdout="bytes", files="bytes")


# ---- .sops.yaml's stores: indent ----------------------------------------------------------

def _config(recipient: str, stores: str, extra: str = "") -> str:
    return f"creation_rules:\n  - age: {recipient}\nstores:\n{stores}{extra}"


YAML2_JSON3 = "  yaml:\n    indent: 2\n  json:\n    indent: 3\n"


@pytest.mark.parametrize("argv", [
    ["decrypt", "s.enc.yaml"],
    ["-d", "s.enc.yaml"],
    ["decrypt", "--output-type", "json", "s.enc.yaml"],
    ["decrypt", "--extract", '["b"]', "s.enc.yaml"],
    ["decrypt", "s.enc.json"],
    ["decrypt", "--output-type", "yaml", "s.enc.json"],
    ["--indent", "0", "-d", "s.enc.yaml"],  # --indent wins: 0 is YAML's default, 4
    ["--indent", "0", "-d", "s.enc.json"],  # and JSON's newlines without indentation
    ["--indent", "5", "-d", "s.enc.yaml"],
], ids=" ".join)
def test_config_decrypt(argv: list[str], sops_bin: str, enc: bytes, enc_json: bytes,
                        age_key: AgeKey, tmp_path: Path) -> None:
    """The config's indent applies to every decryption, the file's own layout (sops's 4)
    notwithstanding; --indent overrides it."""
    files = {"s.enc.yaml": enc, "s.enc.json": enc_json,
             ".sops.yaml": _config(age_key.recipient, YAML2_JSON3)}
    pair = run_both(sops_bin, argv, files, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")


@pytest.mark.parametrize("argv", [
    ["encrypt", "s.yaml"],
    ["-e", "s.yaml"],
    ["encrypt", "s.json"],
    ["encrypt", "-i", "s.yaml"],
    ["rotate", "s.enc.yaml"],
    ["set", "s.enc.yaml", '["b"]["c"]', '"y"'],
    ["unset", "s.enc.yaml", '["empty"]'],
    ["updatekeys", "-y", "s.enc.yaml"],
], ids=" ".join)
def test_config_writes(argv: list[str], sops_bin: str, enc: bytes, age_key: AgeKey,
                       tmp_path: Path) -> None:
    """Encrypting a plaintext indented by 2 and 4 in places, and rewriting a file sops
    indented by 4: the result is indented as the config says, line for line as sops's."""
    other = "age1cy0su9fwf3gf9mw868g5yut09p6nytfmmnktexz2ya5uqg9vl9sss4euqm"
    recipients = f"{age_key.recipient},{other}" if "updatekeys" in argv else age_key.recipient
    files = {"s.yaml": PLAIN, "s.json": JSON, "s.enc.yaml": enc,
             ".sops.yaml": _config(recipients, YAML2_JSON3)}
    pair = run_both(sops_bin, argv, files, tmp_path)
    changed = [n for n in files if pair.sops.files[n] != pair.before[n]]
    # updatekeys reports on different streams (sops: stderr; secretops: stdout)
    _same_shape(pair, out="updatekeys" not in argv, files=tuple(changed))
    if "updatekeys" in argv:
        assert changed == ["s.enc.yaml"]


def test_config_edit(sops_bin: str, enc: bytes, age_key: AgeKey, tmp_path: Path) -> None:
    script = tmp_path / "editor.sh"
    script.write_text('#!/bin/sh\ncp "$1" shown.txt\nsed -i "s/deeper/deepest/" "$1"\n')
    script.chmod(0o755)
    env = dict(os.environ, EDITOR=str(script), SOPS_EDITOR=str(script))
    files = {"s.enc.yaml": enc, ".sops.yaml": _config(age_key.recipient, YAML2_JSON3)}
    pair = run_both(sops_bin, ["edit", "s.enc.yaml"], files, tmp_path, env=env)
    _same_shape(pair, files=("s.enc.yaml",))
    assert pair.ours.files["shown.txt"] == pair.sops.files["shown.txt"]


@pytest.mark.parametrize("extra", [[], ["--output-type", "json"]], ids=["yaml", "json"])
def test_config_exec_file(extra: list[str], sops_bin: str, enc: bytes, age_key: AgeKey,
                          tmp_path: Path) -> None:
    """The file exec-file's command reads is indented as the config says (sops: its
    outputStore)."""
    files = {"s.enc.yaml": enc, ".sops.yaml": _config(age_key.recipient, YAML2_JSON3)}
    pair = run_both(sops_bin, ["exec-file", "--no-fifo", *extra, "s.enc.yaml", "cat {}"],
                    files, tmp_path)
    assert pair.sops.ok and (b"\n  c: x" in pair.sops.out or b'\n   "b"' in pair.sops.out), pair
    assert_same(pair, stdout="bytes", files="bytes")


@pytest.mark.parametrize("stores, name, code", [
    ("  yaml:\n    indent: -1\n", "s.enc.yaml", 4),
    ("  yaml:\n    indent: -1\n", "s.enc.json", 0),  # only YAML output refuses it
    ("  json:\n    indent: -1\n", "s.enc.json", 0),  # a tab
    ("  json:\n    indent: -2\n", "s.enc.json", 4),
    ("  yaml:\n    indent: 1\n", "s.enc.yaml", 0),
    ("  yaml:\n    indent: 12\n", "s.enc.yaml", 0),
    ("  json:\n    indent: 0\n", "s.enc.json", 0),
], ids=lambda v: repr(v) if isinstance(v, str) else str(v))
def test_config_values(stores: str, name: str, code: int, sops_bin: str, enc: bytes,
                       enc_json: bytes, age_key: AgeKey, tmp_path: Path) -> None:
    """Any integer is a valid setting, as in sops; a negative one fails where that format's
    output is written (exit 4), not when the config is read."""
    files = {"s.enc.yaml": enc, "s.enc.json": enc_json,
             ".sops.yaml": _config(age_key.recipient, stores)}
    pair = run_both(sops_bin, ["decrypt", name], files, tmp_path)
    assert pair.sops.code == code, pair
    assert_same(pair, stdout="bytes", files="bytes")


def test_json_binary_config(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    files = {"s.bin": f"{CANARY}\n",
             ".sops.yaml": _config(age_key.recipient, "  json_binary:\n    indent: 1\n"
                                   "  json:\n    indent: 5\n")}
    pair = run_both(sops_bin, ["encrypt", "s.bin"], files, tmp_path)
    _same_shape(pair, out=True)
    assert b'\n "data"' in pair.ours.out


def test_keep_layout(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    """``secretops: keep_layout: true`` (sops ignores the section): sops re-indents, secretops
    keeps the plaintext's own layout and uses the indent for the sops: block only; each reads
    the other's file."""
    files = {"s.yaml": PLAIN, ".sops.yaml": _config(
        age_key.recipient, YAML2_JSON3, "secretops:\n  keep_layout: true\n")}
    pair = run_both(sops_bin, ["encrypt", "s.yaml"], files, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    ours = pair.ours.out.decode()
    assert "\nl:\n- " in ours and "\nl:\n  - " in pair.sops.out.decode()
    assert "\nsops:\n  age:\n    - recipient:" in ours  # the block sops: written anew
    back = run_both(sops_bin, ["decrypt", "s.enc.yaml"], {**files, "s.enc.yaml": pair.ours.out},
                    tmp_path / "back")
    assert back.ours.out == PLAIN.encode()  # the file stays your file
    assert_same(back, stdout="data", files="bytes")
