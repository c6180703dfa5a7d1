"""The INI store against files written by sops 3.11 (go-ini v1.67), and its parsing rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops.core.metadata import Metadata
from secretops.core.tree import Branch, Comment, Seq
from secretops.errors import FormatError
from secretops.stores import StoreOptions
from secretops.stores.ini import IniLayout, IniStore
from tests.stores._vectors import ids, sibling, vectors

FOLDERS = ("ini", "dupkeys")
DECRYPTED = vectors("sops-decrypted", "ini", FOLDERS)
PLAIN = [p for p in vectors("plain", "ini", FOLDERS) if sibling(p, "sops-decrypted").exists()]
ENCRYPTED = vectors("sops", "ini", FOLDERS)
STORE = IniStore(StoreOptions())


def roundtrip(data: bytes) -> bytes:
    loaded = STORE.load(data)
    return STORE.emit(loaded.docs, loaded.metadata, loaded.layout)


def sections(data: bytes) -> Branch:
    return STORE.load(data).docs[0]


@pytest.mark.parametrize("path", DECRYPTED, ids=ids(DECRYPTED))
def test_sops_decrypt_output_is_a_fixed_point(path: Path) -> None:
    assert roundtrip(path.read_bytes()) == path.read_bytes()


@pytest.mark.parametrize("path", PLAIN, ids=ids(PLAIN))
def test_plaintext_is_written_as_sops_decrypt_writes_it(path: Path) -> None:
    assert roundtrip(path.read_bytes()) == sibling(path, "sops-decrypted").read_bytes()


@pytest.mark.parametrize("path", ENCRYPTED, ids=ids(ENCRYPTED))
def test_encrypted_file_is_reproduced_byte_for_byte_with_its_layout(path: Path) -> None:
    data = path.read_bytes()
    loaded = STORE.load(data)
    assert "sops" not in Branch.keys(loaded.docs[0])
    assert isinstance(loaded.layout, IniLayout) and "mac" in loaded.layout.sops_keys
    meta = Metadata.from_wire(loaded.metadata)
    assert meta.version == "3.11.0" and meta.all_keys()[0].kind == "age"
    assert STORE.emit(loaded.docs, meta.to_wire(), loaded.layout) == data


def test_without_layout_the_sops_section_follows_the_wire_order() -> None:
    wire = Branch([("age", Seq([Branch([("recipient", "age1x"), ("enc", "a\nb")])])),
                   ("lastmodified", "T"), ("mac", "M"), ("version", "3.11.0")])  # fmt: skip
    assert STORE.emit([Branch([("s", Branch([("k", "v")]))])], wire) == (
        b"[s]\nk = v\n\n[sops]\n"
        b"age__list_0__map_recipient = age1x\n"
        b"age__list_0__map_enc       = a\\nb\n"
        b"lastmodified               = T\n"
        b"mac                        = M\n"
        b"version                    = 3.11.0\n"
    )


def test_basic_vector_tree() -> None:
    path = Path(__file__).parent.parent / "testdata/sops/ini/basic.plain.ini"
    doc = sections(path.read_bytes())
    assert doc.keys() == ["DEFAULT", "DEFAULT", "Section One", "second"]
    assert doc[0] == ("DEFAULT", [("toplevel", "before any section")])
    one = doc.get("Section One")
    assert one[0] == Comment("semicolon comment")  # the comment before the header
    assert dict(i for i in one if type(i) is tuple) == {
        "MixedCase": "Value", "pct": "100%", "spaced": "padded value", "nospace": "x",
        "num": "5", "quoted": "q v",
    }  # fmt: skip
    assert one[1:3] == [("MixedCase", "Value"), Comment("hash comment")]  # comment before key
    assert doc.get("second") == [("a", "b"), Comment("inline semicolon"), ("c", "d"),
                                 Comment("inline hash")]  # fmt: skip


def test_implicit_default_section_is_always_first_even_when_empty() -> None:
    assert sections(b"[a]\nk=1\n") == [("DEFAULT", []), ("a", [("k", "1")])]
    assert roundtrip(b"[a]\nk=1\n") == b"[a]\nk = 1\n"
    assert sections(b"") == [("DEFAULT", [])]
    assert roundtrip(b"") == b""


def test_key_comments_follow_the_key_and_are_written_before_it() -> None:
    data = b"[a]\n; first\n# second\nk = v ; inline\n"
    assert sections(data).get("a") == [("k", "v"), Comment("first\n# second\n; inline")]
    assert roundtrip(data) == b"[a]\n; first\n# second\n; inline\nk = v\n"


def test_a_comment_at_the_end_of_the_file_is_lost_like_in_sops() -> None:
    assert roundtrip(b"[a]\nk = v\n; gone\n") == b"[a]\nk = v\n"


def test_values_quotes_continuations_and_multiline() -> None:
    data = (
        b'[a]\nq = "with ; semi"\nb = `back ; tick`\nm = """one\ntwo"""\n'
        b"c = a \\\n  cont \\\n  more\ns = 'sq'\nmid = a\"b\"\npct = %(x)s\nh = v#c\n"
    )
    values = dict(i for i in sections(data).get("a") if type(i) is tuple)
    assert values == {
        "q": '"with', "b": "back ; tick", "m": "one\ntwo", "c": "a cont more", "s": "sq",
        "mid": 'a"b"', "pct": "%(x)s", "h": "v",
    }  # fmt: skip


def test_keys_keep_case_and_may_be_quoted() -> None:
    data = b'[S]\nMiXed = 1\n"quoted key" = 2\n`a=b` = 3\nc: 4\n'
    assert sections(data).get("S") == [("MiXed", "1"), ("quoted key", "2"), ("a=b", "3"),
                                       ("c", "4")]  # fmt: skip


def test_duplicate_key_keeps_its_place_and_takes_the_last_value() -> None:
    assert sections(b"[s]\na = 1\nb = 2\na = 3\n").get("s") == [("a", "3"), ("b", "2")]


def test_duplicate_sections_stay_separate() -> None:
    assert sections(b"[a]\nx=1\n[a]\ny=2\n")[1:] == [("a", [("x", "1")]), ("a", [("y", "2")])]


def test_bom_is_skipped() -> None:
    assert sections(b"\xef\xbb\xbf[a]\nk=1\n")[1] == ("a", [("k", "1")])


@pytest.mark.parametrize(
    "text",
    [b"[a]\nflag\n", b"[a\nk=1\n", b"[]\nk=1\n", b"[a]\n=1\n", b'[a]\nk = """open\n'],
)
def test_invalid_input_is_a_format_error(text: bytes) -> None:
    with pytest.raises(FormatError):
        STORE.load(text)


