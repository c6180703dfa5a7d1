"""AWS KMS keys against moto: sops interop both ways, roles, profiles, contexts and failures.

Every test talks to the session's moto server on 127.0.0.1 (``tests/fixtures/moto.py``); the
sops binary reads the same ``AWS_ENDPOINT_URL``. Failures must exit quickly with one clear line
naming the key, and the canary plaintext must never show up on stderr.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretops.core.metadata import KEY_FIELDS
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import awskms
from tests.fixtures.moto import AwsKms, free_port
from tests.helpers import CANARY, AgeKey, Result, secretops, sops

TEXT = f"db:\n    password: {CANARY}\n    user: admin\n"
ROLE_PREFIX = "arn:aws:iam::123456789012:role/"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    f = tmp_path / "secret.yaml"
    f.write_text(TEXT)
    return f


def _kms_entries(text: str) -> list[dict[str, Any]]:
    """The ``kms`` entries of an encrypted YAML file, in file order, fields in file order."""
    meta = yaml.safe_load(text)["sops"]
    if "key_groups" in meta:
        return [e for g in meta["key_groups"] for e in g.get("kms") or []]
    return list(meta["kms"])


def _ok(r: Result) -> Result:
    assert r.code == 0, r.err
    assert CANARY not in r.err
    return r


def _encrypt(*args: str) -> str:
    return _ok(secretops("encrypt", *args)).text


def _decrypts_with_both(path: Path, sops_bin: str) -> None:
    assert _ok(secretops("decrypt", str(path))).text == TEXT
    assert yaml.safe_load(_ok(sops(sops_bin, "decrypt", str(path))).out) == yaml.safe_load(TEXT)


def _failed(r: Result, code: int = ExitCode.COULD_NOT_RETRIEVE_KEY) -> str:
    assert r.code == code, (r.code, r.err)
    assert CANARY not in r.err and CANARY.encode() not in r.out
    assert "Traceback" not in r.err
    return r.err


# --- the module on its own -------------------------------------------------------------------


def test_region_comes_from_the_arn_for_keys_and_aliases() -> None:
    assert awskms.region_of("arn:aws:kms:eu-west-3:111122223333:key/abc") == "eu-west-3"
    assert awskms.region_of("arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/a") == (
        "us-gov-west-1")
    for bad in ("arn:aws:kms:eu-west-3:key/abc", "arn:aws:iam::111122223333:role/r", "abc"):
        with pytest.raises(SecretOpsError) as e:
            awskms.region_of(bad)
        assert e.value.code == ExitCode.INVALID_KEY and bad in e.value.message


def test_clients_have_bounded_timeouts_and_are_cached(aws_kms: AwsKms) -> None:
    env = {"AWS_ENDPOINT_URL": aws_kms.url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    a = awskms._client("eu-west-1", "", "", env)
    assert awskms._client("eu-west-1", "", "", dict(env)) is a
    assert awskms._client("eu-west-2", "", "", env) is not a
    cfg: Any = a.meta.config
    assert (cfg.connect_timeout, cfg.read_timeout) == (awskms.CONNECT_TIMEOUT,
                                                       awskms.READ_TIMEOUT)
    assert cfg.retries["total_max_attempts"] == awskms.MAX_ATTEMPTS
    assert a.meta.region_name == "eu-west-1" and a.meta.endpoint_url == aws_kms.url


def test_wrap_writes_sops_fields_and_unwrap_returns_the_key(aws_kms: AwsKms) -> None:
    arn = aws_kms.arns[0]
    rec = awskms.KmsRecipient(arn, context={"b": "2", "a": "1"}, env=os.environ,
                              clock=lambda: datetime(2026, 11, 23, 10, 0, 0, 123, tzinfo=UTC))
    data_key = os.urandom(32)
    entry = rec.wrap(data_key)
    assert entry.kind == "kms"
    assert tuple(entry.fields) == KEY_FIELDS["kms"]
    assert entry.fields["created_at"] == "2026-11-23T10:00:00Z"
    assert entry.fields["aws_profile"] == "" and entry.fields["role"] == ""
    assert base64.b64decode(entry.enc, validate=True)
    assert awskms.identity(os.environ).unwrap(entry) == data_key
    entry.fields["context"] = {"a": "1"}
    with pytest.raises(awskms.KmsError, match="encryption context does not match"):
        awskms.identity(os.environ).unwrap(entry)


# --- interop with sops -----------------------------------------------------------------------


@pytest.mark.parametrize("context", [None, "app:web,env:prod"])
def test_secretops_encrypts_sops_decrypts(plain: Path, tmp_path: Path, sops_bin: str,
                                          aws_kms: AwsKms, context: str | None) -> None:
    args = ["--kms", aws_kms.arns[0]] + (["--encryption-context", context] if context else [])
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt(*args, str(plain)))
    assert CANARY not in out.read_text()
    (entry,) = _kms_entries(out.read_text())
    assert entry["arn"] == aws_kms.arns[0]
    assert entry.get("context") == ({"app": "web", "env": "prod"} if context else None)
    _decrypts_with_both(out, sops_bin)


@pytest.mark.parametrize("context", [None, "app:web,env:prod"])
def test_sops_encrypts_secretops_decrypts(plain: Path, tmp_path: Path, sops_bin: str,
                                          aws_kms: AwsKms, context: str | None) -> None:
    args = ["--kms", aws_kms.arns[0]] + (["--encryption-context", context] if context else [])
    out = tmp_path / "s.enc.yaml"
    out.write_bytes(_ok(sops(sops_bin, "encrypt", *args, str(plain))).out)
    assert _ok(secretops("decrypt", str(out))).text == TEXT


def test_wrong_encryption_context_fails_clearly(plain: Path, tmp_path: Path, sops_bin: str,
                                               aws_kms: AwsKms) -> None:
    out = tmp_path / "s.enc.yaml"
    for who in ("secretops", "sops"):
        if who == "secretops":
            out.write_text(_encrypt("--kms", aws_kms.arns[0], "--encryption-context",
                                    "env:prod", str(plain)))
        else:
            out.write_bytes(_ok(sops(sops_bin, "encrypt", "--kms", aws_kms.arns[0],
                                     "--encryption-context", "env:prod", str(plain))).out)
        text = out.read_text()
        assert "env: prod" in text
        # The MAC covers values only: changing the context reaches KMS, which must refuse.
        out.write_text(text.replace("env: prod", "env: dev"))
        err = _failed(secretops("decrypt", str(out)))
        assert aws_kms.arns[0] in err
        assert "encryption context does not match" in err
        _failed(sops(sops_bin, "decrypt", str(out)))


def test_role_is_assumed_both_ways(plain: Path, tmp_path: Path, sops_bin: str,
                                   aws_kms: AwsKms) -> None:
    role = aws_kms.create_role("secretops-test-role-a")
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt("--kms", f"{aws_kms.arns[0]}+{role}", str(plain)))
    (entry,) = _kms_entries(out.read_text())
    assert entry["arn"] == aws_kms.arns[0] and entry["role"] == role
    _decrypts_with_both(out, sops_bin)
    with urllib.request.urlopen(f"{aws_kms.url}/moto-api/data.json", timeout=10) as r:
        assumed = json.load(r)["sts"]["AssumedRole"]
    ours = [a for a in assumed if a["role_arn"] == role
            and a["session_name"].startswith("secretops@")]
    assert ours, assumed
    assert len(ours[0]["session_name"]) <= 64

    role_b = aws_kms.create_role("secretops-test-role-b")
    out.write_bytes(_ok(sops(sops_bin, "encrypt", "--kms", f"{aws_kms.arns[1]}+{role_b}",
                             str(plain))).out)
    assert _ok(secretops("decrypt", str(out))).text == TEXT


def test_several_arns_any_one_opens_the_file(plain: Path, tmp_path: Path, sops_bin: str,
                                            aws_kms: AwsKms,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # a key in another region than AWS_DEFAULT_REGION: the region must come from the ARN
    far = aws_kms.create_key("eu-west-1")
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt("--kms", f"{aws_kms.arns[0]}, {far}", str(plain)))
    entries = _kms_entries(out.read_text())
    assert [e["arn"] for e in entries] == [aws_kms.arns[0], far]
    _decrypts_with_both(out, sops_bin)
    # the first entry is damaged: the second one still opens the file
    text = out.read_text().replace(entries[0]["enc"], base64.b64encode(b"x" * 60).decode())
    out.write_text(text)
    _decrypts_with_both(out, sops_bin)
    # and sops's file with several keys opens with secretops when one key is gone
    out.write_bytes(_ok(sops(sops_bin, "encrypt", "--kms", f"{aws_kms.arns[1]},{far}",
                             str(plain))).out)
    assert _ok(secretops("decrypt", str(out))).text == TEXT


def test_alias_arn_both_ways(plain: Path, tmp_path: Path, sops_bin: str,
                             aws_kms: AwsKms) -> None:
    alias = aws_kms.create_alias(aws_kms.arns[0], "secretops-test-alias")
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt("--kms", alias, str(plain)))
    assert [e["arn"] for e in _kms_entries(out.read_text())] == [alias]
    _decrypts_with_both(out, sops_bin)
    out.write_bytes(_ok(sops(sops_bin, "encrypt", "--kms", alias, str(plain))).out)
    assert _ok(secretops("decrypt", str(out))).text == TEXT


def test_sops_yaml_key_groups_with_kms_maps(plain: Path, tmp_path: Path, sops_bin: str,
                                           aws_kms: AwsKms, age_key: AgeKey) -> None:
    role = aws_kms.create_role("secretops-test-role-groups")
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: secret\\.yaml$\n"
        "    key_groups:\n"
        "      - kms:\n"
        f"          - arn: {aws_kms.arns[0]}\n"
        "            context:\n"
        "              app: web\n"
        f"          - arn: {aws_kms.arns[1]}\n"
        f"            role: {role}\n"
        f"      - age:\n          - {age_key.recipient}\n"
    )
    enc = _encrypt(str(plain))
    meta = yaml.safe_load(enc)["sops"]
    assert meta["shamir_threshold"] == 2
    first, second = meta["key_groups"][0]["kms"]
    assert first["arn"] == aws_kms.arns[0] and first["context"] == {"app": "web"}
    assert second["role"] == role and "context" not in second
    out = tmp_path / "s.enc.yaml"
    out.write_text(enc)
    _decrypts_with_both(out, sops_bin)
    # sops, from the same rule, writes a file secretops opens
    out.write_bytes(_ok(sops(sops_bin, "encrypt", "--filename-override", "secret.yaml",
                             str(plain))).out)
    assert _ok(secretops("decrypt", str(out))).text == TEXT


def test_sops_yaml_top_level_kms_string(plain: Path, tmp_path: Path, sops_bin: str,
                                       aws_kms: AwsKms) -> None:
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - kms: '{aws_kms.arns[0]},{aws_kms.arns[1]}'\n")
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt(str(plain)))
    assert [e["arn"] for e in _kms_entries(out.read_text())] == aws_kms.arns
    _decrypts_with_both(out, sops_bin)


def test_aws_profile_both_ways(plain: Path, tmp_path: Path, sops_bin: str, aws_kms: AwsKms,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    aws_kms.write_profile(Path(os.environ["AWS_CONFIG_FILE"]), "dev")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt("--kms", aws_kms.arns[0], "--aws-profile", "dev", str(plain)))
    (entry,) = _kms_entries(out.read_text())
    assert entry["aws_profile"] == "dev"
    _decrypts_with_both(out, sops_bin)
    out.write_bytes(_ok(sops(sops_bin, "encrypt", "--kms", aws_kms.arns[1], "--aws-profile",
                             "dev", str(plain))).out)
    assert _ok(secretops("decrypt", str(out))).text == TEXT
    # a profile that is not configured is named in the error
    out.write_text(out.read_text().replace("aws_profile: dev", "aws_profile: nosuch"))
    err = _failed(secretops("decrypt", str(out)))
    assert "AWS profile not configured" in err and "nosuch" in err and aws_kms.arns[1] in err


def test_updatekeys_adds_and_removes_a_kms_key(plain: Path, tmp_path: Path, sops_bin: str,
                                              aws_kms: AwsKms, age_key: AgeKey,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "secret.yaml"
    out.write_text(_encrypt("--age", age_key.recipient, str(plain)))
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {age_key.recipient}\n    kms: {aws_kms.arns[0]}\n")
    r = _ok(secretops("updatekeys", "--yes", str(out)))
    assert f"+ AWS KMS key {aws_kms.arns[0]}" in r.text
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    _decrypts_with_both(out, sops_bin)  # through KMS alone
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - kms: {aws_kms.arns[1]}\n")
    r = _ok(secretops("updatekeys", "-y", str(out)))
    assert f"- AWS KMS key {aws_kms.arns[0]}" in r.text
    assert [e["arn"] for e in _kms_entries(out.read_text())] == [aws_kms.arns[1]]
    _decrypts_with_both(out, sops_bin)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_metadata_field_order_matches_sops(tmp_path: Path, sops_bin: str, aws_kms: AwsKms,
                                           fmt: str) -> None:
    role = aws_kms.create_role(f"secretops-test-role-order-{fmt}")
    src = tmp_path / f"p.{fmt}"
    src.write_text(f"password: {CANARY}\n" if fmt == "yaml" else f'{{"password": "{CANARY}"}}\n')
    for extra in ([], ["--encryption-context", "b:2,a:1"]):
        for key in (aws_kms.arns[0], f"{aws_kms.arns[0]}+{role}"):
            args = ["--kms", key, *extra, str(src)]
            ours = _ok(secretops("encrypt", *args)).text
            theirs = _ok(sops(sops_bin, "encrypt", *args)).text
            load = yaml.safe_load if fmt == "yaml" else json.loads
            a, b = load(ours)["sops"]["kms"][0], load(theirs)["sops"]["kms"][0]
            assert list(a) == list(b), (key, extra)
            assert list(a.get("context") or {}) == list(b.get("context") or {})
            assert {k: v for k, v in a.items() if k not in ("enc", "created_at")} == {
                k: v for k, v in b.items() if k not in ("enc", "created_at")}


def test_yaml_context_block_is_byte_identical_to_sops(plain: Path, sops_bin: str,
                                                      aws_kms: AwsKms) -> None:
    args = ["--kms", aws_kms.arns[0], "--encryption-context", "b:2,a:1", str(plain)]

    def context_lines(text: str) -> list[str]:
        lines = text.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "context:")
        return lines[start:start + 3]

    assert context_lines(_encrypt(*args)) == context_lines(
        _ok(sops(sops_bin, "encrypt", *args)).text)


# --- failures --------------------------------------------------------------------------------


def test_no_credentials_fails_fast_naming_the_arn(plain: Path, tmp_path: Path,
                                                  aws_kms: AwsKms,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt("--kms", aws_kms.arns[0], str(plain)))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    err = _failed(secretops("decrypt", str(out)))
    assert aws_kms.arns[0] in err and "no AWS credentials were found" in err
    err = _failed(secretops("encrypt", "--kms", aws_kms.arns[1], str(plain)),
                  ExitCode.ERROR_ENCRYPTING_TREE)
    assert aws_kms.arns[1] in err and "no AWS credentials were found" in err
    assert len([ln for ln in err.splitlines() if ln.startswith("secretops: error:")]) == 1


def test_unreachable_endpoint_fails_fast(plain: Path, tmp_path: Path, aws_kms: AwsKms,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "s.enc.yaml"
    out.write_text(_encrypt("--kms", aws_kms.arns[0], str(plain)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    err = _failed(secretops("decrypt", str(out)))
    assert aws_kms.arns[0] in err and "cannot reach AWS" in err
    err = _failed(secretops("encrypt", "--kms", aws_kms.arns[0], str(plain)),
                  ExitCode.ERROR_ENCRYPTING_TREE)
    assert aws_kms.arns[0] in err and "cannot reach AWS" in err


def test_missing_key_and_bad_arn(plain: Path, aws_kms: AwsKms) -> None:
    missing = aws_kms.arns[0].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    err = _failed(secretops("encrypt", "--kms", missing, str(plain)),
                  ExitCode.ERROR_ENCRYPTING_TREE)
    assert missing in err
    err = _failed(secretops("encrypt", "--kms", "arn:aws:kms:nowhere", str(plain)),
                  ExitCode.INVALID_KEY)
    assert "arn:aws:kms:nowhere" in err
