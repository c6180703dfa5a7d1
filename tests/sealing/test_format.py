"""The sealed-value format: round trips, scopes, moved values, recipients, tampering, errors."""

from __future__ import annotations

import base64
import copy
import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from pyrage import x25519

from secretops.errors import DecryptionError, ExitCode, NoKeyError, SecretOpsError
from secretops.sealing import (
    Binding,
    IdentitySet,
    Scope,
    ScopeMismatchError,
    SealedSecretError,
    SealedValueError,
    load_identities,
    merge_into,
    reseal_sealed,
    seal_secret,
    seal_value,
    unseal_sealed,
    unseal_value,
    verify_sealed,
)
from secretops.sealing.format import MAGIC, decode
from secretops.sealing.keyring import keyring_secret, parse_recipients_file
from secretops.sealing.serialize import dump, load_documents
from secretops.sealing.template import convert_go, render_all
from tests.helpers import CANARY

VALUE = CANARY.encode()


class Key:
    def __init__(self) -> None:
        self.identity = x25519.Identity.generate()
        self.recipient = str(self.identity.to_public())


@pytest.fixture
def key() -> Key:
    return Key()


def _flip(text: str, offset: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[offset] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("scope", list(Scope))
def test_round_trip_every_scope(scope: Scope, key: Key) -> None:
    text = seal_value(VALUE, [key.recipient], scope, "prod", "db", "password")
    assert base64.b64decode(text)[:4] == MAGIC
    assert text.startswith("U09TT")  # the CRD's pattern
    assert unseal_value(text, [key.identity], scope, "prod", "db", "password") == VALUE
    assert CANARY not in text


def test_empty_and_binary_values(key: Key) -> None:
    for value in (b"", bytes(range(256)) * 40):
        text = seal_value(value, [key.recipient], "strict", "ns", "n", "k")
        assert unseal_value(text, [key.identity], "strict", "ns", "n", "k") == value


def test_each_value_gets_a_fresh_data_key_and_nonce(key: Key) -> None:
    a = decode(seal_value(VALUE, [key.recipient], "strict", "ns", "n", "k"))
    b = decode(seal_value(VALUE, [key.recipient], "strict", "ns", "n", "k"))
    assert a.nonce != b.nonce and a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key


def test_rand_is_a_parameter(key: Key) -> None:
    draws = iter([b"K" * 32, b"N" * 12])
    text = seal_value(VALUE, [key.recipient], "strict", "ns", "n", "k",
                      rand=lambda n: next(draws))
    assert decode(text).nonce == b"N" * 12


# Where a value sealed at prod/db/password is moved to, per scope: does it still open?
MOVES = [
    ("other namespace", "staging", "db", "password"),
    ("other name", "prod", "db2", "password"),
    ("other key", "prod", "db", "token"),
]
OPENS = {
    Scope.STRICT: set(),
    Scope.NAMESPACE_WIDE: {"other name"},
    Scope.CLUSTER_WIDE: {"other namespace", "other name"},
}


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("move", MOVES, ids=[m[0] for m in MOVES])
def test_moved_value_is_refused_per_scope(
    scope: Scope, move: tuple[str, str, str, str], key: Key
) -> None:
    what, ns, name, k = move
    text = seal_value(VALUE, [key.recipient], scope, "prod", "db", "password")
    if what in OPENS[scope]:
        assert unseal_value(text, [key.identity], scope, ns, name, k) == VALUE
        return
    with pytest.raises(ScopeMismatchError) as info:
        unseal_value(text, [key.identity], scope, ns, name, k)
    err = info.value
    assert err.code == ExitCode.SEALED_SCOPE_MISMATCH
    assert err.found == Binding.of(scope, "prod", "db", "password")
    assert err.expected == Binding.of(scope, ns, name, k)
    # the message names both places, and no value
    assert err.found.describe() in err.message and err.expected.describe() in err.message
    assert CANARY not in str(err) + "".join(err.hints)


def test_scope_changed_in_the_object_is_refused(key: Key) -> None:
    text = seal_value(VALUE, [key.recipient], "strict", "prod", "db", "password")
    with pytest.raises(ScopeMismatchError, match="sealed for strict scope"):
        unseal_value(text, [key.identity], "cluster-wide", "prod", "db", "password")


def test_rewritten_header_fails_authentication(key: Key) -> None:
    """Editing the header to claim the new place only moves the failure into AES-GCM."""
    text = seal_value(VALUE, [key.recipient], "strict", "prod", "db", "password")
    sv = decode(text)
    forged = type(sv)(Binding.of(Scope.STRICT, "evil", "db", "password"), sv.wrapped_key,
                      sv.nonce, sv.ciphertext).encode()
    with pytest.raises(DecryptionError) as info:
        unseal_value(forged, [key.identity], "strict", "evil", "db", "password")
    assert info.value.code == ExitCode.ERROR_DECRYPTING_TREE


def test_every_recipient_opens_alone(key: Key, tmp_path: Path) -> None:
    others = [Key(), Key()]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ssh_key = Ed25519PrivateKey.generate()
    ssh_pub = ssh_key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode()
    ssh_file = tmp_path / "id_ed25519"
    ssh_file.write_bytes(ssh_key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
    recipients = [key.recipient, *(o.recipient for o in others), ssh_pub]
    text = seal_value(VALUE, recipients, "strict", "ns", "n", "k")
    for ident in [key.identity, *(o.identity for o in others)]:
        assert unseal_value(text, [ident], "strict", "ns", "n", "k") == VALUE
    ssh_ids = load_identities(ssh_file.read_bytes(), str(ssh_file))
    assert unseal_value(text, ssh_ids, "strict", "ns", "n", "k") == VALUE
    # one age message with a stanza per recipient
    stanzas = decode(text).wrapped_key.split(b"\n---")[0]
    assert stanzas.count(b"-> X25519 ") == 3 and stanzas.count(b"-> ssh-ed25519 ") == 1


def test_no_fitting_identity_lists_what_was_tried(key: Key) -> None:
    stranger = Key()
    text = seal_value(VALUE, [key.recipient, Key().recipient], "strict", "ns", "n", "k")
    with pytest.raises(NoKeyError) as info:
        unseal_value(text, [stranger.identity], "strict", "ns", "n", "k")
    msg = info.value.message
    assert info.value.code == ExitCode.COULD_NOT_RETRIEVE_KEY
    assert "2 recipients: 2 X25519" in msg and stranger.recipient in msg
    assert CANARY not in msg


@pytest.mark.parametrize("region", ["nonce", "ciphertext", "tag"])
def test_tampering_is_detected(region: str, key: Key) -> None:
    text = seal_value(VALUE, [key.recipient], "strict", "ns", "n", "k")
    size = len(base64.b64decode(text))
    offset = {"nonce": size - len(VALUE) - 16 - 12, "ciphertext": size - 17,
              "tag": size - 1}[region]
    with pytest.raises(DecryptionError):
        unseal_value(_flip(text, offset), [key.identity], "strict", "ns", "n", "k")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda raw: b"!" + raw, "not base64"),
    (lambda raw: b"XXXX" + raw[4:], "no SOSL header"),
    (lambda raw: raw[:4] + b"\x09" + raw[5:], "unsupported sealed-value format version 9"),
    (lambda raw: raw[:5] + b"\x07" + raw[6:], "unknown scope code 7"),
    (lambda raw: raw[:30], "truncated"),
    (lambda raw: raw[:5] + b"\x02" + raw[6:], "not canonical"),  # cluster-wide with a name
])
def test_malformed_values(mutate: Any, message: str, key: Key) -> None:
    raw = base64.b64decode(seal_value(VALUE, [key.recipient], "strict", "ns", "n", "k"))
    mutated = mutate(raw)
    text = mutated.decode("latin-1") if mutated.startswith(b"!") else base64.b64encode(
        mutated).decode()
    with pytest.raises(SealedValueError, match=message) as info:
        unseal_value(text, [key.identity], "strict", "ns", "n", "k")
    assert info.value.code == ExitCode.INVALID_SEALED_SECRET


