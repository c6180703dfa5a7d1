"""The binary store against files written by sops 3.11."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops.core.metadata import Metadata
from secretops.core.tree import Branch
from secretops.errors import FormatError
from secretops.stores import StoreOptions
from secretops.stores.binary import BinaryStore
from tests.stores._vectors import SOPS_DATA

CASES = sorted(p for p in (SOPS_DATA / "binary").glob("*.plain.*"))
STORE = BinaryStore(StoreOptions())


def kind(path: Path, new: str) -> Path:
    return path.with_name(path.name.replace(".plain.", f".{new}."))


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_plaintext_is_one_str_value_written_back_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    loaded = STORE.load(data)
    assert loaded.metadata is None
    [(key, value)] = loaded.docs[0]
    assert key == "data" and isinstance(value, str)
    assert STORE.emit(loaded.docs, None) == data == kind(path, "sops-decrypted").read_bytes()


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_encrypted_envelope_is_reproduced_byte_for_byte(path: Path) -> None:
    data = kind(path, "sops").read_bytes()
    loaded = STORE.load(data)
    assert loaded.metadata is not None
    assert loaded.docs[0].keys() == ["data"]
    meta = Metadata.from_wire(loaded.metadata)
    assert STORE.emit(loaded.docs, meta.to_wire()) == data


def test_non_utf8_bytes_survive_as_surrogate_escapes() -> None:
    data = b"\x00\xff\xfe binary \x80\n\x01"
    [(_, value)] = STORE.load(data).docs[0]
    assert value.encode("utf-8", "surrogateescape") == data
    assert STORE.emit([Branch([("data", value)])], None) == data


def test_json_without_sops_metadata_is_plain_data() -> None:
    for data in (b'{"a": 1}', b'{"sops": 1, "x', b'{"sops": "x"}'):
        assert STORE.load(data).docs[0] == [("data", data.decode())]


def test_bytes_value_is_written_raw() -> None:
    assert STORE.emit([Branch([("data", b"\xff")])], None) == b"\xff"


def test_emit_needs_a_string_data_value() -> None:
    for doc in (Branch([("other", "x")]), Branch([("data", 5)])):
        with pytest.raises(FormatError):
            STORE.emit([doc], None)
