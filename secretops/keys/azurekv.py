"""Azure Key Vault keys, through azure-keyvault-keys and azure-identity — sops's ``azure_kv``.

A key is named by its URL, ``https://VAULT.vault.azure.net/keys/NAME/VERSION`` (``--azure-kv``,
``SOPS_AZURE_KEYVAULT_URLS``, ``.sops.yaml`` ``azure_keyvault``), or in ``key_groups`` by a map
``{vaultUrl, key, version}``. The version may be left out: the key's current version is then
asked from the vault when the data key is wrapped and written in the entry (sops asks when it
reads the URL). The entry is written as sops writes it::

    azure_kv:
        - vault_url: https://sops.vault.azure.net
          name: sops-key
          version: 0f2b…
          created_at: "2026-11-23T10:00:00Z"
          enc: <unpadded URL-safe base64 of the RSA-OAEP-256 ciphertext>

As in sops, the data key is encrypted with the key's ``encrypt`` operation and the
``RSA-OAEP-256`` algorithm, and decrypted with ``decrypt`` (not ``wrapKey``/``unwrapKey``: an
access policy that grants sops's ``encrypt``/``decrypt`` permissions is enough). The Python SDK
reads the key first (``keys/get``) and, when it may, encrypts with its public half on this
machine; the ciphertext is the same kind sops's remote encryption makes.

Credentials are azure-identity's ``DefaultAzureCredential``, the Python form of the chain sops
uses (read from the process environment): ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_ID`` with
``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH`` (``AZURE_AUTHORITY_HOST`` for
other clouds), workload identity (``AZURE_FEDERATED_TOKEN_FILE``), managed identity, then the
Azure CLI's login. A vault's TLS certificate is checked against the CA bundle in
``SSL_CERT_FILE`` when it is set (the variable sops's Go TLS reads), else ``REQUESTS_CA_BUNDLE``
or the bundled roots. The token is sent only where the vault's own authentication challenge
names a resource of the vault's domain (the SDK's check), so an entry naming another server
gets no token for Key Vault.

Calls are bounded: 5 s to connect, 10 s to read, one retry (a 429 is also tried again with
back-off, and a many-file run makes a bounded number of calls at once:
:mod:`secretops.keys.remote`). Failures are one line and never
hold key material nor the text a server sent back. A failed wrap raises
:class:`~secretops.errors.SecretOpsError` (exit 23); a failed unwrap raises
:class:`AzureKeyVaultError`, reported by :func:`secretops.keys.datakey.recover_data_key` (exit
128 if no other key fits). The SDK is imported only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import re
from _thread import allocate_lock  # threading.Lock without importing threading (--help)
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from secretops.core.metadata import KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeySource, WireKey, split_list
from secretops.keys.remote import call
from secretops.keys.specs import KeySpec

KIND = "azure_kv"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
RETRIES = 1
# sops's form of a key URL: the vault, the key's name, and an optional version
_URL = re.compile(r"^(https://[^/]+)/keys/([^/]+)(/[^/]*)?$")
_NAME = re.compile(r"^[^/\s]+$")

# one DefaultAzureCredential per credential settings: it caches its tokens
_credentials: dict[tuple[tuple[str, str], ...], Any] = {}
_credentials_lock = allocate_lock()
_CREDENTIAL_ENV = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")


class AzureKeyVaultError(RuntimeError):
    """Key Vault could not unwrap an entry (one line, no key material)."""


def key_url(fields: Mapping[str, Any]) -> str:
    """The key's URL as sops prints it: ``{vault_url}/keys/{name}/{version}``."""
    return f"{fields.get('vault_url', '?')}/keys/{fields.get('name', '?')}/" \
           f"{fields.get('version') or ''}"


def _key_id(vault_url: str, name: str, version: str) -> str:
    parts = urlsplit(vault_url)
    if parts.scheme != "https" or not parts.netloc or not _NAME.match(name) or (
            version and not _NAME.match(version)):
        shown = key_url({"vault_url": vault_url, "name": name, "version": version})
        raise AzureKeyVaultError(f"invalid Azure Key Vault key {shown!r}: the form is "
                                 "https://VAULT.vault.azure.net/keys/NAME/VERSION")
    return f"{vault_url.rstrip('/')}/keys/{name}" + (f"/{version}" if version else "")


def _verify(env: Mapping[str, str]) -> bool | str:
    return env.get("SSL_CERT_FILE") or True


def _get_credential() -> Any:
    """azure-identity's chain (it reads the process environment), built once per settings."""
    import os

    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_CREDENTIAL_ENV)))
    with _credentials_lock:
        if key not in _credentials:
            import logging

            from azure.identity import DefaultAzureCredential

            # the SDK logs each failed credential of the chain as a warning, with its text:
            # the one-line error of explain() says what matters
            logging.getLogger("azure").setLevel(logging.ERROR)
            _credentials[key] = DefaultAzureCredential(retry_total=RETRIES)
        return _credentials[key]