def test_layout_byte_by_byte(key: Key) -> None:
    raw = base64.b64decode(seal_value(b"v", [key.recipient], "namespace-wide", "prod", "db",
                                      "k"))
    assert raw[:6] == b"SOSL\x02\x01"  # version 2: the header binds the template
    assert raw[6:14] == b"\x00\x04prod" + b"\x00\x00"  # name is not bound namespace-wide
    assert raw[14:17] == b"\x00\x01k"
    # the default template's digest (type Opaque, no data), as docs/crypto.md defines it
    default = hashlib.sha256(b"secretops.dev/sealed-template/v1\x00" + b"\x00\x00\x00\x06"
                             b"Opaque" + b"\x00\x00\x00\x00").digest()
    assert raw[17:49] == default
    (n,) = struct.unpack(">I", raw[49:53])
    assert raw[53:53 + n].startswith(b"age-encryption.org/v1\n")
    assert len(raw) == 53 + n + 12 + 1 + 16


def test_binding_needs_what_its_scope_binds() -> None:
    with pytest.raises(SecretOpsError, match="needs a namespace"):
        Binding.of(Scope.STRICT, "", "db", "k")
    with pytest.raises(SecretOpsError, match="needs a name"):
        Binding.of(Scope.STRICT, "ns", None, "k")
    with pytest.raises(SecretOpsError, match="invalid Secret key name"):
        Binding.of(Scope.CLUSTER_WIDE, None, None, "a/b")
    assert Binding.of(Scope.CLUSTER_WIDE, "ns", "n", "k") == Binding(Scope.CLUSTER_WIDE, "", "",
                                                                     "k")


