"""GCP KMS, Azure Key Vault and HuaweiCloud KMS entries in files sops wrote keep sops's exact
bytes through secretops's ``updatekeys``, ``set``, ``edit`` and ``rotate``, and sops reads every
result.

Azure: the real sops binary writes the file against the Key Vault stand-in (it reaches the
vault at the URL in the key, trusts the session CA through ``SSL_CERT_FILE`` and gets its token
from the managed-identity endpoint). HuaweiCloud: the sops binary writes it against the KMS
stand-in (``HUAWEICLOUD_SDK_REGION_KMS_<REGION>`` names its endpoint, requests signed with the
test's AK/SK). GCP: sops 3.11 reaches Cloud KMS only at
``cloudkms.googleapis.com`` over gRPC and has no endpoint setting, so secretops writes the file
(for the GCP key and an age key), and sops rewrites it with ``sops set``: what follows is the
bytes sops's own emitter gives the ``gcp_kms`` block, which must equal what secretops wrote.
sops runs there with ``SOPS_DECRYPTION_ORDER=age`` and ``GOOGLE_CREDENTIALS={}`` (credentials
that fail before any connection), so it never tries to reach Google.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.azurekv import AzureKv
from tests.fixtures.gcpkms import GcpKms
from tests.fixtures.hckms import HuaweiKms
from tests.helpers import CANARY, AgeKey, Result, make_age_key, run, secretops

# sops never talks to Google in these tests: these credentials fail before any connection
SOPS_GCP_GUARD = {"GOOGLE_CREDENTIALS": "{}", "SOPS_DECRYPTION_ORDER": "age"}
TEXT = f"password: {CANARY}\nuser: admin\n"


def block(text: bytes, kind: str) -> str:
    """The lines of the ``kind:`` list in the ``sops:`` block, exactly as written."""
    lines = text.decode().splitlines()
    start = lines.index(f"    {kind}:")
    end = start + 1
    while end < len(lines) and lines[end].startswith("        "):
        end += 1
    return "\n".join(lines[start:end])


def _sops(sops_bin: str, kind: str, *args: str, cwd: Path) -> Result:
    env = dict(os.environ, **(SOPS_GCP_GUARD if kind == "gcp_kms" else {}))
    return run([sops_bin, *args], env=env, cwd=cwd)


@pytest.fixture(params=["gcp_kms", "azure_kv", "hckms"])
def cloud(request: pytest.FixtureRequest, age_key: AgeKey, tmp_path: Path,
          sops_bin: str) -> tuple[str, str, Path]:
    """(kind, the key as typed, a file sops wrote with that key and the age key)."""
    kind = request.param
    plain = tmp_path / "s.yaml"
    plain.write_text(TEXT)
    enc = tmp_path / "s.enc.yaml"
    if kind in ("azure_kv", "hckms"):
        if kind == "azure_kv":
            kv: AzureKv = request.getfixturevalue("azure_kv")
            key, flag = kv.urls[0], "--azure-kv"
        else:
            hc: HuaweiKms = request.getfixturevalue("hckms")
            key, flag = hc.key_ids[0], "--hckms"
        made = run([sops_bin, "encrypt", flag, key, "--age", age_key.recipient, str(plain)],
                   cwd=tmp_path)
        assert made.code == 0, made.err
        enc.write_bytes(made.out)
    else:
        gcp: GcpKms = request.getfixturevalue("gcp_kms")
        key = gcp.resource_ids[0]
        made = secretops("encrypt", "--gcp-kms", key, "--age", age_key.recipient, str(plain),
                         cwd=tmp_path)
        assert made.code == 0, made.err
        enc.write_bytes(made.out)
        rewritten = _sops(sops_bin, kind, "set", str(enc), '["user"]', '"admin"', cwd=tmp_path)
        assert rewritten.code == 0, rewritten.err
        # sops's own emitter wrote the same gcp_kms block secretops wrote
        assert block(enc.read_bytes(), kind) == block(made.out, kind)
    return kind, key, enc


def _opens_with_sops(sops_bin: str, kind: str, enc: Path) -> None:
    r = _sops(sops_bin, kind, "decrypt", str(enc), cwd=enc.parent)
    assert r.code == 0 and CANARY.encode() in r.out, r.err


def test_updatekeys_keeps_the_entry_byte_for_byte(cloud: tuple[str, str, Path], age_key: AgeKey,
                                                  sops_bin: str, tmp_path: Path) -> None:
    kind, key, enc = cloud
    before = enc.read_bytes()
    (tmp_path / "more").mkdir()
    more = make_age_key(tmp_path / "more")
    config_key = {"gcp_kms": "gcp_kms", "azure_kv": "azure_keyvault", "hckms": "hckms"}[kind]
    (tmp_path / ".sops.yaml").write_text(yaml.safe_dump({"creation_rules": [{
        config_key: [key], "age": f"{age_key.recipient},{more.recipient}"}]}))
    r = secretops("updatekeys", "-y", str(enc), cwd=tmp_path)
    assert r.code == 0, r.err
    after = enc.read_bytes()
    assert after != before and more.recipient in after.decode()
    assert block(after, kind) == block(before, kind)
    _opens_with_sops(sops_bin, kind, enc)


def test_set_and_edit_keep_the_entry_byte_for_byte(cloud: tuple[str, str, Path],
                                                   sops_bin: str, tmp_path: Path) -> None:
    kind, _, enc = cloud
    before = enc.read_bytes()
    r = secretops("set", str(enc), '["user"]', '"root"', cwd=tmp_path)
    assert r.code == 0, r.err
    assert block(enc.read_bytes(), kind) == block(before, kind)
    script = tmp_path / "editor.py"
    script.write_text("import sys\np = sys.argv[1]\ntext = open(p).read()\n"
                      "open(p, 'w').write(text.replace('root', 'operator'))\n")
    edited = run([sys.executable, "-m", "secretops", "edit", str(enc)],
                 env=dict(os.environ, EDITOR=f"{sys.executable} {script}"), cwd=tmp_path)
    assert edited.code == 0, edited.err
    after = enc.read_bytes()
    assert block(after, kind) == block(before, kind)
    opened = _sops(sops_bin, kind, "decrypt", str(enc), cwd=tmp_path)
    assert opened.code == 0 and b"user: operator" in opened.out, opened.err


def test_rotate_rewraps_for_the_same_key_in_the_same_shape(
        cloud: tuple[str, str, Path], sops_bin: str, tmp_path: Path) -> None:
    kind, _, enc = cloud
    before = yaml.safe_load(enc.read_bytes())["sops"][kind]
    r = secretops("rotate", "-i", str(enc), cwd=tmp_path)
    assert r.code == 0, r.err
    after = yaml.safe_load(enc.read_bytes())["sops"][kind]
    assert [list(e) for e in after] == [list(e) for e in before]  # fields and their order
    assert [{k: v for k, v in e.items() if k not in ("enc", "created_at")} for e in after] == \
        [{k: v for k, v in e.items() if k not in ("enc", "created_at")} for e in before]
    assert after[0]["enc"] != before[0]["enc"]
    # the new wrapped key opens through the cloud key alone (no age identity)
    alone = {k: v for k, v in os.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    opened = run([sys.executable, "-m", "secretops", "decrypt", str(enc)], env=alone,
                 cwd=tmp_path)
    assert opened.code == 0 and CANARY.encode() in opened.out, opened.err
    _opens_with_sops(sops_bin, kind, enc)
