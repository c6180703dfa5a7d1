"""rotate: a new data key, every value re-encrypted, layout kept, batches atomic per file."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops.core.metadata import Metadata
from secretops.stores import get_store
from tests.helpers import CANARY, AgeKey, data_of, make_age_key, secretops, sops

TEXT = f"db:\n  password: {CANARY}  # the password\n  user: admin\n# note\nport: 5432\n"


def _enc_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "ENC[" in ln]


def _metadata(path: Path) -> Metadata:
    loaded = get_store("yaml").load(path.read_bytes())
    assert loaded.metadata is not None
    return Metadata.from_wire(loaded.metadata)


def _encrypt(path: Path, *recipients: str, text: str = TEXT) -> Path:
    path.write_text(text)
    r = secretops("encrypt", "-i", "--age", ",".join(recipients), str(path))
    assert r.code == 0, r.err
    return path


def test_rotate_changes_every_ciphertext_and_keeps_layout(
    tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    f = _encrypt(tmp_path / "s.yaml", age_key.recipient)
    before = f.read_text()
    r = secretops("rotate", "-i", str(f))
    assert r.code == 0, r.err
    assert CANARY not in r.err + r.text
    after = f.read_text()
    old, new = _enc_lines(before), _enc_lines(after)
    assert len(old) == len(new) == 5  # three values, the inline comment, the note
    assert not set(old) & set(new)
    # the same lines carry the same keys: the layout is unchanged
    assert [ln.split("ENC[")[0] for ln in old] == [ln.split("ENC[")[0] for ln in new]
    m_new = _metadata(f)
    assert m_new.key_groups[0][0].fields["recipient"] == age_key.recipient
    assert [ln for ln in before.splitlines() if "mac:" in ln] != [
        ln for ln in after.splitlines() if "mac:" in ln]
    assert secretops("decrypt", str(f)).text == TEXT
    assert data_of(sops(sops_bin, "decrypt", str(f)).out, "yaml") == data_of(TEXT.encode(), "yaml")


def test_data_key_changes(tmp_path: Path, age_key: AgeKey) -> None:
    from secretops import fileops
    from secretops.core.document import data_key_fits

    f = _encrypt(tmp_path / "s.yaml", age_key.recipient)
    old_key = fileops.open_file(f.read_bytes(), format="yaml").data_key
    assert secretops("rotate", "-i", str(f)).code == 0
    assert not data_key_fits(_metadata(f), old_key)


def test_add_and_remove_recipients(
    tmp_path: Path, age_key: AgeKey, sops_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_age_key(tmp_path, "old.txt")
    new = make_age_key(tmp_path, "new.txt")
    f = _encrypt(tmp_path / "s.yaml", age_key.recipient, old.recipient)
    r = secretops("rotate", "-i", "--add-age", new.recipient, "--rm-age", old.recipient, str(f))
    assert r.code == 0, r.err
    recipients = [e.fields["recipient"] for e in _metadata(f).all_keys()]
    assert recipients == [age_key.recipient, new.recipient]
    for key, works in ((new, True), (old, False)):
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
        assert (secretops("decrypt", str(f)).code == 0) is works
        assert (sops(sops_bin, "decrypt", str(f)).code == 0) is works
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(new.path))
    r = secretops("rotate", "-i", "--rm-age", old.recipient, str(f))
    assert "is not in the file" in r.err


def test_rotate_does_not_apply_sops_yaml(tmp_path: Path, age_key: AgeKey) -> None:
    other = make_age_key(tmp_path, "other.txt")
    f = _encrypt(tmp_path / "s.yaml", age_key.recipient)
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {other.recipient}\n")
    assert secretops("rotate", "-i", str(f)).code == 0
    assert [e.fields["recipient"] for e in _metadata(f).all_keys()] == [age_key.recipient]
    assert "updatekeys" in secretops("rotate", "--help").text


def test_removing_every_key_is_refused(tmp_path: Path, age_key: AgeKey) -> None:
    f = _encrypt(tmp_path / "s.yaml", age_key.recipient)
    before = f.read_bytes()
    r = secretops("rotate", "-i", "--rm-age", age_key.recipient, str(f))
    assert r.code == 111
    assert f.read_bytes() == before


def test_shamir_groups_are_kept(tmp_path: Path, sops_bin: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [make_age_key(tmp_path, f"k{n}.txt") for n in range(3)]
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        + "".join(f"      - age: [{k.recipient}]\n" for k in keys))
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    assert secretops("encrypt", "-i", str(f)).code == 0
    both = tmp_path / "two.txt"
    both.write_text(keys[0].path.read_text() + keys[2].path.read_text())
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(both))
    assert secretops("rotate", "-i", str(f)).code == 0
    m = _metadata(f)
    assert m.shamir_threshold == 2 and len(m.key_groups) == 3
    assert secretops("decrypt", str(f)).text == TEXT
    plain = sops(sops_bin, "decrypt", str(f)).out
    assert data_of(plain, "yaml") == data_of(TEXT.encode(), "yaml")


def test_batch_failure_leaves_each_file_old_or_new(tmp_path: Path, age_key: AgeKey) -> None:
    stranger = make_age_key(tmp_path, "stranger.txt")
    files = [_encrypt(tmp_path / "a.yaml", age_key.recipient),
             _encrypt(tmp_path / "b.yaml", stranger.recipient),  # we cannot open this one
             _encrypt(tmp_path / "c.yaml", age_key.recipient)]
    before = [f.read_bytes() for f in files]
    r = secretops("rotate", "-i", *map(str, files))
    assert r.code == 180, r.err  # some files failed (all failing alike would be their 128)
    assert "b.yaml" in r.err and CANARY not in r.err + r.text
    assert files[1].read_bytes() == before[1]
    for f, old in ((files[0], before[0]), (files[2], before[2])):
        assert f.read_bytes() != old
        assert secretops("decrypt", str(f)).text == TEXT
    assert "rotated 2 of 3 files, 1 failed" in r.text


def test_write_failure_leaves_the_file_untouched(tmp_path: Path, age_key: AgeKey) -> None:
    """The write itself fails (file-size limit, which also binds root): nothing is lost."""
    import resource
    import signal
    import subprocess
    import sys

    f = _encrypt(tmp_path / "s.yaml", age_key.recipient)
    before = f.read_bytes()

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256, 256))

    p = subprocess.run([sys.executable, "-m", "secretops", "rotate", "-i", str(f)],
                       stdin=subprocess.DEVNULL, capture_output=True, preexec_fn=limit,
                       timeout=60, check=False)
    assert p.returncode == 3, p.stderr
    assert b"cannot write" in p.stderr
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".secretops")) == []


def test_wrap_failure_leaves_every_file_untouched(
    tmp_path: Path, age_key: AgeKey
) -> None:
    """A key that cannot wrap the new data key (its age plugin is missing) stops each file."""
    import subprocess
    import sys

    script = Path(__file__).parent.parent / "plugin" / "age_plugin_xortest.py"
    out = subprocess.run([sys.executable, str(script), "--generate"], capture_output=True,
                         text=True, check=True, stdin=subprocess.DEVNULL)
    plugin_recipient = out.stdout.split()[1]
    files = [_encrypt(tmp_path / f"{n}.yaml", age_key.recipient) for n in "ab"]
    before = [f.read_bytes() for f in files]
    r = secretops("rotate", "-i", "--add-age", plugin_recipient, *map(str, files))
    assert r.code == 23, r.err
    assert [f.read_bytes() for f in files] == before


def test_dry_run_changes_nothing(tmp_path: Path, age_key: AgeKey) -> None:
    f = _encrypt(tmp_path / "s.yaml", age_key.recipient)
    before = f.read_bytes()
    r = secretops("rotate", "-i", "--dry-run", str(f))
    assert r.code == 0 and "would rotate" in r.text
    assert f.read_bytes() == before


def test_json_layout_is_kept(tmp_path: Path, age_key: AgeKey, sops_bin: str) -> None:
    text = '{\n    "a": "x",\n    "b": [1, 2]\n}\n'
    f = tmp_path / "s.json"
    f.write_text(text)
    assert secretops("encrypt", "-i", "--age", age_key.recipient, str(f)).code == 0
    before = f.read_text()
    assert secretops("rotate", "-i", str(f)).code == 0
    after = f.read_text()
    assert len(before.splitlines()) == len(after.splitlines())
    assert data_of(sops(sops_bin, "decrypt", str(f)).out, "json") == data_of(text.encode(), "json")


def test_a_stolen_key_keeps_reading_after_updatekeys_but_not_after_rotate(
    tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threat model: a removed recipient (a stolen key) may already know the data key, since it
    could open the file before. ``updatekeys`` only rewraps that same key; ``rotate`` makes a
    new one, which is what shuts the thief out of later versions."""
    from secretops import fileops
    from secretops.core.document import data_key_fits

    stolen = make_age_key(tmp_path, "stolen.txt")
    f = _encrypt(tmp_path / "s.yaml", age_key.recipient, stolen.recipient)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(stolen.path))
    known = fileops.open_file(f.read_bytes(), format="yaml").data_key  # what the thief learned
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.path))
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {age_key.recipient}\n")
    assert secretops("updatekeys", "--yes", str(f)).code == 0
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(stolen.path))
    assert secretops("decrypt", str(f)).code == 128  # the key no longer opens the file...
    assert data_key_fits(_metadata(f), known)  # ...but the data key it knows still does
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.path))
    assert secretops("rotate", "-i", str(f)).code == 0
    assert not data_key_fits(_metadata(f), known)
