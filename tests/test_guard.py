"""The plaintext guard as a library: findings for content, and what .sops.yaml says per path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from secretops import api
from secretops.errors import ConfigError
from secretops.git.guard import (
    Finding,
    Policy,
    Verdict,
    check_data,
    glob_to_regex,
    has_allow_marker,
)
from tests.helpers import CANARY, make_age_key

SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
data:
  password: {CANARY}
  empty: ""
stringData:
  token: {CANARY}
  nothing:
""".encode()
SECRET_JSON = (
    '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},'
    f' "stringData": {{"token": "{CANARY}"}}}}\n'
).encode()
MUST = Verdict(must_encrypt=True, rule="creation_rules[0] (path_regex secrets/)")


def _paths(findings: list[Finding]) -> list[str]:
    return [f.path for f in findings]


def _no_canary(findings: list[Finding]) -> None:
    assert all(CANARY not in str(f) for f in findings)


@pytest.fixture
def recipient(tmp_path: Path) -> str:
    return make_age_key(tmp_path).recipient


def _encrypt(data: bytes, recipient: str, fmt: str = "yaml", **selection: str) -> bytes:
    return api.encrypt(data, format=fmt, age=recipient, env={}, **selection)


# -- Kubernetes Secrets -----------------------------------------------------------------------

def test_plaintext_secret_gives_one_finding_per_value() -> None:
    findings = check_data("k8s/db.yaml", SECRET)
    assert _paths(findings) == ['["data"]["password"]', '["stringData"]["token"]']
    assert str(findings[0]) == (
        'k8s/db.yaml: ["data"]["password"]: plaintext value in a Kubernetes Secret\'s data')
    _no_canary(findings)


def test_every_document_and_list_item_is_checked() -> None:
    configmap = b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n"
    listed = (b"apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n"
              b"    data:\n      key: " + CANARY.encode() + b"\n")
    findings = check_data("all.yaml", configmap + b"---\n" + SECRET + b"---\n" + listed)
    assert _paths(findings) == ['["data"]["password"]', '["stringData"]["token"]',
                                '["items"][0]["data"]["key"]']
    _no_canary(findings)


def test_json_secret() -> None:
    findings = check_data("db.json", SECRET_JSON)
    assert _paths(findings) == ['["stringData"]["token"]']


def test_only_v1_secrets_and_maps_of_ciphertext() -> None:
    other = SECRET.replace(b"apiVersion: v1", b"apiVersion: example.com/v1")
    assert check_data("x.yaml", other) == []
    flat = b"apiVersion: v1\nkind: Secret\nstringData: " + CANARY.encode() + b"\n"
    findings = check_data("x.yaml", flat)
    assert [(f.path, f.reason) for f in findings] == [
        ('["stringData"]', "a Kubernetes Secret's stringData is not a map")]
    _no_canary(findings)


@pytest.mark.parametrize("content", [
    SECRET + b"---\nfoo: [\n",                             # a later document does not parse
    SECRET.replace(b"  empty:", b"  password: x\n  empty:"),  # a duplicate key
    b"%YAML 1.2\n---\n" + SECRET,                            # a directive sops refuses
    b'{"apiVersion": "v1", "kind": "Secret", "stringData": {"a": 1, "a": 2}',  # truncated JSON
])
def test_a_secret_that_does_not_parse_is_a_finding(content: bytes) -> None:
    fmt = "json" if content.startswith(b"{") else "yaml"
    findings = check_data(f"db.{fmt}", content)
    assert [f.reason for f in findings] == [
        f"looks like a Kubernetes Secret but does not parse as {fmt}, so it cannot be checked"]
    _no_canary(findings)


def test_a_hand_made_enc_value_is_plaintext() -> None:
    """ENC[...] with the secret's base64 as data and no real IV or tag is not ciphertext."""
    fake = (b"apiVersion: v1\nkind: Secret\nstringData:\n  password: "
            b"ENC[AES256_GCM,data:aHVudGVyMg==,iv:x,tag:y,type:str]\n")
    assert _paths(check_data("db.yaml", fake)) == ['["stringData"]["password"]']


def test_encrypted_secret_passes(recipient: str) -> None:
    enc = _encrypt(SECRET, recipient, encrypted_regex="^(data|stringData)$")
    assert check_data("db.yaml", enc) == []
    assert check_data("db.yaml", enc, verdict=MUST) == []


def test_secret_left_plaintext_by_its_selection_is_still_flagged(recipient: str) -> None:
    enc = _encrypt(SECRET, recipient, encrypted_regex="^data$")
    assert _paths(check_data("db.yaml", enc)) == ['["stringData"]["token"]']


# -- files a creation rule says must be encrypted ---------------------------------------------

