"""Vault / OpenBao KV v2, with token, AppRole or Kubernetes service-account auth.

One :class:`VaultProvider` per store and credentials. It logs in once and keeps the token:

* the token's TTL comes from the login (or ``lookup-self`` for a given token); once
  ``renew_fraction`` of it has passed, ``renew-self`` extends it (when renewable);
* a new login happens only when there is no token, the token has expired, renewal failed, or
  Vault answers 403 — never per read (ESO's #376: a login per reconcile flooded Vault leases);
* a given token (``tokenSecretRef``) cannot log in again: a 403 is reported as ``Denied``.

Reads: ``GET <mount>/data/<key>[?version=N]`` gives the value and its version in one request;
``versions`` reads ``<mount>/metadata/<key>`` (``current_version``) without transferring values.
Every request has a bounded timeout; errors carry the HTTP status and the key, never a value.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

from secretops_controller.external.provider import (
    ErrorKind,
    FindRef,
    Observe,
    ProviderError,
    RemoteRef,
    RemoteValue,
    Result,
    no_observe,
)

NAME = "vault"


@dataclass(frozen=True)
class TokenAuth:
    token: str = field(repr=False)


@dataclass(frozen=True)
class AppRoleAuth:
    role_id: str
    secret_id: str = field(repr=False)
    mount: str = "approle"


@dataclass(frozen=True)
class KubernetesAuth:
    """``jwt`` returns a service-account token (from a file, or a TokenRequest)."""

    role: str
    jwt: Callable[[], str] = field(repr=False, compare=False)
    mount: str = "kubernetes"


VaultAuth = TokenAuth | AppRoleAuth | KubernetesAuth


def jwt_from_file(path: str | Path) -> Callable[[], str]:
    """A JWT source reading the file at each login (projected tokens are rotated on disk)."""
    return lambda: Path(path).read_text().strip()


@dataclass(frozen=True)
class VaultConfig:
    server: str
    mount: str = "secret"
    namespace: str | None = None
    timeout: float = 10.0
    ca_bundle: str | None = None
    renew_fraction: float = 2 / 3  # renew once two thirds of the TTL have passed (as VSO)


def ca_file(pem: str) -> str:
    """A file holding ``pem`` (public CA certificates), named by its hash, for hvac's
    ``verify``: written once per content, atomically, under the temp directory."""
    directory = Path(tempfile.gettempdir()) / f"secretops-ca-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(directory)  # a shared /tmp: the directory must be ours, private, no symlink
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{directory} is not a private directory of this user")
    path = directory / f"{hashlib.sha256(pem.encode()).hexdigest()[:32]}.pem"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(pem)
        os.replace(tmp, path)
    return str(path)


def _client(config: VaultConfig) -> Any:
    """The one place an hvac client is built: bounded timeout, no environment lookups."""
    import hvac  # type: ignore[import-untyped]

    return hvac.Client(url=config.server, token=None, namespace=config.namespace,
                       timeout=config.timeout, verify=config.ca_bundle or True)


def _error(e: Exception, op: str, key: str) -> ProviderError:
    """A value-free ProviderError for an hvac or requests exception."""
    import hvac.exceptions as hx  # type: ignore[import-untyped]
    import requests

    where = f"{NAME}: {op} {key}" if key else f"{NAME}: {op}"
    if isinstance(e, hx.InvalidPath):
        return ProviderError(ErrorKind.NOT_FOUND, f"{where}: not found (404)")
    if isinstance(e, hx.Forbidden | hx.Unauthorized):
        return ProviderError(ErrorKind.DENIED, f"{where}: permission denied (403)")
    if isinstance(e, hx.RateLimitExceeded):
        return ProviderError(ErrorKind.THROTTLED, f"{where}: rate limited (429)")
    if isinstance(e, hx.InvalidRequest):
        first = (getattr(e, "errors", None) or ["invalid request"])[0]
        return ProviderError(ErrorKind.INVALID, f"{where}: {str(first).splitlines()[0][:160]} "
                                                "(400)")
    if isinstance(e, hx.VaultError):
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: server error "
                                                    f"({type(e).__name__})")
    if isinstance(e, requests.Timeout):
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: timed out")
    if isinstance(e, requests.RequestException | OSError):
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: cannot reach the server "
                                                    f"({type(e).__name__})")
    return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: unexpected {type(e).__name__}")


def _metadata(c: Any, key: str, mount: str) -> Any:
    return c.secrets.kv.v2.read_secret_metadata(path=key, mount_point=mount)


def _list(c: Any, key: str, mount: str) -> Any:
    return c.secrets.kv.v2.list_secrets(path=key, mount_point=mount)


class VaultProvider:
    """KV v2 reads with one reused, renewed token; calls are serialised by a lock."""

    name = NAME

    def __init__(self, config: VaultConfig, auth: VaultAuth, *,
                 clock: Callable[[], float] = time.monotonic,
                 observe: Observe = no_observe) -> None:
        self.config = config
        self._auth = auth
        self._clock = clock
        self._observe = observe
        self._client: Any = None
        self._expires: float | None = None  # monotonic deadline; None: never expires
        self._renew_at: float | None = None
        self._renewable = False
        self.logins = 0  # for tests and metrics: how many times this provider logged in
        self.renewals = 0
        self._lock = threading.RLock()  # the scheduler may call from two workers

    # ---- auth ----------------------------------------------------------------------------
    def _call(self, op: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except Exception as e:
            self._observe(NAME, op, _error(e, op, "").kind.value)
            raise
        self._observe(NAME, op, "ok")
        return out

    def _adopt(self, auth: dict[str, Any]) -> None:
        ttl = int(auth.get("lease_duration") or auth.get("ttl") or 0)
        now = self._clock()
        self._renewable = bool(auth.get("renewable"))
        self._expires = now + ttl if ttl > 0 else None
        self._renew_at = now + ttl * self.config.renew_fraction if ttl > 0 else None

    def _login(self) -> None:
        if self._client is None:
            self._client = _client(self.config)
        c = self._client
        auth = self._auth
        try:
            if isinstance(auth, TokenAuth):
                c.token = auth.token
                data = self._call("lookup-self", c.auth.token.lookup_self)["data"]
                self._adopt({"ttl": data.get("ttl"), "renewable": data.get("renewable")})
            elif isinstance(auth, AppRoleAuth):
                out = self._call("login", lambda: c.auth.approle.login(
                    role_id=auth.role_id, secret_id=auth.secret_id, mount_point=auth.mount,
                    use_token=True))
                self._adopt(out["auth"])
            else:
                try:
                    jwt = auth.jwt()
                except OSError as e:
                    raise ProviderError(ErrorKind.DENIED, f"{NAME}: login: cannot read the "
                                        f"service-account token ({type(e).__name__})") from None
                out = self._call("login", lambda: c.auth.kubernetes.login(
                    role=auth.role, jwt=jwt, mount_point=auth.mount, use_token=True))
                self._adopt(out["auth"])
        except ProviderError:
            raise
        except Exception as e:
            raise _error(e, "login", "") from None
        self.logins += 1

    def _can_login(self) -> bool:
        return not isinstance(self._auth, TokenAuth)

    def _ensure_token(self) -> Any:
        now = self._clock()
        if self._client is None or self._client.token is None or (
                self._expires is not None and now >= self._expires):
            if self._client is not None and not self._can_login():
                raise ProviderError(ErrorKind.DENIED, f"{NAME}: the token has expired")
            self._login()
        elif self._renew_at is not None and now >= self._renew_at:
            self._renew()
        return self._client

    def _renew(self) -> None:
        c = self._client
        if not self._renewable:
            if self._can_login():
                self._login()
            else:
                self._renew_at = None  # nothing to do until it expires
            return
        try:
            out = self._call("renew-self", lambda: c.auth.token.renew_self())
        except Exception:
            if not self._can_login():
                self._renew_at = None
                return
            self._login()  # renewal refused (max TTL reached, revoked): log in again
            return
        self._adopt(out["auth"])
        self.renewals += 1

    def _request(self, op: str, key: str, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(client)``; on a 403 log in again once (revoked or expired token)."""
        import hvac.exceptions as hx

        client = self._ensure_token()
        for attempt in (1, 2):
            try:
                return self._call(op, partial(fn, client))
            except hx.Forbidden as e:
                if attempt == 2 or not self._can_login():
                    raise _error(e, op, key) from None
                self._login()
                client = self._client
            except Exception as e:
                raise _error(e, op, key) from None
        raise AssertionError("unreachable")

    def check(self) -> None:
        """One request that proves connection and credentials: the login when there is no
        token yet (AppRole, Kubernetes; ``lookup-self`` for a given token), else ``lookup-self``
        with the token held (a revoked one: a new login where the method can, else Denied)."""
        with self._lock:
            logins = self.logins
            self._ensure_token()
            if self.logins == logins:
                self._request("lookup-self", "", lambda c: c.auth.token.lookup_self())

    # ---- the Provider protocol -----------------------------------------------------------
    def _read(self, ref: RemoteRef) -> RemoteValue:
        mount = self.config.mount
        out = self._request("read", ref.key, lambda c: c.secrets.kv.v2.read_secret_version(
            path=ref.key, version=ref.version, mount_point=mount,
            raise_on_deleted_version=True))
        data = out.get("data") or {}
        version = str((data.get("metadata") or {}).get("version", ""))
        return RemoteValue(dict(data.get("data") or {}), version)

    def read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]:
        """One GET per key (KV v2 has no batch read); a whole-call failure raises."""
        with self._lock:
            return self._read_many(refs)

    def _read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]:
        out: dict[RemoteRef, Result] = {}
        for ref in refs:
            try:
                out[ref] = self._read(ref)
            except ProviderError as e:
                if e.kind != ErrorKind.NOT_FOUND:
                    raise
                out[ref] = e
        return out

    def versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]:
        with self._lock:
            return self._versions(refs)

    def _versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]:
        out: dict[RemoteRef, str | ProviderError] = {}
        mount = self.config.mount
        for ref in refs:
            if ref.version is not None:
                out[ref] = ref.version  # a pinned version never changes
                continue
            try:
                meta = self._request("metadata", ref.key, partial(_metadata, key=ref.key,
                                                                 mount=mount))
            except ProviderError as e:
                if e.kind != ErrorKind.NOT_FOUND:
                    raise
                out[ref] = e
                continue
            out[ref] = str(meta["data"]["current_version"])
        return out

    def find(self, query: FindRef) -> dict[str, RemoteValue]:
        """List the mount under ``query.path`` recursively and read what the regexp selects."""
        with self._lock:
            return self._find(query)

    def _find(self, query: FindRef) -> dict[str, RemoteValue]:
        mount = self.config.mount
        names: list[str] = []
        todo = [(query.path or "").strip("/")]
        while todo:
            prefix = todo.pop()
            try:
                listed = self._request("list", prefix or "/", partial(_list, key=prefix,
                                                                     mount=mount))
            except ProviderError as e:
                if e.kind == ErrorKind.NOT_FOUND:
                    continue
                raise
            for k in listed["data"]["keys"]:
                full = f"{prefix}/{k}" if prefix else k
                if k.endswith("/"):
                    todo.append(full.rstrip("/"))
                elif query.matches(full):
                    names.append(full)
        found: dict[str, RemoteValue] = {}
        for name, result in self._read_many([RemoteRef(n) for n in sorted(names)]).items():
            if isinstance(result, RemoteValue):
                found[name.key] = result
        return found

    def write(self, key: str, prop: str | None, value: str) -> str:
        """Rotation write-back: ``prop`` set to ``value`` in a new KV v2 version of ``key`` (the
        other properties kept; check-and-set against the version read). The new version."""
        if not prop:
            raise ProviderError(ErrorKind.INVALID, (
                f"vault: write {key}: a KV v2 secret is a map: remoteRef.property is required"))
        mount = self.config.mount
        with self._lock:
            try:
                current = self._read(RemoteRef(key))
                data = dict(cast(Mapping[str, Any], current.value))
                cas = int(current.version or 0)
            except ProviderError as e:
                if e.kind != ErrorKind.NOT_FOUND:
                    raise
                data, cas = {}, 0
            data[prop] = value
            out = self._request("write", key, lambda c: c.secrets.kv.v2.create_or_update_secret(
                path=key, secret=data, cas=cas, mount_point=mount))
        return str(((out or {}).get("data") or {}).get("version", ""))

    def close(self) -> None:
        """Revoke a token this provider logged in for (never a given one) and drop the client."""
        with self._lock:
            c, self._client = self._client, None
        if c is None:
            return
        if self._can_login() and c.token:
            with contextlib.suppress(Exception):  # best effort: it expires on its own
                self._call("revoke-self", lambda: c.auth.token.revoke_self())
        c.adapter.close()