# --- whole manifests -------------------------------------------------------------------------

SECRET = {
    "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
    "immutable": True,
    "metadata": {"name": "db", "namespace": "prod", "labels": {"app": "db"},
                 "annotations": {"team": "x", "kubectl.kubernetes.io/last-applied-configuration":
                                 CANARY}},
    "data": {"username": base64.b64encode(b"admin").decode()},
    "stringData": {"password": CANARY},
}


def test_seal_secret_keeps_metadata_type_and_folds_string_data(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient])
    assert sealed["metadata"] == {"name": "db", "namespace": "prod"}
    spec = sealed["spec"]
    assert spec["scope"] == "strict"
    assert sorted(spec["encryptedData"]) == ["password", "username"]
    assert spec["template"] == {"metadata": {"labels": {"app": "db"},
                                             "annotations": {"team": "x"}},
                                "type": "kubernetes.io/basic-auth", "immutable": True}
    assert spec["recipients"] == [key.recipient]
    assert CANARY not in dump(sealed).decode()
    secret = unseal_sealed(sealed, [key.identity])
    assert secret["type"] == "kubernetes.io/basic-auth" and secret["immutable"] is True
    assert secret["metadata"]["labels"] == {"app": "db"}
    assert base64.b64decode(secret["data"]["password"]) == VALUE
    assert "ownerReferences" not in secret["metadata"]


def test_owner_reference_unless_skipped(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient])
    secret = unseal_sealed(sealed, [key.identity], owner_uid="uid-1")
    assert secret["metadata"]["ownerReferences"] == [{
        "apiVersion": "secretops.dev/v1alpha1", "kind": "SealedSecret", "name": "db",
        "uid": "uid-1", "controller": True}]
    sealed["spec"]["template"]["metadata"]["annotations"][
        "secretops.dev/skip-set-owner-references"] = "true"
    assert "ownerReferences" not in unseal_sealed(sealed, [key.identity],
                                                  owner_uid="uid-1")["metadata"]


