"""Every file in the sops-made corpus decrypts with secretops as it does with sops.

``tests/testdata/sops`` holds files encrypted by the real sops 3.11 binary (and a few hand-made
variants), with what ``sops decrypt`` printed and its exit code in ``results.json``. Where sops
succeeded, secretops must give the same plaintext (byte for byte for JSON, dotenv, INI and
binary; the same data for YAML, whose layout secretops keeps from the encrypted file). Where sops
failed, secretops must fail too — and where secretops is stricter on purpose, the case is named
below with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secretops import api
from secretops.errors import SecretOpsError
from tests.helpers import TESTDATA, data_of

CORPUS = TESTDATA / "sops"
RESULTS = json.loads((CORPUS / "results.json").read_text())
KEYFILE = TESTDATA / "keys" / "age-test.txt"
FORMAT = {"yaml": "yaml", "json": "json", "env": "dotenv", "ini": "ini", "bin": "binary",
          "txt": "binary"}

# secretops refuses these on purpose, where sops decrypts them (docs/usage.md, "coming from sops")
STRICTER = {
    "errors/version-1": "only format version 3 is accepted",
    "errors/version-2": "only format version 3 is accepted",
    "errors/version-4": "only format version 3 is accepted",
    "errors/version-99": "only format version 3 is accepted",
    "multidoc/hand-second-doc-mac-tampered": "every document's sops block must agree",
}


def _cases() -> list[tuple[str, Path]]:
    out = []
    for name, rec in RESULTS.items():
        if not isinstance(rec, dict) or "decrypt" not in rec:
            continue
        folder, base = name.split("/", 1)
        found = sorted((CORPUS / folder).glob(f"{base}.sops.*"))
        if found:
            out.append((name, found[0]))
    return out


CASES = _cases()


def test_corpus_is_large() -> None:
    assert len(CASES) > 100


@pytest.mark.parametrize(("name", "path"), CASES, ids=[c[0] for c in CASES])
def test_decrypts_like_sops(name: str, path: Path) -> None:
    ext = path.name.rsplit(".", 1)[1]
    fmt = FORMAT.get(ext, "binary")
    rec = RESULTS[name]
    sops_rc = rec["decrypt"]["rc"]
    env = {"SOPS_AGE_KEY_FILE": str(KEYFILE), "HOME": str(path.parent)}
    try:
        out = api.decrypt(path.read_bytes(), format=fmt, env=env)
        ours_rc = 0
    except SecretOpsError as e:
        ours_rc = int(e.code)
        assert "Traceback" not in str(e)
    if name in STRICTER:
        assert sops_rc == 0 and ours_rc != 0, STRICTER[name]
        return
    if sops_rc != 0:
        assert ours_rc != 0, f"sops failed with {sops_rc} but secretops decrypted it"
        return
    assert ours_rc == 0
    expected = path.with_name(path.name.replace(".sops.", ".sops-decrypted."))
    if not expected.exists():
        return
    if fmt == "yaml":
        assert data_of(out, "yaml") == data_of(expected.read_bytes(), "yaml")
    else:
        assert out == expected.read_bytes()


YAML11 = [c for c in CASES if c[0].startswith(("yaml-types/bool-", "yaml-types/sexagesimal"))]


@pytest.mark.parametrize(("name", "path"), YAML11, ids=[c[0] for c in YAML11])
def test_yaml11_lookalikes_are_quoted_byte_for_byte_as_sops_does(name: str, path: Path) -> None:
    """sops writes every value plain, so a plain ENC[...] says nothing about the original's
    quoting: strings that a YAML 1.1 reader (kubectl, Helm) would read as a bool or a number
    (yes, on, n, 1:20) come out double-quoted, exactly as sops decrypts them."""
    env = {"SOPS_AGE_KEY_FILE": str(KEYFILE), "HOME": str(path.parent)}
    out = api.decrypt(path.read_bytes(), format="yaml", env=env)
    assert out == path.with_name(path.name.replace(".sops.", ".sops-decrypted.")).read_bytes()
