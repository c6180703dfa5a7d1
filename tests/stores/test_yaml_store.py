"""The YAML store's reading and writing rules, each pinned by the case that once broke it.

Cases found by the property test (test_yaml_property.py) are kept here as fixed examples, and
the float spellings are vectors made by the real sops 3.11 binary (tests/testdata/floats/).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from secretops import api, fileops
from secretops.errors import ExitCode, FormatError, SecretOpsError
from secretops.stores._yamlscalar import format_yaml_float, resolve_plain
from secretops.stores.yaml import YamlStore
from tests.helpers import TESTDATA, AgeKey, secretops, sops

FLOATS = TESTDATA / "floats"
AGE_TEST_KEY = TESTDATA / "keys" / "age-test.txt"


def _decrypt(path: Path, output_format: str | None = None) -> bytes:
    fmt = "json" if path.suffix == ".json" else "yaml"
    env = {"SOPS_AGE_KEY_FILE": str(AGE_TEST_KEY), "HOME": str(path.parent)}
    return api.decrypt(path.read_bytes(), format=fmt, output_format=output_format, env=env)


# ---- a top-level "sops" entry in a plaintext file ----------------------------------------------


@pytest.mark.parametrize("text", [
    "sops: []\n",
    "sops: [[]]\n",
    "'0': [null]\nsops: [[]]\n",  # found by hypothesis: the entry was dropped, data kept
    "sops: 1\n",
    "sops: null\n",
    "sops: ''\n",
    "a: 1\nsops:\n- x\n",
])
def test_a_sops_entry_that_is_not_a_mapping_is_refused(text: str) -> None:
    # sops 3.11: "The file you have provided contains a top-level entry called 'sops'", exit 203
    with pytest.raises(FormatError, match="top-level sops entry is not a mapping") as info:
        YamlStore().load(text.encode())
    assert info.value.hints


def test_a_sops_entry_in_a_later_document_only_is_refused() -> None:
    # sops encrypts it as data and appends its own block next to it: two sops keys
    with pytest.raises(FormatError, match="document 2: a top-level sops entry"):
        YamlStore().load(b"a: 1\n---\nb: 2\nsops:\n    x: 1\n")


def test_a_nested_sops_key_is_data() -> None:
    loaded = YamlStore().load(b"a:\n  sops: 1\n")
    assert loaded.metadata is None
    assert loaded.docs[0].get("a").get("sops") == 1


def test_encrypt_refuses_a_sops_entry_like_sops(
    tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    src = tmp_path / "plain.yaml"
    src.write_text("'0': [null]\nsops: [[]]\n")
    theirs = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(src))
    assert theirs.code == 203
    ours = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert ours.code == ExitCode.INVALID_INPUT and ours.out == b""
    assert "top-level sops entry" in ours.err and "Traceback" not in ours.err


@pytest.mark.parametrize(("text", "fragment"), [
    ("# just a comment\n", "only comments"),
    ("# a\r\n\r\n# b\r\n", "only comments"),
    ("%YAML 1.2\n---\na: 1\n", "%YAML 1.2"),
    ("a: !!binary hunter2@@\n", "not valid base64"),
    ("b: !!timestamp nope\n", "timestamp is not one"),
])
def test_encrypt_refuses_what_sops_refuses(
    text: str, fragment: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    src = tmp_path / "plain.yaml"
    src.write_text(text)
    theirs = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(src))
    assert theirs.code != 0
    ours = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert ours.code != 0 and ours.out == b"" and "Traceback" not in ours.err
    assert ours.err.startswith(f"secretops: error: {src}: ") and fragment in ours.err


# ---- removing the sops block: it ends where its last node ends ---------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    # the last node of the block is a flow collection closing on a later line
    ("a: 1\nsops: {\n  version: 3.11.0\n}\nb: 2\n", "a: 1\nb: 2\n"),
    ("a: 1\nsops:\n  x: [\n    1]\n  y: {\n   }\nb: 2\n", "a: 1\nb: 2\n"),
    ("a: [1]\nsops:\n    v: [[]]\n", "a: [1]\n"),
])
def test_the_whole_sops_block_is_removed(text: str, expected: str) -> None:
    loaded = YamlStore().load(text.encode())
    assert loaded.metadata is not None
    assert YamlStore().emit(loaded.docs, None, loaded.layout).decode() == expected


# ---- floats: go-yaml's FormatFloat(f, 'g', -1, 64) ---------------------------------------------

# (value, what sops 3.11 `decrypt` prints for it in YAML) — observed with the binary
GO_YAML_FLOATS = [
    (1e21, "1e+21"),
    (1234568000.0, "1.234568e+09"),
    (0.0001, "0.0001"),
    (1e-7, "1e-07"),
    (123456789.0, "1.23456789e+08"),
    (3.0, "3"),
    (-0.0, "-0"),
    (math.inf, ".inf"),
    (-math.inf, "-.inf"),
    (math.nan, ".nan"),
    (1e20, "1e+20"),
    (1e6, "1e+06"),
    (999999.0, "999999"),
    (100000.0, "100000"),
    (1e-5, "1e-05"),
    (1.5e300, "1.5e+300"),
    (5e-324, "5e-324"),
    (0.1, "0.1"),
    (12345.678, "12345.678"),
    (-1234568000.5, "-1.2345680005e+09"),
    (-9.223372036854776e18, "-9.223372036854776e+18"),
]


@pytest.mark.parametrize(("value", "text"), GO_YAML_FLOATS, ids=[t for _, t in GO_YAML_FLOATS])
def test_floats_are_written_as_go_yaml_writes_them(value: float, text: str) -> None:
    assert format_yaml_float(value) == text
    back = resolve_plain(text)  # the same number (`3` and `-0` read back as ints, as in sops)
    assert back == value or (math.isnan(back) and math.isnan(value))


@pytest.mark.parametrize(("name", "output", "expected"), [
    ("floats.sops.yaml", None, "floats.sops-decrypted.yaml"),
    ("floats.sops.yaml", "json", "floats.sops-decrypted.json"),
    ("specials.sops.yaml", None, "specials.sops-decrypted.yaml"),
    ("floats-json.sops.json", None, "floats-json.sops-decrypted.json"),
    ("floats-json.sops.json", "yaml", "floats-json.sops-decrypted.yaml"),
])
def test_sops_made_float_files_decrypt_byte_identical(
    name: str, output: str | None, expected: str
) -> None:
    # no plaintext layout to keep here: every value was ENC[...,type:float] in the file
    assert _decrypt(FLOATS / name, output) == (FLOATS / expected).read_bytes()


def test_infinity_has_no_json_form() -> None:
    # sops: "json: unsupported value: +Inf", exit 4 (error dumping tree)
    with pytest.raises(SecretOpsError, match=r"unsupported value: \+Inf") as info:
        _decrypt(FLOATS / "specials.sops.yaml", "json")
    assert info.value.code == ExitCode.ERROR_DUMPING_TREE


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_our_float_files_decrypt_like_sops(
    output: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    enc = secretops("encrypt", "--age", age_key.recipient, str(FLOATS / "floats.plain.yaml"))
    assert enc.code == 0, enc.err
    f = tmp_path / "floats.enc.yaml"
    f.write_bytes(enc.out)
    ours = secretops("decrypt", "--output-type", output, str(f))
    theirs = sops(sops_bin, "decrypt", "--output-type", output, str(f))
    assert ours.code == theirs.code == 0, (ours.err, theirs.err)
    assert ours.out == theirs.out


def test_collections_nested_in_list_items_are_indented_as_go_yaml_does(
    tmp_path: Path, sops_bin: str, age_key: AgeKey
) -> None:
    """go-yaml indents the collections under a list item's keys by 2, deeper ones by the step."""
    from secretops.stores._yamlemit import emit_document

    text = ("l:\n  - name: a\n    env:\n      - x\n      - y: 1\n        z:\n          deep:\n"
            "            - q\n    m:\n      k: v\n      n:\n        o: p\n")
    src = tmp_path / "d.yaml"
    src.write_text(text)
    r = sops(sops_bin, "encrypt", "--age", age_key.recipient, "--unencrypted-regex", ".*",
             str(src))
    assert r.code == 0, r.err
    theirs = r.text.split("sops:\n")[0]
    assert emit_document(YamlStore().load(text.encode()).docs[0], 4) == theirs


