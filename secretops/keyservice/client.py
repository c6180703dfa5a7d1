"""Asking remote key services: a recipient and an identity that go over gRPC.

:func:`lookup` and :func:`recipients` are what :mod:`secretops.keys.datakey` uses when the
environment names key services (:func:`secretops.keyservice.settings`): for each master key,
this process's own keys first (unless ``--enable-local-keyservice=false``), then each remote
service in the order given, the first that answers winning — sops's order. A service that
fails is one line of the error that is raised when none answered.

What comes back is checked before it is used: at most :data:`MAX_MESSAGE` bytes (gRPC refuses
more), an ``enc`` of ASCII text within the metadata's limit; an unwrapped data key's size is
checked by :mod:`secretops.keys.datakey` as for any identity. A service's error text is shown
shortened to one line: it names the key and the cause, and a service of ours never puts key
material in it. Each call has a deadline of :data:`TIMEOUT` seconds (a service started with
``--prompt`` waits for a person).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from secretops.core.limits import MAX_ENC_CHARS
from secretops.core.metadata import KEY_FIELDS, KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import SourceUnavailable, describe
from secretops.keyservice import EXTRA, REQUIRES, Endpoint, Settings

if TYPE_CHECKING:
    from secretops.keys import Identity, Recipient
    from secretops.keys.specs import KeySpec

TIMEOUT = 300.0
MAX_MESSAGE = MAX_ENC_CHARS + 16 * 1024
_DETAIL_MAX = 300


class KeyServiceError(SecretOpsError):
    """A remote key service could not be asked, or refused."""

    code = ExitCode.COULD_NOT_RETRIEVE_KEY


def check_available() -> None:
    """Exit 154 with the extra to install when grpc or protobuf is missing."""
    from importlib.util import find_spec

    for name in REQUIRES:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise SourceUnavailable(
                f"key services need the Python package {name.split('.')[-1]}, which is not "
                "installed", hints=(f"pip install 'secretops[{EXTRA}]'",))


class Remote:
    """One remote key service (its channel opened on first use, shared by every key)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._channel: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Remote({self.endpoint.uri!r})"

    def _call(self, method: str, request: Any, response: Any) -> Any:
        ep = self.endpoint
        if not ep.target:
            raise KeyServiceError(f"key service {ep.uri}: cannot connect: unknown network "
                                  f"{ep.scheme!r} (use tcp://HOST:PORT or unix:///PATH)")
        import grpc

        with self._lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(ep.target, options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE),
                    ("grpc.max_send_message_length", MAX_MESSAGE),
                    ("grpc.enable_http_proxy", 0),  # the address named is the one dialled
                ])
        stub = self._channel.unary_unary(method, request_serializer=None,
                                         response_deserializer=None)
        try:
            data = stub(request.SerializeToString(), timeout=TIMEOUT)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            detail = " ".join(str(e.details() if hasattr(e, "details") else "").split())
            if len(detail) > _DETAIL_MAX:
                detail = detail[:_DETAIL_MAX] + "…"
            name = code.name if code is not None else "error"
            raise KeyServiceError(f"key service {ep.uri}: {name}: {detail}") from None
        from secretops.keyservice.protocol import parse

        return parse(response, data, f"answer of key service {ep.uri}")

    def encrypt(self, kind: str, fields: Mapping[str, Any], plaintext: bytes) -> str:
        """The ``enc`` the service wraps ``plaintext`` into for this master key."""
        from secretops.keyservice.protocol import ENCRYPT, key_message, messages

        m = messages()
        out = self._call(ENCRYPT, m.encrypt_request(key=key_message(kind, fields),
                                                    plaintext=plaintext), m.encrypt_response)
        enc = bytes(out.ciphertext)
        if not enc or len(enc) > MAX_ENC_CHARS or not enc.isascii():
            raise KeyServiceError(f"key service {self.endpoint.uri}: answered a ciphertext "
                                  "that is not an enc (empty, not text, or too long)")
        return enc.decode("ascii")

    def decrypt(self, kind: str, fields: Mapping[str, Any], enc: str) -> bytes:
        """The data key (or share) the service unwraps ``enc`` into."""
        from secretops.keyservice.protocol import DECRYPT, key_message, messages

        m = messages()
        out = self._call(DECRYPT, m.decrypt_request(key=key_message(kind, fields),
                                                    ciphertext=enc.encode("ascii")),
                         m.decrypt_response)
        return bytes(out.plaintext)


def remotes(settings: Settings) -> list[Remote]:
    if settings.endpoints:
        check_available()
    return [Remote(ep) for ep in settings.endpoints]