def test_merge_into_keeps_other_values_identical(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient])
    merged = merge_into(sealed, {"token": b"t", "username": b"root"}, [key.recipient],
                        labels={"tier": "backend"})
    old, new = sealed["spec"]["encryptedData"], merged["spec"]["encryptedData"]
    assert new["password"] == old["password"]
    assert new["username"] != old["username"]
    assert merged["spec"]["template"]["metadata"]["labels"] == {"app": "db", "tier": "backend"}
    data = unseal_sealed(merged, [key.identity])["data"]
    assert base64.b64decode(data["username"]) == b"root"
    assert base64.b64decode(data["token"]) == b"t"


def test_several_failures_are_reported_together(key: Key) -> None:
    sealed = seal_secret(SECRET, [key.recipient])
    moved = copy.deepcopy(sealed)
    moved["metadata"]["namespace"] = "staging"
    with pytest.raises(SealedSecretError) as info:
        unseal_sealed(moved, [key.identity])
    err = info.value
    assert err.code == ExitCode.SEALED_SCOPE_MISMATCH
    assert [k for k, _ in err.errors] == ["password", "username"]
    assert '"password", "username": the value was sealed for strict scope, namespace "prod"' \
        in err.message
    assert CANARY not in str(err)


def test_reseal_goes_to_new_recipients_only(key: Key) -> None:
    new = Key()
    sealed = seal_secret(SECRET, [key.recipient])
    resealed = reseal_sealed(sealed, [key.identity], [new.recipient])
    assert resealed["spec"]["recipients"] == [new.recipient]
    assert resealed["spec"]["template"] == sealed["spec"]["template"]
    assert verify_sealed(resealed, [new.identity]) == 2
    with pytest.raises(SecretOpsError) as info:
        verify_sealed(resealed, [key.identity])
    assert info.value.code == ExitCode.COULD_NOT_RETRIEVE_KEY


def test_templates_render_in_a_sandbox(key: Key) -> None:
    values = {"user": b"admin", "password": VALUE, "tls.crt": b"CERT"}
    out = render_all({
        "url": 'postgres://{{ .user }}:{{ index . "password" }}@db',
        "jinja": "{{ user | upper }}-{{ values['tls.crt'] | b64enc }}",
        "trim": "{{- .user -}}",
    }, values)
    assert out["url"] == b"postgres://admin:" + VALUE + b"@db"
    assert out["jinja"] == b"ADMIN-" + base64.b64encode(b"CERT")
    assert out["trim"] == b"admin"
    assert convert_go('{{ .a | b64enc }} {{ values.b }}') == \
        '{{ values["a"] | b64enc }} {{ values.b }}'
    for bad, why in [
        ("{{ user.__class__.__mro__ }}", "sandbox"),
        ("{{ missing }}", "undefined"),
        ("{{ 'x' * 100000000 }}", "sandbox"),
        ("{{ password.foo() }}", "undefined"),
        ("{% for", "does not parse"),
    ]:
        with pytest.raises(SecretOpsError) as info:
            render_all({"bad": bad}, values)
        err = info.value
        assert err.code == ExitCode.TEMPLATE_ERROR, bad
        assert why in str(err).lower(), (bad, str(err))
        assert CANARY not in str(err)


def test_recipients_file_and_keyring_secret(key: Key) -> None:
    from datetime import UTC, datetime

    text = f"# cluster prod\n\n{key.recipient}\n  # break-glass\n{Key().recipient}\n"
    assert len(parse_recipients_file(text)) == 2
    with pytest.raises(SecretOpsError) as info:
        parse_recipients_file("age1nope\n", "certs.txt")
    assert info.value.code == ExitCode.INVALID_KEY and "line 1" in str(info.value)
    secret = keyring_secret(str(key.identity), key.recipient,
                            datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "secretops")
    assert secret["metadata"]["name"] == "sealing-key-20260102-030405"
    assert secret["metadata"]["labels"] == {"secretops.dev/sealing-key": "true"}
    backup = dump({"apiVersion": "v1", "kind": "List", "items": [secret]})
    ids = load_identities(backup, "backup.yaml")
    assert isinstance(ids, IdentitySet) and ids.names == [key.recipient]
    assert load_documents(backup)[0]["metadata"]["name"] == "sealing-key-20260102-030405"
