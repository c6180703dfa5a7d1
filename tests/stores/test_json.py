"""The JSON store against files written by sops 3.11, and its reading and writing rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops.core.metadata import Metadata
from secretops.core.tree import Branch, Comment, Seq
from secretops.core.values import Timestamp
from secretops.errors import FormatError
from secretops.stores import StoreOptions
from secretops.stores.json import JsonStore, go_json_float
from tests.stores._vectors import ids, sibling, vectors

FOLDERS = ("json", "dupkeys", "errors")
DECRYPTED = [p for p in vectors("sops-decrypted", "json", FOLDERS) if "garbage" not in p.name]
PLAIN = [p for p in vectors("plain", "json", FOLDERS) if sibling(p, "sops-decrypted").exists()]
ENCRYPTED = [
    p for p in vectors("sops", "json", FOLDERS) if p.parent.name != "errors" or "base" in p.name
]


def store(indent: int | None = None) -> JsonStore:
    return JsonStore(StoreOptions(indent=indent))


def roundtrip(data: bytes, indent: int | None = None) -> bytes:
    loaded = store(indent).load(data)
    return store(indent).emit(loaded.docs, loaded.metadata)


# ---- sops-made vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("path", DECRYPTED, ids=ids(DECRYPTED))
def test_sops_decrypt_output_is_a_fixed_point(path: Path) -> None:
    data = path.read_bytes()
    assert roundtrip(data) == data


@pytest.mark.parametrize("path", PLAIN, ids=ids(PLAIN))
def test_plaintext_is_written_as_sops_decrypt_writes_it(path: Path) -> None:
    assert roundtrip(path.read_bytes()) == sibling(path, "sops-decrypted").read_bytes()


@pytest.mark.parametrize("path", ENCRYPTED, ids=ids(ENCRYPTED))
def test_encrypted_file_is_reproduced_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    loaded = store().load(data)
    assert isinstance(loaded.metadata, Branch)
    assert "sops" not in Branch.keys(loaded.docs[0])
    assert store().emit(loaded.docs, loaded.metadata) == data
    # The engine's path: wire branch → Metadata → wire branch.
    wire = Metadata.from_wire(loaded.metadata).to_wire()
    assert store().emit(loaded.docs, wire) == data


def test_encrypted_values_stay_enc_strings() -> None:
    data = (Path(__file__).parent.parent / "testdata/sops/json/types.sops.json").read_bytes()
    loaded = store().load(data)
    leaves = [v for _, v in loaded.docs[0] if isinstance(v, str) and v]
    assert leaves and all(v.startswith("ENC[AES256_GCM,") for v in leaves)


# ---- reading ----------------------------------------------------------------------------------


def test_every_number_is_a_float_like_go_float64() -> None:
    doc = store().load(b'{"a": 1, "b": -0, "c": 9223372036854775807, "d": [2]}').docs[0]
    assert doc == [("a", 1.0), ("b", -0.0), ("c", 9223372036854775808.0), ("d", [2.0])]
    assert all(type(v) is float for v in (doc.get("a"), doc.get("c"), doc.get("d")[0]))


def test_objects_become_branches_and_arrays_seqs() -> None:
    doc = store().load(b'{"a": {"b": [[1], {"c": null}]}, "e": {}, "f": []}').docs[0]
    inner = doc.get("a")
    assert isinstance(inner, Branch)
    assert isinstance(inner.get("b"), Seq) and isinstance(inner.get("b")[0], Seq)
    assert isinstance(inner.get("b")[1], Branch)
    assert doc.get("e") == Branch() and doc.get("f") == Seq()


def test_duplicate_keys_are_kept_in_order_like_sops() -> None:
    doc = store().load(b'{"a": 1, "b": 2, "a": 3}').docs[0]
    assert doc == [("a", 1.0), ("b", 2.0), ("a", 3.0)]


@pytest.mark.parametrize(
    "text",
    [b"[1]", b'"x"', b"", b"  ", b'{"a": 1', b'{"a":1,}', b'{"a": 01}', b'{"a": NaN}',
     b'{"a": 1e400}', b'{"a": -1e400}', b'{"a" 1}', b"\xef\xbb\xbf{}"],
)  # fmt: skip
def test_invalid_input_is_a_format_error(text: bytes) -> None:
    with pytest.raises(FormatError):
        store().load(text)


def test_text_after_the_object_is_ignored_in_a_plaintext_file_as_in_sops() -> None:
    assert store().load(b'{"a": "x"} trailing').docs[0] == [("a", "x")]


def test_text_after_the_object_is_rejected_in_an_encrypted_file() -> None:
    with pytest.raises(FormatError):
        store().load(b'{"a": "x", "sops": {"version": "3.11.0"}} {}')


def test_metadata_is_split_off() -> None:
    loaded = store().load(b'{"a": "x", "sops": {"version": "3.11.0"}, "b": "y"}')
    assert loaded.docs[0] == [("a", "x"), ("b", "y")]
    assert loaded.metadata == [("version", "3.11.0")]


def test_a_sops_entry_that_is_not_an_object_is_an_error() -> None:
    with pytest.raises(FormatError):
        store().load(b'{"sops": 5}')


def test_invalid_utf8_and_lone_surrogates_become_replacement_chars_like_go() -> None:
    doc = store().load(b'{"a": "x\xffy", "b": "\\ud800z", "c": "\\ud83d\\ude00"}').docs[0]
    assert doc == [("a", "x\ufffdy"), ("b", "\ufffdz"), ("c", "😀")]


# ---- writing ----------------------------------------------------------------------------------


def test_layout_tab_indent_empty_containers_and_trailing_newline() -> None:
    doc = Branch([("a", Branch([("b", Seq(["x", 1.5]))])), ("e", Branch()), ("f", Seq())])
    assert store().emit([doc], None) == (
        b'{\n\t"a": {\n\t\t"b": [\n\t\t\t"x",\n\t\t\t1.5\n\t\t]\n\t},\n\t"e": {},\n\t"f": []\n}\n'
    )


def test_indent_option_gives_spaces_and_zero_gives_none() -> None:
    doc = Branch([("a", Seq([1.0]))])
    assert store(2).emit([doc], None) == b'{\n  "a": [\n    1\n  ]\n}\n'
    assert store(0).emit([doc], None) == b'{\n"a": [\n1\n]\n}\n'


def test_empty_document() -> None:
    assert store().emit([Branch()], None) == b"{}\n"


def test_go_html_safe_escaping_and_raw_utf8() -> None:
    doc = Branch([("<k>", '<>&\u2028\u2029 é 😀 \x01\x7f\b\f\n\t"\\/')])
    assert (
        store().emit([doc], None)
        == (
            '{\n\t"\\u003ck\\u003e": "\\u003c\\u003e\\u0026\\u2028\\u2029 é 😀 '
            '\\u0001\x7f\\b\\f\\n\\t\\"\\\\/"\n}\n'
        ).encode()
    )


def test_non_utf8_bytes_are_written_as_escaped_replacement_chars_like_go() -> None:
    doc = Branch([("a", b"x\xff".decode("utf-8", "surrogateescape"))])
    assert store().emit([doc], None) == b'{\n\t"a": "x\\ufffd"\n}\n'


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (-0.0, "-0"), (0.5, "0.5"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
     (0.000001, "0.000001"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (1.5e300, "1.5e+300"),
     (-2.5e-10, "-2.5e-10"), (1.2345678901234567e19, "12345678901234567000"),
     (5e-324, "5e-324")],
)  # fmt: skip
def test_go_float_format(value: float, text: str) -> None:
    assert go_json_float(value) == text


def test_nan_cannot_be_written() -> None:
    with pytest.raises(FormatError):
        store().emit([Branch([("a", float("nan"))])], None)


def test_other_scalars() -> None:
    doc = Branch(
        [("i", 5), ("t", True), ("f", False), ("n", None), ("b", b"hi"),
         ("ts", Timestamp("2001-12-14T21:59:43.1-05:00"))]
    )  # fmt: skip
    assert store().emit([doc], None) == (
        b'{\n\t"i": 5,\n\t"t": true,\n\t"f": false,\n\t"n": null,\n\t"b": "aGk=",\n'
        b'\t"ts": "2001-12-14T21:59:43.1-05:00"\n}\n'
    )


def test_comments_are_dropped() -> None:
    doc = Branch([Comment(" top"), ("a", Seq([Comment("c"), "x"])), ("b", Seq([Comment("c")]))])
    assert store().emit([doc], None) == b'{\n\t"a": [\n\t\t"x"\n\t],\n\t"b": []\n}\n'


def test_metadata_goes_last_and_its_empty_lists_are_null() -> None:
    # sops marshals its metadata structs: a key group's empty hc_vault is a nil slice → null.
    meta = Branch([("key_groups", Seq([Branch([("hc_vault", Seq()), ("age", Seq())])])),
                   ("version", "3.11.0")])  # fmt: skip
    doc = Branch([("sops", "data key named sops"), ("a", Seq())])
    assert store().emit([doc], meta) == (
        b'{\n\t"sops": "data key named sops",\n\t"a": [],\n\t"sops": {\n\t\t"key_groups": [\n'
        b'\t\t\t{\n\t\t\t\t"hc_vault": null,\n\t\t\t\t"age": null\n\t\t\t}\n\t\t],\n'
        b'\t\t"version": "3.11.0"\n\t}\n}\n'
    )


def test_kms_context_dict_is_written_sorted() -> None:
    meta = Branch([("kms", Seq([Branch([("context", {"b": "2", "a": "1"})])]))])
    out = store(1).emit([Branch()], meta)
    assert out.index(b'"a": "1"') < out.index(b'"b": "2"')
