"""JSON, dotenv, INI and binary interop with the real sops binary, both ways, via the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import AgeKey, data_of, secretops, sops

CASES = {
    "json-types": (
        "json",
        '{"s": "hello", "n": 1, "f": 1.5, "t": true, "nothing": null, "empty": "",\n'
        ' "uni": "h\\u00e9llo 😀", "nested": {"arr": [1, "two", {"x": "y"}], "eo": {}},\n'
        ' "esc": "a\\"b\\\\c\\n\\t</>&"}\n',
    ),
    "json-k8s": (
        "json",
        '{"apiVersion": "v1", "kind": "Secret", "data": {"password": "czNjcmV0"}}',
    ),
    "dotenv": ("env", "# database settings\nDB_USER=admin\nDB_PASS=s3cr=et\nQUOTED=\"as is\"\n"
                      "export TOKEN=abc\nEMPTY=\n"),
    "ini": ("ini", "; top comment\n[database]\nuser = admin\nPassword = p%40ss\n\n"
                   "[api]\n# hash comment\ntoken = t0k3n\n"),
    "binary-text": ("bin", "any text\nwith lines\n"),
}
FORMAT = {"json": "json", "env": "dotenv", "ini": "ini", "bin": "binary"}


def _plain_data(content: bytes, ext: str) -> object:
    if ext == "bin":
        return content
    return data_of(content, FORMAT[ext])


@pytest.mark.parametrize("case", sorted(CASES))
def test_secretops_encrypts_sops_decrypts(
    case: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    ext, text = CASES[case]
    src = tmp_path / f"in.{ext}"
    src.write_text(text)
    enc = secretops("encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0, enc.err
    f = tmp_path / f"out.enc.{ext}"
    f.write_bytes(enc.out)
    theirs = sops(sops_bin, "decrypt", str(f))
    assert theirs.code == 0, theirs.err
    assert _plain_data(theirs.out, ext) == _plain_data(src.read_bytes(), ext)
    ours = secretops("decrypt", str(f))
    assert ours.code == 0, ours.err
    assert ours.out == theirs.out  # our plaintext output is sops's, byte for byte


@pytest.mark.parametrize("case", sorted(CASES))
def test_sops_encrypts_secretops_decrypts(
    case: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    ext, text = CASES[case]
    src = tmp_path / f"in.{ext}"
    src.write_text(text)
    enc = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(src))
    assert enc.code == 0, enc.err
    f = tmp_path / f"out.enc.{ext}"
    f.write_bytes(enc.out)
    ours = secretops("decrypt", str(f))
    assert ours.code == 0, ours.err
    theirs = sops(sops_bin, "decrypt", str(f))
    assert ours.out == theirs.out


def test_binary_non_utf8_both_ways(tmp_path: Path, age_key: AgeKey, sops_bin: str) -> None:
    blob = os.urandom(2048) + b"\xff\xfe\x00"
    src = tmp_path / "blob.bin"
    src.write_bytes(blob)
    for tool in ("secretops", "sops"):
        args = ("encrypt", "--age", age_key.recipient, str(src))
        enc = secretops(*args) if tool == "secretops" else sops(sops_bin, *args)
        assert enc.code == 0, enc.err
        f = tmp_path / f"blob.{tool}.enc"
        f.write_bytes(enc.out)
        for reader in ("secretops", "sops"):
            dargs = ("decrypt", "--input-type", "binary", str(f))
            r = secretops(*dargs) if reader == "secretops" else sops(sops_bin, *dargs)
            assert r.code == 0, (tool, reader, r.err)
            assert r.out == blob, (tool, reader)


@pytest.mark.parametrize(("src_ext", "dst_type"), [("yaml", "json"), ("json", "yaml")])
def test_format_conversion_readable_by_sops(
    src_ext: str, dst_type: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    text = "a: x\nb:\n  c: [1, y]\n" if src_ext == "yaml" else '{"a": "x", "b": {"c": [1, "y"]}}'
    src = tmp_path / f"in.{src_ext}"
    src.write_text(text)
    enc = secretops("encrypt", "--age", age_key.recipient, "--output-type", dst_type, str(src))
    assert enc.code == 0, enc.err
    f = tmp_path / f"out.{dst_type}"
    f.write_bytes(enc.out)
    r = sops(sops_bin, "decrypt", str(f))
    assert r.code == 0, r.err
    assert data_of(r.out, dst_type) == data_of(src.read_bytes(), src_ext)


SELECTION_INPUTS = {
    "json": ("json", '{"data": {"password": "p", "user_plain": "u"}, "kind": "Secret",'
                     ' "keyword": "k"}'),
    "dotenv": ("env", "# comment\nDB_PASSWORD=p\nPUBLIC_URL=https://x\nkeyword=k\n"),
    "ini": ("ini", "[data]\npassword = p\nuser_plain = u\n[public]\nkeyword = k\n"),
}
SELECTION_FLAGS = {
    "encrypted-regex": ["--encrypted-regex", "^(data|DB_PASSWORD|password)$"],
    "unencrypted-regex": ["--unencrypted-regex", "^(kind|PUBLIC_URL|public)$"],
    "encrypted-suffix": ["--encrypted-suffix", "word"],
    "unencrypted-suffix": ["--unencrypted-suffix", "_plain"],
}


@pytest.mark.parametrize("fmt", sorted(SELECTION_INPUTS))
@pytest.mark.parametrize("selection", sorted(SELECTION_FLAGS))
def test_selection_options_both_ways(
    fmt: str, selection: str, tmp_path: Path, age_key: AgeKey, sops_bin: str
) -> None:
    ext, text = SELECTION_INPUTS[fmt]
    src = tmp_path / f"in.{ext}"
    src.write_text(text)
    flags = SELECTION_FLAGS[selection]
    ours = secretops("encrypt", "--age", age_key.recipient, *flags, str(src))
    theirs = sops(sops_bin, "encrypt", "--age", age_key.recipient, *flags, str(src))
    assert ours.code == theirs.code == 0, (ours.err, theirs.err)

    def clear_lines(out: bytes) -> list[str]:
        """The lines (minus metadata) left in clear: the same for both tools."""
        data = out.decode().split("[sops]")[0]  # INI keeps its metadata in a [sops] section
        return sorted(ln for ln in data.splitlines()
                      if "ENC[" not in ln and not ln.startswith("sops") and ln.strip())

    if fmt != "json":
        assert clear_lines(ours.out) == clear_lines(theirs.out)
    for produced in (ours.out, theirs.out):
        f = tmp_path / f"x.enc.{ext}"
        f.write_bytes(produced)
        a = secretops("decrypt", str(f))
        b = sops(sops_bin, "decrypt", str(f))
        assert a.code == b.code == 0, (a.err, b.err)
        assert a.out == b.out
