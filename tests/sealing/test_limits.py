"""Sealed values meet the same age header limits as sops files, before any identity runs.

A sealed value embeds an age message, and the controller's unauthenticated ``POST /v1/verify``
and ``/v1/rotate`` open whatever they are sent: a value carrying 2,000 extra stanzas kept the
controller (and its ``/healthz``) busy 38 s. The check is the one sops files get
(:func:`secretops.core.agemsg.read_message`).
"""

from __future__ import annotations

import dataclasses
import itertools

import pyrage
import pytest
from pyrage import x25519

from secretops.core.limits import MAX_AGE_STANZAS, MAX_SEAL_RECIPIENTS
from secretops.errors import ExitCode, LimitExceededError, SecretOpsError
from secretops.sealing import (
    Binding,
    IdentitySet,
    Scope,
    seal_secret,
    seal_value,
    unseal_value,
    verify_sealed,
)
from secretops.sealing.format import decode
from tests.helpers import CANARY

NS, NAME, KEY = "app", "db", "password"


def _counter() -> object:
    """Deterministic randomness: the test knows the value's data key and nonce."""
    counter = itertools.count()
    return lambda n: bytes((next(counter) % 251,)) * n


def _with_stanzas(extra: int, me: x25519.Identity) -> str:
    """A value sealed for ``me`` whose age header also has ``extra`` stranger stanzas."""
    rand = _counter()
    text = seal_value(CANARY.encode(), [str(me.to_public())], Scope.STRICT, NS, NAME, KEY,
                      rand=rand)  # type: ignore[arg-type]
    sealed = decode(text)
    data_key = bytes((0,)) * 32  # the first 32 bytes the counter gave
    strangers = [x25519.Identity.generate().to_public() for _ in range(extra)]
    wrapped = pyrage.encrypt(data_key, [*strangers, me.to_public()])
    return dataclasses.replace(sealed, wrapped_key=wrapped).encode()


def test_a_value_with_thousands_of_stanzas_is_refused_before_unwrapping() -> None:
    me = x25519.Identity.generate()
    bomb = _with_stanzas(2000, me)
    with pytest.raises(LimitExceededError) as info:
        unseal_value(bomb, IdentitySet([me], ["me"]), Scope.STRICT, NS, NAME, KEY)
    assert info.value.code == ExitCode.LIMIT_EXCEEDED and CANARY not in str(info.value)
    manifest = {"apiVersion": "secretops.dev/v1alpha1", "kind": "SealedSecret",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": {"scope": "strict", "encryptedData": {KEY: bomb}}}
    with pytest.raises(SecretOpsError) as err:  # what the controller's /v1/verify runs
        verify_sealed(manifest, IdentitySet([me], ["me"]), render=False)
    assert err.value.code == ExitCode.LIMIT_EXCEEDED


def test_a_value_within_the_limits_opens() -> None:
    me = x25519.Identity.generate()
    wide = _with_stanzas(MAX_AGE_STANZAS - 3, me)  # with the decoy stanza: 63
    assert unseal_value(wide, IdentitySet([me], ["me"]), Scope.STRICT, NS, NAME,
                        KEY) == CANARY.encode()
    assert Binding.of(Scope.STRICT, NS, NAME, KEY) == decode(wide).binding


def test_sealing_for_too_many_recipients_is_refused() -> None:
    many = [str(x25519.Identity.generate().to_public()) for _ in range(MAX_SEAL_RECIPIENTS + 1)]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": NAME, "namespace": NS},
              "stringData": {KEY: CANARY}}
    with pytest.raises(LimitExceededError):
        seal_secret(secret, many)
    assert seal_secret(secret, many[:MAX_SEAL_RECIPIENTS])["spec"]["encryptedData"][KEY]
