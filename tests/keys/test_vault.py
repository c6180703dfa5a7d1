"""Vault transit (hc_vault) against a real OpenBao dev server, and the real sops binary.

Interop both ways, the token from ``~/.vault-token``, key rotation with ``vault rewrap``
(values, lastmodified and mac byte-identical), ``min_decryption_version``, a token without
permission, an unreachable server, ``.sops.yaml`` rules, and sops's metadata field order. The
canary plaintext never shows up on stderr.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.openbao import OpenBao, free_port
from tests.helpers import CANARY, Result, data_of, run, secretops, sops

TEXT = f"db:\n    password: {CANARY}\n    user: admin\n"


def rewrap(*files: str) -> Result:
    """``secretops vault rewrap`` (run through the group itself until app.py registers it)."""
    code = "import sys; from secretops.cli.vault import command; command(sys.argv[1:])"
    return run([sys.executable, "-c", code, "rewrap", *files])


def key_name(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def encrypt(tmp_path: Path, uri: str, name: str = "s.enc.yaml") -> Path:
    src = tmp_path / "plain.yaml"
    src.write_text(TEXT)
    r = secretops("encrypt", "--hc-vault-transit", uri, str(src))
    assert r.code == 0, r.err
    out = tmp_path / name
    out.write_bytes(r.out)
    return out


def enc_lines(text: str) -> list[str]:
    """Every value's ciphertext line, plus lastmodified and mac."""
    return [ln for ln in text.splitlines()
            if "ENC[" in ln or ln.strip().startswith("lastmodified:")]


def sops_block(path: Path) -> dict[str, Any]:
    meta = yaml.safe_load(path.read_text())["sops"]
    assert isinstance(meta, dict)
    return meta


def no_canary(*results: Result) -> None:
    for r in results:
        assert CANARY not in r.err and CANARY not in r.text


def test_secretops_encrypts_sops_decrypts(tmp_path: Path, vault_key: str, sops_bin: str) -> None:
    f = encrypt(tmp_path, vault_key)
    entry = sops_block(f)["hc_vault"][0]
    addr, _, _ = vault_key.partition("/v1/")
    assert entry["vault_address"] == addr
    assert entry["engine_path"] == "transit" and entry["key_name"] == key_name(vault_key)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["created_at"])
    assert entry["enc"].startswith("vault:v1:")
    r = sops(sops_bin, "decrypt", str(f))
    assert r.code == 0, r.err
    assert data_of(r.out, "yaml") == data_of(TEXT.encode(), "yaml")
    assert secretops("decrypt", str(f)).text == TEXT


def test_sops_encrypts_secretops_decrypts(tmp_path: Path, vault_key: str, sops_bin: str) -> None:
    src = tmp_path / "plain.yaml"
    src.write_text(TEXT)
    r = sops(sops_bin, "encrypt", "--hc-vault-transit", vault_key, str(src))
    assert r.code == 0, r.err
    f = tmp_path / "s.enc.yaml"
    f.write_bytes(r.out)
    d = secretops("decrypt", str(f))
    assert d.code == 0, d.err
    assert d.text == TEXT


def test_metadata_field_order_is_sops_order(tmp_path: Path, vault_key: str,
                                            sops_bin: str) -> None:
    ours = encrypt(tmp_path, vault_key, "ours.yaml")
    r = sops(sops_bin, "encrypt", "--hc-vault-transit", vault_key, str(tmp_path / "plain.yaml"))
    assert r.code == 0, r.err
    theirs = tmp_path / "theirs.yaml"
    theirs.write_bytes(r.out)

    def shape(path: Path) -> list[str]:
        # every line of the sops block, with its values blanked
        block = path.read_text().split("\nsops:\n", 1)[1]
        return [re.sub(r":( .*)?$", ":", ln) for ln in block.splitlines()]

    assert shape(ours) == shape(theirs)
    assert list(sops_block(ours)["hc_vault"][0]) == [
        "vault_address", "engine_path", "key_name", "created_at", "enc"]