def _keys(vault_url: str, env: Mapping[str, str]) -> Any:
    """The SDK's key client (reads a key's current version)."""
    from azure.keyvault.keys import KeyClient

    return KeyClient(vault_url, _get_credential(), connection_timeout=CONNECT_TIMEOUT,
                     read_timeout=READ_TIMEOUT, retry_total=RETRIES,
                     connection_verify=_verify(env))


def _crypto(key_id: str, env: Mapping[str, str]) -> Any:
    """The one place the SDK's client is built."""
    from azure.keyvault.keys.crypto import CryptographyClient

    return CryptographyClient(key_id, _get_credential(), connection_timeout=CONNECT_TIMEOUT,
                              read_timeout=READ_TIMEOUT, retry_total=RETRIES,
                              connection_verify=_verify(env))


def explain(e: BaseException) -> str:
    """One line saying why a call failed: no server text, no request data."""
    from azure.core import exceptions as ax

    if isinstance(e, AzureKeyVaultError):
        return str(e)
    if isinstance(e, ax.ClientAuthenticationError) and getattr(e, "status_code", None) is None:
        # the credential chain found nothing usable (its text lists every attempt)
        return ("no Azure credentials were found or accepted (set AZURE_TENANT_ID, "
                "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, use a managed identity, or run "
                "'az login')")
    status = getattr(e, "status_code", None)
    if status == 401:
        return "Azure Key Vault rejected the token (401)"
    if status == 403:
        return ("Azure Key Vault denied access (403): the identity needs the encrypt and "
                "decrypt (and get) key permissions on this vault")
    if status == 404:
        return "the key does not exist in this vault (404)"
    if status == 400:
        return ("Azure Key Vault refused the request (400): the wrapped key was made with "
                "another key or is damaged")
    if isinstance(e, ax.HttpResponseError) and status:
        return f"Azure Key Vault answered {status}"
    if isinstance(e, ax.ServiceRequestError | ax.ServiceResponseError):
        text = str(e).lower()
        if "certificate" in text or "ssl" in text:
            return ("TLS to the vault failed: its certificate is not trusted (SSL_CERT_FILE "
                    "names a CA bundle)")
        return "cannot reach the vault (connection failed or timed out)"
    if isinstance(e, ValueError) and "challenge" in str(e).lower():
        return ("the server's authentication challenge names another domain: no token was "
                "sent (is the vault URL right?)")
    return f"the Azure Key Vault call failed ({type(e).__name__})"


def _version_of(kid: str) -> str:
    parts = urlsplit(kid).path.strip("/").split("/")
    return parts[2] if len(parts) >= 3 and parts[0] == "keys" else ""


def _b64url_decode(text: str) -> bytes:
    """sops writes unpadded URL-safe base64; padding is accepted too."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now() -> datetime:
    return datetime.now(UTC)


class AzureKvRecipient:
    """Wraps a data key with one Key Vault key."""

    kind = KIND

    def __init__(self, vault_url: str, name: str, version: str = "",
                 env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.fields = {"vault_url": vault_url, "name": name, "version": version}
        self._env: Mapping[str, str] = env if env is not None else {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"AzureKvRecipient({key_url(self.fields)!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        from azure.keyvault.keys.crypto import EncryptionAlgorithm

        f = self.fields
        try:
            client = _crypto(_key_id(f["vault_url"], f["name"], f["version"]), self._env)
            out = call(lambda: client.encrypt(EncryptionAlgorithm.rsa_oaep_256, data_key),
                       throttled)
            version = f["version"] or _version_of(str(out.key_id or ""))
            if not out.ciphertext or not version:
                raise AzureKeyVaultError("Azure Key Vault returned no ciphertext or version")
        except Exception as e:
            raise SecretOpsError(
                f"cannot encrypt with Azure Key Vault key {key_url(f)}: {explain(e)}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
                hints=("check the Azure credentials and the key's access policy or role",),
            ) from None
        created = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        enc = base64.urlsafe_b64encode(bytes(out.ciphertext)).rstrip(b"=").decode("ascii")
        return KeyEntry(KIND, {**f, "version": version, "created_at": created, "enc": enc})


def throttled(e: BaseException) -> bool:
    """HTTP 429: Key Vault's service limits say slow down (:mod:`secretops.keys.remote`)."""
    from azure.core.exceptions import HttpResponseError

    return isinstance(e, HttpResponseError) and e.status_code == 429