class RemoteIdentity:
    """Unwraps entries of one kind by asking one remote key service."""

    def __init__(self, kind: str, remote: Remote) -> None:
        self.kind = kind
        self.remote = remote

    def __repr__(self) -> str:
        return f"RemoteIdentity({self.kind!r}, {self.remote.endpoint.uri!r})"

    def unwrap(self, entry: KeyEntry) -> bytes:
        return self.remote.decrypt(entry.kind, entry.fields, entry.enc)


class _Unavailable:
    """Stands for a local identity that could not be loaded, so the remote ones are still
    asked and the reason is reported with theirs."""

    def __init__(self, kind: str, error: SecretOpsError) -> None:
        self.kind = kind
        self.error = error

    def unwrap(self, entry: KeyEntry) -> bytes:
        raise self.error


def lookup(settings: Settings, env: Mapping[str, str]) -> Callable[[str], list[Identity]]:
    """Identities by kind: the local one (if enabled and configured), then one per remote."""
    from secretops.keys import SOURCES, identity

    services = remotes(settings)
    if not settings.local and not services:
        from secretops.errors import NoKeyError

        raise NoKeyError("no key service to ask: the local one is disabled "
                         "(--enable-local-keyservice=false) and no --keyservice is given",
                         hints=("name the key service that holds the key: --keyservice "
                                "tcp://HOST:PORT",))
    cache: dict[str, list[Identity]] = {}

    def find(kind: str) -> list[Identity]:
        if kind not in cache:
            found: list[Identity] = []
            if settings.local and kind in SOURCES:
                try:
                    ident = identity(kind, env)
                except SourceUnavailable as e:
                    if not services:
                        raise
                    ident = _Unavailable(kind, e)
                if ident is not None:
                    found.append(ident)
            found += [RemoteIdentity(kind, r) for r in services]
            cache[kind] = found
        return cache[kind]

    return find


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_of(spec: KeySpec, enc: str, created_at: str) -> KeyEntry:
    """The metadata entry for ``spec`` wrapped remotely: its fields in sops's order, the
    remote ``enc`` and the time of wrapping (as a local wrap writes them)."""
    fields: dict[str, Any] = {}
    for name in KEY_FIELDS[spec.kind]:
        if name == "enc":
            fields[name] = enc
        elif name == "created_at":
            fields[name] = created_at
        else:
            value = spec.fields.get(name, "")
            fields[name] = dict(value) if isinstance(value, Mapping) else value
    return KeyEntry(spec.kind, fields)


class ServiceRecipient:
    """Wraps for one master key: locally first (when enabled), else each remote in turn."""

    def __init__(self, spec: KeySpec, local: Recipient | SecretOpsError | None,
                 services: Sequence[Remote], now: Callable[[], str] = _now) -> None:
        self.kind = spec.kind
        self.spec = spec
        self._local = local
        self._services = services
        self._now = now

    def __repr__(self) -> str:
        return f"ServiceRecipient({describe(self.spec.kind, self.spec.fields)!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        errors: list[str] = []
        if isinstance(self._local, SecretOpsError):
            errors.append(f"this machine: {self._local.message}")
        elif self._local is not None:
            try:
                return self._local.wrap(data_key)
            except Exception as e:
                errors.append(f"this machine: {e}")
        for remote in self._services:
            try:
                enc = remote.encrypt(self.spec.kind, self.spec.fields, data_key)
            except SecretOpsError as e:
                errors.append(e.message)
                continue
            return entry_of(self.spec, enc, self._now())
        raise SecretOpsError(
            f"could not wrap the data key for {describe(self.spec.kind, self.spec.fields)}: "
            + "; ".join(errors), code=ExitCode.ERROR_ENCRYPTING_TREE)


def recipients(groups: Sequence[Sequence[KeySpec]], settings: Settings,
               env: Mapping[str, str]) -> list[list[Recipient]]:
    """Recipients that ask the key services of ``settings``."""
    from secretops.keys import recipient

    services = remotes(settings)
    if not settings.local and not services:
        raise SecretOpsError("no key services provided, cannot update master keys",
                             code=ExitCode.GENERIC,
                             hints=("--enable-local-keyservice=false needs at least one "
                                    "--keyservice URI",))
    out: list[list[Recipient]] = []
    for group in groups:
        row: list[Recipient] = []
        for spec in group:
            local: Recipient | SecretOpsError | None = None
            if settings.local:
                try:
                    local = recipient(spec, env)
                except SourceUnavailable as e:  # its extra is missing here: a remote may wrap
                    if not services:
                        raise
                    local = e
            row.append(ServiceRecipient(spec, local, services))
        out.append(row)
    return out
