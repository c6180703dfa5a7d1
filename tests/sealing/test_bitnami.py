"""Bitnami migration: their HybridDecrypt, labels per scope, every backed-up key, moved values.

No kubeseal binary can run here and their repository has no sealed values with known keys, so
the values come from :func:`hybrid_encrypt`, a line-by-line Python mirror of their
``HybridEncrypt`` (bitnami-labs/sealed-secrets ``pkg/crypto/crypto.go`` at 86671a8), and
:func:`encryption_label`, their ``EncryptionLabel`` (``pkg/apis/sealedsecrets/v1alpha1/
sealedsecret_expansion.go``). The fixed vectors in ``tests/testdata/bitnami`` were written by
:func:`write_vectors` (``python -m tests.sealing.test_bitnami``); their README says how.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretops.errors import ExitCode, NoKeyError
from secretops.sealing import IdentitySet, Scope, ScopeMismatchError, unseal_sealed
from secretops.sealing.bitnami import convert, load_keys, secret_scope
from secretops.sealing.format import TemplateNotBoundError
from secretops.sealing.keyring import identities_from_age_text
from tests.helpers import CANARY, TESTDATA

VECTORS = TESTDATA / "bitnami"


# --- the reference: their Go, mirrored ------------------------------------------------------

def encryption_label(namespace: str, name: str, scope: str) -> bytes:
    # func EncryptionLabel(namespace, name string, scope SealingScope) []byte
    if scope == "cluster-wide":  # case ClusterWideScope: l = ""
        return b""
    if scope == "namespace-wide":  # case NamespaceWideScope: l = namespace
        return namespace.encode()
    return f"{namespace}/{name}".encode()  # StrictScope, default: fmt.Sprintf("%s/%s", ...)


def hybrid_encrypt(rnd: Callable[[int], bytes], pub_key: Any, plaintext: bytes,
                   label: bytes) -> bytes:
    """func HybridEncrypt(rnd io.Reader, pubKey *rsa.PublicKey, plaintext, label []byte)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    session_key = rnd(32)  # sessionKey := make([]byte, sessionKeyBytes); io.ReadFull(rnd, …)
    aed = AESGCM(session_key)  # aes.NewCipher(sessionKey); cipher.NewGCM(block)
    # rsa.EncryptOAEP(sha256.New(), rnd, pubKey, sessionKey, label): Go uses the one hash for
    # OAEP and MGF1 (cryptography draws OAEP's seed itself, not from rnd)
    rsa_ciphertext = pub_key.encrypt(session_key, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label or None))
    # binary.BigEndian.PutUint16(ciphertext, uint16(len(rsaCiphertext)))
    ciphertext = struct.pack(">H", len(rsa_ciphertext)) + rsa_ciphertext
    zero_nonce = bytes(12)  # make([]byte, aed.NonceSize())
    return ciphertext + aed.encrypt(zero_nonce, plaintext, None)  # aed.Seal(ct, nonce, pt, nil)


def seal_bitnami(pub_key: Any, values: dict[str, bytes], namespace: str, name: str,
                 scope: str = "strict", sealed_ns: str | None = None,
                 sealed_name: str | None = None, template: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """A SealedSecret as kubeseal writes it (NewSealedSecret + UpdateScopeAnnotations).

    ``sealed_ns``/``sealed_name`` put the values into another object: a moved value.
    """
    label = encryption_label(namespace, name, scope)
    anno = {"strict": {}, "namespace-wide": {"sealedsecrets.bitnami.com/namespace-wide": "true"},
            "cluster-wide": {"sealedsecrets.bitnami.com/cluster-wide": "true"}}[scope]
    tpl: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace,
                                        "creationTimestamp": None}, "type": "Opaque"}
    if anno:
        tpl["metadata"]["annotations"] = dict(anno)
    for k, v in (template or {}).items():
        if k == "metadata":
            for mk, mv in v.items():
                tpl["metadata"].setdefault(mk, {}).update(mv)
        else:
            tpl[k] = v
    meta: dict[str, Any] = {"name": sealed_name or name, "namespace": sealed_ns or namespace,
                            "creationTimestamp": None}
    if anno:
        meta["annotations"] = dict(anno)
    return {
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": meta,
        "spec": {"encryptedData": {
            k: base64.b64encode(hybrid_encrypt(os.urandom, pub_key, v, label)).decode()
            for k, v in values.items()}, "template": tpl},
    }


