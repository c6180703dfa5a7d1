"""Seed files for the fuzz targets: made by the real sops binary and by secretops.

* sops-made: every encrypted and plaintext file of ``tests/testdata/sops`` (written by the sops
  binary with ``generate.py``, re-checked against it by ``tests/test_corpus.py``), the Bitnami
  vectors of ``tests/testdata/bitnami`` and the ESO manifests of ``tests/testdata/eso``;
* secretops-made, here, at first use: each plaintext seed encrypted by secretops, age messages
  and sealed values, SealedSecrets of every scope and template shape, key-ring Secrets, a PGP
  entry wrapped by the real gpg for a throwaway key (with its odd relatives: a compression
  bomb, a literal packet, a symmetric message), ``.sops.yaml`` files of every documented field.

Every encrypted seed opens with the test age key ``tests/testdata/keys/age-test.txt`` (the
sealing seeds also with ``tests/testdata/sealing/v1-key.txt``), so an unmutated seed reaches the
code behind the key, and a mutation tests that code too.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import yaml

from tests.helpers import CANARY

TESTDATA = Path(__file__).parent.parent / "testdata"
SOPS = TESTDATA / "sops"
KEY_FILE = TESTDATA / "keys" / "age-test.txt"
V1_KEY_FILE = TESTDATA / "sealing" / "v1-key.txt"
EXTS = {"yaml": ("*.yaml",), "json": ("*.json",), "dotenv": ("*.env",), "ini": ("*.ini",),
        "binary": ("*.bin", "*.txt")}
PLAIN_SAMPLES = {
    "yaml": b"user: admin\npassword: " + CANARY.encode() + b"\nport: 5432\nlist:\n  - a\n",
    "json": b'{"user": "admin", "password": "' + CANARY.encode() + b'", "n": [1, 2.5, true]}',
    "dotenv": b"USER=admin\nPASSWORD=" + CANARY.encode() + b"\n",
    "ini": b"[db]\nuser = admin\npassword = " + CANARY.encode() + b"\n",
    "binary": b"\x00\x01binary " + CANARY.encode() + b"\n",
}
EDITS = {"yaml": b"extra: 1\n", "json": b"", "dotenv": b"EXTRA=1\n", "ini": b"[x]\nk = v\n",
         "binary": b"more"}


def recipient() -> str:
    return _recipient_of(KEY_FILE)


def _recipient_of(path: Path) -> str:
    return next(line.split(": ")[1] for line in path.read_text().splitlines()
                if line.startswith("# public key:"))


def env(**extra: str) -> dict[str, str]:
    """The environment every target runs with: the test key, a private HOME, nothing else."""
    return {"HOME": str(workdir()), "SOPS_AGE_KEY_FILE": str(KEY_FILE), **extra}


@cache
def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="fz"))


@cache
def store_seeds(fmt: str) -> list[bytes]:
    """Every sops-made file of the format, and secretops's encryption of each plaintext one."""
    from secretops import api

    files = sorted(p for pattern in EXTS[fmt] for p in SOPS.rglob(pattern)
                   if ".sops-decrypted." not in p.name)
    if fmt == "yaml":
        files = [p for p in files if p.parent.name != "json"]  # yaml-to-json's source
    out = [p.read_bytes() for p in files]
    plains = [d for p, d in zip(files, out, strict=True) if ".plain." in p.name]
    for plain in [PLAIN_SAMPLES[fmt], *plains[:12]]:
        try:
            out.append(api.encrypt(plain, format=fmt, age=[recipient()], env={}))
        except Exception: # some plaintext seeds are refused on purpose
            continue
    return out


@cache
def merge_sides(fmt: str) -> tuple[bytes, bytes]:
    """(base, ours) for the merge driver: a secretops-made file and an edit of it, so a fuzzed
    "theirs" is merged for real (not short-cut because two sides are equal)."""
    from secretops import api, fileops

    base = api.encrypt(PLAIN_SAMPLES[fmt], format=fmt, age=[recipient()], env={})
    opened = fileops.open_file(base, format=fmt, env=env())
    edited = PLAIN_SAMPLES[fmt] + EDITS[fmt] if fmt != "json" else \
        b'{"user": "root", "password": "' + CANARY.encode() + b'", "n": [1, 2.5, true]}'
    return base, fileops.reencrypt_plaintext(opened, edited)


