"""``publish``, side by side with sops 3.11: the same ``.sops.yaml`` destination rules, the same
moto (S3), fake-gcs-server (GCS) and OpenBao (Vault KV v1 and v2) servers, and what each
program left there.

Each side runs against the same bucket or KV path; after each run, ``after`` collects what
arrived on the server and clears it for the other side, so the two results compare directly:
object names and bytes (S3 and GCS, as is; GCS's content type too), the decrypted content and
the keys (S3 and GCS, re-encrypted), the secret's JSON as Vault stores it, number text
included (Vault KV), and KV v2's version count. The Vault token goes to a rule's
``vault_address`` only when ``VAULT_ADDR`` names that server: tested with a listener that
records what reaches it.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.sidebyside import assert_same, run_both
from tests.fixtures.gcs import Gcs
from tests.helpers import CANARY, AgeKey, assert_no_canary, make_age_key, run, secretops, sops

PLAIN = (f"user: admin\npassword: {CANARY}\nport: 5432\nratio: 1e3\nflags: [true, null]\n"
         "nested:\n  a: b\nlist:\n  - k: v\n    n: 3\n  # a comment\n  - plain\n"
         "---\nuser: second\nextra: x\n")
STRINGS = f"user: admin\npassword: {CANARY}\nnested:\n  a: b\n"


@pytest.fixture
def age_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[AgeKey]:
    d = tmp_path / "keys"
    d.mkdir()
    keys = [make_age_key(d, f"k{n}.txt") for n in range(2)]
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(keys[0].path))
    return keys


def encrypt(sops_bin: str, tmp_path: Path, plain: str, key: AgeKey, name: str = "p.yaml"
            ) -> bytes:
    d = tmp_path / "made"
    d.mkdir(exist_ok=True)
    (d / name).write_text(plain)
    r = sops(sops_bin, "encrypt", "--age", key.recipient, name, cwd=d)
    assert r.code == 0, r.err
    return r.out


# -- S3 (moto) ----------------------------------------------------------------------------------

class Bucket:
    """A fresh moto bucket; ``collect`` takes what one side uploaded and empties the bucket."""

    def __init__(self, aws: Any) -> None:
        self.s3 = aws.client("s3")
        self.name = f"b-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.name)
        self.seen: dict[str, dict[str, bytes]] = {}

    def objects(self) -> dict[str, bytes]:
        listing = self.s3.list_objects_v2(Bucket=self.name).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=self.name, Key=o["Key"])["Body"].read()
                for o in listing}

    def collect(self, side: str) -> None:
        self.seen[side] = self.objects()
        for key in self.seen[side]:
            self.s3.delete_object(Bucket=self.name, Key=key)

    @property
    def same(self) -> bool:
        return self.seen["sops"] == self.seen["secretops"]


@pytest.fixture
def bucket(aws_kms: Any) -> Bucket:
    return Bucket(aws_kms)


def test_s3_as_is(sops_bin: str, age_keys: list[AgeKey], bucket: Bucket,
                  tmp_path: Path) -> None:
    """No recreation rule: the encrypted file's bytes, at <prefix><base name>."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = f"destination_rules:\n  - s3_bucket: {bucket.name}\n    s3_prefix: team/\n"
    pair = run_both(sops_bin, ["publish", "-y", "app/s.enc.yaml"],
                    {".sops.yaml": cfg, "app/s.enc.yaml": enc}, tmp_path, after=bucket.collect)
    assert_same(pair, stdout="bytes", files="bytes")
    assert bucket.seen["sops"] == {"team/s.enc.yaml": enc}
    assert bucket.same