def key_backup(keys: list[Any]) -> dict[str, Any]:
    """What kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml prints."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    items = []
    for n, key in enumerate(keys):
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sealed-secret")])
        now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(n + 1).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
        pem_key = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())  # "RSA PRIVATE KEY", PKCS#1
        items.append({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": f"sealed-secrets-key{'abcde'[n]}x7q", "namespace": "kube-system",
                         "labels": {"sealedsecrets.bitnami.com/sealed-secrets-key": "active"}},
            "data": {"tls.crt": base64.b64encode(cert.public_bytes(
                serialization.Encoding.PEM)).decode(),
                     "tls.key": base64.b64encode(pem_key).decode()},
        })
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


VALUES = {"user": b"admin", "password": CANARY.encode()}
TEMPLATE = {"metadata": {"labels": {"app": "db"},
                         "annotations": {"sealedsecrets.bitnami.com/managed": "true"}},
            "data": {"url": "postgres://{{ .user }}:{{ index . \"password\" }}@db"}}


def write_vectors(directory: Path) -> None:
    """Regenerate tests/testdata/bitnami (new keys, new ciphertexts; same outcomes)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=4096)  # their default size
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key-backup.yaml").write_text(yaml.safe_dump(key_backup([old, new])))
    pub = new.public_key()  # the newest key seals; the backup lists it second
    cases = {
        "ok-strict.yaml": seal_bitnami(pub, VALUES, "prod", "db", template=TEMPLATE),
        "ok-namespace-wide.yaml": seal_bitnami(pub, VALUES, "prod", "db", "namespace-wide"),
        "ok-cluster-wide.yaml": seal_bitnami(pub, VALUES, "prod", "db", "cluster-wide"),
        "ok-old-key.yaml": seal_bitnami(old.public_key(), VALUES, "prod", "db"),
        "fail-moved-namespace.yaml": seal_bitnami(pub, VALUES, "prod", "db",
                                                  sealed_ns="staging"),
        "fail-moved-name.yaml": seal_bitnami(pub, VALUES, "prod", "db", sealed_name="db2"),
    }
    # sealed cluster-wide, then the scope annotations removed: the object now claims strict
    moved = seal_bitnami(pub, VALUES, "prod", "db", "cluster-wide")
    del moved["metadata"]["annotations"]
    cases["fail-moved-scope.yaml"] = moved
    for fname, obj in cases.items():
        (directory / fname).write_text(yaml.safe_dump(obj, sort_keys=False))


# --- the tests -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def age_identity() -> tuple[str, IdentitySet]:
    from pyrage import x25519

    ident = x25519.Identity.generate()
    return str(ident.to_public()), identities_from_age_text(str(ident), "test")


def _keys(*rsa_keys: Any) -> list[Any]:
    return load_keys(yaml.safe_dump(key_backup(list(rsa_keys))).encode(), "keys.yaml")


@pytest.mark.parametrize("scope", ["strict", "namespace-wide", "cluster-wide"])
def test_each_scope_converts_and_keeps_its_scope(
    scope: str, rsa_key: Any, age_identity: tuple[str, IdentitySet]
) -> None:
    recipient, ids = age_identity
    theirs = seal_bitnami(rsa_key.public_key(), VALUES, "prod", "db", scope, template=TEMPLATE)
    # their format does not authenticate the template: a template that renders values is
    # bound to ours only when the caller says it reviewed it
    with pytest.raises(TemplateNotBoundError) as info:
        convert(theirs, _keys(rsa_key), [recipient])
    assert info.value.code == ExitCode.SEALED_TEMPLATE_NOT_BOUND
    assert "--bind-template" in " ".join(info.value.hints)
    ours = convert(theirs, _keys(rsa_key), [recipient], bind_template=True)
    assert ours["apiVersion"] == "secretops.dev/v1alpha1"
    assert ours["spec"]["scope"] == scope
    assert ours["metadata"] == {"name": "db", "namespace": "prod"}
    tmeta = ours["spec"]["template"]["metadata"]
    assert tmeta["annotations"] == {"secretops.dev/managed": "true"}  # translated
    assert tmeta["labels"] == {"app": "db"}
    secret = unseal_sealed(ours, ids)
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data == {**VALUES, "url": f"postgres://admin:{CANARY}@db".encode()}


