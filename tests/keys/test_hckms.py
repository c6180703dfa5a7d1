"""HuaweiCloud KMS keys against the KMS stand-in (``tests/fixtures/hckms_server.py``) and the
real sops binary: the signature (two vectors made by HuaweiCloud's own Go SDK), the entry's
shape, interop both ways, flags, variables, ``.sops.yaml``, credentials and endpoints, and
failures that are one typed line holding neither the canary nor a credential.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from secretops.core.metadata import KEY_FIELDS, KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import hckms as hc
from tests.compat.sidebyside import assert_same, run_both
from tests.fixtures.hckms import HuaweiKms, free_port
from tests.helpers import CANARY, AgeKey, assert_no_canary, run, secretops, sops

TEXT = f"password: {CANARY}\nuser: admin\n"
HUAWEI_VARS = ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID")


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    return f


def _entries(text: bytes) -> list[dict[str, str]]:
    return list(yaml.safe_load(text)["sops"]["hckms"])


# -- the signature ------------------------------------------------------------------------------

def test_signature_matches_the_sdk_test_vector() -> None:
    """huaweicloud-sdk-go-v3 core/auth/signer/signer_test.go, case test1."""
    got = hc.sign("GET", "https://example.huaweicloud.com/path?limit=1",
                     {"X-Sdk-Date": "20060102T150405Z"}, b"", "AccessKey", "SecretKey")
    assert got == ("SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, "
                   "Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624")


def test_signature_matches_what_the_sops_binary_sent() -> None:
    """A request the sops 3.11 binary made (recorded at a listener; a throwaway data key)."""
    agent = ("huaweicloud-usdk-go/3.0; os/Debian_GNU/Linux#12_(bookworm)#amd64 go/go1.25.7; "
             "app/c4706844-4bb6-4117-a6a2-4960170b0dd9")
    body = (b'{"key_id":"1234-abcd","plain_text":"onNM43psl+D132GWWetdYWSok89hcUm7py1RwXxvKGg="'
            b',"encryption_algorithm":"SYMMETRIC_DEFAULT"}\n')
    got = hc.sign("POST", "http://127.0.0.1:18777/v1.0/proj1/kms/encrypt-data",
                     {"User-Agent": agent, "X-Project-Id": "proj1",
                      "X-Sdk-Date": "20261207T143040Z"}, body, "AKTEST", "SKTEST")
    assert got.endswith("SignedHeaders=user-agent;x-project-id;x-sdk-date, Signature="
                        "5f5520627f08eeb76ffafc9d6ad88aa2477ff5db434170150d966e687eef0012")


# -- wrap, unwrap, interop ----------------------------------------------------------------------

def test_wrap_writes_sops_fields_and_unwrap_returns_the_key(hckms: HuaweiKms) -> None:
    env = dict(os.environ)
    when = datetime.now(UTC).replace(microsecond=0)  # also X-Sdk-Date: it must be now
    entry = hc.HuaweiKmsRecipient(hckms.key_ids[0], env, clock=lambda: when).wrap(b"k" * 32)
    assert tuple(entry.fields) == KEY_FIELDS["hckms"]
    assert entry.fields["key_id"] == hckms.key_ids[0]
    assert entry.fields["created_at"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert hc.HuaweiKmsIdentity(env).unwrap(entry) == b"k" * 32
    other = KeyEntry("hckms", {**entry.fields, "key_id": hckms.key_ids[1]})
    with pytest.raises(hc.HuaweiKmsError, match=r"refused the request \(400 KMS\.0206\)"):
        hc.HuaweiKmsIdentity(env).unwrap(other)


def test_interop_with_sops_both_ways(plain: Path, tmp_path: Path, hckms: HuaweiKms,
                                     sops_bin: str) -> None:
    """Each writes a file for two HuaweiCloud keys in two regions (no other key); the other
    opens it through the stand-in; the entries have the same fields in the same order."""
    keys = f"{hckms.key_ids[0]},{hckms.key_ids[2]}"
    ours, theirs = tmp_path / "ours.yaml", tmp_path / "theirs.yaml"
    made = secretops("encrypt", "--hckms", keys, str(plain))
    assert made.code == 0, made.err
    ours.write_bytes(made.out)
    made = sops(sops_bin, "encrypt", "--hckms", keys, str(plain))
    assert made.code == 0, made.err
    theirs.write_bytes(made.out)
    assert [list(e) for e in _entries(ours.read_bytes())] == \
        [list(e) for e in _entries(theirs.read_bytes())]
    assert [e["key_id"] for e in _entries(ours.read_bytes())] == keys.split(",")
    by_sops = sops(sops_bin, "decrypt", str(ours))
    assert by_sops.code == 0 and CANARY.encode() in by_sops.out, by_sops.err
    by_us = secretops("decrypt", str(theirs))
    assert by_us.code == 0 and CANARY.encode() in by_us.out, by_us.err


@pytest.mark.parametrize("argv", [
    ["encrypt", "s.yaml"],  # SOPS_HUAWEICLOUD_KMS_IDS
    ["-e", "s.yaml"],  # the global form
    ["-e", "--hckms", "KEYS", "s.yaml"],
    ["encrypt", "--hckms", "KEYS", "s.yaml"],
])
def test_flag_and_variable_side_by_side(hckms: HuaweiKms, tmp_path: Path, sops_bin: str,
                                        argv: list[str]) -> None:
    keys = f"{hckms.key_ids[0]}, {hckms.key_ids[1]}"
    env = dict(os.environ, SOPS_HUAWEICLOUD_KMS_IDS=keys)
    pair = run_both(sops_bin, [keys if a == "KEYS" else a for a in argv], {"s.yaml": TEXT},
                    tmp_path, env=env)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="decrypted")
    for side in (pair.sops, pair.ours):
        assert [e["key_id"] for e in _entries(side.out)] == hckms.key_ids[:2]


def test_rotate_add_and_remove_side_by_side(hckms: HuaweiKms, tmp_path: Path, sops_bin: str,
                                            age_key: AgeKey) -> None:
    enc = sops(sops_bin, "encrypt", "--hckms", ",".join(hckms.key_ids[:2]), "--age",
               age_key.recipient, str(_write(tmp_path, "s.yaml", TEXT)))
    assert enc.code == 0, enc.err
    for argv in (["rotate", "-i", "--add-hckms", hckms.key_ids[2], "s.enc.yaml"],
                 ["-r", "-i", "--rm-hckms", hckms.key_ids[0], "s.enc.yaml"]):
        pair = run_both(sops_bin, argv, {"s.enc.yaml": enc.out}, tmp_path)
        assert pair.sops.ok, pair
        assert_same(pair, files="decrypted")
        ids = [[e["key_id"] for e in _entries(side.files["s.enc.yaml"])]
               for side in (pair.sops, pair.ours)]
        assert ids[0] == ids[1] and len(ids[0]) == (3 if "--add-hckms" in argv else 1), ids


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_sops_yaml_rules_and_key_groups(plain: Path, tmp_path: Path, hckms: HuaweiKms,
                                        age_key: AgeKey, sops_bin: str) -> None:
    config = tmp_path / ".sops.yaml"
    config.write_text(yaml.safe_dump({"creation_rules": [{"key_groups": [
        {"hckms": [{"key_id": hckms.key_ids[0]}]}, {"age": [age_key.recipient]}]}]}))
    ours = secretops("encrypt", str(plain), cwd=tmp_path)
    theirs = sops(sops_bin, "encrypt", str(plain), cwd=tmp_path)
    assert ours.code == 0 and theirs.code == 0, (ours.err, theirs.err)
    for out in (ours.out, theirs.out):
        group = yaml.safe_load(out)["sops"]["key_groups"][0]
        assert list(group) == ["hckms", "hc_vault", "age"]  # sops's order in a group
        assert [e["key_id"] for e in group["hckms"]] == [hckms.key_ids[0]]
    config.write_text(yaml.safe_dump({"creation_rules": [{"hckms": [hckms.key_ids[1]]}]}))
    for out in (secretops("encrypt", str(plain), cwd=tmp_path).out,
                sops(sops_bin, "encrypt", str(plain), cwd=tmp_path).out):
        assert [e["key_id"] for e in _entries(out)] == [hckms.key_ids[1]]


# -- credentials and endpoints ------------------------------------------------------------------

def test_the_sdk_credentials_file_is_read(plain: Path, tmp_path: Path, hckms: HuaweiKms,
                                          monkeypatch: pytest.MonkeyPatch,
                                          sops_bin: str) -> None:
    server = hckms.server
    for name in HUAWEI_VARS:
        monkeypatch.delenv(name)
    folder = Path(os.environ["HOME"]) / ".huaweicloud"
    folder.mkdir()
    (folder / "credentials").write_text(f"[basic]\nak = {server.ak}\nsk = {server.sk}\n"
                                        f"project_id = {server.project}\n")
    ours = secretops("encrypt", "--hckms", hckms.key_ids[0], str(plain))
    assert ours.code == 0, ours.err
    enc = _write(tmp_path, "s.enc.yaml", ours.out.decode())
    by_sops = sops(sops_bin, "decrypt", str(enc))  # the SDK reads the same file
    assert by_sops.code == 0 and CANARY.encode() in by_sops.out, by_sops.err


def test_the_sdk_regions_file_names_the_endpoint(plain: Path, tmp_path: Path, hckms: HuaweiKms,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 sops_bin: str) -> None:
    """A region of the regions file only (in no table, so nothing else could be asked):
    secretops encrypts through the file's endpoint, and the sops binary's SDK reads the same
    file to decrypt."""
    key = "xx-test-9:" + hckms.key_ids[0].split(":", 1)[1]
    regions = tmp_path / "regions.yaml"
    regions.write_text(yaml.safe_dump({"KMS": [{"id": "xx-test-9",
                                                "endpoint": hckms.server.url}]}))
    refused = secretops("encrypt", "--hckms", key, str(plain))
    assert refused.code == ExitCode.ERROR_ENCRYPTING_TREE, refused.err
    assert "HUAWEICLOUD_SDK_REGION_KMS_XX_TEST_9" in refused.err
    monkeypatch.setenv("HUAWEICLOUD_SDK_REGIONS_FILE", str(regions))
    r = secretops("encrypt", "--hckms", key, str(plain))
    assert r.code == 0, r.err
    enc = _write(tmp_path, "s.enc.yaml", r.out.decode())
    by_sops = sops(sops_bin, "decrypt", str(enc))
    assert by_sops.code == 0 and CANARY.encode() in by_sops.out, by_sops.err


def test_endpoints_are_found_as_the_sdk_finds_them() -> None:
    assert hc.endpoint("tr-west-1", {}) == "https://kms.tr-west-1.myhuaweicloud.com"
    assert hc.endpoint("eu-west-101", {}) == "https://kms.eu-west-101.myhuaweicloud.eu"
    env = {"HUAWEICLOUD_SDK_REGION_KMS_CN_NORTH_4": "https://a.example:8443,https://b.example"}
    assert hc.endpoint("cn-north-4", env) == "https://a.example:8443"
    with pytest.raises(hc.HuaweiKmsError, match="HUAWEICLOUD_SDK_REGION_KMS_MARS_1"):
        hc.endpoint("mars-1", {})
    with pytest.raises(hc.HuaweiKmsError, match="not an http"):
        hc.endpoint("cn-north-4", {"HUAWEICLOUD_SDK_REGION_KMS_CN_NORTH_4": "ftp://x"})


def test_failures_are_typed_one_line_errors(plain: Path, hckms: HuaweiKms) -> None:
    server = hckms.server
    made = secretops("encrypt", "--hckms", hckms.key_ids[0], str(plain))
    assert made.code == 0, made.err
    enc = _write(plain.parent, "s.enc.yaml", made.out.decode())
    base = {k: v for k, v in os.environ.items() if k not in HUAWEI_VARS}
    ok = {"HUAWEICLOUD_SDK_AK": server.ak, "HUAWEICLOUD_SDK_PROJECT_ID": server.project}
    cases = {
        "denied access (403 KMS.0303)": {**ok, "HUAWEICLOUD_SDK_AK": server.denied_ak,
                                         "HUAWEICLOUD_SDK_SK": server.denied_sk},
        "rejected the request's signature or credentials (401 APIGW.0301)":
            {**ok, "HUAWEICLOUD_SDK_SK": server.denied_sk},
        "no HuaweiCloud credentials were found": {},
        "no HuaweiCloud project ID": {"HUAWEICLOUD_SDK_AK": server.ak,
                                      "HUAWEICLOUD_SDK_SK": server.sk},
        "does not exist in tr-west-1 (404 KMS.0201)":
            {**ok, "HUAWEICLOUD_SDK_SK": server.sk, "HUAWEICLOUD_SDK_PROJECT_ID": "other"},
    }
    for what, env in cases.items():
        r = run([sys.executable, "-m", "secretops", "decrypt", str(enc)], env={**base, **env})
        assert r.code == ExitCode.COULD_NOT_RETRIEVE_KEY, (what, r.err)
        assert what in r.err and "Traceback" not in r.err, r.err
        assert f"HuaweiCloud KMS key {hckms.key_ids[0]}" in r.err
        for secret in (server.sk, server.denied_sk):
            assert secret not in r.err
        assert_no_canary(r.err, "stderr")
    env = dict(os.environ, HUAWEICLOUD_SDK_REGION_KMS_TR_WEST_1=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SecretOpsError, match="cannot reach HuaweiCloud KMS in tr-west-1") as e:
        hc.HuaweiKmsRecipient(hckms.key_ids[0], env).wrap(b"k" * 32)
    assert e.value.code == ExitCode.ERROR_ENCRYPTING_TREE
    absent = hckms.key_ids[0].split(":")[0] + ":00000000-0000-0000-0000-000000000000"
    with pytest.raises(SecretOpsError, match=r"does not exist in tr-west-1 \(404 KMS\.0207\)"):
        hc.HuaweiKmsRecipient(absent, dict(os.environ)).wrap(b"k" * 32)


@pytest.mark.parametrize("bad", ["no-colon", ":uuid", "tr-west-1:", " : "])
def test_malformed_key_ids_are_refused_before_any_call(plain: Path, bad: str,
                                                       sops_bin: str) -> None:
    r = secretops("encrypt", "--hckms", bad, str(plain))
    assert r.code == ExitCode.INVALID_KEY and "invalid HuaweiCloud KMS key ID" in r.err, r.err
    theirs = sops(sops_bin, "encrypt", "--hckms", bad, str(plain))
    assert theirs.code != 0 and theirs.out == b""  # sops refuses it too