def test_s3_reencrypted_for_the_recreation_rule(sops_bin: str, age_keys: list[AgeKey],
                                                 bucket: Bucket, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A recreation rule with keys: decrypted and encrypted again for them, under a new data
    key; only the rule's suffix is kept as a selection rule (sops drops the file's
    ``unencrypted_suffix``); the old key no longer opens it."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = (f"destination_rules:\n  - s3_bucket: {bucket.name}\n    recreation_rule:\n"
           f"      age: {age_keys[1].recipient}\n")
    pair = run_both(sops_bin, ["publish", "--yes", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path, after=bucket.collect)
    assert_same(pair, stdout="ignore", files="bytes")
    for out in (pair.sops.out, pair.ours.out):  # the key change is shown, as sops shows it
        assert out.startswith(b"The following changes will be made to the file's key groups:")
        assert age_keys[1].recipient.encode() in out
    (sops_obj,), (ours_obj,) = bucket.seen["sops"].items(), bucket.seen["secretops"].items()
    assert sops_obj[0] == ours_obj[0] == "s.enc.yaml"
    import yaml

    for content in (sops_obj[1], ours_obj[1]):
        meta = next(yaml.safe_load_all(content))["sops"]
        assert [e["recipient"] for e in meta["age"]] == [age_keys[1].recipient]
        assert "unencrypted_suffix" not in meta and "mac_only_encrypted" not in meta
    plain = []
    for key in age_keys:
        monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
        for content in (sops_obj[1], ours_obj[1]):
            (tmp_path / "o.enc.yaml").write_bytes(content)
            r = sops(sops_bin, "decrypt", str(tmp_path / "o.enc.yaml"))
            assert (r.code == 0) == (key is age_keys[1]), r.err
            plain.append(r.out)
    assert plain[2] == plain[3] and CANARY.encode() in plain[2]


@pytest.mark.parametrize("argv", [
    ["publish", "-y", "--omit-extensions", "s.enc.yaml"],
    ["publish", "-y", "--verbose", "s.enc.yaml"],
    ["publish", "-y", "--recursive", "tree"],
    ["publish", "-y", "--recursive", "--omit-extensions", "./tree/"],
    ["publish", "-y", "--recursive", "tree/sub/c.enc.json"],  # a file: its name is "."
    ["publish", "-y", "tree/sub/c.enc.json", "s.enc.yaml"],   # only the first is published
    ["publish", "-y", "--decryption-order", "age,pgp", "s.enc.yaml"],
])
def test_s3_names_and_walks(sops_bin: str, age_keys: list[AgeKey], bucket: Bucket,
                            tmp_path: Path, argv: list[str]) -> None:
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    enc_json = encrypt(sops_bin, tmp_path, '{"a": "b"}', age_keys[0], "p.json")
    cfg = (f"destination_rules:\n  - path_regex: ^tree/sub/\n    s3_bucket: {bucket.name}\n"
           f"    s3_prefix: sub-\n  - s3_bucket: {bucket.name}\n    s3_prefix: all/\n")
    files: dict[str, bytes | str] = {
        ".sops.yaml": cfg, "s.enc.yaml": enc, "tree/a.enc.yaml": enc,
        "tree/sub/c.enc.json": enc_json, "tree/sub/d.yaml": enc, "tree/.hidden.enc.yaml": enc}
    pair = run_both(sops_bin, argv, files, tmp_path, after=bucket.collect)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")
    assert bucket.seen["sops"] and bucket.same, (bucket.seen, pair)


def test_s3_walk_stops_at_the_first_failure(sops_bin: str, age_keys: list[AgeKey],
                                            bucket: Bucket, tmp_path: Path) -> None:
    """A file that is not encrypted stops the walk: what came before it is published."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = f"destination_rules:\n  - s3_bucket: {bucket.name}\n"
    files: dict[str, bytes | str] = {
        ".sops.yaml": cfg, "tree/a.enc.yaml": enc, "tree/b.yaml": "plain: text\n",
             "tree/c.enc.yaml": enc}
    pair = run_both(sops_bin, ["publish", "-y", "--recursive", "tree"], files, tmp_path,
                    after=bucket.collect)
    assert_same(pair, code=False, files="bytes")
    assert set(bucket.seen["sops"]) == {"a.enc.yaml"} and bucket.same


@pytest.mark.parametrize(("argv", "cfg"), [
    (["publish", "-y", "tree"], "s3"),                      # a directory without --recursive
    (["publish", "-y", "s.enc.yaml"], "none"),              # no rule matches
    (["publish", "-y", "s.enc.yaml"], "empty"),             # the rule names no destination
    (["publish", "-y", "s.enc.yaml"], "two"),               # the rule names two
    (["publish", "-y", "missing.enc.yaml"], "s3"),
    (["publish", "-y"], "s3"),                              # no file
    (["publish", "s.enc.yaml"], "s3"),                      # no -y, and no terminal
    (["publish", "-y", "plain.yaml"], "s3"),                # not encrypted
    (["publish", "-y", "s.enc.yaml"], "list"),              # a field of the wrong kind
    (["publish", "-y", "s.enc.yaml"], "version"),
])
def test_failures(sops_bin: str, age_keys: list[AgeKey], bucket: Bucket, tmp_path: Path,
                  argv: list[str], cfg: str) -> None:
    """Both fail, and nothing is uploaded (exit codes: docs/sops-compat.md)."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    rules = {
        "s3": f"  - s3_bucket: {bucket.name}\n",
        "none": f"  - path_regex: ^elsewhere/\n    s3_bucket: {bucket.name}\n",
        "empty": "  - omit_extensions: true\n",
        "two": f"  - s3_bucket: {bucket.name}\n    vault_path: x/\n",
        "list": f"  - s3_bucket: [{bucket.name}]\n",
        "version": "  - vault_path: x/\n    vault_kv_version: two\n",
    }
    files: dict[str, bytes | str] = {
        ".sops.yaml": "destination_rules:\n" + rules[cfg], "s.enc.yaml": enc,
             "tree/a.enc.yaml": enc, "plain.yaml": "a: b\n"}
    pair = run_both(sops_bin, argv, files, tmp_path, after=bucket.collect)
    assert not pair.sops.ok, pair
    assert_same(pair, code=False, files="bytes")
    assert bucket.seen == {"sops": {}, "secretops": {}}
    assert pair.ours.err.startswith("secretops: error:") and "Traceback" not in pair.ours.err