@pytest.mark.parametrize("text", [
    "key: |2\n    indented\nnext: 1\n",
    "l:\n  - |2\n     x\n  - |\n    y\n",
    "d: |2-\n   x\ne: 1\n",
    "f: >\n  a\n   \ng: 1\n",
    "c: | # note\n  line\n   \n",
])
def test_block_scalars_that_cannot_come_back_as_blocks_stay_valid_yaml(
    text: str, age_key: AgeKey
) -> None:
    """A value that needs an indentation indicator comes back quoted, on its own line."""
    store = YamlStore()
    enc = api.encrypt(text.encode(), format="yaml", age=[age_key.recipient])
    dec = api.decrypt(enc, format="yaml")
    assert store.load(dec).docs == store.load(text.encode()).docs


def test_a_changed_value_in_a_block_span_keeps_the_line_break(age_key: AgeKey) -> None:
    """set on a block-scalar key with a number: the next key stays on its own line."""
    enc = api.encrypt(b"a: |\n  text\n\nb: 1\n", format="yaml", age=[age_key.recipient])
    opened = fileops.open_file(enc, format="yaml")
    out = fileops.set_value(opened, ["a"], 5)
    assert out is not None
    assert api.decrypt(out, format="yaml") == b"a: 5\n\nb: 1\n"


@pytest.mark.parametrize("text", [
    "# password: hunter2\n---\n",
    "# a\n---\n# b\n",
    "%YAML 1.1\n# password: hunter2\n---\na: 1\n",
    "a: 1\n---\n# password: hunter2\n---\nb: 2\n",
])
def test_comments_around_document_markers_are_encrypted(text: str, age_key: AgeKey) -> None:
    enc = api.encrypt(text.encode(), format="yaml", age=[age_key.recipient]).decode()
    assert [ln for ln in enc.splitlines() if ln.lstrip().startswith("#")
            and not ln.lstrip().startswith("#ENC[")] == []
    dec = api.decrypt(enc.encode(), format="yaml").decode()
    assert sorted(ln for ln in dec.splitlines() if ln.startswith("#")) == sorted(
        ln for ln in text.splitlines() if ln.startswith("#"))


def test_a_typed_block_scalar_drops_its_tag(tmp_path: Path, age_key: AgeKey,
                                            sops_bin: str) -> None:
    src = tmp_path / "bin.yaml"
    src.write_text("a: !!binary |\n  aGVsbG8gd29ybGQ=\nl:\n  - !!binary |\n    aGk=\n")
    enc = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0 and "!!binary" not in enc.text
    f = tmp_path / "bin.enc.yaml"
    f.write_bytes(enc.out)
    ours, theirs = secretops("decrypt", str(f)), sops(sops_bin, "decrypt", str(f))
    assert theirs.code == 0, theirs.err
    assert YamlStore().load(ours.out).docs == YamlStore().load(theirs.out).docs
    assert ours.text == "a: |-\n  hello world\nl:\n  - |-\n    hi\n"
