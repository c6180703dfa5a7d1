"""The provider protocol: what the scheduler needs from Vault, AWS or any other source.

A provider is bound to one store *and its resolved credentials*; it never sees a Kubernetes
object. Two methods, both batched, both safe to call from a worker thread:

* ``read_many(refs)`` → ``{ref: RemoteValue | ProviderError}``: the values and their versions.
  A remote secret that does not exist comes back as ``ProviderError(NOT_FOUND)`` for its ref;
  a failure of the whole call (outage, throttling, revoked credentials) raises ProviderError.
* ``versions(refs)`` → ``{ref: version | ProviderError}``: only the current version ids (Vault
  KV ``current_version``, Secrets Manager ``VersionId``, SSM ``Version``), for cheap rotation
  checks that do not transfer the values.

Optional abilities have their own protocols (checked with ``isinstance``, never by probing
for attributes): :class:`Finder` lists (``dataFrom.find``), :class:`Writer` writes a rotated
value back, :class:`Checker` proves connection and credentials more cheaply than a read.
Providers are listed in one table, :data:`secretops_controller.external.providers.REGISTRY`.

Values never appear in a ``repr``, a message or an exception: errors name the provider, the
operation, the remote key and what went wrong, nothing else.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

# provider, operation, status ("ok" or an ErrorKind): fed into the provider-call metric.
Observe = Callable[[str, str, str], None]


def no_observe(provider: str, operation: str, status: str) -> None:
    """The default observer: counts nothing."""


class ErrorKind(StrEnum):
    NOT_FOUND = "NotFound"  # the remote secret (or that version) does not exist
    DENIED = "Denied"  # credentials refused or lacking a permission
    THROTTLED = "Throttled"  # rate limited; retry later
    UNAVAILABLE = "Unavailable"  # cannot reach the provider, timeout, 5xx
    INVALID = "Invalid"  # a request the provider rejects as malformed; configuration error


class ProviderError(Exception):
    """A failed provider call or key; the message never contains a value."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    @property
    def transient(self) -> bool:
        return self.kind in (ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ProviderError) and other.kind == self.kind
                and other.message == self.message)

    def __hash__(self) -> int:
        return hash((self.kind, self.message))


@dataclass(frozen=True, order=True)
class RemoteRef:
    """One remote secret: its key (Vault path in the mount, AWS name or ARN) and a version
    (``None``: the current one)."""

    key: str
    version: str | None = None

    def __str__(self) -> str:
        return self.key if self.version is None else f"{self.key}@{self.version}"


@dataclass(frozen=True)
class FindRef:
    """``dataFrom.find``: every secret under ``path`` whose name matches ``name_regexp``."""

    path: str | None = None
    name_regexp: str | None = None

    def matches(self, name: str) -> bool:
        return self.name_regexp is None or re.search(self.name_regexp, name) is not None

    def __str__(self) -> str:
        return f"find(path={self.path!r}, name={self.name_regexp!r})"


Want = RemoteRef | FindRef


@dataclass(frozen=True)
class RemoteValue:
    """A remote secret's value (a JSON object for Vault KV, bytes for AWS) and its version."""

    value: bytes | Mapping[str, Any] = field(repr=False)
    version: str

    def fingerprint(self) -> tuple[str, int]:
        """Cheap change detection without keeping a second copy of the value."""
        return (self.version, hash(repr(sorted(self.value.items())))
                if isinstance(self.value, Mapping) else hash(self.value))


Result = RemoteValue | ProviderError


class Provider(Protocol):
    """One store with its credentials. ``name`` labels metrics and messages."""

    name: str

    def read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]: ...

    def versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]: ...

    def close(self) -> None: ...


@runtime_checkable
class Finder(Protocol):
    """Optional: list and read every secret a :class:`FindRef` selects ({name: value})."""

    def find(self, query: FindRef) -> dict[str, RemoteValue]: ...


@runtime_checkable
class Writer(Protocol):
    """Optional: rotation write-back. ``key``'s ``prop`` (None: the whole value) set to
    ``value`` in a new version; returns the version id ("" if the source has none)."""

    def write(self, key: str, prop: str | None, value: str) -> str: ...


@runtime_checkable
class Checker(Protocol):
    """Optional: one request that proves connection and credentials (Vault: the login or
    ``lookup-self``); without it a store is validated by a version lookup of a probe key."""

    def check(self) -> None: ...


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def close_quietly(provider: Provider) -> None:
    """Close ``provider``, ignoring errors (closing is best effort: tokens expire anyway). It
    takes the provider's lock, so it runs in a worker thread, never on the event loop."""
    with contextlib.suppress(Exception):
        provider.close()