def test_no_terminal_needs_yes(sops_bin: str, age_keys: list[AgeKey], bucket: Bucket,
                               tmp_path: Path) -> None:
    """Without -y and without a terminal: sops prints its question and fails on end of input
    (exit 1); secretops does not ask and says why (exit 155). Nothing is uploaded."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = f"destination_rules:\n  - s3_bucket: {bucket.name}\n"
    pair = run_both(sops_bin, ["publish", "s.enc.yaml"], {".sops.yaml": cfg, "s.enc.yaml": enc},
                    tmp_path, after=bucket.collect)
    assert pair.sops.code == 1 and b"(y/n)" in pair.sops.out
    assert pair.ours.code == 155 and "--yes" in pair.ours.err
    assert bucket.seen == {"sops": {}, "secretops": {}}


def _on_a_terminal(argv: list[str], cwd: Path, answers: bytes) -> tuple[int, bytes]:
    """Run ``argv`` with a terminal (a pty) as stdin and stdout; type ``answers`` once the
    question shows. Returns the exit code and what the terminal showed."""
    import os
    import pty
    import select
    import subprocess
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    shown = b""
    typed = False
    deadline = time.monotonic() + 60  # a hang guard
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the program closed the terminal: it has ended
                    break
                if not chunk:
                    break
                shown += chunk
            if not typed and b"(y/n)" in shown:
                os.write(master, answers)
                typed = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(10), shown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


@pytest.mark.parametrize(("recursive", "answer"), [(False, b"y"), (False, b"n"),
                                                    (True, b"n"), (False, b"maybe\ny")])
def test_on_a_terminal_the_answer_decides(sops_bin: str, age_keys: list[AgeKey],
                                          bucket: Bucket, tmp_path: Path, recursive: bool,
                                          answer: bytes) -> None:
    """sops asks ``uploading FILE to DEST ? (y/n):`` until it reads y or n; n cancels: an error
    for one file, a message (and the next file) with --recursive."""
    import sys

    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    target = ["--recursive", "tree"] if recursive else ["tree/a.enc.yaml"]
    results = {}
    for side, program in (("sops", [sops_bin]), ("secretops", [sys.executable, "-m",
                                                                "secretops"])):
        d = tmp_path / f"tty-{side}"
        (d / "tree").mkdir(parents=True)
        (d / ".sops.yaml").write_text(f"destination_rules:\n  - s3_bucket: {bucket.name}\n")
        (d / "tree" / "a.enc.yaml").write_bytes(enc)
        code, shown = _on_a_terminal([*program, "publish", *target], d, answer + b"\n")
        assert f"uploading {d / 'tree' / 'a.enc.yaml'} to s3://{bucket.name}/".encode() in shown
        bucket.collect(side)
        results[side] = (code == 0, b"canceled" in shown)
    assert results["sops"] == results["secretops"], results
    assert bucket.same
    assert bool(bucket.seen["sops"]) == answer.endswith(b"y")


# -- GCS (fake-gcs-server) ----------------------------------------------------------------------

def _gcs_collector(gcs: Gcs, seen: dict[str, dict[str, tuple[bytes, str]]]) -> Any:
    def collect(side: str) -> None:
        seen[side] = gcs.objects()
        gcs.clear()
    return collect


def test_gcs_as_is(sops_bin: str, age_keys: list[AgeKey], gcs: Gcs, tmp_path: Path) -> None:
    """No recreation rule: the encrypted file's bytes at gcs://<bucket>/<prefix><base name>,
    with the content type sops's Go client sniffs for it."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = f"destination_rules:\n  - gcs_bucket: {gcs.bucket}\n    gcs_prefix: team/\n"
    seen: dict[str, dict[str, tuple[bytes, str]]] = {}
    pair = run_both(sops_bin, ["publish", "-y", "app/s.enc.yaml"],
                    {".sops.yaml": cfg, "app/s.enc.yaml": enc}, tmp_path,
                    after=_gcs_collector(gcs, seen))
    assert_same(pair, stdout="bytes", files="bytes")
    assert seen["sops"] == {"team/s.enc.yaml": (enc, "text/plain; charset=utf-8")}
    assert seen["secretops"] == seen["sops"]