@cache
def yaml_doc(path: Path = SOPS / "errors" / "base.sops.yaml") -> dict[str, object]:
    doc = yaml.safe_load(path.read_bytes())
    assert isinstance(doc, dict)
    return doc


# --- age ----------------------------------------------------------------------------------------

@cache
def age_messages() -> list[bytes]:
    """Armored age messages: the sops-made entries, and secretops/pyrage-made ones (one and
    three recipients, a scrypt message, a message for an unknown key)."""
    import pyrage
    from pyrage import passphrase, x25519

    out = []
    for path in sorted(SOPS.rglob("*.sops.yaml"))[:40]:
        try:
            entries = yaml.safe_load(path.read_bytes())["sops"]["age"]
            out.append(str(entries[0]["enc"]).encode())
        except Exception: # hand-broken seeds have no age entry
            continue
    ours = x25519.Recipient.from_str(recipient())
    others = [x25519.Identity.generate().to_public() for _ in range(2)]
    key = os.urandom(32)
    for recips in ([ours], [ours, *others], others):
        out.append(_armor(pyrage.encrypt(key, recips)))
    out.append(_armor(passphrase.encrypt(key, "pass")))
    return list(dict.fromkeys(out))


def _armor(data: bytes) -> bytes:
    body = base64.b64encode(data).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN AGE ENCRYPTED FILE-----\n" + "\n".join(lines)
            + "\n-----END AGE ENCRYPTED FILE-----\n").encode()


# --- PGP ----------------------------------------------------------------------------------------

def _gpg(home: str, *args: str, data: bytes = b"") -> bytes:
    p = subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", "--pinentry-mode",
                        "loopback", "--passphrase", "", *args], input=data,
                       capture_output=True, timeout=120, check=True)
    return p.stdout


PGP_KEY_FILE = TESTDATA / "sops-examples" / "sops_functional_tests_key.asc"
PGP_FPR = "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"  # sops's public test key 1
PGP_SOPS_FILE = TESTDATA / "sops-examples" / "example.yaml"


@cache
def gpg_home() -> tuple[str, str]:
    """(GNUPGHOME, fingerprint): sops's published test key (never used for real data, see
    ``tests/testdata/sops-examples/README.md``) in a throwaway home of this process, stopped by
    :func:`stop_gpg`. A fixed key, so a saved input replays the same way in every run."""
    home = tempfile.mkdtemp(prefix="g")
    _gpg(home, "--import", str(PGP_KEY_FILE))
    return home, PGP_FPR


def stop_gpg() -> None:
    if gpg_home.cache_info().currsize:
        home, _ = gpg_home()
        from tests.fixtures.gpg import kill_agents

        kill_agents(home)
        shutil.rmtree(home, ignore_errors=True)
        gpg_home.cache_clear()


@cache
def pgp_messages() -> list[bytes]:
    """Armored PGP messages: the sops-made entries of ``example.yaml``, the data key wrapped by
    gpg as secretops does it, and messages that are not what a key entry holds: a 16 MiB
    compression bomb, a literal packet (gpg --store), a symmetric message."""
    home, fpr = gpg_home()
    key = os.urandom(32)
    enc = ["--armor", "--trust-model", "always", "--encrypt", "-r", fpr]
    sops_made = [str(e["enc"]).encode() for e in yaml_doc(PGP_SOPS_FILE)["sops"]["pgp"]]
    return [
        *sops_made,
        _gpg(home, *enc, data=key),
        _gpg(home, *enc[:-2], "--compress-algo", "bzip2", "-r", fpr, data=bytes(16 << 20)),
        _gpg(home, "--armor", "--store", data=key * 3),
        _gpg(home, "--armor", "--symmetric", "--passphrase", "x", data=key),
        _gpg(home, "--armor", "--compress-algo", "zlib", "--store", data=bytes(1 << 20)),
    ]


# --- .sops.yaml ---------------------------------------------------------------------------------

