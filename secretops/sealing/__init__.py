"""SealedSecrets: values anyone can seal with public keys and only the keys' holders can open.

A ``SealedSecret`` (``secretops.dev/v1alpha1``) is a Secret whose values are each sealed
separately: a fresh 32-byte data key per value, AES-256-GCM over the value with the value's
place (scope, namespace, name, Secret key name) as associated data, and the data key wrapped by
age for every recipient at once — the cluster's key(s), other clusters', break-glass keys. A
value copied to another place does not open there, and says where it belongs. The format is
specified in ``docs/crypto.md``; the user guide is ``docs/sealing.md``.

The stable surface::

    seal_value(value, recipients, scope, namespace, name, key) -> str
    unseal_value(text, identities, scope, namespace, name, key) -> bytes
    seal_secret(secret_manifest, recipients, scope) -> SealedSecret manifest
    merge_into(sealed_manifest, values, recipients) -> SealedSecret manifest
    unseal_sealed(sealed_manifest, identities) -> Secret manifest
    reseal_sealed(sealed_manifest, identities, recipients) -> SealedSecret manifest
    verify_sealed(sealed_manifest, identities) -> number of values that open

Recipients are age recipient strings (or a :class:`Recipients`); identities are an
:class:`IdentitySet` (see :mod:`secretops.sealing.keyring` for the files they come from) or a
list of pyrage identities. Errors are :class:`~secretops.errors.SecretOpsError` subclasses and
never contain a value: :class:`ScopeMismatchError` (160), ``NoKeyError`` (128),
``DecryptionError`` (25, altered), :class:`SealedValueError` (161).
"""

from __future__ import annotations

from secretops.sealing.crypto import Recipients, seal_value, unseal_value
from secretops.sealing.format import (
    API_VERSION,
    KIND,
    Binding,
    Scope,
    ScopeMismatchError,
    SealedValueError,
)
from secretops.sealing.keyring import IdentitySet, load_identities, parse_recipients_file
from secretops.sealing.sealed import (
    SealedSecretError,
    merge_into,
    reseal_sealed,
    seal_secret,
    unseal_sealed,
    verify_sealed,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "Binding",
    "IdentitySet",
    "Recipients",
    "Scope",
    "ScopeMismatchError",
    "SealedSecretError",
    "SealedValueError",
    "load_identities",
    "merge_into",
    "parse_recipients_file",
    "reseal_sealed",
    "seal_secret",
    "seal_value",
    "unseal_sealed",
    "unseal_value",
    "verify_sealed",
]