@pytest.mark.parametrize("argv", [
    ["publish", "-y", "--recursive", "--omit-extensions", "tree"],
    ["publish", "--yes", "s.enc.json"],
])
def test_gcs_names_walks_and_formats(sops_bin: str, age_keys: list[AgeKey], gcs: Gcs,
                                     tmp_path: Path, argv: list[str]) -> None:
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    enc_json = encrypt(sops_bin, tmp_path, '{"a": "b"}', age_keys[0], "p.json")
    cfg = f"destination_rules:\n  - gcs_bucket: {gcs.bucket}\n"
    seen: dict[str, dict[str, tuple[bytes, str]]] = {}
    files: dict[str, bytes | str] = {".sops.yaml": cfg, "s.enc.json": enc_json,
                                     "tree/a.enc.yaml": enc, "tree/sub/c.enc.json": enc_json}
    pair = run_both(sops_bin, argv, files, tmp_path, after=_gcs_collector(gcs, seen))
    assert pair.sops.ok, pair
    assert_same(pair, stdout="bytes", files="bytes")
    assert seen["sops"] and seen["secretops"] == seen["sops"]


def test_gcs_reencrypted_for_the_recreation_rule(sops_bin: str, age_keys: list[AgeKey],
                                                 gcs: Gcs, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A recreation rule with keys: the uploaded copy opens with the rule's key only."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = (f"destination_rules:\n  - gcs_bucket: {gcs.bucket}\n    recreation_rule:\n"
           f"      age: {age_keys[1].recipient}\n")
    seen: dict[str, dict[str, tuple[bytes, str]]] = {}
    pair = run_both(sops_bin, ["publish", "-y", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path,
                    after=_gcs_collector(gcs, seen))
    assert_same(pair, stdout="ignore", files="bytes")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_keys[1].path))
    plain = []
    for side in ("sops", "secretops"):
        ((name, (content, kind)),) = seen[side].items()
        assert name == "s.enc.yaml" and kind == "text/plain; charset=utf-8"
        (tmp_path / "o.enc.yaml").write_bytes(content)
        r = sops(sops_bin, "decrypt", str(tmp_path / "o.enc.yaml"))
        assert r.code == 0, r.err
        plain.append(r.out)
    assert plain[0] == plain[1] and CANARY.encode() in plain[0]


