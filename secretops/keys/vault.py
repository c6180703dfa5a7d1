"""HashiCorp Vault / OpenBao transit keys, through hvac — sops's ``hc_vault`` entries.

A key is named by its URI, ``https://vault.example.com:8200/v1/<engine path>/keys/<key name>``
(``--hc-vault-transit``, ``SOPS_VAULT_URIS``, ``.sops.yaml`` ``hc_vault_transit_uri``). Wrapping
posts ``{"plaintext": base64(data key)}`` to ``<engine path>/encrypt/<key name>``; the entry is
written as sops writes it, with the returned ciphertext as-is::

    hc_vault:
        - vault_address: https://vault.example.com:8200
          engine_path: transit
          key_name: sops
          created_at: "2026-11-23T10:00:00Z"
          enc: vault:v1:…

Unwrapping posts the ciphertext to ``<engine path>/decrypt/<key name>``. :func:`rewrap_metadata`
posts every entry's ciphertext to ``<engine path>/rewrap/<key name>`` after the transit key was
rotated: the data key never leaves Vault, and values, ``lastmodified`` and ``mac`` stay as they
are (``secretops vault rewrap``).

The environment, as sops 3.11 reads it (through Vault's Go client):

* the server is the entry's ``vault_address``, as in sops — but the token is sent there only
  if that is the server of ``VAULT_ADDR`` (or one listed in ``SECRETOPS_VAULT_ADDRS``):
  anyone who can write the repository can point an entry at a server of theirs, and sops
  would hand them the token (:func:`check_destination`). ``VAULT_AGENT_ADDR``, when set, takes
  precedence over the entry's address, as in sops (Vault's client prefers an agent);
* the token is ``VAULT_TOKEN``, else the contents of ``~/.vault-token`` (``$HOME`` from the
  environment), as written by ``vault login`` / ``bao login``;
* ``VAULT_NAMESPACE``, ``VAULT_CACERT`` / ``VAULT_CAPATH``, ``VAULT_SKIP_VERIFY`` and
  ``VAULT_CLIENT_CERT`` / ``VAULT_CLIENT_KEY`` are honoured too.

Calls are bounded: a 10 s timeout per request (``VAULT_CLIENT_TIMEOUT`` overrides it, in
seconds) and no retries, so a server that is down fails in seconds (sops retries twice with
back-off); only an answer of 429 (a rate-limit quota) is tried again, with back-off, and a
many-file run makes a bounded number of calls at once (:mod:`secretops.keys.remote`).
Failures are one line naming the key URI and never contain key material: server
unreachable, no token, permission denied (with the policy path that is missing), a ciphertext
older than the key's ``min_decryption_version``. A failed wrap raises
:class:`~secretops.errors.SecretOpsError` (exit 23); a failed unwrap raises
:class:`VaultTransitError`, which :func:`secretops.keys.datakey.recover_data_key` reports
(decrypt then exits 128 if no other key fits); a failed rewrap raises ``SecretOpsError``
with exit 128.

hvac is imported only when a client is first built.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from secretops.core.metadata import KeyEntry, Metadata
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeySource, WireKey, remote
from secretops.keys.specs import KeySpec

KIND = "hc_vault"
DEFAULT_TIMEOUT = 10.0
TOKEN_FILE = ".vault-token"
ALLOWED_ADDRS_ENV = "SECRETOPS_VAULT_ADDRS"  # more servers the token may go to, comma-separated
_VERSION = re.compile(r"^vault:v(\d+):")


class VaultTransitError(Exception):
    """A transit call failed; the message is one line, with what to do about it."""


def key_uri(fields: Mapping[str, Any]) -> str:
    """The key's URI, as sops prints it: ``<address>/v1/<engine path>/keys/<key name>``."""
    return (f"{redact_uri(str(fields.get('vault_address', '?')))}/v1/"
            f"{fields.get('engine_path', '?')}/keys/{fields.get('key_name', '?')}")