def config_seeds() -> list[bytes]:
    r = recipient()
    return [s.encode() for s in (
        f"creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {r}\n",
        f"creation_rules:\n  - path_regex: ^never$\n    age: x\n  - age: '{r},{r}'\n"
        "    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n",
        f"stores:\n  yaml:\n    indent: 2\n  json:\n    indent: 4\ncreation_rules:\n"
        f"  - unencrypted_suffix: _pub\n    age: [{r}]\n",
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - age: [{r}]\n      - age: [{r}]\n        pgp: [ABCDEF0123456789]\n"
        "      - kms:\n          - arn: arn:aws:kms:us-east-1:1:key/x\n"
        "            context: {a: yes, b: 0x10}\n            aws_profile: p\n"
        "        hc_vault:\n          - http://127.0.0.1:1/v1/transit/keys/k\n",
        f"creation_rules:\n  - path_regex: \\.env$\n    encrypted_suffix: _secret\n    age: {r}\n"
        "  - filename_regex: x\n    encrypted_comment_regex: sops\n    pgp: AB\n"
        "secretops:\n  check:\n    allow:\n      - docs/*.yaml\n",
        f"destination_rules:\n  - s3_bucket: b\n    path_regex: x\ncreation_rules:\n"
        f"  - kms: 'arn:aws:kms:us-east-1:1:key/x+arn:aws:iam::1:role/r'\n    age: {r}\n"
        "    hc_vault_transit_uri: http://127.0.0.1:1/v1/transit/keys/k\n",
        "destination_rules:\n  - path_regex: ^secrets/\n    vault_path: app/\n"
        "    vault_address: http://127.0.0.1:1\n    vault_kv_mount_name: kv\n"
        "    vault_kv_version: 1\n    omit_extensions: true\n  - s3_bucket: b\n"
        "    s3_prefix: p/\n    recreation_rule:\n      age: " + r + "\n"
        "      unencrypted_suffix: _pub\n  - gcs_bucket: g\n    gcs_prefix: x/\n",
        "anchors:\n  keys: &keys\n    - age: [" + r + "]\ncreation_rules:\n"
        "  - key_groups: *keys\n  - <<: {age: " + r + "}\n",
    )]


# --- SealedSecrets ------------------------------------------------------------------------------

@cache
def sealing_identities() -> object:
    from secretops.sealing.keyring import identities_from_age_text

    return identities_from_age_text(KEY_FILE.read_text() + V1_KEY_FILE.read_text(), "fuzz")


@cache
def sealed_seeds() -> list[bytes]:
    """SealedSecrets: the version-1 vectors, and secretops-made ones of every scope, with and
    without a template that renders values, for one and for three recipients."""
    from pyrage import x25519

    from secretops.sealing import seal_secret
    from secretops.sealing.serialize import dump

    out = [p.read_bytes() for p in sorted((TESTDATA / "sealing").glob("v1-*.yaml"))]
    others = [str(x25519.Identity.generate().to_public()) for _ in range(2)]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "db", "namespace": "prod", "labels": {"app": "db"}},
              "stringData": {"user": "admin", "password": CANARY}}
    for scope, templates, recips in (
            ("strict", None, [recipient()]),
            ("namespace-wide", {"url": "postgres://{{ .user }}:{{ .password }}@db"},
             [recipient(), *others]),
            ("cluster-wide", {"conf": "{% for k in values %}{{ k }}{% endfor %}"},
             [recipient()])):
        sealed = seal_secret(secret, recips, scope, templates=templates)
        out.append(dump(sealed, "yaml"))
        out.append(dump(sealed, "json"))
    return out


@cache
def sealed_values() -> list[bytes]:
    """Single sealed values (``spec.encryptedData`` entries) of the seeds above."""
    from secretops.sealing.serialize import load_documents

    out = []
    for seed in sealed_seeds():
        for doc in load_documents(seed):
            out += [str(v).encode() for v in doc["spec"]["encryptedData"].values()]
    return list(dict.fromkeys(out))