def test_labels_are_theirs() -> None:
    from secretops.sealing.bitnami import encryption_label as ours

    for scope in Scope:
        assert ours("ns", "n", scope) == encryption_label("ns", "n", scope.value)
    assert ours("ns", "n", Scope.STRICT) == b"ns/n"  # a slash, whatever their doc says


def test_scope_comes_from_annotations_cluster_wide_first() -> None:
    both = {"sealedsecrets.bitnami.com/namespace-wide": "true",
            "sealedsecrets.bitnami.com/cluster-wide": "true"}
    assert secret_scope(both) is Scope.CLUSTER_WIDE
    assert secret_scope({"sealedsecrets.bitnami.com/namespace-wide": "true"}) \
        is Scope.NAMESPACE_WIDE
    assert secret_scope({"sealedsecrets.bitnami.com/cluster-wide": "false"}) is Scope.STRICT
    assert secret_scope(None) is Scope.STRICT


def _expected() -> dict[str, Any]:
    return json.loads((VECTORS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(_expected()))
def test_vectors(name: str, age_identity: tuple[str, IdentitySet]) -> None:
    """Each vector's name says the outcome; expected.json gives the details."""
    recipient, ids = age_identity
    want = _expected()[name]
    keys = load_keys((VECTORS / "key-backup.yaml").read_bytes(), "key-backup.yaml")
    assert len(keys) == 2
    theirs = yaml.safe_load((VECTORS / name).read_text())
    if name.startswith("ok-"):
        if "exit_without_bind_template" in want:  # its template renders values
            with pytest.raises(TemplateNotBoundError) as refused:
                convert(theirs, keys, [recipient])
            assert int(refused.value.code) == want["exit_without_bind_template"]
        ours = convert(theirs, keys, [recipient], bind_template=True)
        assert ours["spec"]["scope"] == want["scope"]
        secret = unseal_sealed(ours, ids)
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data == want["data"]
        return
    with pytest.raises((NoKeyError, ScopeMismatchError)) as info:
        convert(theirs, keys, [recipient])
    err = info.value
    assert int(err.code) == want["exit"]
    assert want["message"] in err.message
    assert CANARY not in str(err) + " ".join(err.hints)


def test_a_bare_pem_key_and_every_key_is_tried(
    rsa_key: Any, age_identity: tuple[str, IdentitySet], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    recipient, ids = age_identity
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    keys = _keys(other) + load_keys(pem, "key.pem")
    theirs = seal_bitnami(rsa_key.public_key(), VALUES, "prod", "db")
    assert unseal_sealed(convert(theirs, keys, [recipient]), ids)["data"]["user"] == "YWRtaW4="
    with pytest.raises(NoKeyError) as info:
        convert(theirs, _keys(other), [recipient])
    assert "keys tried: ssh-rsa SHA256:" in info.value.message


def test_the_deprecated_whole_secret_format(
    rsa_key: Any, age_identity: tuple[str, IdentitySet]
) -> None:
    recipient, ids = age_identity
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "data": {"token": base64.b64encode(CANARY.encode()).decode()}}
    blob = hybrid_encrypt(os.urandom, rsa_key.public_key(), json.dumps(secret).encode(),
                          b"prod/db")
    theirs = {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
              "metadata": {"name": "db", "namespace": "prod"},
              "spec": {"data": base64.b64encode(blob).decode()}}
    ours = convert(theirs, _keys(rsa_key), [recipient])
    assert base64.b64decode(unseal_sealed(ours, ids)["data"]["token"]) == CANARY.encode()


def test_not_a_bitnami_object_or_key(rsa_key: Any) -> None:
    from secretops.errors import SecretOpsError

    with pytest.raises(SecretOpsError) as info:
        convert({"apiVersion": "v1", "kind": "Secret"}, _keys(rsa_key), ["age1x"])
    assert info.value.code == ExitCode.INVALID_SEALED_SECRET
    with pytest.raises(SecretOpsError) as info:
        load_keys(b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {}\n", "k.yaml")
    assert info.value.code == ExitCode.INVALID_KEY


if __name__ == "__main__":
    write_vectors(VECTORS)