def ciphertext_version(enc: str) -> int | None:
    """The transit key version a ``vault:vN:…`` ciphertext was made with (None if malformed)."""
    m = _VERSION.match(enc)
    return int(m.group(1)) if m else None


def read_token(env: Mapping[str, str]) -> str:
    """``VAULT_TOKEN``, else ``~/.vault-token`` (``$HOME`` from ``env``), else ``""``."""
    token = env.get("VAULT_TOKEN", "").strip()
    if token:
        return token
    home = env.get("HOME") or os.path.expanduser("~")
    try:
        with open(os.path.join(home, TOKEN_FILE), encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise VaultTransitError(
            f"cannot read the Vault token file ~/{TOKEN_FILE}: "
            f"{getattr(e, 'strerror', None) or 'not text'}"
        ) from None


def _timeout(env: Mapping[str, str]) -> float:
    raw = env.get("VAULT_CLIENT_TIMEOUT", "").strip().removesuffix("s")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def _verify(env: Mapping[str, str]) -> bool | str:
    if env.get("VAULT_SKIP_VERIFY", "").strip().lower() in ("1", "t", "true", "yes"):
        return False
    return env.get("VAULT_CACERT") or env.get("VAULT_CAPATH") or True


def _client(address: str, token: str, env: Mapping[str, str], *, agent: bool = True) -> Any:
    """The one place an hvac client is built: bounded timeout, no retries, explicit settings.

    Everything is passed explicitly, because hvac would otherwise read ``VAULT_ADDR`` and the
    token from the process environment rather than from ``env``. ``agent``: a Vault Agent
    (``VAULT_AGENT_ADDR``) takes the requests instead of ``address``.
    """
    import hvac  # type: ignore[import-untyped]

    cert = env.get("VAULT_CLIENT_CERT")
    key = env.get("VAULT_CLIENT_KEY")
    return hvac.Client(
        url=(agent and env.get("VAULT_AGENT_ADDR")) or address,
        token=token,
        timeout=_timeout(env),
        verify=_verify(env),
        cert=(cert, key) if cert and key else None,
        namespace=env.get("VAULT_NAMESPACE") or None,
    )


def _explain(e: Exception, fields: Mapping[str, Any], op: str, env: Mapping[str, str]) -> str:
    """One line saying what went wrong in a transit call, and what to do (no key material)."""
    import hvac.exceptions as hx  # type: ignore[import-untyped]
    import requests

    engine, key = fields.get("engine_path", "?"), fields.get("key_name", "?")
    server = redact_uri(str(env.get("VAULT_AGENT_ADDR") or fields.get("vault_address", "?")))
    if isinstance(e, requests.exceptions.Timeout):
        return (f"Vault at {server} did not answer within {_timeout(env):g} s "
                "(VAULT_CLIENT_TIMEOUT sets the limit)")
    if isinstance(e, requests.exceptions.SSLError):
        return (f"TLS to Vault at {server} failed: the certificate is not trusted "
                "(set VAULT_CACERT to the server's CA bundle)")
    if isinstance(e, requests.exceptions.ConnectionError):
        why = "connection refused" if "refused" in str(e).lower() else "connection failed"
        return (f"cannot reach Vault at {server} ({why}): is the server up, and is the "
                "address right? (it is the key's vault_address; VAULT_ADDR does not change it)")
    if isinstance(e, requests.exceptions.RequestException):
        return f"the request to Vault at {server} failed ({type(e).__name__})"
    errors = "; ".join(str(x) for x in (getattr(e, "errors", None) or []))[:300]
    if isinstance(e, hx.Forbidden):
        return (f"permission denied (403): the token is invalid or expired, or its policy does "
                f'not allow "update" on {engine}/{op}/{key}')
    if isinstance(e, hx.Unauthorized):
        return "unauthorized (401): the Vault token is not accepted"
    if isinstance(e, hx.InvalidRequest) and "too old" in errors:
        version = ciphertext_version(str(fields.get("enc", "")))
        made = f"key version {version}" if version else "an old key version"
        return (f"the wrapped data key was made with {made}, which is below the transit key's "
                "min_decryption_version: lower it, run 'secretops vault rewrap' on the file, "
                "then raise it again")
    if isinstance(e, hx.InvalidRequest) and "key not found" in errors:
        return f"the transit key {key!r} does not exist in the {engine!r} engine"
    if isinstance(e, hx.InvalidPath):
        return f"no transit engine is mounted at {engine!r} (404 on {engine}/{op}/{key})"
    if isinstance(e, hx.VaultError):
        status = {hx.InvalidRequest: "400", hx.InternalServerError: "500",
                  hx.VaultDown: "503: sealed or in standby", hx.RateLimitExceeded: "429",
                  hx.BadGateway: "502"}.get(type(e), type(e).__name__)
        return f"Vault refused the {op} request ({status}): {errors or 'no detail'}"
    return f"the {op} call failed ({type(e).__name__})"


def _throttled(e: BaseException) -> bool:
    """HTTP 429: a rate-limit quota says slow down (:func:`secretops.keys.remote.call`)."""
    import hvac.exceptions as hx

    return isinstance(e, hx.RateLimitExceeded)


def _transit(fields: Mapping[str, Any], env: Mapping[str, str], op: str,
             call: Callable[[Any], Any], clients: dict[tuple[str, str], Any] | None = None
             ) -> Mapping[str, Any]:
    """Run one transit call (``op`` names it in messages) and return the response's ``data``."""
    token = read_token(env)
    if not token:
        raise VaultTransitError(
            "no Vault token: set VAULT_TOKEN, or log in (vault login / bao login writes "
            f"~/{TOKEN_FILE})"
        )
    address = str(fields.get("vault_address") or "")
    check_destination(address, env)
    if clients is None:
        clients = {}
    client = clients.get((address, token))
    try:
        if client is None:
            client = clients[(address, token)] = _client(address, token, env)
        response = remote.call(lambda: call(client), _throttled)
    except Exception as e:
        raise VaultTransitError(_explain(e, fields, op, env)) from None
    data = response.get("data") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping):
        raise VaultTransitError(f"the {op} response from Vault has no data")
    return data


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def server_client(url: str, token: str, env: Mapping[str, str]) -> Any:
    """An hvac client for exactly ``url`` (no agent in between), with the environment's TLS,
    namespace and timeout settings: for Vault engines other than transit (``publish`` to KV).
    The caller checks the destination first (:func:`check_destination`)."""
    return _client(url, token, env, agent=False)


