"""Migration from Bitnami Sealed Secrets: open their values with a key backup, seal them ours.

Their format, from ``pkg/crypto/crypto.go`` and ``pkg/apis/sealedsecrets/v1alpha1/
sealedsecret_expansion.go`` of bitnami-labs/sealed-secrets (read at 86671a8)::

    value  = base64.StdEncoding( u16 BE len(rsa) | rsa | aes )
    rsa    = RSA-OAEP(SHA-256, MGF1-SHA-256, label) of a fresh 32-byte session key
    aes    = AES-256-GCM(session key, nonce = 12 zero bytes, no AAD) of the value: ct ‖ tag
    label  = "<namespace>/<name>" (strict) | "<namespace>" (namespace-wide) | "" (cluster-wide)

The controller takes the scope from the SealedSecret's own ``metadata.annotations``
(``sealedsecrets.bitnami.com/cluster-wide: "true"`` wins over ``…/namespace-wide``) and tries
every private key it has; so does :func:`convert`. A value that opens under another scope's
label only is refused (:class:`ScopeMismatchError`), as their controller would refuse it.

The key backup is what ``kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key
-o yaml`` prints (a List of ``kubernetes.io/tls`` Secrets whose ``tls.key`` is a PEM RSA key), a
single such Secret, or a bare PEM private key, like kubeseal's ``--recovery-private-key``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from secretops.errors import ExitCode, NoKeyError, SecretOpsError
from secretops.sealing.crypto import Random, Recipients
from secretops.sealing.format import (
    LAST_APPLIED_ANNOTATIONS,
    MANAGED_ANNOTATION,
    PATCH_ANNOTATION,
    SKIP_OWNER_REFERENCES_ANNOTATION,
    TEMPLATE_PATH,
    Binding,
    Scope,
    ScopeMismatchError,
    SealedParts,
    SealedValueError,
    TemplateNotBoundError,
    mapping_of,
    sealed_manifest,
    secret_values,
    string_map,
    template_digest,
)

API_VERSION = "bitnami.com/v1alpha1"
ANNOTATION_PREFIX = "sealedsecrets.bitnami.com/"
CLUSTER_WIDE_ANNOTATION = ANNOTATION_PREFIX + "cluster-wide"
NAMESPACE_WIDE_ANNOTATION = ANNOTATION_PREFIX + "namespace-wide"
KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
# Their behaviour annotations and ours, same meaning.
TRANSLATED = {
    ANNOTATION_PREFIX + "managed": MANAGED_ANNOTATION,
    ANNOTATION_PREFIX + "patch": PATCH_ANNOTATION,
    ANNOTATION_PREFIX + "skip-set-owner-references": SKIP_OWNER_REFERENCES_ANNOTATION,
}
SESSION_KEY_BYTES = 32


@dataclass(frozen=True)
class BitnamiKey:
    key: Any  # cryptography RSAPrivateKey
    fingerprint: str  # SSH SHA256 fingerprint of the public key, as their PublicKeyFingerprint


def encryption_label(namespace: str, name: str, scope: Scope) -> bytes:
    """Their ``EncryptionLabel``."""
    if scope is Scope.CLUSTER_WIDE:
        return b""
    if scope is Scope.NAMESPACE_WIDE:
        return namespace.encode("utf-8")
    return f"{namespace}/{name}".encode()


def secret_scope(annotations: Mapping[str, Any] | None) -> Scope:
    """Their ``SecretScope``: cluster-wide wins over namespace-wide; else strict."""
    anno = annotations or {}
    if anno.get(CLUSTER_WIDE_ANNOTATION) == "true":
        return Scope.CLUSTER_WIDE
    if anno.get(NAMESPACE_WIDE_ANNOTATION) == "true":
        return Scope.NAMESPACE_WIDE
    return Scope.STRICT


def single_decrypt(key: Any, ciphertext: bytes, label: bytes) -> bytes:
    """Their ``singleDecrypt``; raises ValueError (or InvalidTag) when it does not open."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(ciphertext) < 2:
        raise ValueError("SealedSecret data is too short")
    (rsa_len,) = struct.unpack_from(">H", ciphertext)
    if len(ciphertext) < rsa_len + 2:
        raise ValueError("SealedSecret data is too short")
    rsa_ct, aes_ct = ciphertext[2:rsa_len + 2], ciphertext[rsa_len + 2:]
    session_key = key.decrypt(rsa_ct, padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
        label=label or None))
    return AESGCM(session_key).decrypt(b"\x00" * 12, aes_ct, None)


