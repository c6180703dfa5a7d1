"""The minimal re-encryption seam and the metadata-only rewrite.

Decrypting and re-encrypting with the opened file's cipher changes only ``lastmodified`` and
``mac``; a changed value gets a fresh IV and only its line changes; a metadata rewrite keeps
every value, ``lastmodified`` and ``mac``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from secretops import api, fileops
from secretops.core.metadata import Metadata
from secretops.core.tree import Branch
from secretops.stores.yaml import YamlStore
from tests.helpers import TESTDATA, AgeKey, secretops, sops

# repeated comments and list items share their key path; "y" comes back double-quoted
TEXT = ("db:\n  user: admin\n  password: s3cret # keep\nlist: [a, b]\nother: value\n"
        "# same\ndup: [x, y, x]\n# same\nflag: y\n")


def _changed_lines(a: bytes, b: bytes) -> list[str]:
    la, lb = a.decode().splitlines(), b.decode().splitlines()
    assert len(la) == len(lb)
    return [y for x, y in zip(la, lb, strict=True) if x != y]


@pytest.fixture(params=["secretops", "sops"])
def encrypted(request: pytest.FixtureRequest, tmp_path: Path, age_key: AgeKey,
              sops_bin: str) -> bytes:
    src = tmp_path / "s.yaml"
    src.write_text(TEXT)
    args = ("encrypt", "--age", age_key.recipient, str(src))
    r = secretops(*args) if request.param == "secretops" else sops(sops_bin, *args)
    assert r.code == 0, r.err
    return r.out


def test_reencrypt_unchanged_touches_only_lastmodified_and_mac(encrypted: bytes) -> None:
    opened = fileops.open_file(encrypted, format="yaml")
    out = fileops.reencrypt(opened, lastmodified="2030-01-01T00:00:00Z")
    changed = _changed_lines(encrypted, out)
    assert len(changed) == 2
    assert changed[0].strip().startswith("lastmodified:") and "2030-01-01" in changed[0]
    assert changed[1].strip().startswith("mac: ENC[")
    assert api.decrypt(out, format="yaml") == api.decrypt(encrypted, format="yaml")


def test_decrypted_text_encrypted_again_is_the_same_file(encrypted: bytes) -> None:
    """edit / encrypt --reuse with nothing changed: not one byte differs, for secretops's
    files and for sops's (repeated comments and list items keep their own ciphertexts)."""
    opened = fileops.open_file(encrypted, format="yaml")
    out = fileops.reencrypt_plaintext(opened, api.decrypt(encrypted, format="yaml"))
    assert out == encrypted


def test_changed_value_gets_a_fresh_iv_and_only_its_line_changes(encrypted: bytes) -> None:
    opened = fileops.open_file(encrypted, format="yaml")
    db = opened.docs[0].get("db")
    assert isinstance(db, Branch)
    new_db = Branch(("password", "n3w") if type(i) is tuple and i[0] == "password" else i
                    for i in db)
    docs = [Branch(("db", new_db) if type(i) is tuple and i[0] == "db" else i
                   for i in opened.docs[0])]
    out = fileops.reencrypt(opened, docs, lastmodified="2030-01-01T00:00:00Z")
    changed = _changed_lines(encrypted, out)
    assert len(changed) == 3
    assert changed[0].strip().startswith("password: ENC[")
    old_line = next(ln for ln in encrypted.decode().splitlines() if "password:" in ln)
    iv = lambda ln: ln.split(",iv:")[1].split(",")[0]  # noqa: E731
    assert iv(changed[0]) != iv(old_line)
    assert b"n3w" in api.decrypt(out, format="yaml")


def test_metadata_rewrite_keeps_every_value_and_the_mac(
    encrypted: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sops_bin: str
) -> None:
    from secretops.keys.age import AgeRecipient
    from tests.helpers import make_age_key

    opened = fileops.open_file(encrypted, format="yaml")
    second = make_age_key(tmp_path, "second.txt")
    meta = opened.metadata
    new = Metadata(
        key_groups=[[*meta.key_groups[0], AgeRecipient(second.recipient).wrap(opened.data_key)]],
        lastmodified=meta.lastmodified, mac=meta.mac, selection=meta.selection,
        version=meta.version,
    )
    out = fileops.rewrite_metadata(opened, new)
    before = [ln for ln in encrypted.decode().splitlines() if "ENC[" in ln]
    after = [ln for ln in out.decode().splitlines() if "ENC[" in ln]
    assert before == after  # every value and the mac, byte for byte
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(second.path))
    f = tmp_path / "rewritten.yaml"
    f.write_bytes(out)
    assert secretops("decrypt", str(f)).code == 0
    assert sops(sops_bin, "decrypt", str(f)).code == 0


