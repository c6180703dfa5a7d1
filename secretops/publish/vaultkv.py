"""The Vault KV destination of ``publish``: the *decrypted* values, as a KV v1 or v2 secret.

The secret is at ``<vault_kv_mount_name>/<vault_path><name>`` (KV v1) or
``<vault_kv_mount_name>/data/<vault_path><name>`` (KV v2, the default), the mount defaulting to
``secret/`` — as sops 3.11 computes it. Its body is the map of :func:`secretops.publish.plain_map`
written as Go's JSON encoder writes it (numbers as sops sends them: ``1000``, not ``1000.0``).
Before writing, the secret is read: when it already holds exactly this data (by Go's rules of
equality, which sops uses: a map of strings, booleans and nulls can be equal; one holding a
number never is) nothing is written, so KV v2 keeps its version.

**Where the token goes.** The server is the rule's ``vault_address``, else ``VAULT_AGENT_ADDR``,
else ``VAULT_ADDR``, else ``https://127.0.0.1:8200`` (Vault's client defaults, as in sops); the
token is ``VAULT_TOKEN`` (sops's publish reads no token file). A ``vault_address`` comes from
``.sops.yaml``, which anyone who can write the repository can change: the token is sent there
only if ``VAULT_ADDR`` or ``SECRETOPS_VAULT_ADDRS`` names the same server
(:func:`secretops.keys.vault.check_destination`); sops sends it wherever the rule says. The
decrypted values go to that same server only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretops.errors import ExitCode, SecretOpsError
from secretops.publish import GoArray, GoStruct, require, upload_error

DEFAULT_ADDRESS = "https://127.0.0.1:8200"  # Vault's Go client, without VAULT_ADDR


class VaultKvDestination:
    """A KV mount, a path under it, and the KV version."""

    def __init__(self, address: str, path: str, mount: str, version: int,
                 env: Mapping[str, str]) -> None:
        # sops's NewVaultDestination: trailing slashes added, a missing mount is secret/,
        # any version but 1 and 2 is 2
        self.address = address
        self.vault_path = path if path.endswith("/") else path + "/"
        mount = mount or "secret/"
        self.mount = mount if mount.endswith("/") else mount + "/"
        self.version = version if version in (1, 2) else 2
        self._env = env

    def server(self) -> str:
        env = self._env
        return (self.address or env.get("VAULT_AGENT_ADDR") or env.get("VAULT_ADDR")
                or DEFAULT_ADDRESS).rstrip("/")

    def secret_path(self, name: str) -> str:
        data = "data/" if self.version == 2 else ""
        return f"{self.mount}{data}{self.vault_path}{name}"

    def path(self, name: str) -> str:
        from secretops.keys.vault import redact_uri

        return f"{redact_uri(self.server())}/v1/{self.secret_path(name)}"

    def upload_data(self, data: dict[str, Any], name: str) -> str | None:
        require("hvac", "vault", "publishing to Vault")
        client = self._client()
        path = "/v1/" + self.secret_path(name)
        note = None
        try:
            existing = client.adapter.get(path)
        except Exception as e:
            if _status(e) != 404:
                note = (f"cannot check whether {self.path(name)} already holds this data "
                        f"({_explain(e)}): a new version is written anyway")
            existing = None
        current = existing.get("data") if isinstance(existing, Mapping) else None
        if isinstance(current, Mapping) and go_equal(data, current.get("data")):
            return f"{self.path(name)} is already up to date"
        body = go_json({"data": data} if self.version == 2 else data)
        try:
            client.adapter.put(path, data=body.encode("utf-8"),
                               headers={"Content-Type": "application/json"})
        except Exception as e:
            raise upload_error(_explain(e), self.path(name)) from None
        return note

    def _client(self) -> Any:
        from secretops.keys.vault import VaultTransitError, check_destination, server_client

        env = self._env
        token = env.get("VAULT_TOKEN", "").strip()
        server = self.server()
        if self.address:  # named by .sops.yaml, not by the user
            try:
                check_destination(self.address, env, agent=False)
            except VaultTransitError:
                raise SecretOpsError(
                    f"refusing to send the Vault token and the decrypted values to "
                    f"{self.path('')}: .sops.yaml names that server (vault_address), but "
                    "VAULT_ADDR does not (nor SECRETOPS_VAULT_ADDRS)",
                    code=ExitCode.GENERIC,
                    hints=("if that server is yours, set VAULT_ADDR to it or list it in "
                           "SECRETOPS_VAULT_ADDRS",)) from None
        return server_client(server, token, env)


def _status(e: BaseException) -> int | None:
    import hvac.exceptions as hx  # type: ignore[import-untyped]

    if isinstance(e, hx.InvalidPath):
        return 404
    return None


def _explain(e: BaseException) -> str:
    """One line: what went wrong (no data, no token)."""
    import hvac.exceptions as hx
    import requests

    if isinstance(e, requests.exceptions.Timeout):
        return "Vault did not answer in time (VAULT_CLIENT_TIMEOUT sets the limit)"
    if isinstance(e, requests.exceptions.SSLError):
        return "TLS to Vault failed: the certificate is not trusted (set VAULT_CACERT)"
    if isinstance(e, requests.exceptions.ConnectionError):
        return "cannot reach Vault: is the server up, and is the address right?"
    if isinstance(e, requests.exceptions.RequestException):
        return f"the request to Vault failed ({type(e).__name__})"
    if isinstance(e, hx.Forbidden):
        return ("permission denied (403): the token (VAULT_TOKEN) is missing, invalid or "
                "expired, or its policy does not allow writing this path")
    if isinstance(e, hx.InvalidPath):
        return "no KV engine is mounted there (404): check vault_kv_mount_name"
    if isinstance(e, hx.VaultError):
        errors = "; ".join(str(x) for x in (getattr(e, "errors", None) or []))[:300]
        return f"Vault refused the request ({type(e).__name__}): {errors or 'no detail'}"
    return type(e).__name__


def go_equal(ours: Any, theirs: Any) -> bool:
    """sops's ``cmp.Equal(data, existing)``: Go values against JSON read back with numbers
    kept as ``json.Number`` — which equals no Go int or float, and sops's tree types
    (:class:`GoArray`, :class:`GoStruct`) equal nothing read back."""
    if isinstance(ours, GoArray | GoStruct):
        return False
    if isinstance(ours, dict):
        return (isinstance(theirs, Mapping) and ours.keys() == theirs.keys()
                and all(go_equal(v, theirs[k]) for k, v in ours.items()))
    if isinstance(ours, list):
        return (isinstance(theirs, list) and len(ours) == len(theirs)
                and all(go_equal(a, b) for a, b in zip(ours, theirs, strict=True)))
    if isinstance(ours, bool) or ours is None:
        return ours is theirs
    if isinstance(ours, str):
        return isinstance(theirs, str) and str(ours) == theirs
    return False  # numbers, bytes


def go_json(value: Any) -> str:
    """``json.Marshal`` of the Go value sops builds: map keys sorted, Go's number and string
    forms."""
    from secretops.stores.json import go_json_float, go_json_string

    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json_string(str(k))}:{go_json(value[k])}"
                              for k in sorted(value, key=lambda k: str(k).encode())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value)
    if isinstance(value, bytes):
        import base64

        return '"' + base64.b64encode(value).decode() + '"'
    return go_json_string(str(value))


def destination(settings: Mapping[str, Any], env: Mapping[str, str]) -> VaultKvDestination:
    """The destination a ``destination_rules`` entry names (see :mod:`secretops.publish`)."""
    version = settings.get("vault_kv_version")
    return VaultKvDestination(
        str(settings.get("vault_address") or ""), str(settings.get("vault_path") or ""),
        str(settings.get("vault_kv_mount_name") or ""),
        version if isinstance(version, int) else 0, env)
