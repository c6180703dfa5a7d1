"""The dotenv store against files written by sops 3.11, and its parsing rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops.core.metadata import Metadata
from secretops.core.tree import Branch, Comment, Seq
from secretops.errors import ExitCode, FormatError, SecretOpsError
from secretops.stores import StoreOptions
from secretops.stores.dotenv import DotenvStore
from tests.stores._vectors import ids, sibling, vectors

FOLDERS = ("dotenv", "dupkeys")
DECRYPTED = vectors("sops-decrypted", "env", FOLDERS)
PLAIN = [p for p in vectors("plain", "env", FOLDERS) if sibling(p, "sops-decrypted").exists()]
ENCRYPTED = vectors("sops", "env", FOLDERS)
STORE = DotenvStore(StoreOptions())


def roundtrip(data: bytes) -> bytes:
    loaded = STORE.load(data)
    return STORE.emit(loaded.docs, loaded.metadata)


@pytest.mark.parametrize("path", DECRYPTED, ids=ids(DECRYPTED))
def test_sops_decrypt_output_is_a_fixed_point(path: Path) -> None:
    assert roundtrip(path.read_bytes()) == path.read_bytes()


@pytest.mark.parametrize("path", PLAIN, ids=ids(PLAIN))
def test_plaintext_is_written_as_sops_decrypt_writes_it(path: Path) -> None:
    assert roundtrip(path.read_bytes()) == sibling(path, "sops-decrypted").read_bytes()


@pytest.mark.parametrize("path", ENCRYPTED, ids=ids(ENCRYPTED))
def test_encrypted_file_is_reproduced_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    loaded = STORE.load(data)
    assert loaded.metadata is not None
    assert not any(k.startswith("sops_") for k in Branch.keys(loaded.docs[0]))
    meta = Metadata.from_wire(loaded.metadata)
    assert meta.version == "3.11.0" and meta.all_keys()[0].kind == "age"
    assert meta.all_keys()[0].enc.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert STORE.emit(loaded.docs, meta.to_wire()) == data


def test_basic_vector_parsing_rules() -> None:
    path = Path(__file__).parent.parent / "testdata/sops/dotenv/basic.plain.env"
    doc = STORE.load(path.read_bytes()).docs[0]
    assert doc[0] == Comment(" comment line")
    values = dict(i for i in doc if type(i) is tuple)
    assert values["export B"] == "exported"  # `export ` is part of the key
    assert values["C"] == "'single quoted'" and values["D"] == '"double quoted"'
    assert values["E"] == "has=equals" and values["F"] == ""
    assert values["G"] == "line1\nline2" and values["H"] == " spaced "
    assert values["K"] == "# not a comment" and values["L"] == "v # trailing"


def test_a_line_without_equals_is_an_error_naming_the_line() -> None:
    with pytest.raises(FormatError, match="line 2"):
        STORE.load(b"A=1\nNOEQUALS\n")


def test_whitespace_only_and_indented_comment_lines_are_errors_like_sops() -> None:
    for text in (b"A=1\n  \n", b"  # c\n", b"A=1\r\n\r\n"):
        with pytest.raises(FormatError):
            STORE.load(text)


def test_crlf_keeps_the_carriage_return_in_the_value() -> None:
    assert STORE.load(b"A=1\r\n").docs[0] == [("A", "1\r")]


def test_blank_lines_are_dropped_and_a_newline_is_added() -> None:
    assert roundtrip(b"\n\nA=1\n\n#c") == b"A=1\n#c\n"


def test_duplicates_and_empty_keys_are_kept() -> None:
    assert STORE.load(b"A=1\nA=2\n=x\n").docs[0] == [("A", "1"), ("A", "2"), ("", "x")]


def test_backslash_n_is_a_newline_both_ways() -> None:
    doc = STORE.load(b"A=x\\ny\n").docs[0]
    assert doc == [("A", "x\ny")]
    assert STORE.emit([doc], None) == b"A=x\\ny\n"


def test_bytes_that_are_not_utf8_round_trip() -> None:
    data = b"K=\xff\xfe\xc3\xa9\n"
    assert roundtrip(data) == data


def test_non_string_values_are_written_like_go_valtostring() -> None:
    doc = Branch([("i", 5), ("f", 100.0), ("g", 1234567.0), ("h", 1e-5), ("b", True),
                  ("n", None), ("s", "a\nb")])  # fmt: skip
    assert STORE.emit([doc], None) == (
        b"i=5\nf=100.0\ng=1.234567E+06\nh=1E-05\nb=true\nn=<nil>\ns=a\\nb\n"
    )


def test_nested_values_cannot_be_written() -> None:
    for value in (Branch([("c", "y")]), Seq(["y"])):
        with pytest.raises(SecretOpsError, match="complex value") as info:
            STORE.emit([Branch([("a", "x"), ("b", value)])], None)
        assert info.value.code == ExitCode.ERROR_DUMPING_TREE  # sops's code 4


def test_metadata_is_flattened_sorted_and_typed_back() -> None:
    wire = Branch(
        [("shamir_threshold", 2),
         ("key_groups", Seq([Branch([("hc_vault", Seq()), ("age", Seq([
             Branch([("recipient", "age1x"), ("enc", "a\nb\n")])]))])])),
         ("lastmodified", "2026-01-01T00:00:00Z"), ("mac", "ENC[x]"),
         ("encrypted_regex", "^a"), ("mac_only_encrypted", True), ("version", "3.11.0")]
    )  # fmt: skip
    out = STORE.emit([Branch([("A", "ENC[y]")])], wire)
    assert out == (
        b"A=ENC[y]\n"
        b"sops_encrypted_regex=^a\n"
        b"sops_key_groups__list_0__map_age__list_0__map_enc=a\\nb\\n\n"
        b"sops_key_groups__list_0__map_age__list_0__map_recipient=age1x\n"
        b"sops_lastmodified=2026-01-01T00:00:00Z\n"
        b"sops_mac=ENC[x]\n"
        b"sops_mac_only_encrypted=true\n"
        b"sops_shamir_threshold=2\n"
        b"sops_version=3.11.0\n"
    )
    loaded = STORE.load(out)
    assert loaded.docs[0] == [("A", "ENC[y]")]
    assert loaded.metadata is not None
    assert loaded.metadata.get("shamir_threshold") == 2
    assert loaded.metadata.get("mac_only_encrypted") is True
    meta = Metadata.from_wire(loaded.metadata)
    assert meta.shamir_threshold == 2 and meta.selection.mac_only_encrypted
    assert meta.key_groups[0][0].fields == {"enc": "a\nb\n", "recipient": "age1x"}


def test_a_plain_file_with_sops_keys_looks_encrypted() -> None:
    # sops refuses to encrypt it ("already encrypted"); the engine sees the metadata.
    loaded = STORE.load(b"A=1\nsops_version=3.11.0\n")
    assert loaded.metadata == [("version", "3.11.0")]
    assert loaded.docs[0] == [("A", "1")]
