"""sops's key service: a gRPC service that wraps and unwraps data keys for other machines.

sops splits "who holds the key" from "who edits the file": ``sops keyservice`` runs where the
identities are (an age key file, a gpg keyring, cloud credentials) and answers two calls,
``Encrypt`` (wrap this data key for this master key) and ``Decrypt`` (unwrap this ``enc`` with
this master key); ``sops --keyservice tcp://host:5000 -d file`` asks it instead of, or after,
its own keys. secretops speaks the same protocol both ways:

* :mod:`.server` — ``secretops keyservice``, serving the key sources of
  :mod:`secretops.keys` with the identities of the machine it runs on;
* :mod:`.client` — recipients and identities that ask remote key services, which
  :mod:`secretops.keys.datakey` uses when the settings below name any;
* :mod:`.protocol` — the messages, built from the key sources' records
  (:class:`secretops.keys.WireKey`) with protobuf's descriptors, so adding a source adds its
  message.

This module holds only the settings, read as sops reads them, and imports neither grpc nor
protobuf (``secretops[keyservice]``), nor anything a plain decrypt would not import; nothing
imports them unless a key service is used:

* ``SOPS_KEYSERVICE`` (``--keyservice``, repeatable; in the variable, comma-separated): the
  remote services, ``tcp://HOST:PORT`` or ``unix:///PATH`` (``unix:PATH`` for a relative path).
  As in sops, a value that is not a URL is skipped with a warning, and one with another scheme
  fails when it is asked;
* ``SOPS_ENABLE_LOCAL_KEYSERVICE`` (``--enable-local-keyservice``, default true): whether this
  process's own identities are tried first. Read as Go's ``strconv.ParseBool`` (an empty value
  is false, as sops reads it).

Local keys first, then each remote service in the order given, the first answer winning —
for each master key, as sops does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from secretops.errors import ExitCode, SecretOpsError

ENV_SERVICES = "SOPS_KEYSERVICE"
ENV_LOCAL = "SOPS_ENABLE_LOCAL_KEYSERVICE"
EXTRA = "keyservice"
REQUIRES = ("grpc", "google.protobuf")  # what secretops[keyservice] installs
DEFAULT_ADDRESS = "127.0.0.1:5000"
TCP_SCHEMES = ("tcp", "tcp4", "tcp6")

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_SCHEME = r"([A-Za-z][A-Za-z0-9+.-]*):(.*)"  # compiled on use: a plain decrypt never needs it


class Endpoint(NamedTuple):
    """A remote key service as named (``uri``) and as gRPC dials it (``target``; empty when
    its scheme is not one secretops can dial, which fails when the service is asked)."""

    uri: str
    scheme: str
    target: str


class Settings(NamedTuple):
    local: bool
    endpoints: tuple[Endpoint, ...]
    skipped: tuple[str, ...]  # values that are not URLs (sops warns and skips them)

    @property
    def remote(self) -> bool:
        """Whether anything but this process's own keys is configured."""
        return bool(self.endpoints) or not self.local


def parse_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``: None for anything else."""
    return True if text in _TRUE else False if text in _FALSE else None


def endpoint(uri: str) -> Endpoint | None:
    """The endpoint a ``--keyservice`` value names, or None where sops's URL parser fails (a
    missing scheme before ``host:port``, a malformed host or port)."""
    import re
    from urllib.parse import urlsplit

    m = re.fullmatch(_SCHEME, uri, re.DOTALL)
    if m is None:
        first = uri.split("/", 1)[0]
        if ":" in first:  # Go: "first path segment in URL cannot contain colon"
            return None
        return Endpoint(uri, "", "")
    scheme = m.group(1).lower()
    if scheme == "unix":
        return Endpoint(uri, scheme, uri)  # gRPC reads unix:PATH and unix:///PATH itself
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    if scheme in TCP_SCHEMES and parts.netloc:
        return Endpoint(uri, scheme, parts.netloc)
    return Endpoint(uri, scheme, "")


def settings(env: Mapping[str, str]) -> Settings:
    """The key service settings of ``env``; an unreadable ``SOPS_ENABLE_LOCAL_KEYSERVICE`` is
    an error (exit 1, as sops)."""
    raw = env.get(ENV_LOCAL)
    local = True
    if raw is not None:
        parsed = parse_bool(raw.strip()) if raw.strip() else False
        if parsed is None:
            raise SecretOpsError(
                f"could not parse {raw!r} as a boolean for {ENV_LOCAL}",
                code=ExitCode.GENERIC, hints=("use true or false",))
        local = parsed
    endpoints: list[Endpoint] = []
    skipped: list[str] = []
    for item in (env.get(ENV_SERVICES) or "").split(","):
        item = item.strip()
        if not item:
            continue
        found = endpoint(item)
        if found is None:
            skipped.append(item)
        else:
            endpoints.append(found)
    return Settings(local, tuple(endpoints), tuple(skipped))


def configured(env: Mapping[str, str]) -> bool:
    """Cheap: whether ``env`` names key services at all (else the local keys are all there is,
    and nothing of this package is needed)."""
    return ENV_SERVICES in env or ENV_LOCAL in env
