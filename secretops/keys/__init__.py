"""Key sources: how a file's data key is wrapped for recipients and unwrapped by identities.

Two tiny protocols, after age's ``Recipient``/``Identity``:

* a :class:`Recipient` wraps a 32-byte data key into a metadata :class:`KeyEntry`;
* an :class:`Identity` unwraps a :class:`KeyEntry` back into the data key, or raises
  :class:`KeyMismatch` when the entry is not for it. Any other exception means the key was for
  this identity (or source) but could not be used — it is reported, and other keys are tried.

One module per source (``age``, ``awskms``, ``vault``, ``pgp``), registered in
:data:`SOURCES` under the metadata kind it handles, each offering two functions:

* ``recipient(fields, env) -> Recipient`` — from a :class:`~secretops.keys.specs.KeySpec`'s
  fields (what the CLI, the environment or ``.sops.yaml`` named);
* ``identity(env) -> Identity | None`` — what can unwrap entries of that kind here, built
  cheaply (no network until an entry is actually unwrapped); None when nothing is configured.

A module is imported only when a file or a command involves its kind, so an age-only run never
loads boto3 or hvac. :mod:`.datakey` wraps a data key for recipients and recovers it with
identities.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from secretops.core.metadata import KeyEntry
from secretops.errors import ExitCode, SecretOpsError

SOURCES = {
    "age": "secretops.keys.age",
    "kms": "secretops.keys.awskms",
    "hc_vault": "secretops.keys.vault",
    "pgp": "secretops.keys.pgp",
}
# Tried first unless SOPS_DECRYPTION_ORDER says otherwise: local keys before network services.
DEFAULT_DECRYPTION_ORDER = ("age", "pgp", "kms", "hc_vault")


_EXTRAS = {"kms": "aws", "hc_vault": "vault"}


class SourceUnavailable(SecretOpsError):
    """A key source's module or optional dependency is not installed."""

    code = ExitCode.INVALID_KEY


def _source(kind: str) -> Any:
    if kind not in SOURCES:
        raise SecretOpsError(f"unsupported key source {kind!r}", code=ExitCode.INVALID_KEY)
    try:
        return importlib.import_module(SOURCES[kind])
    except ImportError as e:  # an optional dependency (boto3, hvac) is not installed
        extra = _EXTRAS.get(kind)
        raise SourceUnavailable(
            f"the {kind} key source is not available: {e.name or e} is not installed",
            hints=(f"pip install 'secretops[{extra}]'",) if extra else (),
        ) from None


class KeyMismatch(Exception):
    """This identity cannot open this entry (not an error: try the next one)."""


class Recipient(Protocol):
    """Wraps a data key for one master key."""

    kind: str

    def wrap(self, data_key: bytes) -> KeyEntry: ...


class Identity(Protocol):
    """Unwraps data keys from entries of one kind."""

    kind: str

    def unwrap(self, entry: KeyEntry) -> bytes: ...


