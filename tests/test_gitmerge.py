"""The value-by-value three-way merge of encrypted files (secretops.git.merge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops import fileops
from secretops.core.tree import Branch, Comment, Seq, to_plain
from secretops.git.merge import MergeConflict, merge_branch, merge_files
from tests.helpers import AgeKey, data_of, make_age_key, secretops, sops

BASE = "a: 1\nb: two\nlist:\n  - x\n  - y\n# note about c\nc:\n  d: old\n  e: keep\n"


def _tree(text: str) -> Branch:
    from secretops.stores import get_store

    return get_store("yaml").load(text.encode()).docs[0]


def _merge(base: str, ours: str, theirs: str) -> tuple[Branch, list[str]]:
    conflicts: list[str] = []
    out = merge_branch(_tree(base), _tree(ours), _tree(theirs), [], conflicts)
    return out, conflicts


def test_changes_on_different_keys_merge() -> None:
    out, conflicts = _merge(BASE, BASE.replace("a: 1", "a: 2"),
                            BASE.replace("d: old", "d: new"))
    assert not conflicts
    assert to_plain(out) == to_plain(_tree(BASE.replace("a: 1", "a: 2").replace("d: old",
                                                                                  "d: new")))


def test_the_same_change_on_both_sides_is_fine() -> None:
    ours = BASE.replace("b: two", "b: three")
    out, conflicts = _merge(BASE, ours, ours)
    assert not conflicts and to_plain(out) == to_plain(_tree(ours))


def test_different_changes_to_one_value_conflict() -> None:
    _, conflicts = _merge(BASE, BASE.replace("d: old", "d: mine"),
                          BASE.replace("d: old", "d: yours"))
    assert conflicts == ['["c"]["d"]']


def test_a_list_is_one_value() -> None:
    ours = BASE.replace("  - x\n", "  - x1\n")
    theirs = BASE.replace("  - y\n", "  - y1\n")
    _, conflicts = _merge(BASE, ours, theirs)
    assert conflicts == ['["list"]']
    out, conflicts = _merge(BASE, ours, BASE.replace("a: 1", "a: 5"))
    assert not conflicts and to_plain(out)["list"] == ["x1", "y"]


def test_types_count() -> None:
    _, conflicts = _merge("a: 1\n", "a: 1.0\n", 'a: "1"\n')
    assert conflicts == ['["a"]']


def test_additions_and_deletions() -> None:
    ours = BASE.replace("b: two\n", "") + "z: added-by-ours\n"
    theirs = BASE.replace("a: 1\n", "a: 1\nnew: theirs\n")
    out, conflicts = _merge(BASE, ours, theirs)
    assert not conflicts
    assert list(to_plain(out)) == ["a", "new", "list", "c", "z"]
    # deleted on one side, changed on the other: a conflict
    _, conflicts = _merge(BASE, BASE.replace("b: two\n", ""), BASE.replace("two", "2"))
    assert conflicts == ['["b"]']


def test_comments_follow_the_side_that_changed_them() -> None:
    theirs = BASE.replace("# note about c", "# a better note")
    out, conflicts = _merge(BASE, BASE.replace("a: 1", "a: 2"), theirs)
    assert not conflicts
    assert Comment(" a better note") in out
    _, conflicts = _merge(BASE, BASE.replace("# note about c", "# x"), theirs)
    assert conflicts == ["the top level (comments)"]


def test_nested_maps_merge_key_by_key() -> None:
    out, conflicts = _merge(BASE, BASE.replace("e: keep", "e: ours"),
                            BASE.replace("d: old", "d: theirs"))
    assert not conflicts
    assert to_plain(out)["c"] == {"d": "theirs", "e": "ours"}
    assert isinstance(out.get("list"), Seq)


# -- whole files -----------------------------------------------------------------------------


def _enc(path: Path, text: str, *recipients: str) -> bytes:
    path.write_text(text)
    r = secretops("encrypt", "-i", "--age", ",".join(recipients), str(path))
    assert r.code == 0, r.err
    return path.read_bytes()


def _edit(data: bytes, path: Path, old: str, new: str) -> bytes:
    """Re-encrypt ``data`` with one value changed, the minimal-diff way."""
    opened = fileops.open_file(data, format="yaml")
    plain = bytes(opened.store.emit(opened.docs, None, opened.loaded.layout)).decode()
    return fileops.reencrypt_plaintext(opened, plain.replace(old, new).encode())


def test_files_merge_and_keep_unchanged_ciphertext(tmp_path: Path, age_key: AgeKey,
                                                   sops_bin: str) -> None:
    base = _enc(tmp_path / "s.yaml", BASE, age_key.recipient)
    ours = _edit(base, tmp_path, "a: 1", "a: 2")
    theirs = _edit(base, tmp_path, "d: old", "d: new")
    merged = merge_files(base, ours, theirs, "yaml")
    expected = BASE.replace("a: 1", "a: 2").replace("d: old", "d: new")
    out = tmp_path / "m.yaml"
    out.write_bytes(merged)
    assert data_of(sops(sops_bin, "decrypt", str(out)).out, "yaml") == data_of(
        expected.encode(), "yaml")
    lines = lambda b: {ln for ln in b.decode().splitlines() if "ENC[" in ln}  # noqa: E731
    # the value only theirs changed keeps theirs' exact ciphertext
    assert {ln for ln in lines(theirs) if ln.strip().startswith("d:")} <= lines(merged)
    assert {ln for ln in lines(ours) if ln.strip().startswith(("a:", "b:", "e:"))} <= lines(
        merged)


def test_unchanged_side_needs_no_key(tmp_path: Path, age_key: AgeKey,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base = _enc(tmp_path / "s.yaml", BASE, age_key.recipient)
    theirs = _edit(base, tmp_path, "a: 1", "a: 2")
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    assert merge_files(base, base, theirs, "yaml") == theirs
    assert merge_files(base, theirs, base, "yaml") == theirs


def test_conflicts_raise_with_paths(tmp_path: Path, age_key: AgeKey) -> None:
    base = _enc(tmp_path / "s.yaml", BASE, age_key.recipient)
    with pytest.raises(MergeConflict) as info:
        merge_files(base, _edit(base, tmp_path, "b: two", "b: 2"),
                    _edit(base, tmp_path, "b: two", "b: II"), "yaml")
    assert info.value.paths == ['["b"]']
    assert "two" not in str(info.value) and "II" not in str(info.value)


def test_key_change_on_one_side_is_carried(tmp_path: Path, age_key: AgeKey,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from secretops.keyops import apply_plan, plan_update
    from secretops.keys.specs import KeySpec

    new = make_age_key(tmp_path, "new.txt")
    base = _enc(tmp_path / "s.yaml", BASE, age_key.recipient)
    opened = fileops.open_file(base, format="yaml")
    groups = [[KeySpec("age", {"recipient": age_key.recipient}),
               KeySpec("age", {"recipient": new.recipient})]]
    plan = plan_update(opened.metadata, groups, 0)
    new_meta = apply_plan(opened.metadata, plan, opened.data_key, {})
    theirs = fileops.rewrite_metadata(opened, new_meta)
    ours = _edit(base, tmp_path, "a: 1", "a: 2")
    merged = merge_files(base, ours, theirs, "yaml")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(new.path))
    assert to_plain(fileops.open_file(merged, format="yaml").docs[0])["a"] == 2


def test_rotation_on_one_side_wins_and_values_move_to_its_key(
    tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    from secretops.core.document import data_key_fits
    from secretops.core.metadata import Metadata
    from secretops.stores import get_store

    base = _enc(tmp_path / "s.yaml", BASE, age_key.recipient)
    f = tmp_path / "rot.yaml"
    f.write_bytes(base)
    assert secretops("rotate", "-i", str(f)).code == 0
    theirs = f.read_bytes()
    ours = _edit(base, tmp_path, "b: two", "b: 2")
    merged = merge_files(base, ours, theirs, "yaml")
    theirs_key = fileops.open_file(theirs, format="yaml").data_key
    meta = Metadata.from_wire(get_store("yaml").load(merged).metadata)
    assert data_key_fits(meta, theirs_key)
    out = tmp_path / "m.yaml"
    out.write_bytes(merged)
    expected = BASE.replace("b: two", "b: 2")
    assert data_of(sops(sops_bin, "decrypt", str(out)).out, "yaml") == data_of(
        expected.encode(), "yaml")