def check_destination(address: str, env: Mapping[str, str], *, agent: bool = True) -> None:
    """Send the token only to a server the user named: ``VAULT_ADDR`` or ``SECRETOPS_VAULT_ADDRS``.

    The address comes from the file (or ``.sops.yaml``), which anyone who can write the
    repository can change: an ``hc_vault`` entry pointing at their server would otherwise
    receive the token of whoever decrypts it (sops sends it there). Through a Vault Agent
    (``VAULT_AGENT_ADDR``, the user's own choice) the agent decides — unless ``agent`` is
    False: the request then goes to ``address`` itself.
    """
    if agent and env.get("VAULT_AGENT_ADDR"):
        return
    named = [env.get("VAULT_ADDR", ""), *env.get(ALLOWED_ADDRS_ENV, "").split(",")]
    origin = _origin(address)
    if origin is not None and origin in {_origin(a) for a in named if a.strip()}:
        return
    raise VaultTransitError(
        f"refusing to send the Vault token to {redact_uri(address) or '(no address)'}: the file "
        f"names that server, but VAULT_ADDR does not (nor {ALLOWED_ADDRS_ENV}); if your token "
        "is for that server, set VAULT_ADDR to it"
    )


def _now() -> datetime:
    return datetime.now(UTC)


class VaultRecipient:
    """Wraps a data key with one transit key."""

    kind = KIND

    def __init__(self, vault_address: str, engine_path: str, key_name: str,
                 env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.fields = {"vault_address": vault_address, "engine_path": engine_path,
                       "key_name": key_name}
        self._env: Mapping[str, str] = env if env is not None else {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"VaultRecipient({key_uri(self.fields)!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        f = self.fields
        plaintext = base64.b64encode(data_key).decode("ascii")
        try:
            data = _transit(f, self._env, "encrypt", lambda c: c.secrets.transit.encrypt_data(
                name=f["key_name"], plaintext=plaintext, mount_point=f["engine_path"]))
            enc = data.get("ciphertext")
            if not isinstance(enc, str) or not enc.startswith("vault:"):
                raise VaultTransitError("the encrypt response from Vault has no ciphertext")
        except VaultTransitError as e:
            raise SecretOpsError(
                f"cannot encrypt with Vault transit key {key_uri(f)}: {e}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
            ) from None
        created = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return KeyEntry(KIND, {**f, "created_at": created, "enc": enc})


class VaultIdentity:
    """Unwraps ``hc_vault`` entries with the token this environment provides."""

    kind = KIND

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._clients: dict[tuple[str, str], Any] = {}

    def unwrap(self, entry: KeyEntry) -> bytes:
        f = entry.fields
        if not f.get("engine_path") or not f.get("key_name") or not entry.enc:
            raise VaultTransitError("the entry lacks engine_path, key_name or enc")
        data = _transit(f, self._env, "decrypt", lambda c: c.secrets.transit.decrypt_data(
            name=f["key_name"], ciphertext=entry.enc, mount_point=f["engine_path"]),
            self._clients)
        try:
            return base64.b64decode(str(data.get("plaintext") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise VaultTransitError("Vault returned a plaintext that is not base64") from None


class RewrapChange(NamedTuple):
    """One entry moved to a newer key version by :func:`rewrap_metadata`."""

    key: str
    old_version: int | None
    new_version: int | None


def rewrap_metadata(metadata: Metadata, env: Mapping[str, str]
                    ) -> tuple[Metadata, list[RewrapChange]]:
    """New metadata whose ``hc_vault`` entries are wrapped with their key's newest version.

    Calls transit ``rewrap`` for every ``hc_vault`` entry: the data key stays inside Vault and
    stays the same, so values, ``lastmodified`` and ``mac`` are untouched. An entry already at
    the newest version keeps its ``enc`` exactly (a rewrap would only change its nonce), and
    ``created_at`` is kept: it dates the data key, which does not change. Other kinds of entries
    are copied as they are. ``metadata`` itself is not modified.

    Raises :class:`~secretops.errors.SecretOpsError` (exit 128) naming the key when a rewrap
    fails — for example when the ciphertext is already below ``min_decryption_version``.
    """
    clients: dict[tuple[str, str], Any] = {}
    changes: list[RewrapChange] = []
    groups: list[list[KeyEntry]] = []
    for group in metadata.key_groups:
        new_group: list[KeyEntry] = []
        for entry in group:
            fields = dict(entry.fields)
            if entry.kind == KIND:
                new_enc = _rewrap_one(fields, env, clients)
                old_v, new_v = ciphertext_version(entry.enc), ciphertext_version(new_enc)
                if new_v is not None and old_v is not None and new_v > old_v:
                    fields["enc"] = new_enc
                    changes.append(RewrapChange(key_uri(fields), old_v, new_v))
            new_group.append(KeyEntry(entry.kind, fields))
        groups.append(new_group)
    new = Metadata(key_groups=groups, shamir_threshold=metadata.shamir_threshold,
                   lastmodified=metadata.lastmodified, mac=metadata.mac,
                   selection=metadata.selection, version=metadata.version)
    return new, changes


def _rewrap_one(fields: Mapping[str, Any], env: Mapping[str, str],
                clients: dict[tuple[str, str], Any]) -> str:
    enc = str(fields.get("enc") or "")
    try:
        data = _transit(fields, env, "rewrap", lambda c: c.secrets.transit.rewrap_data(
            name=fields["key_name"], ciphertext=enc, mount_point=fields["engine_path"]), clients)
        new_enc = data.get("ciphertext")
        if not isinstance(new_enc, str) or not new_enc.startswith("vault:"):
            raise VaultTransitError("the rewrap response from Vault has no ciphertext")
    except VaultTransitError as e:
        raise SecretOpsError(
            f"cannot rewrap with Vault transit key {key_uri(fields)}: {e}",
            code=ExitCode.COULD_NOT_RETRIEVE_KEY,
        ) from None
    return new_enc


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> VaultRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return VaultRecipient(str(fields["vault_address"]), str(fields["engine_path"]),
                          str(fields["key_name"]), env)


def identity(env: Mapping[str, str]) -> VaultIdentity:
    """The key-source interface: always an identity; a missing token is reported on use."""
    return VaultIdentity(env)


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user info replaced by ``***`` (for messages)."""
    parts = urlsplit(uri.strip())
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def vault_spec(uri: str) -> KeySpec:
    """``https://host:port/v1/<engine path>/keys/<key name>`` → the metadata's three fields."""
    parts = urlsplit(uri.strip())
    path = parts.path
    # sops accepts any API version (/v1/, /v2/ …) and a trailing slash
    version = re.match(r"/v[0-9]+/", path)
    if version:
        path = "/v1/" + path[version.end():]
    if (parts.scheme not in ("http", "https") or not parts.netloc
            or not path.startswith("/v1/") or "/keys/" not in path):
        raise SecretOpsError(
            f"invalid Vault transit URI {redact_uri(uri)!r}",
            code=ExitCode.INVALID_KEY,
            hints=("the form is https://vault.example.com:8200/v1/transit/keys/KEY_NAME",),
        )
    engine, _, key = path[len("/v1/"):].rstrip("/").rpartition("/keys/")
    if not engine or not key or "/" in key:
        raise SecretOpsError(f"invalid Vault transit URI {redact_uri(uri)!r}",
                             code=ExitCode.INVALID_KEY)
    return KeySpec(KIND, {"vault_address": f"{parts.scheme}://{parts.netloc}",
                          "engine_path": engine.strip("/"), "key_name": key})


def _describe(f: Mapping[str, Any]) -> str:
    addr, engine = f.get("vault_address", "?"), f.get("engine_path", "?")
    return f"Vault transit key {addr}/v1/{engine}/keys/{f.get('key_name')}"


class _Rewrap:
    """The :class:`~secretops.keys.Rewrapper` ability (``secretops vault rewrap``)."""

    def rewrap(self, metadata: Metadata, env: Mapping[str, str]
               ) -> tuple[Metadata, list[Any]]:
        new, changes = rewrap_metadata(metadata, env)
        return new, list(changes)


SOURCE = KeySource(
    KIND,
    title="Vault transit",
    describe=_describe,
    identity_fields=("vault_address", "engine_path", "key_name"),
    flag="hc-vault-transit",
    metavar="URIS",
    help="Vault transit keys, e.g. https://vault:8200/v1/transit/keys/NAME",
    example="https://vault.example.com:8200/v1/transit/keys/sops",
    env="SOPS_VAULT_URIS",
    config_key="hc_vault_transit_uri",
    group_key="hc_vault",
    parse=lambda value, options: vault_spec(value),
    recipient=recipient,
    identity=identity,
    extra="vault",
    requires=("hvac",),
    abilities=(_Rewrap(),),
    wire=WireKey(5, ("vault_address", "engine_path", "key_name")),
)
