"""Sealing and unsealing one value: AES-256-GCM under a fresh data key, the key wrapped by age.

:func:`seal_value` draws a 32-byte data key and a 12-byte nonce from ``rand`` (a parameter, so
tests can pin it), encrypts the value with the binding header (place and template digest) as
associated data, and wraps the data key in ONE age message with a stanza for every recipient.
:func:`unseal_value` checks the binding before any cryptography, so a moved value gets a
message that names both places, and a value whose template was edited is refused unopened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from secretops.core.limits import MAX_SEAL_RECIPIENTS
from secretops.errors import (
    DecryptionError,
    ExitCode,
    LimitExceededError,
    NoKeyError,
    SecretOpsError,
)
from secretops.sealing.format import (
    DATA_KEY_SIZE,
    NONCE_SIZE,
    Binding,
    Scope,
    ScopeMismatchError,
    SealedValue,
    SealedValueError,
    TemplateNotBoundError,
    decode,
    template_digest,
)
from secretops.sealing.keyring import IdentitySet, recipient_name

Random = Callable[[int], bytes]


class Recipients:
    """Recipients parsed once for many values; ``names`` are their public short names."""

    def __init__(self, texts: Sequence[str]) -> None:
        from secretops.keys.age import parse_recipient

        unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
        if not unique:
            raise SecretOpsError(
                "no recipient to seal for", code=ExitCode.NO_ENCRYPTION_KEY_FOUND,
                hints=("give --cert FILE|URL (the cluster's recipients file) and/or "
                       "--recipient age1…",))
        if len(unique) > MAX_SEAL_RECIPIENTS:
            raise LimitExceededError(
                f"{len(unique)} recipients: a value is sealed for at most {MAX_SEAL_RECIPIENTS}")
        self.texts = unique
        self.parsed = [parse_recipient(t) for t in unique]
        self.names = [recipient_name(t) for t in unique]


def _recipients(value: Recipients | Sequence[str]) -> Recipients:
    return value if isinstance(value, Recipients) else Recipients(value)


def _identities(value: IdentitySet | Sequence[Any]) -> IdentitySet:
    if isinstance(value, IdentitySet):
        return value
    return IdentitySet(list(value), [str(getattr(i, "to_public", lambda: "?")()) for i in value])


def digest_of(template: Mapping[str, Any] | bytes | None) -> bytes:
    """A template digest: given as is, or of a ``spec.template`` (None: the default template,
    type Opaque and no data)."""
    if isinstance(template, bytes):
        return template
    return template_digest(template or {})


def seal_value(value: bytes, recipients: Recipients | Sequence[str], scope: Scope | str,
               namespace: str | None, name: str | None, key: str, *,
               template: Mapping[str, Any] | bytes | None = None,
               rand: Random = os.urandom) -> str:
    """The ``encryptedData`` string for ``value`` at namespace/name/key under ``scope``, bound
    to ``template`` (the SealedSecret's ``spec.template``, or its digest; None: the default
    template, type Opaque and no data)."""
    binding = Binding.of(Scope(scope), namespace, name, key)
    return seal_bound(value, _recipients(recipients), binding, digest_of(template), rand)


def seal_bound(value: bytes, recips: Recipients, binding: Binding, template: bytes | None,
               rand: Random = os.urandom) -> str:
    """Seal under an exact header: ``template`` None writes a version-1 (unbound) value, which
    only re-sealing a version-1 value for new recipients does (the controller's rotation)."""
    import pyrage
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from secretops.core.agemsg import read_message

    data_key = rand(DATA_KEY_SIZE)
    nonce = rand(NONCE_SIZE)
    if len(data_key) != DATA_KEY_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError("rand returned the wrong number of bytes")
    try:
        wrapped = bytes(pyrage.encrypt(data_key, recips.parsed))
    except pyrage.EncryptError as e:
        raise SecretOpsError(
            f"cannot wrap the data key for the recipients: {e}",
            code=ExitCode.ERROR_ENCRYPTING_TREE,
            hints=("a plugin recipient needs its age-plugin-<name> program on PATH",),
        ) from None
    read_message(wrapped)  # never write a value this or another secretops would refuse to open
    ciphertext = AESGCM(data_key).encrypt(nonce, value, binding.header(template))
    return SealedValue(binding, wrapped, nonce, ciphertext, template).encode()


def open_data_key(sealed: SealedValue, identities: IdentitySet | Sequence[Any]) -> bytes:
    """Unwrap a value's data key; :class:`NoKeyError` lists the stanzas and identities tried.

    The age header is checked against the limits first (the same check as for sops files):
    a value past them raises :class:`~secretops.errors.LimitExceededError` before any
    identity runs.
    """
    from secretops.core.agemsg import AgeMessageError, read_message
    from secretops.keys import KeyMismatch
    from secretops.keys.age import AgePluginError, unwrap_message

    try:
        header = read_message(sealed.wrapped_key)
    except AgeMessageError as e:
        raise SealedValueError(f"the wrapped data key is malformed ({e})") from None
    ids = _identities(identities)
    try:
        if not ids.identities:
            raise KeyMismatch()
        data_key = unwrap_message(sealed.wrapped_key, ids.identities)
    except KeyMismatch:
        stanzas = header.recipient_types
        kinds = ", ".join(f"{stanzas.count(k)} {k}" for k in dict.fromkeys(stanzas))
        tried = ", ".join(ids.names) or "none"
        raise NoKeyError(
            f"no identity given opens this value (sealed for {len(stanzas)} recipients: "
            f"{kinds}; identities tried: {tried})",
            hints=("unseal with an identity whose public key was a recipient when the value "
                   "was sealed (a cluster key from the key-ring backup, or a break-glass key)",),
        ) from None
    except AgePluginError:
        raise NoKeyError("an age plugin failed while unwrapping the data key") from None
    except RuntimeError as e:
        raise SealedValueError(f"the wrapped data key is malformed ({e})") from None
    if len(data_key) != DATA_KEY_SIZE:
        raise SealedValueError("the wrapped data key has the wrong length")
    return data_key


def unseal_value(text: str, identities: IdentitySet | Sequence[Any], scope: Scope | str,
                 namespace: str | None, name: str | None, key: str, *,
                 template: Mapping[str, Any] | bytes | None = None) -> bytes:
    """The plaintext of a sealed value found at namespace/name/key under ``scope``, beside
    ``template`` (as in :func:`seal_value`). A version-1 value has no template to check.

    Raises :class:`ScopeMismatchError` (moved or copied value), :class:`TemplateNotBoundError`
    (sealed for another template), :class:`NoKeyError` (no identity fits),
    :class:`DecryptionError` (altered) or :class:`SealedValueError`.
    """
    sealed = decode(text)
    expected = Binding.of(Scope(scope), namespace, name, key)
    if sealed.binding != expected:
        raise ScopeMismatchError(expected, sealed.binding)
    digest = digest_of(template)
    if sealed.template is not None and sealed.template != digest:
        raise TemplateNotBoundError.altered([key])
    return open_value(sealed, identities, expected, None if sealed.template is None else digest)


def open_value(sealed: SealedValue, identities: IdentitySet | Sequence[Any], expected: Binding,
               template: bytes | None) -> bytes:
    """Open a value whose place the caller checked: AES-GCM with the header of ``expected``
    and ``template`` (None: version 1) as associated data, so a header rewritten to pass the
    checks fails here."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key = open_data_key(sealed, identities)
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext,
                                        expected.header(template))
    except InvalidTag:
        raise DecryptionError(
            "the value fails authentication: it was altered after sealing",
            hints=("seal the value again; do not edit encryptedData by hand",),
        ) from None
