""".sops.yaml: discovery, creation rules, per-rule keys and options, stores indent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import AgeKey, make_age_key, secretops, sops


def _meta(text: str, field: str) -> str | None:
    for line in text.splitlines():
        if line.strip().startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def test_rule_found_by_walking_up_from_the_file(tmp_path: Path, age_key: AgeKey) -> None:
    repo = tmp_path / "repo"
    deep = repo / "apps" / "prod"
    deep.mkdir(parents=True)
    (repo / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: ^apps/prod/.*\\.yaml$\n"
        "    encrypted_regex: ^(data|stringData)$\n"
        f"    age: {age_key.recipient}\n"
        "  - path_regex: .*\n"
        "    age: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n"
    )
    f = deep / "secret.yaml"
    f.write_text("kind: Secret\nstringData:\n  password: p\n")
    r = secretops("encrypt", str(f), cwd=tmp_path)  # run from outside the repo
    assert r.code == 0, r.err
    assert _meta(r.text, "encrypted_regex") == "^(data|stringData)$"
    assert "kind: Secret" in r.text  # not selected, left in clear
    assert age_key.recipient in r.text


def test_first_matching_rule_wins_and_regex_is_relative(tmp_path: Path) -> None:
    a, b = make_age_key(tmp_path, "a.txt"), make_age_key(tmp_path, "b.txt")
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        f"  - path_regex: ^dev/\n    age: {a.recipient}\n"
        f"  - path_regex: \\.yaml$\n    age: {b.recipient}\n"
    )
    (tmp_path / "dev").mkdir()
    for name, expected in (("dev/x.yaml", a), ("prod.yaml", b)):
        f = tmp_path / name
        f.write_text("k: v\n")
        r = secretops("encrypt", str(f))
        assert r.code == 0, r.err
        assert expected.recipient in r.text, name


def test_no_matching_rule_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".sops.yaml").write_text("creation_rules:\n  - path_regex: ^never$\n    age: x\n")
    f = tmp_path / "s.yaml"
    f.write_text("k: v\n")
    r = secretops("encrypt", str(f))
    assert r.code == 5 and "no creation rule matches s.yaml" in r.err


def test_command_line_keys_override_the_rule(tmp_path: Path) -> None:
    a, b = make_age_key(tmp_path, "a.txt"), make_age_key(tmp_path, "b.txt")
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {a.recipient}\n")
    f = tmp_path / "s.yaml"
    f.write_text("k: v\n")
    r = secretops("encrypt", "--age", b.recipient, str(f))
    assert b.recipient in r.text and a.recipient not in r.text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_explicit_config(tmp_path: Path, age_key: AgeKey, how: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "elsewhere" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text(f"creation_rules:\n  - unencrypted_suffix: _pub\n    age: {age_key.recipient}\n")
    f = tmp_path / "s.yaml"
    f.write_text("k_pub: visible\nk: hidden\n")
    args = ["encrypt", str(f)]
    if how == "flag":
        args[1:1] = ["--config", str(cfg)]
    else:
        monkeypatch.setenv("SOPS_CONFIG", str(cfg))
    r = secretops(*args)
    assert r.code == 0, r.err
    assert "k_pub: visible" in r.text and "k: ENC[" in r.text


def test_missing_explicit_config(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("k: v\n")
    r = secretops("encrypt", "--config", str(tmp_path / "nope.yaml"), str(f))
    assert r.code == 61


def test_key_groups_and_shamir_from_config_interoperate(
    tmp_path: Path, sops_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [make_age_key(tmp_path, f"k{i}.txt") for i in range(3)]
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        + "".join(f"      - age:\n          - {k.recipient}\n" for k in keys)
    )
    src = tmp_path / "s.yaml"
    src.write_text("password: p\n")
    ours = secretops("encrypt", str(src))
    assert ours.code == 0, ours.err
    assert _meta(ours.text, "shamir_threshold") == "2"
    theirs = sops(sops_bin, "encrypt", str(src), cwd=tmp_path)
    assert theirs.code == 0, theirs.err
    for produced in (ours.out, theirs.out):
        f = tmp_path / "g.enc.yaml"
        f.write_bytes(produced)
        for pair in ((0, 1), (1, 2), (0, 2)):
            both = tmp_path / "both.txt"
            both.write_text("".join(keys[i].path.read_text() for i in pair))
            monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(both))
            assert secretops("decrypt", str(f)).text == "password: p\n", pair
            assert sops(sops_bin, "decrypt", str(f)).text == "password: p\n", pair
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(keys[0].path))
        one = secretops("decrypt", str(f))
        assert one.code == 128 and "key groups" in one.err


def test_keep_layout_applies_the_indent_to_emitted_parts_only(tmp_path: Path,
                                                              age_key: AgeKey) -> None:
    """``secretops: keep_layout: true``; without it the whole file is indented as sops would
    (tests/compat/test_indent.py)."""
    (tmp_path / ".sops.yaml").write_text(
        f"stores:\n  yaml:\n    indent: 2\ncreation_rules:\n  - age: {age_key.recipient}\n"
        "secretops:\n  keep_layout: true\n"
    )
    f = tmp_path / "s.yaml"
    f.write_text("a:\n    b: four-space file\n")
    r = secretops("encrypt", str(f))
    assert r.code == 0, r.err
    assert "    b: ENC[" in r.text  # the file keeps its own layout
    assert "\n  age:\n    - recipient:" in r.text  # the sops block uses the configured indent


def test_kms_context_values_are_the_text_as_written(tmp_path: Path) -> None:
    """go-yaml gives sops the scalars' text: true stays 'true', 0x10 stays '0x10'."""
    from secretops.config import load_config
    from secretops.errors import SecretOpsError

    arn = "arn:aws:kms:us-east-1:123456789012:key/k"
    cfg = tmp_path / ".sops.yaml"
    cfg.write_text("creation_rules:\n  - key_groups:\n      - kms:\n"
                   f"          - arn: {arn}\n"
                   "            context: {flag: true, b1: yes, h: 0x10, o: 010, s: plain}\n")
    rule = load_config(cfg).rule_for(str(tmp_path / "x.yaml"))
    assert rule is not None
    (rule_group,) = rule.groups
    assert rule_group[0].fields["context"] == {"flag": "true", "b1": "yes", "h": "0x10",
                                               "o": "010", "s": "plain"}
    cfg.write_text(cfg.read_text().replace("s: plain", "t: ~"))
    with pytest.raises(SecretOpsError, match=r"context\.t has no value"):
        load_config(cfg)