@pytest.mark.parametrize(("name", "content"), [
    ("secrets/app.yaml", f"password: {CANARY}\n".encode()),
    ("secrets/app.json", f'{{"password": "{CANARY}"}}'.encode()),
    ("secrets/app.env", f"PASSWORD={CANARY}\n".encode()),
    ("secrets/app.ini", f"[db]\npassword = {CANARY}\n".encode()),
    ("secrets/tls.key", CANARY.encode()),
])
def test_must_encrypt_but_plaintext(name: str, content: bytes) -> None:
    findings = check_data(name, content, verdict=MUST)
    assert [(f.path, f.reason) for f in findings] == [
        ("", "creation_rules[0] (path_regex secrets/) says this file must be encrypted, "
             "but it has no sops metadata")]
    assert check_data(name, content) == []  # no rule: nothing to say
    _no_canary(findings)


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_must_encrypt_and_encrypted(fmt: str, recipient: str) -> None:
    plain = {"yaml": b"a: 1\n", "json": b'{"a": 1}', "dotenv": b"A=1\n",
             "ini": b"[s]\na = 1\n", "binary": CANARY.encode()}[fmt]
    assert check_data(f"f.{fmt}", _encrypt(plain, recipient, fmt), fmt=fmt, verdict=MUST) == []


def test_must_encrypt_but_unparseable() -> None:
    findings = check_data("secrets/a.yaml", b"a: [\n" + CANARY.encode(), verdict=MUST)
    assert [f.reason for f in findings] == [
        "creation_rules[0] (path_regex secrets/) says this file must be encrypted, but it does "
        "not parse as yaml"]
    assert check_data("other.yaml", b"a: [\n") == []  # a template, not our business


# -- encrypted files: metadata and selection --------------------------------------------------

def test_hand_inserted_plaintext_is_found(recipient: str) -> None:
    enc = _encrypt(SECRET, recipient, encrypted_regex="^(data|stringData)$")
    tampered = enc.replace(b"\ndata:\n", b"\ndata:\n  extra: " + CANARY.encode() + b"\n", 1)
    findings = check_data("db.yaml", tampered)
    assert _paths(findings) == ['["data"]["extra"]']
    _no_canary(findings)


def test_selection_from_the_metadata_is_respected(recipient: str) -> None:
    plain = (f"user_unencrypted: admin\ndb:\n  password: {CANARY}\n"
             "  list:\n    - a\n    - b\n").encode()
    enc = _encrypt(plain, recipient)
    assert check_data("a.yaml", enc) == []
    tampered = enc.replace(b"user_unencrypted: admin\n",
                           b"user_unencrypted: admin\nleak: " + CANARY.encode() + b"\n")
    tampered = re.sub(rb"- ENC\[[^\]]*\]", b"- " + CANARY.encode(), tampered, count=1)
    findings = check_data("a.yaml", tampered)
    assert _paths(findings) == ['["leak"]', '["db"]["list"][0]']
    assert findings[0].reason == ("plaintext value that the file's selection rule says is "
                                  "encrypted")
    _no_canary(findings)


def test_comment_selection(recipient: str) -> None:
    plain = f"a: public\n# sops:enc\nb: {CANARY}\n".encode()
    enc = _encrypt(plain, recipient, encrypted_comment_regex="sops:enc")
    assert check_data("a.yaml", enc) == []
    tampered = re.sub(rb"b: ENC\[[^\]]*\]", b"b: " + CANARY.encode(), enc)
    assert _paths(check_data("a.yaml", tampered)) == ['["b"]']


def test_dotenv_selection(recipient: str) -> None:
    enc = _encrypt(f"A={CANARY}\nB_unencrypted=x\n".encode(), recipient, "dotenv")
    assert check_data("a.env", enc) == []
    tampered = enc.replace(b"B_unencrypted=x\n", b"B_unencrypted=x\nC=" + CANARY.encode() + b"\n")
    assert _paths(check_data("a.env", tampered)) == ['["C"]']


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda s: re.sub(rb"\n *mac: [^\n]*", b"", s), "malformed sops metadata: no mac"),
    (lambda s: re.sub(rb"mac: ENC\[", b"mac: NOPE[", s),
     "malformed sops metadata: the mac is not an ENC[AES256_GCM,...] value"),
    (lambda s: re.sub(rb"\n *lastmodified: [^\n]*", b"", s),
     "malformed sops metadata: no lastmodified"),
    (lambda s: re.sub(rb"\n *version: [^\n]*", b"", s),
     "malformed sops metadata: the sops metadata has no version"),
    (lambda s: re.sub(rb"\n *age:\n(?: {8}[^\n]*\n)+", b"\n", s),
     "malformed sops metadata: no master key"),
])
def test_malformed_metadata(recipient: str, edit: object, reason: str) -> None:
    enc = _encrypt(f"password: {CANARY}\n".encode(), recipient)
    tampered = edit(enc)  # type: ignore[operator]
    assert tampered != enc
    assert reason in [f.reason for f in check_data("a.yaml", tampered)]