def test_sops_made_files_are_reproduced_exactly_by_load_and_emit() -> None:
    """Emitting a sops-made file's trees and metadata again gives sops's bytes back."""
    files = [f for f in glob.glob(str(TESTDATA / "sops" / "*" / "*.sops.yaml"))
             if "/hand-" not in f and "/errors/" not in f]
    assert len(files) > 50
    for f in files:
        data = Path(f).read_bytes()
        try:
            loaded = YamlStore().load(data)
        except Exception:
            continue
        if loaded.metadata is None:
            continue
        meta = Metadata.from_wire(loaded.metadata)
        assert YamlStore().emit(loaded.docs, meta.to_wire(), loaded.layout) == data, f


def test_documents_with_differing_metadata_are_rejected() -> None:
    data = (TESTDATA / "sops" / "multidoc" / "hand-second-doc-mac-tampered.sops.yaml").read_bytes()
    with pytest.raises(Exception, match="different sops metadata"):
        fileops.open_file(data, format="yaml", env={"HOME": os.environ["HOME"]})


def _sops_made() -> list[str]:
    return [f for f in glob.glob(str(TESTDATA / "sops" / "*" / "*.sops.yaml"))
            if "/hand-" not in f and "/errors/" not in f]


def test_metadata_only_splice_gives_the_full_emits_bytes_for_sops_made_files() -> None:
    """The sops-block splice of ``rewrite_metadata`` writes what emitting every document
    writes (which is sops's own bytes, test above), and it is taken for most of the corpus."""
    from secretops.stores import yaml as yaml_store

    spliced = 0
    for f in _sops_made():
        data = Path(f).read_bytes()
        try:
            loaded = YamlStore().load(data)
        except Exception:
            continue
        if loaded.metadata is None:
            continue
        wire = Metadata.from_wire(loaded.metadata).to_wire()
        wire_changed = Branch((k, "2030-01-01T00:00:00Z") if k == "lastmodified" else (k, v)
                              for k, v in wire)
        for meta in (wire, wire_changed):
            before = yaml_store.METADATA_SPLICES[0]
            out = YamlStore().emit_metadata(loaded.docs, meta, loaded.layout)
            full = YamlStore().emit(loaded.docs, meta, loaded.layout)
            if out is None:
                assert yaml_store.METADATA_SPLICES[0] == before, f
                continue
            assert yaml_store.METADATA_SPLICES[0] == before + 1, f
            assert out == full, f
            spliced += 1
    assert spliced >= 2 * 40


@pytest.mark.parametrize("name", ["multidoc/two-docs", "multidoc/three-docs",
                                  "multidoc/trailing-dots"])
def test_metadata_rewrite_of_files_the_splice_cannot_take_emits_them(name: str) -> None:
    """Several documents (each carries the block): not spliced, and still sops's bytes."""

    data = (TESTDATA / "sops" / f"{name}.sops.yaml").read_bytes()
    loaded = YamlStore().load(data)
    assert loaded.metadata is not None
    wire = Metadata.from_wire(loaded.metadata).to_wire()
    assert YamlStore().emit_metadata(loaded.docs, wire, loaded.layout) is None
    assert YamlStore().emit(loaded.docs, wire, loaded.layout) == data


def test_updatekeys_writes_by_splicing_the_sops_block(
    encrypted: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sops_bin: str
) -> None:
    """``rewrite_metadata`` (updatekeys, groups, …) of a file sops or secretops wrote takes the
    splice, and the result equals the full emit and opens with sops and the new key alone."""
    from secretops.keys.age import AgeRecipient
    from secretops.stores import yaml as yaml_store
    from tests.helpers import make_age_key

    opened = fileops.open_file(encrypted, format="yaml")
    second = make_age_key(tmp_path, "second.txt")
    meta = opened.metadata
    new = Metadata(
        key_groups=[[*meta.key_groups[0], AgeRecipient(second.recipient).wrap(opened.data_key)]],
        lastmodified=meta.lastmodified, mac=meta.mac, selection=meta.selection,
        version=meta.version,
    )
    before = yaml_store.METADATA_SPLICES[0]
    out = fileops.rewrite_metadata(opened, new)
    assert yaml_store.METADATA_SPLICES[0] == before + 1
    loaded = opened.loaded
    assert out == opened.store.emit(loaded.docs, new.to_wire(), loaded.layout)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(second.path))
    f = tmp_path / "rewritten.yaml"
    f.write_bytes(out)
    assert sops(sops_bin, "decrypt", str(f)).code == 0
