"""sops's key service, side by side with sops 3.11, both ways (issue 17).

Every form runs twice against the same running key service — once as ``sops <argv>``, once as
``secretops <argv>`` (:mod:`tests.compat.sidebyside`) — and each form runs against a ``sops
keyservice`` and a ``secretops keyservice`` (the ``server`` parameter). The identity is only
the key service's: the clients' environment holds no key, so a decrypt that works went through
the service, and with ``--enable-local-keyservice=false`` an encrypt did too (its log says so).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.sidebyside import assert_same, decrypted, run_both
from tests.fixtures.gpg import GpgKey
from tests.fixtures.hckms import HuaweiKms
from tests.fixtures.keyservice import KeyService, StartKeyService
from tests.fixtures.openbao import OpenBao
from tests.helpers import CANARY, AgeKey, make_age_key, sops

PLAIN = f"a: {CANARY}\nnum: 1\n"
OFF = "--enable-local-keyservice=false"


def _served(program: str, keyservice: StartKeyService, tmp: Path, *, unix: bool = False,
            extra_env: dict[str, str] | None = None) -> tuple[KeyService, AgeKey]:
    """A key service of ``program`` holding a fresh age key the test's environment lacks."""
    home = tmp / f"server-{program}-{'unix' if unix else 'tcp'}"
    home.mkdir()
    key = make_age_key(home)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "SOPS_AGE_KEY_FILE": str(key.path), **(extra_env or {})}
    return keyservice(program, env, unix=unix), key


def _enc(sops_bin: str, tmp: Path, recipient: str, text: str = PLAIN,
         name: str = "s.yaml") -> bytes:
    src = tmp / "plain" / name
    src.parent.mkdir(exist_ok=True)
    src.write_text(text)
    r = sops(sops_bin, "encrypt", "--age", recipient, str(src))
    assert r.code == 0, r.err
    return r.out