def hybrid_decrypt(keys: Sequence[BitnamiKey], ciphertext: bytes, label: bytes) -> bytes | None:
    """Their ``HybridDecrypt``: the first key that opens it, or None."""
    from cryptography.exceptions import InvalidTag

    for k in keys:
        try:
            return single_decrypt(k.key, ciphertext, label)
        except (ValueError, InvalidTag):
            continue
    return None


def _fingerprint(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    from secretops.sealing.keyring import recipient_name

    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    return recipient_name(line)


def _parse_pem(data: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


def load_keys(data: bytes, source: str) -> list[BitnamiKey]:
    """Every private key in a Bitnami key backup (List, Secret(s) or PEM)."""
    from secretops.sealing.keyring import secret_field
    from secretops.sealing.serialize import load_documents

    raw: list[bytes] = []
    if b"-----BEGIN" in data and b"PRIVATE KEY-----" in data and b"kind:" not in data:
        raw.append(data)
    else:
        for doc in load_documents(data, source):
            name = secret_field(doc, "metadata", source).get("name", "?")
            tls = secret_field(doc, "data", source).get("tls.key") \
                if doc.get("kind") == "Secret" else None
            if not isinstance(tls, str):
                raise SecretOpsError(
                    f"{doc.get('kind')} {name!r} has no tls.key: not a Sealed Secrets key",
                    code=ExitCode.INVALID_KEY, file=source,
                    hints=(f"back up their keys with kubectl get secret -l {KEY_LABEL} "
                           "-o yaml",))
            try:
                raw.append(base64.b64decode(tls, validate=True))
            except (binascii.Error, ValueError):
                raise SecretOpsError(f"Secret {name!r}: tls.key is not base64",
                                     code=ExitCode.INVALID_KEY, file=source) from None
    keys = []
    for pem in raw:
        try:
            key = _parse_pem(pem)
        except (ValueError, TypeError):
            raise SecretOpsError("tls.key is not an unencrypted RSA private key in PEM",
                                 code=ExitCode.INVALID_KEY, file=source) from None
        keys.append(BitnamiKey(key, _fingerprint(key)))
    if not keys:
        raise SecretOpsError("no key found", code=ExitCode.INVALID_KEY, file=source)
    return keys


def _open(keys: Sequence[BitnamiKey], blob: str, scope: Scope, namespace: str, name: str,
          key: str) -> bytes:
    try:
        ciphertext = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise SealedValueError("not base64") from None
    plaintext = hybrid_decrypt(keys, ciphertext, encryption_label(namespace, name, scope))
    if plaintext is not None:
        return plaintext
    expected = Binding(scope, *_bound(scope, namespace, name), key)
    for other in Scope:
        if other is not scope and hybrid_decrypt(
                keys, ciphertext, encryption_label(namespace, name, other)) is not None:
            raise ScopeMismatchError(expected, Binding(other, *_bound(other, namespace, name),
                                                        key))
    label = encryption_label(namespace, name, scope).decode("utf-8", "replace")
    raise NoKeyError(
        f'no key in the backup opens it with label "{label}" ({expected.describe()}): it was '
        f"sealed by a controller key not in the backup, or for another namespace/name (a "
        f"moved value); keys tried: {', '.join(k.fingerprint for k in keys)}",
        hints=("back up every key: kubectl get secret -l "
               f"{KEY_LABEL} -o yaml (renewal adds one every 30 days)",))


def _bound(scope: Scope, namespace: str, name: str) -> tuple[str, str]:
    if scope is Scope.CLUSTER_WIDE:
        return "", ""
    return namespace, name if scope is Scope.STRICT else ""


def _template(spec: Mapping[str, Any]) -> dict[str, Any]:
    tpl = mapping_of(spec.get("template"), "spec.template", SealedValueError)
    tmeta = mapping_of(tpl.get("metadata"), "spec.template.metadata", SealedValueError)
    out_meta: dict[str, Any] = {}
    labels = string_map(tmeta.get("labels"), "spec.template.metadata.labels", SealedValueError)
    if labels:
        out_meta["labels"] = labels
    annotations: dict[str, str] = {}
    for k, v in string_map(tmeta.get("annotations"), "spec.template.metadata.annotations",
                           SealedValueError).items():
        if k in (CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, *LAST_APPLIED_ANNOTATIONS):
            continue
        annotations[TRANSLATED.get(k, k)] = v
    if annotations:
        out_meta["annotations"] = annotations
    template: dict[str, Any] = {}
    if out_meta:
        template["metadata"] = out_meta
    template["type"] = tpl.get("type") or "Opaque"
    if tpl.get("immutable") is not None:
        template["immutable"] = bool(tpl["immutable"])
    data = string_map(tpl.get("data"), "spec.template.data", SealedValueError)
    if data:
        template["data"] = data
    return template


def convert(bitnami: Mapping[str, Any], keys: Sequence[BitnamiKey],
            recipients: Recipients | Sequence[str], *, namespace: str | None = None,
            scope: Scope | str | None = None, bind_template: bool = False,
            rand: Random = os.urandom) -> dict[str, Any]:
    """Our SealedSecret for a Bitnami one: same name, namespace, scope, template, values.

    The scope is the one their controller reads (``scope``, e.g. ``--scope``, must agree). Our
    values are bound to the template; a template that renders values (``spec.template.data``)
    was not authenticated in their format, so it is bound only with ``bind_template`` (the
    caller reviewed it).
    """
    from secretops.sealing.sealed import seal_all

    if bitnami.get("kind") != "SealedSecret" or bitnami.get("apiVersion") != API_VERSION:
        raise SealedValueError(f"not a Bitnami SealedSecret (apiVersion {API_VERSION})")
    # every field read through mapping_of/string_map: a field of the wrong kind is exit 161
    meta = mapping_of(bitnami.get("metadata"), "metadata", SealedValueError)
    spec = mapping_of(bitnami.get("spec"), "spec", SealedValueError)
    name = meta.get("name") or ""
    if not isinstance(name, str) or not name:
        raise SealedValueError("metadata.name is missing")
    if not isinstance(meta.get("namespace") or "", str):
        raise SealedValueError("metadata.namespace must be a string")
    if namespace and meta.get("namespace") and meta["namespace"] != namespace:
        raise SecretOpsError(f"the SealedSecret is in namespace {meta['namespace']!r}, not "
                             f"{namespace!r}", code=ExitCode.CONFLICTING_PARAMETERS)
    ns = meta.get("namespace") or namespace or ""
    sc = secret_scope(string_map(meta.get("annotations"), "metadata.annotations",
                                 SealedValueError))
    if scope and Scope(scope) is not sc:
        raise SecretOpsError(
            f"--scope {Scope(scope).value} conflicts with the Bitnami SealedSecret's scope "
            f"{sc.value} (its annotations): its values open only under {sc.value}",
            code=ExitCode.CONFLICTING_PARAMETERS)
    if sc is not Scope.CLUSTER_WIDE and not ns:
        raise SecretOpsError(f"the SealedSecret has no namespace and its scope is {sc.value}",
                             code=ExitCode.INVALID_INPUT, hints=("give --namespace",))
    template = _template(spec)
    if template.get("data") and not bind_template:
        raise TemplateNotBoundError(
            "spec.template.data renders values, and Bitnami's format does not authenticate it "
            "(whoever could edit the SealedSecret could have changed it): not converted",
            path=TEMPLATE_PATH,
            hints=("review the template, then convert with --bind-template to bind it to the "
                   "values",))
    encrypted = string_map(spec.get("encryptedData"), "spec.encryptedData", SealedValueError)
    values: dict[str, bytes] = {}
    if encrypted:
        for key, blob in encrypted.items():
            try:
                values[key] = _open(keys, str(blob), sc, ns, name, key)
            except SecretOpsError as e:
                e.path = e.path or f'["spec"]["encryptedData"]["{key}"]'
                raise
    elif spec.get("data"):  # the deprecated v1 format: the whole Secret JSON as one value
        whole = _open(keys, str(spec["data"]), sc, ns, name, "data")
        try:
            values = secret_values(json.loads(whole))
        except (ValueError, SecretOpsError):
            raise SealedValueError("spec.data does not hold a Secret") from None
    else:
        raise SealedValueError("the SealedSecret has no encryptedData")
    recips = recipients if isinstance(recipients, Recipients) else Recipients(recipients)
    ours = seal_all(values, recips, sc, ns, name, template_digest(template), rand)
    return sealed_manifest(SealedParts(name, ns, sc, ours, template, recips.names))
