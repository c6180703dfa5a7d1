"""Keyed fingerprints of a Secret's data: what the cluster may show about the values.

The external-secrets half publishes one digest of each Secret's data: ``status.dataHash`` of the
ExternalSecret, the Secret's ``secretops.dev/data-hash`` annotation and, when workloads roll,
the pod-template annotation ``secretops.dev/secret-hash-<secret>``. A pod template is readable
with the built-in ``view`` role, which cannot read Secrets; an unkeyed SHA-256 there gives a
4-digit PIN away in milliseconds. So the digest is an **HMAC-SHA-256** under a 32-byte key that
only the controller holds:

* the key is the Secret :data:`KEY_SECRET` in the controller's namespace (``data.key``), made
  once, from ``os.urandom``, by the first leader that needs it (a create: a replica that loses
  the race gets 409 and reads the winner's); whichever replica leads reads it when it first
  syncs. It is never logged and never leaves the process otherwise;
* the MAC covers the Secret's namespace and name, then each key and value, length-prefixed and
  in key order, so equal data in two Secrets gives unrelated fingerprints and a viewer cannot
  tell that two Secrets hold the same values;
* the text is ``hmac-sha256:<64 hex>`` (:data:`PREFIX`), so a digest written by an older
  controller (plain hex) is told apart.

Without the key a fingerprint says only whether the data changed; it cannot be checked against
guesses. If the key Secret is deleted, the next leader makes a new key: every fingerprint
changes once, the Secrets' annotations and statuses are rewritten quietly, and no workload
rolls (rollouts follow changes of the data itself, never of its fingerprint). Pod templates keep
the fingerprint under the old key until the data next changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from typing import Any

from secretops_controller import kube

KEY_SECRET = "secretops-fingerprint-key"
KEY_FIELD = "key"
KEY_BYTES = 32
PREFIX = "hmac-sha256:"


class FingerprintKeyError(Exception):
    """The key Secret exists but holds no usable key (the message names the Secret only)."""


def fingerprint(key: bytes, namespace: str, name: str, data: Mapping[str, bytes]) -> str:
    """The keyed digest of Secret ``namespace/name`` holding ``data``. Pure."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (namespace.encode(), name.encode()):
        mac.update(len(part).to_bytes(4, "big") + part)
    for k in sorted(data):
        kb = k.encode()
        mac.update(len(kb).to_bytes(4, "big") + kb + len(data[k]).to_bytes(8, "big"))
        mac.update(data[k])
    return PREFIX + mac.hexdigest()


def key_secret(namespace: str, key: bytes) -> dict[str, Any]:
    """The Secret that keeps ``key`` (what the leader creates)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": KEY_SECRET, "namespace": namespace,
                         "labels": {"app.kubernetes.io/name": "secretops",
                                    "app.kubernetes.io/component": "fingerprint-key"}},
            "data": {KEY_FIELD: base64.b64encode(key).decode()}}


def key_of(secret: Mapping[str, Any]) -> bytes:
    """The key in the key Secret; :class:`FingerprintKeyError` when it has no key of at
    least 32 bytes."""
    meta = secret.get("metadata") or {}
    where = f"Secret {meta.get('namespace')}/{meta.get('name')}"
    raw = (secret.get("data") or {}).get(KEY_FIELD)
    try:
        key = base64.b64decode(str(raw or ""), validate=True)
    except (binascii.Error, ValueError):
        raise FingerprintKeyError(f"{where}: data.{KEY_FIELD} is not base64") from None
    if len(key) < KEY_BYTES:
        raise FingerprintKeyError(f"{where}: data.{KEY_FIELD} must hold at least {KEY_BYTES} "
                                  "bytes; delete the Secret and the controller makes a new key")
    return key


async def load_or_create(api: kube.Kube, namespace: str,
                         rand: Callable[[int], bytes] = os.urandom) -> tuple[bytes, bool]:
    """The key (read, or made when the Secret does not exist) and whether it was made now.
    Raises :class:`kube.ApiError` and :class:`FingerprintKeyError`."""
    path = kube.secrets(namespace, KEY_SECRET)
    for _ in range(2):
        current = await api.get(path)
        if current is not None:
            return key_of(current), False
        key = rand(KEY_BYTES)
        try:
            await api.create(kube.secrets(namespace), key_secret(namespace, key))
        except kube.ApiError as e:
            if e.status != 409:
                raise
            continue  # another replica made it meanwhile: read theirs
        return key, True
    raise kube.ApiError(409, "Conflict", "the key Secret was created and then could not be "
                        "read", "GET", path)


__all__ = ["KEY_SECRET", "PREFIX", "FingerprintKeyError", "fingerprint", "key_of", "key_secret",
           "load_or_create"]