@pytest.mark.parametrize("rules", ["5", "{a: 1}", "[5, {key_groups: 3}, {key_groups: [7]}]"])
def test_malformed_rules_are_a_config_error_not_a_crash(tmp_path: Path, rules: str) -> None:
    """Reading KMS contexts as written must not trip over rules that are not lists or maps."""
    from secretops.config import load_config
    from secretops.errors import SecretOpsError

    cfg = tmp_path / ".sops.yaml"
    cfg.write_text(f"creation_rules: {rules}\n")
    with pytest.raises(SecretOpsError):
        load_config(cfg).rule_for(str(tmp_path / "x.yaml"))


def test_a_config_is_parsed_once_per_process_until_it_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A many-file run applies one .sops.yaml to every file: it is read and checked once
    (the real parser runs; it is only counted), and read again once it changes."""
    from secretops import config, yamlload

    parsed: list[str] = []
    real = yamlload.load

    def counting(raw: bytes, name: str, **kw: object) -> object:
        parsed.append(name)
        return real(raw, name, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(yamlload, "load", counting)
    cfg = tmp_path / ".sops.yaml"
    cfg.write_text("creation_rules:\n  - path_regex: a\n    age: x\n")
    first = [config.load_config(cfg).rules() for _ in range(3)]
    assert len(parsed) == 1 and first[0] == [{"path_regex": "a", "age": "x"}]
    cfg.write_text("creation_rules:\n  - path_regex: bb\n    age: y\n")
    assert config.load_config(cfg).rules() == [{"path_regex": "bb", "age": "y"}]
    assert len(parsed) == 2
    cfg.write_text("creation_rules: [1]\n")  # refused, and refused again: never kept
    for _ in range(2):
        with pytest.raises(config.ConfigError):
            config.load_config(cfg)
    assert len(parsed) == 4
    # content from the git index is never taken from (or put in) the cache
    assert config.load_config(cfg, b"creation_rules: []\n").rules() == []
