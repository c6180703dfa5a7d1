"""rotate's values in one walk: each value decrypted and encrypted again together.

The one walk (:func:`secretops.core.engine.reencrypt_documents`) replaced a decryption walk
followed by an encryption walk. Over the sops-made corpus, with the same randomness, it must
write the same bytes and the same MAC as those two walks, and fail the same way on the damaged
files; and ``rotate`` must walk each document once.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from secretops import fileops
from secretops.core.metadata import Metadata
from secretops.errors import SecretOpsError
from secretops.rotation import reseal_values
from tests.helpers import AgeKey, secretops
from tests.test_corpus import CASES, FORMAT, KEYFILE

STAMP = "2030-01-01T00:00:00Z"


def _outcome(sealed: fileops.SealedFile, one_walk: bool) -> tuple[object, ...]:
    """What the resealing gives with a fixed randomness: the file's bytes (its own key groups
    kept) or the error."""
    try:
        r = reseal_values(sealed, random=random.Random(7).randbytes, lastmodified=STAMP,
                          one_walk=one_walk)
    except SecretOpsError as e:
        return ("error", type(e), e.code, str(e))
    meta = sealed.metadata
    new = Metadata(key_groups=meta.key_groups, shamir_threshold=meta.shamir_threshold,
                   lastmodified=r.lastmodified, mac=r.mac, selection=meta.selection,
                   version=meta.version)
    return ("ok", r.data_key, r.mac,
            fileops.emit_sealed(sealed, r.docs, new, sealed.loaded.layout, None))


def _sealed(path: Path) -> fileops.SealedFile | None:
    fmt = FORMAT.get(path.name.rsplit(".", 1)[1], "binary")
    env = {"SOPS_AGE_KEY_FILE": str(KEYFILE), "HOME": str(path.parent)}
    try:
        return fileops.open_sealed(path.read_bytes(), format=fmt, env=env)
    except SecretOpsError:
        return None  # not encrypted, or no key opens it: nothing to rotate


@pytest.mark.parametrize(("name", "path"), CASES, ids=[c[0] for c in CASES])
def test_one_walk_writes_what_two_walks_write(name: str, path: Path) -> None:
    sealed = _sealed(path)
    if sealed is None:
        return
    assert _outcome(sealed, True) == _outcome(sealed, False), name


def test_the_corpus_takes_the_one_walk_and_its_errors() -> None:
    """Not vacuous: most of the corpus rotates through the one walk (only comment rules need
    two), and the damaged files fail in it as in two walks (the test above)."""
    from secretops.core.cipher import ValueCipher
    from secretops.core.engine import reencrypt_documents

    one_walk = failed = 0
    for _, path in CASES:
        sealed = _sealed(path)
        if sealed is None:
            continue
        old = ValueCipher(sealed.data_key, random.Random(1).randbytes, remember=False)
        new = ValueCipher(bytes(32), random.Random(2).randbytes, remember=False)
        try:
            got = reencrypt_documents(sealed.loaded.docs, sealed.metadata.selection, old, new)
        except SecretOpsError:
            failed += 1
            continue
        if got is not None:
            one_walk += 1
            if _outcome(sealed, True)[0] == "error":
                failed += 1  # the MAC check
    assert one_walk >= 100
    assert failed >= 3


def test_rotate_walks_each_document_once(
    tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, not timed: rotating decrypted every value in one walk and encrypted it again
    in a second; now one walk does both."""
    from secretops.bulk.keyjobs import rotate_file
    from secretops.core import engine

    src = tmp_path / "s.yaml"
    src.write_text("a: 1\nb: [x, z]\n---\nc: d\n")
    r = secretops("encrypt", "-i", "--age", age_key.recipient, str(src))
    assert r.code == 0, r.err
    before = src.read_bytes()
    walks: list[int] = []
    real = engine._Walk.walk

    def counted(self: engine._Walk, doc: object) -> object:
        walks.append(1)
        return real(self, doc)  # type: ignore[arg-type]

    monkeypatch.setattr(engine._Walk, "walk", counted)
    import os

    done = rotate_file(str(src), input_type=None, config_path=None, add=[], remove=[],
                       max_age=None, dry_run=False, env=os.environ)
    assert done.rotated
    assert len(walks) == 2  # two documents, one walk each
    assert src.read_bytes() != before
    r = secretops("decrypt", str(src))
    assert r.code == 0, r.err
    assert r.out == b"a: 1\nb: [x, z]\n---\nc: d\n"


@pytest.mark.parametrize("command", ["rotate", "updatekeys"])
def test_a_run_reads_its_config_once(
    command: str, tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted: the files of a directory share one ``.sops.yaml``, read once per run; it was
    looked for and opened again for every file's settings."""
    import os

    from secretops import config
    from secretops.bulk.keyjobs import RotateJob, UpdateKeysJob
    from secretops.bulk.paths import Item

    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key.recipient}\n")
    files = [tmp_path / f"s{i}.yaml" for i in range(3)]
    for f in files:
        f.write_text("a: 1\n")
    assert secretops("encrypt", "-i", *map(str, files)).code == 0
    monkeypatch.chdir(tmp_path)
    job = (RotateJob(os.environ, input_type=None, config_path=None, add=[], remove=[],
                     max_age=None, dry_run=False) if command == "rotate"
           else UpdateKeysJob(os.environ, input_type=None, shamir=0, config_path=None))
    job.state = {}
    job.setup()
    reads: list[object] = []
    real = config.load_config

    def counted(path: Path, text: bytes | None = None) -> config.Config:
        reads.append(path)
        return real(path, text)

    monkeypatch.setattr(config, "load_config", counted)
    monkeypatch.setattr("secretops.discover.load_config", counted)
    for f in files:
        out = job(Item(f.name, False))
        assert out.failure is None and not out.skipped, out
    assert len(reads) == 1