class AzureKvIdentity:
    """Unwraps ``azure_kv`` entries with the Azure credentials of this environment."""

    kind = KIND

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def unwrap(self, entry: KeyEntry) -> bytes:
        from azure.keyvault.keys.crypto import EncryptionAlgorithm

        f = entry.fields
        key_id = _key_id(str(f.get("vault_url") or ""), str(f.get("name") or ""),
                         str(f.get("version") or ""))
        try:
            blob = _b64url_decode(entry.enc)
        except (binascii.Error, ValueError):
            raise AzureKeyVaultError("the entry's enc field is not URL-safe base64") from None
        try:
            client = _crypto(key_id, self._env)
            out = call(lambda: client.decrypt(EncryptionAlgorithm.rsa_oaep_256, blob),
                       throttled)
        except Exception as e:
            raise AzureKeyVaultError(explain(e)) from None
        return bytes(out.plaintext)


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> AzureKvRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return AzureKvRecipient(str(fields["vault_url"]), str(fields["name"]),
                            str(fields.get("version") or ""), env)


def identity(env: Mapping[str, str]) -> AzureKvIdentity:
    """The key-source interface: credentials are looked up when an entry is unwrapped."""
    return AzureKvIdentity(env)


def _checked(vault_url: str, name: str, version: str, shown: str) -> KeySpec:
    try:
        _key_id(vault_url, name, version)
    except AzureKeyVaultError:
        raise SecretOpsError(
            f"invalid Azure Key Vault key {shown!r}", code=ExitCode.INVALID_KEY,
            hints=("the form is https://VAULT.vault.azure.net/keys/NAME[/VERSION]",),
        ) from None
    return KeySpec(KIND, {"vault_url": vault_url, "name": name, "version": version})


def azure_spec(url: str) -> KeySpec:
    """``https://VAULT/keys/NAME[/VERSION]`` → the metadata's three fields (sops's parse)."""
    url = url.strip()
    m = _URL.match(url)
    if m is None:
        raise SecretOpsError(
            f"invalid Azure Key Vault key URL {url!r}", code=ExitCode.INVALID_KEY,
            hints=("the form is https://VAULT.vault.azure.net/keys/NAME[/VERSION]",),
        )
    version = (m.group(3) or "/")[1:]
    return _checked(m.group(1), m.group(2), version, url)


def _group_specs(raw: Any) -> list[KeySpec]:
    """``key_groups`` entries: maps ``{vaultUrl, key, version}`` (URLs are accepted too)."""
    out = []
    for entry in raw if isinstance(raw, list) else split_list(raw):
        if isinstance(entry, Mapping):
            vault, name = str(entry.get("vaultUrl") or ""), str(entry.get("key") or "")
            version = str(entry.get("version") or "")
            out.append(_checked(vault, name, version, key_url(
                {"vault_url": vault, "name": name, "version": version})))
        else:
            out.append(azure_spec(str(entry)))
    return out


class _CurrentVersion:
    """The :class:`~secretops.keys.Resolver` ability: a rule's key named without a version is
    the key's current version, asked of the vault (``keys/get``) as sops asks when it reads the
    rule, so ``updatekeys`` finds a file that has it up to date."""

    def resolve(self, spec: KeySpec, env: Mapping[str, str]) -> KeySpec:
        f = spec.fields
        if f.get("version"):
            return spec
        try:
            _key_id(str(f["vault_url"]), str(f["name"]), "")
            key = call(lambda: _keys(str(f["vault_url"]), env).get_key(str(f["name"])),
                       throttled)
            version = str(key.properties.version or "")
            if not version:
                raise AzureKeyVaultError("Azure Key Vault returned no version")
        except Exception as e:
            raise SecretOpsError(
                f"cannot find the current version of Azure Key Vault key {key_url(f)}: "
                f"{explain(e)}", code=ExitCode.GENERIC,
                hints=("name the version in .sops.yaml, or check the credentials (keys/get)",),
            ) from None
        return KeySpec(KIND, {**f, "version": version})


_VAULT = "https://sops.vault.azure.net"
_VERSION = "0f2b5c3e8d7a4b6c9e1f2a3b4c5d6e7f"

SOURCE = KeySource(
    KIND,
    title="Azure Key Vault",
    describe=lambda f: f"Azure Key Vault key {key_url(f)}",
    identity_fields=("vault_url", "name", "version"),
    # --rm-azure-kv without a version removes every version of the key
    remove_fields=("vault_url", "name", "version"),
    flag="azure-kv",
    metavar="URLS",
    help="Azure Key Vault key URLs (https://VAULT/keys/NAME/VERSION)",
    example=f"{_VAULT}/keys/sops-key/{_VERSION}",
    group_example=[{"vaultUrl": _VAULT, "key": "sops-key", "version": _VERSION}],
    env="SOPS_AZURE_KEYVAULT_URLS",
    config_key="azure_keyvault",
    group_key="azure_keyvault",
    parse=lambda value, options: azure_spec(value),
    parse_group=_group_specs,
    recipient=recipient,
    identity=identity,
    extra="azure",
    requires=("azure.keyvault.keys", "azure.identity"),
    abilities=(_CurrentVersion(),),
    wire=WireKey(4, ("vault_url", "name", "version")),
)
