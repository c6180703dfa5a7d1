"""End to end, in a real ``secretops`` process: hostile inputs of each kind the fuzz targets
cover end in one ``secretops: error:`` line (then hints) and a code of the table, never a
traceback, and nothing on standard output. The targets call the library in-process for speed;
these few subprocesses prove that what they accept is also what a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretops.errors import ExitCode
from tests.fuzz import seeds
from tests.helpers import secretops

CODES = {int(c) for c in ExitCode}


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(seeds.KEY_FILE))


def _laughs(data: bytes) -> bytes:
    rows = [b"l0: &l0 [" + b",".join([b"lol"] * 9) + b"]\n"]
    rows += [b"l%d: &l%d [" % (n, n) + b",".join([b"*l%d" % (n - 1)] * 9) + b"]\n"
             for n in range(1, 9)]
    return b"".join(rows) + data


def _stanza_bomb() -> bytes:
    import copy

    from tests.fuzz.strategies import dump

    doc = copy.deepcopy(seeds.yaml_doc())
    enc = str(doc["sops"]["age"][0]["enc"]).splitlines()  # type: ignore[index]
    doc["sops"]["age"][0]["enc"] = "\n".join([enc[0], *enc[1:-1] * 200, enc[-1]])  # type: ignore[index]
    return dump(doc, "yaml")


def _cases() -> list[tuple[str, str, bytes]]:
    y, j = seeds.store_seeds("yaml")[0], seeds.store_seeds("json")[0]
    return [
        ("laughs", "yaml", _laughs(y)),
        ("deep", "yaml", b"a: " + b"[" * 10_001 + b"]" * 10_001 + b"\n"),
        ("deep", "json", b'{"a": ' + b"[" * 10_001 + b"]" * 10_001 + b"}"),
        ("stanzas", "yaml", _stanza_bomb()),
        ("cut", "json", j[:len(j) // 2]),
        ("not-utf8", "dotenv", seeds.store_seeds("dotenv")[0].replace(b"=", b"=\xff", 1)),
        ("no-mac", "ini", b"\n".join(ln for ln in seeds.store_seeds("ini")[0].splitlines()
                                     if not ln.startswith(b"mac"))),
        ("enc-soup", "binary", b'{"data": "ENC[AES256_GCM,data:' + b",iv:" * 3000 + b'"}'),
    ]


def _one_line(r: object, name: str) -> None:
    code, out, err = r.code, r.out, r.err  # type: ignore[attr-defined]
    assert code in CODES and code != 0, (code, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines and lines[0].startswith("secretops: error: ") and name in lines[0], err
    assert all(ln.startswith("secretops: hint: ") for ln in lines[1:]), err
    assert out == b""


@pytest.mark.parametrize(("case", "fmt", "data"), _cases(), ids=lambda v: v if isinstance(
    v, str) else "")
def test_decrypt_and_encrypt_answer_in_one_line(case: str, fmt: str, data: bytes,
                                                tmp_path: Path, key: None) -> None:
    f = tmp_path / f"{case}{ {'dotenv': '.env', 'binary': '.bin'}.get(fmt, '.' + fmt)}"
    f.write_bytes(data)
    _one_line(secretops("decrypt", "--input-type", fmt, str(f)), f.name)
    if case in ("laughs", "deep"):  # the plaintext readers too
        _one_line(secretops("encrypt", "--input-type", fmt, "--age", seeds.recipient(),
                            str(f)), f.name)


def test_sealing_and_eso_inputs_answer_in_one_line(tmp_path: Path) -> None:
    sealed = tmp_path / "sealed.yaml"
    sealed.write_bytes(seeds.sealed_seeds()[2].replace(b"encryptedData:", b"encryptedData: 7\n"
                                                       b"  x:", 1))
    _one_line(secretops("unseal", "--identity", str(seeds.KEY_FILE), str(sealed)), "sealed.yaml")
    keys = tmp_path / "keys.yaml"
    keys.write_bytes(b"kind: Secret\nmetadata: [a]\ndata: {age.key: []}\n")
    _one_line(secretops("verify", "--identity", str(keys), str(sealed)), "keys.yaml")
    eso = tmp_path / "eso.yaml"
    eso.write_bytes(_laughs(seeds.eso_seeds()[0]))
    _one_line(secretops("convert-eso", str(eso)), "eso.yaml")


def test_updatekeys_with_a_config_without_rules_answers_in_one_line(tmp_path: Path,
                                                                   key: None) -> None:
    (tmp_path / ".sops.yaml").write_text("stores:\n  yaml:\n    indent: 2\n")
    f = tmp_path / "a.yaml"
    f.write_bytes(seeds.store_seeds("yaml")[0])
    r = secretops("updatekeys", "-y", str(f), cwd=tmp_path)
    _one_line(r, ".sops.yaml")
    assert r.code == ExitCode.ERROR_READING_CONFIG