SERVERS = ["sops", "secretops"]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("form", [
    ["decrypt", "--keyservice", "{uri}", OFF, "s.yaml"],
    ["decrypt", OFF, "--keyservice", "{uri}", "s.yaml"],
    ["decrypt", "--keyservice", "{uri}", "s.yaml"],  # local first: it has no key, then the service
    ["decrypt", "--keyservice", "tcp://127.0.0.1:1", "--keyservice", "{uri}", OFF, "s.yaml"],
    ["decrypt", "--keyservice", "{uri}", "--enable-local-keyservice", "s.yaml"],
    ["decrypt", "--keyservice", "{uri}", "--enable-local-keyservice=0", "--extract", '["a"]',
     "s.yaml"],
    ["decrypt", "--keyservice", "{uri}", OFF, "--output-type", "json", "s.yaml"],
    # sops's global mode: the flags before or after -d
    ["-d", "--keyservice", "{uri}", OFF, "s.yaml"],
    ["--keyservice", "{uri}", OFF, "-d", "s.yaml"],
    ["--decrypt", "--keyservice", "{uri}", "s.yaml"],
], ids=lambda f: " ".join(f) if isinstance(f, list) else f)
def test_decrypt_through_a_key_service(server: str, form: list[str], sops_bin: str,
                                       keyservice: StartKeyService, tmp_path: Path) -> None:
    """sops and secretops decrypt a file whose only identity is the key service's: the same
    plaintext, from either kind of key service."""
    ks, key = _served(server, keyservice, tmp_path)
    enc = _enc(sops_bin, tmp_path, key.recipient)
    argv = [a.replace("{uri}", ks.uri) for a in form]
    pair = run_both(sops_bin, argv, {"s.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    fmt = "json" if "json" in form else "yaml"
    assert_same(pair, stdout="bytes" if "--extract" in form else "data", fmt=fmt)
    assert ks.log.count("decrypt") >= 2 or server == "sops"  # ours logs each request


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("env_form", [
    {"SOPS_KEYSERVICE": "{uri}", "SOPS_ENABLE_LOCAL_KEYSERVICE": "false"},
    {"SOPS_KEYSERVICE": "tcp://127.0.0.1:1, {uri}", "SOPS_ENABLE_LOCAL_KEYSERVICE": "0"},
    {"SOPS_KEYSERVICE": "127.0.0.1:1,{uri}", "SOPS_ENABLE_LOCAL_KEYSERVICE": ""},
    {"SOPS_KEYSERVICE": "{uri}", "SOPS_ENABLE_LOCAL_KEYSERVICE": "True"},
], ids=str)
def test_decrypt_with_the_variables(server: str, env_form: dict[str, str], sops_bin: str,
                                    keyservice: StartKeyService, tmp_path: Path) -> None:
    """``SOPS_KEYSERVICE`` (comma-separated, a value that is not a URL skipped with a
    warning) and ``SOPS_ENABLE_LOCAL_KEYSERVICE`` (Go's booleans; empty is false), as sops
    reads them."""
    ks, key = _served(server, keyservice, tmp_path)
    enc = _enc(sops_bin, tmp_path, key.recipient)
    env = {**os.environ, **{k: v.replace("{uri}", ks.uri) for k, v in env_form.items()}}
    pair = run_both(sops_bin, ["decrypt", "s.yaml"], {"s.yaml": enc}, tmp_path, env=env)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="data")
    if env_form["SOPS_KEYSERVICE"].startswith("127.0.0.1"):
        assert "skipped" in pair.ours.err and "127.0.0.1:1" in pair.ours.err


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("form", [
    ["encrypt", "--keyservice", "{uri}", OFF, "--age", "{recipient}", "p.yaml"],
    ["encrypt", OFF, "--keyservice", "tcp://127.0.0.1:1", "--keyservice", "{uri}", "--age",
     "{recipient}", "p.yaml"],
    ["-e", "--keyservice", "{uri}", OFF, "-a", "{recipient}", "p.yaml"],
], ids=lambda f: " ".join(f) if isinstance(f, list) else f)
def test_encrypt_through_a_key_service(server: str, form: list[str], sops_bin: str,
                                       keyservice: StartKeyService, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With the local key service off, the data key is wrapped by the remote one: both
    programs write a file the key opens, and the service saw one encrypt request each."""
    ks, key = _served(server, keyservice, tmp_path)
    argv = [a.replace("{uri}", ks.uri).replace("{recipient}", key.recipient) for a in form]
    pair = run_both(sops_bin, argv, {"p.yaml": PLAIN}, tmp_path)
    assert pair.sops.ok and pair.ours.ok, pair
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
    assert_same(pair, stdout="decrypted")
    assert decrypted(pair.ours.out, "yaml")[0]["a"] == CANARY
    if server == "secretops":
        assert ks.log.count(" encrypt age recipient ") == 2, ks.log
    assert CANARY not in ks.log


@pytest.mark.parametrize("server", SERVERS)
def test_a_unix_socket(server: str, sops_bin: str, keyservice: StartKeyService,
                       tmp_path: Path) -> None:
    """``--network unix`` and ``--keyservice unix:///PATH``, both ways."""
    ks, key = _served(server, keyservice, tmp_path, unix=True)
    enc = _enc(sops_bin, tmp_path, key.recipient)
    pair = run_both(sops_bin, ["decrypt", "--keyservice", ks.uri, OFF, "s.yaml"],
                    {"s.yaml": enc}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="data")


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(("form", "files"), [
    (["rotate", "--keyservice", "{uri}", OFF, "s.yaml"], "ignore"),
    (["rotate", "-i", "--keyservice", "{uri}", OFF, "s.yaml"], "decrypted"),
    (["set", "--keyservice", "{uri}", OFF, "s.yaml", '["num"]', "2"], "decrypted"),
    (["unset", "--keyservice", "{uri}", OFF, "s.yaml", '["num"]'], "decrypted"),
    (["exec-env", "--keyservice", "{uri}", OFF, "s.yaml", "echo $num"], "bytes"),
    (["exec-file", "--keyservice", "{uri}", OFF, "s.yaml", "grep -c num {}"], "bytes"),
    (["updatekeys", "-y", "--keyservice", "{uri}", OFF, "s.yaml"], "decrypted"),
    (["edit", "--keyservice", "{uri}", OFF, "s.yaml"], "decrypted"),
], ids=lambda f: " ".join(f) if isinstance(f, list) else f)
def test_other_commands_through_a_key_service(server: str, form: list[str], files: str,
                                              sops_bin: str, keyservice: StartKeyService,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command that takes sops's key service flags decrypts (and where it writes,
    wraps) through the service: the same outcome and files as sops."""
    ks, key = _served(server, keyservice, tmp_path)
    other = make_age_key(tmp_path, "other.txt")
    enc = _enc(sops_bin, tmp_path, key.recipient)
    files_in: dict[str, bytes | str] = {"s.yaml": enc}
    env = dict(os.environ)
    if form[0] == "updatekeys":  # the rule adds a second recipient: a new entry is wrapped
        files_in[".sops.yaml"] = ("creation_rules:\n  - age: "
                                  f"{key.recipient},{other.recipient}\n")
    if form[0] == "edit":
        editor = tmp_path / "editor.sh"
        editor.write_text("#!/bin/sh\nsed -i 's/^num: 1/num: 5/' \"$1\"\n")
        editor.chmod(0o755)
        env["EDITOR"] = str(editor)
    argv = [a.replace("{uri}", ks.uri) for a in form]
    pair = run_both(sops_bin, argv, files_in, tmp_path, env=env)
    assert pair.sops.ok, pair
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.path))
    stdout = "bytes" if form[0].startswith("exec") else "decrypted" if form[0] == "rotate" else (
        "ignore")
    assert_same(pair, stdout=stdout, files=files)  # type: ignore[arg-type]
    assert CANARY not in ks.log


@pytest.mark.parametrize("server", SERVERS)
def test_shamir_shares_go_through_the_service(server: str, sops_bin: str,
                                              keyservice: StartKeyService,
                                              tmp_path: Path) -> None:
    """Two key groups, threshold 2: the service unwraps 33-byte shares, not data keys."""
    home = tmp_path / "two"
    home.mkdir()
    k1, k2 = make_age_key(home, "k1.txt"), make_age_key(home, "k2.txt")
    both = home / "keys.txt"
    both.write_text(k1.path.read_text() + k2.path.read_text())
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(both)}
    ks = keyservice(server, env)
    cfg = (f"creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
           f"      - age: [{k1.recipient}]\n      - age: [{k2.recipient}]\n")
    plain = tmp_path / "sh"
    plain.mkdir()
    (plain / ".sops.yaml").write_text(cfg)
    (plain / "s.yaml").write_text(PLAIN)
    r = sops(sops_bin, "encrypt", "s.yaml", cwd=plain)
    assert r.code == 0, r.err
    pair = run_both(sops_bin, ["decrypt", "--keyservice", ks.uri, OFF, "s.yaml"],
                    {"s.yaml": r.out}, tmp_path)
    assert pair.sops.ok, pair
    assert_same(pair, stdout="data")


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(("form", "same_code"), [
    (["decrypt", OFF, "s.yaml"], True),  # no key service at all: 128 both
    (["encrypt", OFF, "--age", "{recipient}", "p.yaml"], True),  # 1 both
    (["decrypt", "--keyservice", "tcp://127.0.0.1:1", OFF, "s.yaml"], True),  # down: 128
    (["decrypt", "--keyservice", "unix:///nonexistent/ks.sock", OFF, "s.yaml"], True),
    (["decrypt", "--keyservice", "foo://127.0.0.1:1", OFF, "s.yaml"], True),
    (["decrypt", "--keyservice", "{uri}", "--enable-local-keyservice=maybe", "s.yaml"], False),
    # sops exits 1 on a failed wrap, secretops 23 (ERROR_ENCRYPTING_TREE) as for a local one
    (["encrypt", "--keyservice", "tcp://127.0.0.1:1", OFF, "--age", "{recipient}", "p.yaml"],
     False),
], ids=lambda f: " ".join(f) if isinstance(f, list) else str(f))
def test_failures(server: str, form: list[str], same_code: bool, sops_bin: str,
                  keyservice: StartKeyService, tmp_path: Path) -> None:
    """What fails in sops fails in secretops, with sops's exit code where the meaning is the
    same; nothing is written."""
    ks, key = _served(server, keyservice, tmp_path)
    other = make_age_key(tmp_path, "other.txt")  # the file's key is nobody's
    enc = _enc(sops_bin, tmp_path, other.recipient)
    argv = [a.replace("{uri}", ks.uri).replace("{recipient}", key.recipient) for a in form]
    pair = run_both(sops_bin, argv, {"s.yaml": enc, "p.yaml": PLAIN}, tmp_path)
    assert not pair.sops.ok and not pair.ours.ok, pair
    assert_same(pair, code=same_code, stdout="ignore")
    assert "Traceback" not in pair.ours.err


def test_bad_local_keyservice_variable(sops_bin: str, age_key: AgeKey, tmp_path: Path) -> None:
    """An unreadable SOPS_ENABLE_LOCAL_KEYSERVICE stops both before any file is read: exit 1."""
    enc = _enc(sops_bin, tmp_path, age_key.recipient)
    env = {**os.environ, "SOPS_ENABLE_LOCAL_KEYSERVICE": "maybe"}
    pair = run_both(sops_bin, ["decrypt", "s.yaml"], {"s.yaml": enc}, tmp_path, env=env)
    assert pair.sops.code == 1 and pair.ours.code == 1, pair
    assert "SOPS_ENABLE_LOCAL_KEYSERVICE" in pair.ours.err


@pytest.fixture
def server_gnupghome() -> Iterator[str]:
    """A GNUPGHOME for the key service's side, its gpg-agent stopped afterwards."""
    import shutil
    import tempfile

    from tests.fixtures.gpg import kill_agents

    home = tempfile.mkdtemp(prefix="g")
    yield home
    kill_agents(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("local", [OFF, "--enable-local-keyservice=true"])
def test_pgp_through_a_key_service(server: str, local: str, sops_bin: str,
                                   keyservice: StartKeyService, tmp_path: Path,
                                   gpg_keys: tuple[GpgKey, GpgKey], server_gnupghome: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A PGP key whose public and secret parts only the key service's keyring holds: both
    programs encrypt for it and decrypt with it through the service — with the local key
    service on too, where the local gpg fails first (no such key) and the service answers."""
    from tests.fixtures.gpg import import_key

    key = gpg_keys[0]
    import_key(key, home=server_gnupghome)
    env = {**os.environ, "GNUPGHOME": server_gnupghome}
    ks = keyservice(server, env)
    enc = run_both(sops_bin, ["encrypt", "--keyservice", ks.uri, local, "--pgp",
                              key.fingerprint, "p.yaml"], {"p.yaml": PLAIN}, tmp_path)
    assert enc.sops.ok and enc.ours.ok, enc
    for made in (enc.sops.out, enc.ours.out):
        pair = run_both(sops_bin, ["decrypt", "--keyservice", ks.uri, local, "s.yaml"],
                        {"s.yaml": made}, tmp_path)
        assert pair.sops.ok, pair
        assert_same(pair, stdout="data")
        assert CANARY.encode() in pair.ours.out
    monkeypatch.setenv("GNUPGHOME", server_gnupghome)
    assert decrypted(enc.ours.out, "yaml")[0]["a"] == CANARY


@pytest.mark.parametrize("server", SERVERS)
def test_vault_transit_through_a_key_service(server: str, sops_bin: str, openbao: OpenBao,
                                             keyservice: StartKeyService,
                                             tmp_path: Path) -> None:
    """Only the key service has a Vault token: both programs encrypt for a transit key and
    decrypt with it through the service, the local key service on (it fails: no token)."""
    import uuid

    name = f"k-{uuid.uuid4().hex[:12]}"
    openbao.client().secrets.transit.create_key(name=name, mount_point="transit")
    env = {**os.environ, "VAULT_ADDR": openbao.url, "VAULT_TOKEN": openbao.token}
    ks = keyservice(server, env)
    client_env = {**os.environ, "VAULT_ADDR": "http://127.0.0.1:1"}  # no token here
    enc = run_both(sops_bin, ["encrypt", "--keyservice", ks.uri, "--hc-vault-transit",
                              openbao.uri(name), "p.yaml"], {"p.yaml": PLAIN}, tmp_path,
                   env=client_env)
    assert enc.sops.ok and enc.ours.ok, enc
    for made in (enc.sops.out, enc.ours.out):
        assert b"vault:v1:" in made
        pair = run_both(sops_bin, ["decrypt", "--keyservice", ks.uri, "s.yaml"],
                        {"s.yaml": made}, tmp_path, env=client_env)
        assert pair.sops.ok, pair
        assert_same(pair, stdout="data")
        assert CANARY.encode() in pair.ours.out
    assert openbao.token not in ks.log


@pytest.mark.parametrize("server", SERVERS)
def test_hckms_through_a_key_service(server: str, sops_bin: str, hckms: HuaweiKms,
                                     keyservice: StartKeyService, tmp_path: Path) -> None:
    """Only the key service holds HuaweiCloud credentials (the stand-in's): both programs
    encrypt for a HuaweiCloud KMS key and decrypt with it through the service. The clients run
    with the local key service off: with it on and no credentials, the sops binary's SDK would
    ask the ECS metadata address."""
    ks = keyservice(server, dict(os.environ))
    client_env = {k: v for k, v in os.environ.items() if not k.startswith("HUAWEICLOUD_")}
    enc = run_both(sops_bin, ["encrypt", OFF, "--keyservice", ks.uri, "--hckms",
                              hckms.key_ids[0], "p.yaml"], {"p.yaml": PLAIN}, tmp_path,
                   env=client_env)
    assert enc.sops.ok and enc.ours.ok, enc
    for made in (enc.sops.out, enc.ours.out):
        assert hckms.key_ids[0].encode() in made
        pair = run_both(sops_bin, ["decrypt", OFF, "--keyservice", ks.uri, "s.yaml"],
                        {"s.yaml": made}, tmp_path, env=client_env)
        assert pair.sops.ok, pair
        assert_same(pair, stdout="data")
        assert CANARY.encode() in pair.ours.out
    assert hckms.server.sk not in ks.log