@cache
def key_seeds() -> list[bytes]:
    """What ``--identity``, ``--cert`` and ``--bitnami-key`` read: age identity files, a
    key-ring Secret list, a recipients file, an OpenSSH key, the Bitnami key backup."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from secretops.sealing.keyring import format_recipients_file, keyring_secret
    from secretops.sealing.serialize import dump

    ident = next(ln for ln in KEY_FILE.read_text().splitlines() if ln.startswith("AGE-SECRET"))
    ring = {"apiVersion": "v1", "kind": "List", "items": [
        keyring_secret(ident, recipient(), datetime(2026, 1, 1, tzinfo=UTC), "secretops-system")]}
    ssh = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption())
    return [KEY_FILE.read_bytes(), V1_KEY_FILE.read_bytes(), dump(ring, "yaml"),
            json.dumps(ring).encode(), format_recipients_file([recipient()], "c").encode(), ssh,
            (TESTDATA / "bitnami" / "key-backup.yaml").read_bytes()]


@cache
def bitnami_keys() -> list[object]:
    from secretops.sealing.bitnami import load_keys

    return list(load_keys((TESTDATA / "bitnami" / "key-backup.yaml").read_bytes(), "keys"))


def bitnami_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((TESTDATA / "bitnami").glob("*-*.yaml"))
            if p.name != "key-backup.yaml"]


def eso_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((TESTDATA / "eso").glob("*.yaml"))]


@cache
def keyservice_requests() -> list[bytes]:
    """Key service requests as sops sends them: Decrypt of each age seed message for the test
    key's recipient (and another), Encrypt of a data key and a Shamir share, a KMS key."""
    from secretops.keyservice.protocol import key_message, messages

    m = messages()
    age = key_message("age", {"recipient": recipient()})
    out = [bytes(m.decrypt_request(key=age, ciphertext=enc).SerializeToString())
           for enc in age_messages()[:6]]
    out += [bytes(m.encrypt_request(key=age, plaintext=bytes(n)).SerializeToString())
            for n in (32, 33)]
    kms = key_message("kms", {"arn": "arn:aws:kms:us-east-1:1:key/k", "role": "",
                              "context": {"a": "b"}, "aws_profile": ""})
    out.append(bytes(m.decrypt_request(key=kms, ciphertext=b"AQID").SerializeToString()))
    return out



@cache
def git_streams() -> list[bytes]:
    """What ``secretops log`` reads from git: ``git log -z --raw -p`` of a small repository
    (edits, a rename, a mode change, a deletion, a symlink, a binary file, a sops-made file),
    in the default and ``--oneline`` formats, with and without colour; and ``git cat-file
    --batch``'s answers for its blobs, one missing."""
    import subprocess

    repo = workdir() / "git-streams"
    env = {"HOME": str(workdir()), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@b", "GIT_AUTHOR_DATE": "@0 +0000",
           "GIT_COMMITTER_DATE": "@0 +0000", "PATH": os.environ.get("PATH", "")}

    def git(*args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(["git", "-C", str(repo), *args], env=env, input=data,
                              capture_output=True, check=True, timeout=60).stdout

    repo.mkdir()
    git("init", "-q")
    (repo / "a.txt").write_text("one\ntwo\n")
    (repo / "s.enc.yaml").write_bytes((SOPS / "errors" / "base.sops.yaml").read_bytes())
    (repo / "b.bin").write_bytes(bytes(range(256)))
    git("add", "-A")
    git("commit", "-qm", "first")
    (repo / "a.txt").write_text("one\n2\nthree")
    (repo / "sp ace.txt").write_text("x\n")
    os.symlink("a.txt", repo / "link")
    git("add", "-A")
    git("commit", "-qm", "second\n\nbody")
    git("mv", "a.txt", "moved.txt")
    (repo / "s.enc.yaml").chmod(0o755)
    (repo / "b.bin").unlink()
    git("add", "-A")
    git("commit", "-qm", "third")
    git("commit", "-q", "--allow-empty", "-m", "empty")
    out = [git("log", "-z", "--raw", "-p", *extra)
           for extra in ([], ["--oneline"], ["--color=always"], ["--reverse", "--oneline"])]
    blobs = git("log", "--all", "--format=", "--raw", "--no-abbrev").split()
    ids = [b for b in blobs if len(b) == 40 and b.strip(b"0")]
    out.append(git("cat-file", "--batch", data=b"\n".join([*ids, b"0" * 40]) + b"\n"))
    return out