def test_writing_aligns_quotes_and_separates_sections() -> None:
    doc = Branch([
        ("DEFAULT", Branch([("top", "1")])),
        ("s", Branch([Comment("about s"), ("k", "v"), ("long_key", ""), ("a:b", "x;y"),
                      ("ml", "a\nb"), ("sp", " pad "), ("i", 5)])),
    ])  # fmt: skip
    assert STORE.emit([doc], None) == (
        b"top = 1\n\n; about s\n[s]\n"
        b"k        = v\n"
        b"long_key = \n"
        b"`a:b`    = `x;y`\n"
        b'ml       = """a\nb"""\n'
        b'sp       = " pad "\n'
        b"i        = 5\n"
    )


def test_only_sections_can_be_written() -> None:
    with pytest.raises(FormatError):
        STORE.emit([Branch([("k", "v")])], None)
    with pytest.raises(FormatError):
        STORE.emit([Branch([("s", Branch([("k", Branch())]))])], None)


def test_metadata_section_is_read_typed() -> None:
    data = (
        b"[s]\nk = v\n\n[sops]\nshamir_threshold = 2\nmac_only_encrypted = true\n"
        b"version = 3.11.0\nage__list_0__map_enc = a\\nb\n"
    )
    loaded = STORE.load(data)
    assert loaded.docs[0].keys() == ["DEFAULT", "s"]
    assert loaded.metadata == [
        ("shamir_threshold", 2), ("mac_only_encrypted", True), ("version", "3.11.0"),
        ("age", [[("enc", "a\nb")]]),
    ]  # fmt: skip
