"""Subcommand options, side by side with sops 3.11: the same argv, the same files.

Each form runs with the real sops binary and with secretops (:mod:`tests.compat.sidebyside`)
and the test states what must match: exit code, output data, files written or left untouched.
The encrypted inputs are made by sops itself, so nothing here depends on secretops's writer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.compat.sidebyside import Pair, assert_same, run_both
from tests.helpers import AgeKey, sops

PLAIN_YAML = "a: 1\nb:\n    c: x\nl:\n    - 1\n    - two\n"


def sops_encrypt(sops_bin: str, tmp: Path, name: str, text: str, recipient: str) -> bytes:
    """``text`` encrypted by sops, as a file called ``name`` (its format from the name)."""
    src = tmp / "plain" / name
    src.parent.mkdir(exist_ok=True)
    src.write_text(text)
    r = sops(sops_bin, "encrypt", "--age", recipient, str(src))
    assert r.code == 0, r.err
    return r.out


@pytest.fixture
def enc(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> bytes:
    return sops_encrypt(sops_bin, tmp_path, "s.yaml", PLAIN_YAML, age_key.recipient)


def bad_mac(enc: bytes) -> bytes:
    """The file with another valid ``lastmodified``: its MAC no longer opens (sops: exit 51)."""
    import re

    out = re.sub(rb'lastmodified: "\d{4}', b'lastmodified: "2001', enc, count=1)
    assert out != enc
    return out


def format_of_text(data: bytes) -> str:
    """The format a file was written in (``--output-type`` keeps the file's name)."""
    first = data.split(b"\n", 1)[0]
    if data[:1] == b"{":
        return "json"
    return "dotenv" if b"=" in first and b": " not in first else "yaml"


# --- set and unset -------------------------------------------------------------------------

SET_FORMS = [
    ["set", "--output-type", "json", "s.yaml", '["a"]', "3"],
    ["set", "--output-type", "yaml", "s.yaml", '["a"]', "3"],
    ["set", "--output-type", "dotenv", "s.yaml", '["a"]', "3"],
    ["set", "--input-type", "yaml", "s.yaml", '["b"]["c"]', '"y"'],
    ["set", "--decryption-order", "age", "s.yaml", '["a"]', "3"],
    ["set", "--decryption-order", "age,age", "s.yaml", '["a"]', "3"],
    ["set", "--shamir-secret-sharing-threshold", "2", "s.yaml", '["a"]', "3"],
    ["set", "--idempotent", "s.yaml", '["b"]["c"]', '"x"'],
    ["set", "--idempotent", "s.yaml", '["b"]["c"]', '"y"'],
    ["set", "s.yaml", '["b"]["c"]', '"x"'],
    ["set", "--value-file", "s.yaml", '["a"]', "value.json"],
    ["set", "--value-file", "s.yaml", '["a"]', "missing.json"],
    ["set", "--value-file", "--value-stdin", "s.yaml", '["a"]', "3"],
    ["set", "s.yaml", '["a"]'],
    ["set", "s.yaml"],
    ["set", "s.yaml", "[a]", "3"],
    ["set", "s.yaml", '["a"]', "not-json"],
    ["set", "s.yaml", '["a"]', "-5"],
    ["unset", "--output-type", "json", "s.yaml", '["a"]'],
    ["unset", "--input-type", "yaml", "s.yaml", '["l"][0]'],
    ["unset", "--decryption-order", "pgp,age", "s.yaml", '["a"]'],
    ["unset", "--decryption-order", "age,pgp,age", "s.yaml", '["a"]'],
    ["unset", "--shamir-secret-sharing-threshold", "2", "s.yaml", '["a"]'],
    ["unset", "--idempotent", "s.yaml", '["zz"]'],
    ["unset", "s.yaml", '["zz"]'],
    ["unset", "s.yaml", '["l"][5]'],
    ["unset", "s.yaml", "zz"],
    ["unset", "s.yaml"],
]


@pytest.mark.parametrize("argv", SET_FORMS, ids=" ".join)
def test_set_and_unset_options(argv: list[str], sops_bin: str, enc: bytes,
                               tmp_path: Path) -> None:
    files = {"s.yaml": enc, "value.json": b'{"k": [1, "v"]}'}
    pair = run_both(sops_bin, argv, files, tmp_path)
    # the file keeps its name: read it in the format it was written in
    fmt = format_of_text(pair.sops.files["s.yaml"])
    if pair.sops.ok and pair.sops.files["s.yaml"] == enc and "--idempotent" not in argv:
        # sops rewrote it, byte for byte: within the second it was made, an unchanged value
        # encrypts to the same text (same IV, same lastmodified). Compare the data.
        from tests.compat.sidebyside import decrypted

        assert pair.ours.ok, pair
        assert decrypted(pair.ours.files["s.yaml"], fmt) == decrypted(enc, "yaml")
        return
    assert_same(pair, stdout="ignore", files="decrypted", file_formats={"s.yaml": fmt})


@pytest.mark.parametrize("argv", [
    ["set", "--ignore-mac", "s.yaml", '["a"]', "3"],
    ["set", "s.yaml", '["a"]', "3"],
    ["unset", "--ignore-mac", "s.yaml", '["a"]'],
    ["unset", "s.yaml", '["a"]'],
], ids=" ".join)
def test_ignore_mac_on_set_and_unset(argv: list[str], sops_bin: str, enc: bytes,
                                     tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.yaml": bad_mac(enc)}, tmp_path)
    assert pair.sops.ok == ("--ignore-mac" in argv), pair
    assert_same(pair, stdout="ignore", files="decrypted")


def test_set_value_from_stdin(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["set", "--value-stdin", "s.yaml", '["a"]'], {"s.yaml": enc},
                    tmp_path, stdin=b'"from stdin"\n')
    assert pair.sops.ok, pair
    assert_same(pair, stdout="ignore", files="decrypted")


# --- rotate --------------------------------------------------------------------------------

ROTATE_FORMS = [
    ["rotate", "s.yaml"],
    ["rotate", "-i", "s.yaml"],
    ["rotate", "--in-place", "s.yaml"],
    ["rotate", "--output", "out.yaml", "s.yaml"],
    ["rotate", "--output-type", "json", "s.yaml"],
    ["rotate", "--output-type", "json", "--output", "out.json", "s.yaml"],
    ["rotate", "--input-type", "yaml", "s.yaml"],
    ["rotate", "--filename-override", "x.yaml", "s.yaml"],
    ["rotate", "-i", "--output", "out.yaml", "s.yaml"],
    ["rotate", "--decryption-order", "age", "s.yaml"],
    ["rotate", "--decryption-order", "age,age", "s.yaml"],
    ["rotate", "--add-age", "{recipient}", "missing.yaml"],
    ["rotate", "--rm-age", "{recipient}", "missing.yaml"],
    ["rotate", "missing.yaml"],
    ["rotate", "--add-age", "{other}", "s.yaml"],
    ["rotate", "-i", "--add-age", "{other}", "--rm-age", "{recipient}", "s.yaml"],
]


@pytest.mark.parametrize("argv", ROTATE_FORMS, ids=" ".join)
def test_rotate_options(argv: list[str], sops_bin: str, enc: bytes, age_key: AgeKey,
                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import make_age_key

    other = make_age_key(tmp_path, "other.txt")
    monkeypatch.setenv("SOPS_AGE_KEY", other.secret)  # both keys can read the results
    argv = [a.replace("{recipient}", age_key.recipient).replace("{other}", other.recipient)
            for a in argv]
    pair = run_both(sops_bin, argv, {"s.yaml": enc}, tmp_path)
    json_out = "--output-type" in argv
    assert_same(pair, stdout="decrypted", files="decrypted", fmt="json" if json_out else "yaml",
                file_formats={"out.yaml": "yaml", "out.json": "json"})
    if pair.sops.ok and "-i" not in argv and "--in-place" not in argv:
        assert pair.ours.files["s.yaml"] == enc  # rotate without -i leaves FILE untouched


# --- decrypt: --decryption-order, SOPS_DECRYPTION_ORDER -----------------------------------

@pytest.fixture
def two_keys(sops_bin: str, age_key: AgeKey, gpg_key: str, tmp_path: Path) -> bytes:
    """A sops file with its age entry and a PGP entry that wraps *another* data key: which key
    opens it decides the outcome, so the order the keys are tried in shows."""
    from secretops.core.metadata import KeyEntry, Metadata
    from secretops.stores import get_store
    from tests.fixtures.gpg import gpg

    enc = sops_encrypt(sops_bin, tmp_path, "s.yaml", "a: 1\nc: x\n", age_key.recipient)
    wrong = gpg("--batch", "--trust-model", "always", "--armor", "--encrypt", "-r", gpg_key,
                input=os.urandom(32)).decode()
    store = get_store("yaml")
    loaded = store.load(enc)
    assert loaded.metadata is not None
    meta = Metadata.from_wire(loaded.metadata)
    meta.key_groups[0].append(KeyEntry("pgp", {"created_at": "2024-01-01T00:00:00Z",
                                               "enc": wrong, "fp": gpg_key}))
    return bytes(store.emit(loaded.docs, meta.to_wire(), loaded.layout))


_STDOUT = {"decrypt": "data", "exec-file": "data", "exec-env": "bytes", "rotate": "decrypted",
           "set": "ignore", "unset": "ignore"}


@pytest.mark.parametrize("argv,env", [
    (["decrypt", "s.yaml"], {}),
    (["decrypt", "--decryption-order", "pgp,age", "s.yaml"], {}),
    (["decrypt", "--decryption-order", "pgp", "s.yaml"], {}),
    (["decrypt", "--decryption-order", "age,pgp", "s.yaml"], {"SOPS_DECRYPTION_ORDER": "pgp"}),
    (["decrypt", "s.yaml"], {"SOPS_DECRYPTION_ORDER": "pgp,age"}),
    (["decrypt", "s.yaml"], {"SOPS_DECRYPTION_ORDER": "pgp,pgp"}),
    (["decrypt", "s.yaml"], {"SOPS_DECRYPTION_ORDER": "kms, pgp"}),
    (["set", "--decryption-order", "pgp", "s.yaml", '["a"]', "2"], {}),
    (["unset", "--decryption-order", "pgp", "s.yaml", '["a"]'], {}),
    (["rotate", "--decryption-order", "pgp", "s.yaml"], {}),
    (["rotate", "s.yaml"], {}),
    (["exec-env", "--decryption-order", "pgp", "s.yaml", "echo $a"], {}),
    (["exec-env", "s.yaml", "echo $a"], {"SOPS_DECRYPTION_ORDER": "pgp"}),
    (["exec-env", "s.yaml", "echo $a"], {}),
    (["exec-file", "--decryption-order", "pgp", "s.yaml", "cat {}"], {}),
    (["exec-file", "--decryption-order", "age", "s.yaml", "cat {}"], {}),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_decryption_order(argv: list[str], env: dict[str, str], sops_bin: str,
                          two_keys: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.yaml": two_keys}, tmp_path, env={**os.environ, **env})
    assert_same(pair, stdout=_STDOUT[argv[0]], files="decrypted")  # type: ignore[arg-type]


def test_decryption_order_is_visible(two_keys: bytes, sops_bin: str, tmp_path: Path) -> None:
    """The fixture does what it says: pgp first fails, age first works, for both."""
    first = run_both(sops_bin, ["decrypt", "--decryption-order", "pgp", "s.yaml"],
                     {"s.yaml": two_keys}, tmp_path)
    default = run_both(sops_bin, ["decrypt", "s.yaml"], {"s.yaml": two_keys}, tmp_path)
    assert not first.sops.ok and not first.ours.ok, first
    assert default.sops.ok and default.ours.ok, default


# --- edit ----------------------------------------------------------------------------------

def _editor(tmp_path: Path, change: str) -> str:
    """An editor that copies what it was shown to ``shown.txt`` beside the file, then runs
    ``change`` (a sed script) on it."""
    script = tmp_path / "editor.sh"
    script.write_text(f'#!/bin/sh\ncp "$1" "$PWD/shown.txt"\nsed -i {change!r} "$1"\n')
    script.chmod(0o755)
    return str(script)


def _edit_pair(sops_bin: str, argv: list[str], files: dict[str, bytes], tmp_path: Path,
               change: str = "s/^a: 1/a: 2/") -> Pair:
    env = {**os.environ, "EDITOR": _editor(tmp_path, change)}
    env.pop("SOPS_EDITOR", None)
    return run_both(sops_bin, argv, files, tmp_path, env=env)


def _shown(side: Pair, name: str = "shown.txt") -> tuple[bytes, bytes]:
    import re

    mask = re.compile(rb"ENC\[[^\]]*\]|-----BEGIN AGE.*?-----END AGE ENCRYPTED FILE-----",
                      re.S)
    return (mask.sub(b"*", side.sops.files[name]), mask.sub(b"*", side.ours.files[name]))


@pytest.mark.parametrize("argv", [
    ["edit", "s.yaml"],
    ["edit", "--input-type", "yaml", "s.yaml"],
    ["edit", "--decryption-order", "age", "s.yaml"],
    ["edit", "--decryption-order", "age,age", "s.yaml"],
    ["edit", "--ignore-mac", "s.yaml"],
], ids=" ".join)
def test_edit_options(argv: list[str], sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = _edit_pair(sops_bin, argv, {"s.yaml": enc}, tmp_path)
    assert_same(pair, stdout="ignore", files="decrypted",
                per_file={"shown.txt": "data"}, file_formats={"shown.txt": "yaml"})


def test_edit_ignore_mac_opens_a_file_with_a_bad_mac(sops_bin: str, enc: bytes,
                                                    tmp_path: Path) -> None:
    for argv in (["edit", "--ignore-mac", "s.yaml"], ["edit", "s.yaml"]):
        pair = _edit_pair(sops_bin, argv, {"s.yaml": bad_mac(enc)}, tmp_path)
        assert pair.sops.ok == ("--ignore-mac" in argv), pair
        assert_same(pair, stdout="ignore", files="decrypted",
                    per_file={"shown.txt": "data"}, file_formats={"shown.txt": "yaml"})


def test_edit_show_master_keys_shows_the_metadata(sops_bin: str, enc: bytes,
                                                 tmp_path: Path) -> None:
    """-s: the editor sees the values and the sops block, exactly as sops shows them.

    What happens to the edit differs on purpose: sops 3.11 drops every change made with -s
    (its editor loop replaces a copy of the tree, so the file is written with the old values),
    secretops keeps it (docs/sops-compat.md)."""
    for flag in ("-s", "--show-master-keys"):
        pair = _edit_pair(sops_bin, ["edit", flag, "s.yaml"], {"s.yaml": enc}, tmp_path)
        assert pair.sops.ok and pair.ours.ok, pair
        sops_shown, ours_shown = _shown(pair)
        assert sops_shown == ours_shown
        assert b"\nsops:\n" in ours_shown and b"recipient:" in ours_shown
        from tests.compat.sidebyside import decrypted

        assert decrypted(pair.sops.files["s.yaml"], "yaml")[0]["a"] == 1  # sops lost the edit
        assert decrypted(pair.ours.files["s.yaml"], "yaml")[0]["a"] == 2


def test_edit_show_master_keys_unchanged_is_200(sops_bin: str, enc: bytes,
                                               tmp_path: Path) -> None:
    pair = _edit_pair(sops_bin, ["edit", "-s", "s.yaml"], {"s.yaml": enc}, tmp_path,
                      change="s/^zzz//")
    assert pair.sops.code == 200, pair
    assert_same(pair, stdout="ignore", files="bytes")


def test_edit_output_type(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    """--output-type: the editor shows that format, and the file is written in it."""
    pair = _edit_pair(sops_bin, ["edit", "--output-type", "json", "s.yaml"], {"s.yaml": enc},
                      tmp_path, change='s/"a": 1/"a": 2/')
    assert pair.sops.ok, pair
    assert_same(pair, stdout="ignore", files="decrypted",
                file_formats={"s.yaml": "json", "shown.txt": "json"},
                per_file={"shown.txt": "data"})


@pytest.mark.parametrize("flag", ["-a", "--age"])
def test_edit_new_file_with_short_age_flag(flag: str, sops_bin: str, age_key: AgeKey,
                                           tmp_path: Path) -> None:
    pair = _edit_pair(sops_bin, ["edit", flag, age_key.recipient, "new.yaml"], {}, tmp_path,
                      change="1i added: yes")
    assert pair.sops.ok, pair
    s, o = (pair.sops.files["new.yaml"], pair.ours.files["new.yaml"])
    from tests.compat.sidebyside import decrypted

    assert decrypted(s, "yaml")[0]["added"] == decrypted(o, "yaml")[0]["added"] == "yes"


@pytest.mark.parametrize("flag", ["-a", "--age"])
def test_encrypt_short_age_flag(flag: str, sops_bin: str, age_key: AgeKey,
                                tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["encrypt", flag, age_key.recipient, "p.yaml"],
                    {"p.yaml": PLAIN_YAML}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")


# --- subcommand options that sops 3.11 does not have ---------------------------------------

@pytest.mark.parametrize("argv", [
    ["decrypt", "--indent", "4", "s.yaml"],
    ["set", "--indent", "2", "s.yaml", '["a"]', "3"],
    ["rotate", "--indent", "2", "s.yaml"],
], ids=" ".join)
def test_global_only_options_after_a_subcommand_are_refused(argv: list[str], sops_bin: str,
                                                            enc: bytes,
                                                            tmp_path: Path) -> None:
    """sops 3.11 has --indent only before the subcommand: after it, both refuse the line and
    change nothing (sops exits 1, click's usage errors exit 2)."""
    pair = run_both(sops_bin, argv, {"s.yaml": enc}, tmp_path)
    assert_same(pair, code=False, stdout="ignore", files="bytes")


# --- decrypt, encrypt, updatekeys, filestatus: the options that already matched ------------

@pytest.mark.parametrize("argv", [
    ["decrypt", "-i", "s.yaml"],
    ["decrypt", "--in-place", "s.yaml"],
    ["decrypt", "--output", "out.yaml", "s.yaml"],
    ["decrypt", "--input-type", "yaml", "s.yaml"],
    ["decrypt", "--output-type", "json", "s.yaml"],
    ["decrypt", "--extract", '["b"]', "s.yaml"],
    ["decrypt", "--ignore-mac", "s.yaml"],
    ["decrypt", "--filename-override", "x.yaml", "s.yaml"],
    ["decrypt", "-i", "--output", "out.yaml", "s.yaml"],
], ids=" ".join)
def test_decrypt_options(argv: list[str], sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    pair = run_both(sops_bin, argv, {"s.yaml": enc}, tmp_path)
    if "--output" in argv and pair.sops.ok:
        # a new plaintext file is 0600 in secretops, 0644 (umask) in sops: on purpose
        assert pair.ours.modes["out.yaml"] == 0o600
        pair.ours.modes["out.yaml"] = pair.sops.modes["out.yaml"]
    assert_same(pair, stdout="data", files="data",
                fmt="json" if "json" in argv else "yaml")


def test_decrypt_stdin_with_filename_override(sops_bin: str, enc: bytes,
                                              tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["decrypt", "--filename-override", "x.yaml"], {}, tmp_path,
                    stdin=enc)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="data", files="bytes")


def test_decrypt_ignore_mac_on_a_bad_mac(sops_bin: str, enc: bytes, tmp_path: Path) -> None:
    for argv in (["decrypt", "--ignore-mac", "s.yaml"], ["decrypt", "s.yaml"]):
        pair = run_both(sops_bin, argv, {"s.yaml": bad_mac(enc)}, tmp_path)
        assert pair.sops.ok == ("--ignore-mac" in argv), pair
        assert_same(pair, stdout="data", files="bytes")


ENCRYPT_FORMS = [
    ["encrypt", "--age", "{r}", "p.yaml"],
    ["encrypt", "-a", "{r}", "-i", "p.yaml"],
    ["encrypt", "-a", "{r}", "--in-place", "p.yaml"],
    ["encrypt", "-a", "{r}", "--output", "out.yaml", "p.yaml"],
    ["encrypt", "-a", "{r}", "--input-type", "yaml", "p.yaml"],
    ["encrypt", "-a", "{r}", "--output-type", "json", "p.yaml"],
    ["encrypt", "-a", "{r}", "--unencrypted-suffix", "_pub", "p.yaml"],
    ["encrypt", "-a", "{r}", "--encrypted-suffix", "_sec", "p.yaml"],
    ["encrypt", "-a", "{r}", "--unencrypted-regex", "^a$", "p.yaml"],
    ["encrypt", "-a", "{r}", "--encrypted-regex", "^a$", "p.yaml"],
    ["encrypt", "-a", "{r}", "--encrypted-regex", "^a$", "--unencrypted-regex", "^b$",
     "p.yaml"],
    ["encrypt", "-a", "{r}", "--shamir-secret-sharing-threshold", "1", "p.yaml"],
    ["encrypt", "-a", "{r}", "--filename-override", "x.json", "p.yaml"],
    ["encrypt", "-a", "{r}", "--encryption-context", "bad", "p.yaml"],
    ["encrypt", "-a", "{r}", "-i", "--output", "out.yaml", "p.yaml"],
]


@pytest.mark.parametrize("argv", ENCRYPT_FORMS, ids=" ".join)
def test_encrypt_options(argv: list[str], sops_bin: str, age_key: AgeKey,
                         tmp_path: Path) -> None:
    argv = [a.replace("{r}", age_key.recipient) for a in argv]
    plain = PLAIN_YAML.replace("a: 1", "a: 1\na_pub: 2\na_sec: 3")
    pair = run_both(sops_bin, argv, {"p.yaml": plain}, tmp_path)
    out_json = "json" in " ".join(argv)
    # input that does not parse: sops exits 2, secretops 150 (docs/exit-codes.md)
    assert_same(pair, code=pair.sops.code != 2, stdout="decrypted", files="decrypted",
                fmt="json" if out_json else "yaml")
    if pair.sops.ok:  # which values are encrypted: the same on both sides
        from tests.compat.sidebyside import Side

        def shape(side: Side) -> list[bool]:
            text = side.out or side.files.get("out.yaml") or side.files["p.yaml"]
            return [b"ENC[" in ln for ln in text.splitlines() if b"sops" not in ln][:6]

        assert shape(pair.sops) == shape(pair.ours), pair


@pytest.mark.parametrize("argv", [
    ["updatekeys", "-y", "s.yaml"],
    ["updatekeys", "--yes", "s.yaml"],
    ["updatekeys", "--yes", "--input-type", "yaml", "s.yaml"],
    ["filestatus", "s.yaml"],
    ["filestatus", "--input-type", "yaml", "p.yaml"],
], ids=" ".join)
def test_updatekeys_and_filestatus_options(argv: list[str], sops_bin: str, enc: bytes,
                                           age_key: AgeKey, tmp_path: Path) -> None:
    from tests.helpers import make_age_key

    other = make_age_key(tmp_path, "other.txt")
    config = f"creation_rules:\n  - age: {age_key.recipient},{other.recipient}\n"
    pair = run_both(sops_bin, argv, {"s.yaml": enc, "p.yaml": PLAIN_YAML,
                                     ".sops.yaml": config}, tmp_path)
    assert_same(pair, stdout="bytes" if argv[0] == "filestatus" else "ignore",
                files="decrypted")
    if argv[0] == "updatekeys":
        assert other.recipient.encode() in pair.ours.files["s.yaml"]


def test_filestatus_of_a_file_that_does_not_parse(sops_bin: str, enc: bytes,
                                                  tmp_path: Path) -> None:
    """A documented difference: sops fails (exit 1), secretops says "not encrypted"."""
    pair = run_both(sops_bin, ["filestatus", "--input-type", "json", "s.yaml"],
                    {"s.yaml": enc}, tmp_path)
    assert pair.sops.code == 1 and pair.ours.out == b'{"encrypted":false}\n', pair


@pytest.mark.parametrize("flag", ["-p", "--pgp"])
def test_encrypt_pgp_flags(flag: str, sops_bin: str, gpg_key: str, tmp_path: Path) -> None:
    pair = run_both(sops_bin, ["encrypt", flag, gpg_key, "p.yaml"], {"p.yaml": PLAIN_YAML},
                    tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")


@pytest.mark.parametrize("argv", [
    ["encrypt", "-k", "{arn}", "p.yaml"],
    ["encrypt", "--kms", "{arn}", "--encryption-context", "app:web", "p.yaml"],
    ["encrypt", "-k", "{arn}", "--aws-profile", "", "p.yaml"],
    ["rotate", "--add-kms", "{arn}", "--encryption-context", "app:web", "s.yaml"],
], ids=" ".join)
def test_kms_flags(argv: list[str], sops_bin: str, aws_kms: object, enc: bytes,
                   tmp_path: Path) -> None:
    arn = aws_kms.arns[0]  # type: ignore[attr-defined]
    pair = run_both(sops_bin, [a.replace("{arn}", arn) for a in argv],
                    {"p.yaml": PLAIN_YAML, "s.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted", files="bytes")
    assert arn.encode() in pair.ours.out
    if "--encryption-context" in argv:
        assert b"app: web" in pair.ours.out and b"app: web" in pair.sops.out