def test_token_from_vault_token_file(tmp_path: Path, vault_key: str, sops_bin: str,
                                     isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN")
    (isolated_env / ".vault-token").write_text("root\n")
    f = encrypt(tmp_path, vault_key)
    assert secretops("decrypt", str(f)).text == TEXT
    r = sops(sops_bin, "decrypt", str(f))
    assert r.code == 0 and data_of(r.out, "yaml") == data_of(TEXT.encode(), "yaml")


def test_no_token_is_a_clear_error(tmp_path: Path, vault_key: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    f = encrypt(tmp_path, vault_key)
    monkeypatch.delenv("VAULT_TOKEN")
    d = secretops("decrypt", str(f))
    assert d.code == 128
    assert f"Vault transit key {vault_key}: no Vault token" in d.err
    e = secretops("encrypt", "--hc-vault-transit", vault_key, str(tmp_path / "plain.yaml"))
    assert e.code == 23
    assert f"cannot encrypt with Vault transit key {vault_key}: no Vault token" in e.err
    no_canary(d, e)


class _Listener:
    """A TCP server on 127.0.0.1 that records what it is sent (someone else's "Vault")."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 403 x\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_the_token_goes_only_to_the_server_vault_addr_names(
        tmp_path: Path, vault_key: str, openbao: OpenBao, sops_bin: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who can write the repository points a file's hc_vault entry at their server:
    sops sends whoever decrypts it their Vault token; secretops sends it only to VAULT_ADDR's
    server (or one listed in SECRETOPS_VAULT_ADDRS)."""
    f = encrypt(tmp_path, vault_key)
    assert secretops("decrypt", str(f)).text == TEXT  # VAULT_ADDR is the file's server
    theirs = _Listener()
    try:
        planted = tmp_path / "planted.enc.yaml"
        planted.write_text(f.read_text().replace(openbao.url, theirs.url))
        r = secretops("decrypt", str(planted))
        assert r.code == 128
        assert f"refusing to send the Vault token to {theirs.url}" in r.err
        assert theirs.received == b""  # not even a connection's worth
        token = openbao.token.encode()
        assert sops(sops_bin, "decrypt", str(planted)).code != 0
        assert token in theirs.received  # what sops hands over
        # VAULT_ADDR elsewhere: the file's real server is refused too, until it is listed.
        monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{free_port()}")
        r = secretops("decrypt", str(f))
        assert r.code == 128 and "set VAULT_ADDR to it" in r.err
        monkeypatch.setenv("SECRETOPS_VAULT_ADDRS", f"https://other.example, {openbao.url}/")
        assert secretops("decrypt", str(f)).text == TEXT
        # Through the user's own Vault Agent, the agent decides.
        monkeypatch.delenv("SECRETOPS_VAULT_ADDRS")
        monkeypatch.setenv("VAULT_AGENT_ADDR", openbao.url)
        assert secretops("decrypt", str(f)).text == TEXT
        # Encrypting to a .sops.yaml / command-line URI follows the same rule.
        monkeypatch.delenv("VAULT_AGENT_ADDR")
        src = tmp_path / "plain.yaml"
        r = secretops("encrypt", "--hc-vault-transit", vault_key, str(src))
        assert r.code == 23 and "refusing to send the Vault token" in r.err
    finally:
        theirs.close()


def test_rotation_and_rewrap(tmp_path: Path, vault_key: str, openbao: OpenBao,
                             sops_bin: str) -> None:
    f = encrypt(tmp_path, vault_key)
    before = f.read_text()
    openbao.client().secrets.transit.rotate_key(name=key_name(vault_key))
    r = rewrap(str(f))
    assert r.code == 0, r.err
    assert r.text == f"{f}: rewrapped {vault_key} (v1 -> v2)\n"
    after = f.read_text()
    assert enc_lines(after) == enc_lines(before)  # values, lastmodified and mac
    new_entry = yaml.safe_load(after)["sops"]["hc_vault"][0]
    old_entry = yaml.safe_load(before)["sops"]["hc_vault"][0]
    assert old_entry["enc"].startswith("vault:v1:") and new_entry["enc"].startswith("vault:v2:")
    assert new_entry["created_at"] == old_entry["created_at"]
    # only the enc line changed
    diff = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(diff) == 1 and "enc: vault:v2:" in diff[0][1]
    assert secretops("decrypt", str(f)).text == TEXT
    s = sops(sops_bin, "decrypt", str(f))
    assert s.code == 0 and data_of(s.out, "yaml") == data_of(TEXT.encode(), "yaml")
    # a second run has nothing to do and leaves the bytes alone
    again = rewrap(str(f))
    assert again.code == 0 and "already at the newest key versions" in again.text
    assert f.read_text() == after
    no_canary(r, again)


def test_min_decryption_version_above_the_files_version(tmp_path: Path, vault_key: str,
                                                        openbao: OpenBao) -> None:
    f = encrypt(tmp_path, vault_key)
    transit = openbao.client().secrets.transit
    transit.rotate_key(name=key_name(vault_key))
    transit.update_key_configuration(name=key_name(vault_key), min_decryption_version=2)
    d = secretops("decrypt", str(f))
    assert d.code == 128
    assert vault_key in d.err
    assert "key version 1, which is below the transit key's min_decryption_version" in d.err
    before = f.read_bytes()
    r = rewrap(str(f))
    assert r.code == 128 and f"cannot rewrap with Vault transit key {vault_key}" in r.err
    assert f.read_bytes() == before
    # the documented way out: lower it, rewrap, raise it again
    transit.update_key_configuration(name=key_name(vault_key), min_decryption_version=1)
    assert rewrap(str(f)).code == 0
    transit.update_key_configuration(name=key_name(vault_key), min_decryption_version=2)
    assert secretops("decrypt", str(f)).text == TEXT
    no_canary(d, r)


def test_token_without_permission(tmp_path: Path, vault_key: str, openbao: OpenBao,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    f = encrypt(tmp_path, vault_key)
    root = openbao.client()
    policy = f"nothing-{key_name(vault_key)}"
    root.sys.create_or_update_policy(
        name=policy, policy='path "secret/*" { capabilities = ["read"] }')
    token = root.auth.token.create(policies=[policy], no_default_policy=True)["auth"][
        "client_token"]
    monkeypatch.setenv("VAULT_TOKEN", token)
    name = key_name(vault_key)
    d = secretops("decrypt", str(f))
    assert d.code == 128
    assert f"Vault transit key {vault_key}: permission denied (403)" in d.err
    assert f'"update" on transit/decrypt/{name}' in d.err
    e = secretops("encrypt", "--hc-vault-transit", vault_key, str(tmp_path / "plain.yaml"))
    assert e.code == 23 and f'"update" on transit/encrypt/{name}' in e.err
    r = rewrap(str(f))
    assert r.code == 128 and f'"update" on transit/rewrap/{name}' in r.err
    for res in (d, e, r):
        assert token not in res.err
    no_canary(d, e, r)


def test_unreachable_server_fails_fast(tmp_path: Path, vault_key: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    f = encrypt(tmp_path, vault_key)
    addr = vault_key.partition("/v1/")[0]
    dead = f"http://127.0.0.1:{free_port()}"
    f.write_text(f.read_text().replace(addr, dead))
    monkeypatch.setenv("VAULT_ADDR", dead)  # the token may go there: it is just down
    start = time.monotonic()
    d = secretops("decrypt", str(f))
    assert time.monotonic() - start < 8
    assert d.code == 128
    dead_uri = vault_key.replace(addr, dead)
    assert f"Vault transit key {dead_uri}: cannot reach Vault at {dead}" in d.err
    start = time.monotonic()
    e = secretops("encrypt", "--hc-vault-transit", dead_uri, str(tmp_path / "plain.yaml"))
    assert time.monotonic() - start < 8
    assert e.code == 23 and f"cannot encrypt with Vault transit key {dead_uri}" in e.err
    assert len(d.err.splitlines()) <= 3  # error + hint per key, no traceback
    no_canary(d, e)


def test_sops_yaml_creation_rule(tmp_path: Path, vault_key: str, sops_bin: str) -> None:
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: \\.yaml$\n    hc_vault_transit_uri: {vault_key}\n")
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    r = secretops("encrypt", "-i", str(f))
    assert r.code == 0, r.err
    assert sops_block(f)["hc_vault"][0]["key_name"] == key_name(vault_key)
    s = sops(sops_bin, "decrypt", str(f))
    assert s.code == 0 and data_of(s.out, "yaml") == data_of(TEXT.encode(), "yaml")
    # and the other way: sops encrypts by the same rule, secretops decrypts
    g = tmp_path / "t.yaml"
    g.write_text(TEXT)
    assert sops(sops_bin, "encrypt", "-i", str(g)).code == 0
    assert secretops("decrypt", str(g)).text == TEXT


def test_key_groups_with_vault_and_shamir(tmp_path: Path, vault_key: str, openbao: OpenBao,
                                          sops_bin: str) -> None:
    second = f"k-{key_name(vault_key)}-2"
    openbao.client().secrets.transit.create_key(name=second)
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - hc_vault: [{vault_key}]\n      - hc_vault: [{openbao.uri(second)}]\n")
    f = tmp_path / "s.yaml"
    f.write_text(TEXT)
    assert secretops("encrypt", "-i", str(f)).code == 0
    s = sops(sops_bin, "decrypt", str(f))
    assert s.code == 0 and data_of(s.out, "yaml") == data_of(TEXT.encode(), "yaml")
    before = f.read_text()
    openbao.client().secrets.transit.rotate_key(name=second)
    r = rewrap(str(f))
    assert r.code == 0 and r.text.count("->") == 1 and second in r.text
    assert enc_lines(f.read_text()) == enc_lines(before)
    assert secretops("decrypt", str(f)).text == TEXT


def test_a_server_that_does_not_answer_times_out(tmp_path: Path, vault_key: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    f = encrypt(tmp_path, vault_key)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = f"http://127.0.0.1:{silent.getsockname()[1]}"
        f.write_text(f.read_text().replace(vault_key.partition("/v1/")[0], mute))
        monkeypatch.setenv("VAULT_ADDR", mute)
        monkeypatch.setenv("VAULT_CLIENT_TIMEOUT", "0.5")
        start = time.monotonic()
        d = secretops("decrypt", str(f))
        assert time.monotonic() - start < 8
    assert d.code == 128
    assert f"Vault at {mute} did not answer within 0.5 s" in d.err


def test_vault_agent_addr_takes_precedence_as_in_sops(tmp_path: Path, vault_key: str,
                                                      sops_bin: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    f = encrypt(tmp_path, vault_key)
    addr = vault_key.partition("/v1/")[0]
    f.write_text(f.read_text().replace(addr, f"http://127.0.0.1:{free_port()}"))
    monkeypatch.setenv("VAULT_AGENT_ADDR", addr)
    assert secretops("decrypt", str(f)).text == TEXT
    assert sops(sops_bin, "decrypt", str(f)).code == 0


def test_read_token_uses_home_from_the_given_environment(tmp_path: Path) -> None:
    from secretops.keys.vault import read_token

    (tmp_path / ".vault-token").write_text("  s.abc \n")
    assert read_token({"HOME": str(tmp_path)}) == "s.abc"
    assert read_token({"HOME": str(tmp_path), "VAULT_TOKEN": "s.env"}) == "s.env"
    assert read_token({"HOME": str(tmp_path / "nowhere")}) == ""


def test_rewrap_metadata_leaves_other_entries_and_its_input_alone(vault_key: str,
                                                                  openbao: OpenBao) -> None:
    import os

    from secretops.core.metadata import KeyEntry, Metadata
    from secretops.keys.vault import recipient, rewrap_metadata, vault_spec

    env = dict(os.environ)
    entry = recipient(vault_spec(vault_key).fields, env).wrap(b"k" * 32)
    age = KeyEntry("age", {"recipient": "age1xyz", "enc": "armored"})
    meta = Metadata(key_groups=[[age, entry]], lastmodified="2026-01-01T00:00:00Z", mac="M")
    same, changes = rewrap_metadata(meta, env)
    assert changes == [] and same == meta
    openbao.client().secrets.transit.rotate_key(name=key_name(vault_key))
    new, changes = rewrap_metadata(meta, env)
    assert [(c.key, c.old_version, c.new_version) for c in changes] == [(vault_key, 1, 2)]
    assert meta.key_groups[0][1] is entry and entry.enc.startswith("vault:v1:")
    assert new.key_groups[0][0] == age and new.key_groups[0][1].enc.startswith("vault:v2:")
    assert (new.lastmodified, new.mac) == (meta.lastmodified, meta.mac)