def test_looks_encrypted_but_does_not_parse(recipient: str) -> None:
    enc = _encrypt(b"a: 1\n", recipient)
    findings = check_data("a.yaml", enc + b"\n: [\n")
    assert [f.reason for f in findings] == ["looks encrypted but does not parse as yaml"]


# -- allowlist and policy ---------------------------------------------------------------------

def test_allow_marker() -> None:
    marker = b"# secretops: allow-plaintext\n"
    assert has_allow_marker(marker + SECRET, "yaml")
    assert has_allow_marker(b"A=1\n  #secretops:allow-plaintext  \n", "dotenv")
    assert has_allow_marker(b"; secretops: allow-plaintext\n[a]\n", "ini")
    assert not has_allow_marker(b"a: 1  # secretops: allow-plaintext\n", "yaml")  # own line
    assert not has_allow_marker(marker + SECRET_JSON, "json")  # JSON has no comments
    in_text = SECRET + b"  notes: |\n    # secretops: allow-plaintext\n"  # a value's line
    assert not has_allow_marker(in_text, "yaml")
    assert has_allow_marker(SECRET + b"# secretops: allow-plaintext\n", "yaml")
    assert has_allow_marker(b"a: [\n# secretops: allow-plaintext\n", "yaml")  # no parse
    assert check_data("x.yaml", marker + SECRET, verdict=Verdict(allowed_by="marker")) == []


@pytest.mark.parametrize(("glob", "path", "hit"), [
    ("fixtures/", "fixtures/a/b.yaml", True),
    ("fixtures", "tests/fixtures/b.yaml", True),  # no slash: any directory
    ("/fixtures", "tests/fixtures/b.yaml", False),
    ("examples/*.yaml", "examples/a.yaml", True),
    ("examples/*.yaml", "examples/sub/a.yaml", False),
    ("examples/**/*.yaml", "examples/sub/deep/a.yaml", True),
    ("examples/**/*.yaml", "examples/a.yaml", True),
    ("dummy-?.yaml", "k8s/dummy-1.yaml", True),
    ("dummy-[!0-9].yaml", "dummy-1.yaml", False),
    ("a.yaml", "a.yml", False),
])
def test_globs(glob: str, path: str, hit: bool) -> None:
    from secretops.git.guard import _glob_hits

    assert _glob_hits(glob_to_regex(glob), path) is hit


def _config(directory: Path, text: str) -> Path:
    (directory / ".sops.yaml").write_text(text)
    return directory


def test_policy_rules(tmp_path: Path) -> None:
    d = _config(tmp_path, "creation_rules:\n"
                          "  - path_regex: secrets/.*\\.yaml$\n    age: age1x\n"
                          "  - path_regex: ''\n    gcp_kms: projects/x\n")
    policy = Policy({})
    v = policy.verdict(str(d / "secrets" / "a.yaml"), b"")
    assert v.must_encrypt and v.rule == "creation_rules[0] (path_regex secrets/.*\\.yaml$)"
    # the catch-all rule applies but does not make every file a secret (and its key source,
    # which secretops cannot use, does not matter here)
    assert not policy.verdict(str(d / "README.md"), b"").must_encrypt


def test_policy_catch_all_first_wins(tmp_path: Path) -> None:
    d = _config(tmp_path, "creation_rules:\n  - age: age1x\n"
                          "  - path_regex: secrets/\n    age: age1x\n")
    assert not Policy({}).verdict(str(d / "secrets" / "a.yaml"), b"").must_encrypt


def test_policy_allowlist(tmp_path: Path) -> None:
    d = _config(tmp_path, "creation_rules:\n  - path_regex: secrets/\n    age: age1x\n"
                          "secretops:\n  check:\n    allow: [secrets/example.yaml]\n")
    policy = Policy({})
    v = policy.verdict(str(d / "secrets" / "example.yaml"), b"")
    assert v.must_encrypt
    assert v.allowed_by == f"'secrets/example.yaml' in {d / '.sops.yaml'}"
    assert not policy.verdict(str(d / "secrets" / "real.yaml"), b"").allowed_by
    marked = policy.verdict(str(d / "secrets" / "x.yaml"), b"# secretops: allow-plaintext\n")
    assert marked.allowed_by == "the 'secretops: allow-plaintext' marker"


def test_policy_without_config(tmp_path: Path) -> None:
    assert Policy({}).verdict(str(tmp_path / "a.yaml"), b"") == Verdict()


@pytest.mark.parametrize("bad", ["allow: x", "allow: [1]", "allow: ['']"])
def test_policy_bad_allowlist(tmp_path: Path, bad: str) -> None:
    d = _config(tmp_path, f"secretops:\n  check:\n    {bad}\n")
    with pytest.raises(ConfigError, match=r"secretops\.check\.allow must be a list of globs"):
        Policy({}).verdict(str(d / "a.yaml"), b"")
