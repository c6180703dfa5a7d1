"""Nesting near sops's limit works both ways; past it, and past the size limits, a clean error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from secretops.limits import MAX_DEPTH
from tests.helpers import AgeKey, secretops, sops

# the top-level mapping counts as one level: 9,999 more is what go-yaml and encoding/json take
NEAR = MAX_DEPTH - 1


def block_map(levels: int) -> str:
    """``levels`` levels in block style (sequences in sequences, a mapping at the bottom), the
    top-level mapping included: 2 bytes a level (block mappings would take a space more at
    each level, 50 MB at the limit)."""
    return "a:\n" + "- " * (levels - 2) + "b: x\n"


def block_seq(levels: int) -> str:
    return "a:\n" + "- " * (levels - 1) + "x\n"


def flow_yaml(levels: int) -> str:
    return "a: " + "{b: " * levels + "x" + "}" * levels + "\n"


def deep_json(levels: int) -> str:
    return '{"a": ' + '{"b": ' * levels + '"x"' + "}" * levels + "}\n"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt,text", [("yaml", block_map(MAX_DEPTH)),
                                      ("yaml", block_seq(MAX_DEPTH)),
                                      ("json", deep_json(NEAR))], ids=["map", "seq", "json"])
def test_near_the_limit_round_trips_with_sops(fmt: str, text: str, sops_bin: str,
                                              age_key: AgeKey, tmp_path: Path) -> None:
    plain = tmp_path / f"deep.{fmt}"
    plain.write_text(text)
    ours = secretops("encrypt", "--age", age_key.recipient, str(plain))
    assert ours.code == 0, ours.err
    enc = tmp_path / f"ours.enc.{fmt}"
    enc.write_bytes(ours.out)
    theirs = sops(sops_bin, "decrypt", str(enc))
    back = secretops("decrypt", str(enc))
    assert theirs.code == 0 and back.code == 0, (theirs.err, back.err)
    if fmt == "yaml":
        assert back.out == plain.read_bytes()  # the layout is kept
    # sops re-emits block style: the deepest value, 9,999 levels in, is still there
    if fmt == "yaml":
        assert theirs.out.rstrip().endswith((b"b: x", b"- x")), theirs.out[-40:]
    else:
        assert b'"b": "x"' in theirs.out
    if fmt == "json":
        # sops's JSON is indented a tab per level (a ~100 MB file this deep): one made with
        # indent 0 (newlines only), which sops writes and reads, is read the same way
        (tmp_path / ".sops.yaml").write_text("stores:\n  json:\n    indent: 0\n")
        made = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(plain))
        assert made.code == 0, made.err
        (tmp_path / "sops.enc.json").write_bytes(made.out)
        read = secretops("decrypt", str(tmp_path / "sops.enc.json"))
        again = sops(sops_bin, "decrypt", str(tmp_path / "sops.enc.json"))
        assert read.code == 0 and again.code == 0, read.err
        assert re.sub(rb"\s", b"", read.out) == re.sub(rb"\s", b"", again.out)
    r = secretops("check", str(enc))
    assert r.code == 0, r.err


@pytest.mark.parametrize("fmt,text", [("yaml", block_map(MAX_DEPTH + 1)),
                                      ("yaml", block_seq(MAX_DEPTH + 1)),
                                      ("json", deep_json(MAX_DEPTH))], ids=["map", "seq", "json"])
def test_past_the_limit_is_a_clean_error(fmt: str, text: str, age_key: AgeKey,
                                         tmp_path: Path) -> None:
    plain = tmp_path / f"deep.{fmt}"
    plain.write_text(text)
    r = secretops("encrypt", "--age", age_key.recipient, str(plain))
    assert r.code == 150 and not r.out
    assert re.match(rf"secretops: error: {re.escape(str(plain))}: (line \d: )?nested more than "
                    "10,000 levels deep", r.err), r.err


def test_past_the_limit_in_an_encrypted_file_and_in_check(tmp_path: Path) -> None:
    enc = tmp_path / "deep.enc.yaml"
    enc.write_text("apiVersion: v1\nkind: Secret\nx:\n" + "- " * MAX_DEPTH
                   + "1\nsops:\n  version: 3.11.0\n")
    for args in (("decrypt", str(enc)), ("check", str(enc))):
        r = secretops(*args)
        assert r.code == 150 and "nested more than" in r.err and "Traceback" not in r.err


def test_sops_made_deep_files_read(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    """~490 levels raised RecursionError; 1,000+ hit libyaml's own nesting limit. sops's YAML
    output is block style, 4 spaces a level: at 1,500 levels that is ~4.5 MB."""
    for levels in (490, 1500):
        for fmt, text in (("yaml", flow_yaml(levels)), ("json", deep_json(levels))):
            plain = tmp_path / f"d{levels}.{fmt}"
            plain.write_text(text)
            made = sops(sops_bin, "encrypt", "--age", age_key.recipient, str(plain))
            assert made.code == 0, made.err
            (tmp_path / f"e{levels}.{fmt}").write_bytes(made.out)
            d = secretops("decrypt", str(tmp_path / f"e{levels}.{fmt}"))
            s = sops(sops_bin, "decrypt", str(tmp_path / f"e{levels}.{fmt}"))
            assert d.code == 0 and d.out == s.out, d.err


def test_input_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   age_key: AgeKey) -> None:
    from secretops import limits
    from secretops.fileio import read_input
    from secretops.limits import LimitError

    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: b\n" * 1000)
    monkeypatch.setattr(limits, "MAX_INPUT_BYTES", 4096)
    with pytest.raises(LimitError, match="over the limit of 4,096 bytes") as e:
        read_input(str(big))
    assert e.value.file == str(big) and e.value.code == 150
    from secretops.stores import get_store

    for fmt in ("yaml", "json", "dotenv", "ini", "binary"):
        with pytest.raises(LimitError):
            get_store(fmt).load(b" " * 5000)


def test_config_over_its_size_limit(tmp_path: Path) -> None:
    from secretops.limits import MAX_CONFIG_BYTES

    (tmp_path / ".sops.yaml").write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    (tmp_path / "a.yaml").write_text("a: b\n")
    for args in (("encrypt", "a.yaml"), ("check", "a.yaml")):
        r = secretops(*args, cwd=tmp_path)
        assert r.code == 5 and "over the limit of 1,048,576 bytes" in r.err, r.err


def test_limits_table_in_security_doc() -> None:
    from secretops import limits

    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    section = doc[doc.index("## Limits on input"):]
    assert doc.rstrip().endswith(section.rstrip())  # the last section
    for value in (limits.MAX_INPUT_BYTES, limits.MAX_CONFIG_BYTES, limits.MAX_DEPTH,
                  limits.MAX_FILE_LIST_BYTES, limits.MAX_FILES,
                  limits.MAX_NODES, limits.MAX_DOCUMENTS, limits.MAX_FLOW_STEPS):
        assert f"{value:,}" in section
    assert f"| JSON indentation | {limits.MAX_INDENT} spaces per level |" in section
    assert "400,000" in section and "4,000,000" in section


def test_a_planted_json_indent_is_refused(tmp_path: Path, age_key: AgeKey) -> None:
    """A .sops.yaml asking for 100,000,000 spaces a level: exit 4 before anything is written
    (sops would write ~100 MB per line of a small file)."""
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {age_key.recipient}\nstores:\n  json:\n"
        "    indent: 100000000\n  json_binary:\n    indent: 100000000\n")
    (tmp_path / "s.json").write_text('{"a": {"b": "c"}}')
    (tmp_path / "s.bin").write_text("data\n")
    for args in (("encrypt", "s.json"), ("encrypt", "s.bin")):
        r = secretops(*args, cwd=tmp_path)
        assert r.code == 4 and r.out == b"", r.err
        assert "over the limit of 64" in r.err


def _json_load(data: bytes) -> None:
    from secretops.stores import get_store

    get_store("json").load(data)


def test_deep_json_is_measured_in_linear_time(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # past Python's recursion limit the depth is measured with the strings taken out; a regular
    # expression that backtracked from every quote of "\"\"\… to the end took minutes on this
    from tests.fuzz.harness import Target, run_input

    monkeypatch.setenv("SECRETOPS_FUZZ_SAVE_DIR", str(tmp_path))
    text = b'{"a": ' + b"[" * 2000 + b'"\\' * 1_000_000
    assert run_input(Target("json-depth", _json_load), text, time_limit=60).startswith(
        "FormatError")