def test_gcs_failed_upload_is_an_error(sops_bin: str, age_keys: list[AgeKey], gcs: Gcs,
                                       tmp_path: Path) -> None:
    """An upload the server refuses (no such bucket). Differs: sops 3.11 exits 0 and says
    nothing — its GCS writer's Close, which makes the upload and returns the error, is
    deferred and its result dropped — while nothing was stored; secretops exits 1 naming the
    object and the reason."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = "destination_rules:\n  - gcs_bucket: no-such-bucket\n"
    pair = run_both(sops_bin, ["publish", "-y", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path)
    assert pair.sops.ok and pair.sops.out == b"" and pair.ours.code == 1, pair
    assert pair.sops.files == pair.ours.files == pair.before
    buckets = json.loads(urllib.request.urlopen(f"{gcs.url}/storage/v1/b", timeout=10).read())
    assert "no-such-bucket" not in {b["name"] for b in buckets.get("items", [])}
    assert pair.ours.err.startswith("secretops: error:") and "Traceback" not in pair.ours.err
    assert "gcs://no-such-bucket/s.enc.yaml: the bucket does not exist (404)" in pair.ours.err
    assert gcs.objects() == {}


def test_gcs_without_the_extra_is_exit_154(age_keys: list[AgeKey], tmp_path: Path,
                                           sops_bin: str) -> None:
    """As after a plain ``pip install secretops``: the client library cannot be imported."""
    import sys

    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    (tmp_path / ".sops.yaml").write_text("destination_rules:\n  - gcs_bucket: b\n")
    (tmp_path / "s.enc.yaml").write_bytes(enc)
    code = ("import sys; sys.modules['google.cloud.storage'] = None; "
            "from secretops.cli import main; sys.argv[0] = 'secretops'; main()")
    r = run([sys.executable, "-c", code, "publish", "-y", "s.enc.yaml"], cwd=tmp_path)
    assert r.code == 154 and "pip install 'secretops[gcs]'" in r.err, r.err


# -- Vault KV (OpenBao) -------------------------------------------------------------------------

class Kv:
    """The OpenBao dev server's KV engines as one test sees them."""

    def __init__(self, server: Any, path: str) -> None:
        self.server = server
        self.path = path
        self.seen: dict[str, Any] = {}

    def raw(self, api_path: str) -> Any:
        req = urllib.request.Request(f"{self.server.url}/v1/{api_path}",
                                     headers={"X-Vault-Token": self.server.token})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                # numbers kept as their text: 1000 and 1000.0 must not compare equal
                return json.loads(r.read(), parse_float=lambda t: ("float", t),
                                  parse_int=lambda t: ("int", t))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def delete(self, api_path: str) -> None:
        req = urllib.request.Request(f"{self.server.url}/v1/{api_path}", method="DELETE",
                                     headers={"X-Vault-Token": self.server.token})
        urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture
def kv(openbao: Any, monkeypatch: pytest.MonkeyPatch) -> Kv:
    monkeypatch.setenv("VAULT_ADDR", openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    return Kv(openbao, f"t-{uuid.uuid4().hex[:10]}")


def _v2_collector(kv: Kv, name: str) -> Any:
    def collect(side: str) -> None:
        meta = kv.raw(f"secret/metadata/{kv.path}/{name}")
        secret = kv.raw(f"secret/data/{kv.path}/{name}")
        kv.seen[side] = {
            "data": secret and secret["data"]["data"],
            "versions": meta and meta["data"]["current_version"],
        }
        if meta:
            kv.delete(f"secret/metadata/{kv.path}/{name}")
    return collect


def test_vault_kv2_decrypted_values(sops_bin: str, age_keys: list[AgeKey], kv: Kv,
                                    tmp_path: Path) -> None:
    """KV v2 at secret/data/<vault_path><name>: the decrypted values, every document merged,
    numbers as sops writes them, a map or comment in a list as sops's Go encoder writes it."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = f"destination_rules:\n  - vault_path: {kv.path}\n"
    pair = run_both(sops_bin, ["publish", "-y", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path,
                    after=_v2_collector(kv, "s.enc.yaml"))
    assert_same(pair, stdout="bytes", files="bytes")
    data = kv.seen["sops"]["data"]
    assert data["password"] == CANARY and data["ratio"] == ("int", "1000")
    assert kv.seen["sops"] == kv.seen["secretops"]
    assert_no_canary(pair.ours.err + pair.ours.out.decode(), "publish output")


@pytest.mark.parametrize(("plain", "versions"), [(STRINGS, 1), (PLAIN, 2)])
def test_vault_kv2_unchanged_data_keeps_its_version(
        sops_bin: str, age_keys: list[AgeKey], kv: Kv, tmp_path: Path, plain: str,
        versions: int) -> None:
    """Publishing the same data twice: sops writes no new version when the secret already holds
    it — which, by Go's rules, only a map without numbers can; both sides agree."""
    enc = encrypt(sops_bin, tmp_path, plain, age_keys[0])
    cfg = f"destination_rules:\n  - vault_path: {kv.path}/\n    omit_extensions: true\n"
    collect = _v2_collector(kv, "s.enc")

    def twice(side: str) -> None:  # the same command once more, then what the server holds
        d = tmp_path / f"side-{side}"
        r = (sops(sops_bin, "publish", "-y", "s.enc.yaml", cwd=d) if side == "sops"
             else secretops("publish", "-y", "s.enc.yaml", cwd=d))
        assert r.code == 0, r.err
        collect(side)

    pair = run_both(sops_bin, ["publish", "-y", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path, after=twice)
    assert_same(pair, stdout="bytes", files="bytes")
    assert kv.seen["sops"] == kv.seen["secretops"]
    assert kv.seen["sops"]["versions"] == ("int", str(versions))


def test_vault_kv1_with_mount_name(sops_bin: str, age_keys: list[AgeKey], kv: Kv,
                                   tmp_path: Path) -> None:
    mount = f"kv1-{uuid.uuid4().hex[:8]}"
    kv.server.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = (f"destination_rules:\n  - vault_path: app\n    vault_kv_mount_name: {mount}/\n"
           f"    vault_kv_version: 1\n    vault_address: {kv.server.url}\n")

    def collect(side: str) -> None:
        secret = kv.raw(f"{mount}/app/s.enc.yaml")
        kv.seen[side] = secret and secret["data"]
        if secret:
            kv.delete(f"{mount}/app/s.enc.yaml")

    pair = run_both(sops_bin, ["publish", "-y", "--omit-extensions", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path, after=collect)
    assert_same(pair, stdout="bytes", files="bytes")
    assert kv.seen.pop("sops") is None  # --omit-extensions: the secret is app/s.enc, not this
    kv.seen.clear()

    def collect_omitted(side: str) -> None:
        secret = kv.raw(f"{mount}/app/s.enc")
        kv.seen[side] = secret and secret["data"]
        kv.delete(f"{mount}/app/s.enc")

    pair = run_both(sops_bin, ["publish", "-y", "--omit-extensions", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path, after=collect_omitted)
    assert_same(pair, stdout="bytes", files="bytes")
    assert kv.seen["sops"]["password"] == CANARY
    assert kv.seen["sops"] == kv.seen["secretops"]


class Listener:
    """A server on 127.0.0.1 that records every request's bytes and answers 403."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                    body = b'{"errors":["permission denied"]}'
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json"
                                 b"\r\nConnection: close\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def test_a_planted_vault_address_does_not_get_the_token(
        sops_bin: str, age_keys: list[AgeKey], kv: Kv, tmp_path: Path,
        listener: Listener) -> None:
    """A destination rule whose vault_address names a server VAULT_ADDR does not: sops sends it
    the token (and would send the decrypted values); secretops refuses before connecting."""
    enc = encrypt(sops_bin, tmp_path, PLAIN, age_keys[0])
    cfg = f"destination_rules:\n  - vault_path: x\n    vault_address: {listener.url}\n"
    seen: dict[str, list[bytes]] = {}

    def collect(side: str) -> None:
        seen[side] = list(listener.received)
        listener.received.clear()

    pair = run_both(sops_bin, ["publish", "-y", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path, after=collect)
    assert not pair.sops.ok and not pair.ours.ok
    token = kv.server.token.encode()
    assert any(b"X-Vault-Token: " + token in r for r in seen["sops"]), seen
    assert seen["secretops"] == [], seen["secretops"]
    assert "refusing to send the Vault token" in pair.ours.err
    assert_no_canary(pair.ours.err, "the refusal")


def test_a_vault_address_the_user_allowed_gets_the_token(
        sops_bin: str, age_keys: list[AgeKey], kv: Kv, tmp_path: Path, listener: Listener,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SECRETOPS_VAULT_ADDRS names the rule's server: secretops talks to it too (and both meet
    its refusal)."""
    monkeypatch.setenv("SECRETOPS_VAULT_ADDRS", listener.url)
    enc = encrypt(sops_bin, tmp_path, STRINGS, age_keys[0])
    cfg = f"destination_rules:\n  - vault_path: x\n    vault_address: {listener.url}\n"
    seen: dict[str, list[bytes]] = {}

    def collect(side: str) -> None:
        seen[side] = list(listener.received)
        listener.received.clear()

    pair = run_both(sops_bin, ["publish", "-y", "s.enc.yaml"],
                    {".sops.yaml": cfg, "s.enc.yaml": enc}, tmp_path, after=collect)
    assert_same(pair, code=False, files="bytes")
    assert any(b"X-Vault-Token: " + kv.server.token.encode() in r for r in seen["secretops"])
    assert "403" in pair.ours.err and "Traceback" not in pair.ours.err
