"""GCP Cloud KMS keys, through google-cloud-kms — sops's ``gcp_kms`` entries.

A key is named by its resource ID, ``projects/P/locations/L/keyRings/R/cryptoKeys/K``
(``--gcp-kms``, ``SOPS_GCP_KMS_IDS``, ``.sops.yaml`` ``gcp_kms``, or ``key_groups`` entries
``{resource_id: …}``; spaces are removed, as sops removes them). Wrapping calls the KMS
``Encrypt`` method on that key with the data key (or a Shamir share) as plaintext; the entry is
written as sops writes it, the ciphertext in standard base64::

    gcp_kms:
        - resource_id: projects/p/locations/global/keyRings/sops/cryptoKeys/sops-key
          created_at: "2026-11-23T10:00:00Z"
          enc: CiQA…

Unwrapping calls ``Decrypt`` on the entry's key with that ciphertext.

Credentials, as sops 3.11 reads them: ``GOOGLE_CREDENTIALS`` (a path to a credentials JSON
file, or the JSON itself: a service account key, an ``authorized_user`` or an
``external_account`` file), else ``GOOGLE_OAUTH_ACCESS_TOKEN`` (an access token used as it is),
else Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, the file ``gcloud auth
application-default login`` writes, the metadata server on Google Cloud). The client speaks
the REST form of the API (sops 3.11 speaks gRPC; sops 3.12 offers REST with
``SOPS_GCP_KMS_CLIENT_TYPE=rest``: the calls and the ciphertext are the same).
``SOPS_GCP_KMS_ENDPOINT`` (sops 3.13's name) sends the calls to another endpoint, for example a
sovereign cloud's, and ``SOPS_GCP_KMS_UNIVERSE_DOMAIN`` picks another universe.

Calls are bounded: a 10 s timeout and no retry, so an unreachable endpoint fails in seconds;
only a call refused for a quota (429, ``RESOURCE_EXHAUSTED``) is tried again, with back-off,
and a many-file run makes a bounded number of calls at once (:mod:`secretops.keys.remote`).
Failures are one line and never hold key material nor the text a server sent back (a server
could echo the request). A failed wrap raises :class:`~secretops.errors.SecretOpsError` (exit
23) naming the key; a failed unwrap raises :class:`GcpKmsError`, which
:func:`secretops.keys.datakey.recover_data_key` reports under the key (decrypt then exits 128
if no other key fits). The client library is imported only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from _thread import allocate_lock  # threading.Lock without importing threading (--help)
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from secretops.core.metadata import KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeySource, WireKey, split_list
from secretops.keys.remote import call
from secretops.keys.specs import KeySpec

KIND = "gcp_kms"
TIMEOUT = 10.0
ENDPOINT_ENV = "SOPS_GCP_KMS_ENDPOINT"
UNIVERSE_ENV = "SOPS_GCP_KMS_UNIVERSE_DOMAIN"
CREDENTIALS_ENV = "GOOGLE_CREDENTIALS"
TOKEN_ENV = "GOOGLE_OAUTH_ACCESS_TOKEN"
_SCOPES = ("https://www.googleapis.com/auth/cloudkms",)
_MAX_CREDENTIALS = 1 << 20  # a credentials file is a few kB
# sops's check of a resource ID (before any call), and no "." / ".." segment in it
_RESOURCE = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_ENV_KEYS = (CREDENTIALS_ENV, TOKEN_ENV, ENDPOINT_ENV, UNIVERSE_ENV,
             "GOOGLE_APPLICATION_CREDENTIALS")

_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = allocate_lock()


class GcpKmsError(RuntimeError):
    """GCP KMS could not unwrap an entry (one line, no key material)."""


def check_resource_id(resource_id: str) -> str:
    """The resource ID if it has sops's form; :class:`GcpKmsError` otherwise."""
    if not _RESOURCE.match(resource_id) or any(
            part in (".", "..") for part in resource_id.split("/")):
        raise GcpKmsError(f"invalid GCP KMS resource ID {resource_id!r}: the form is "
                          "projects/P/locations/L/keyRings/R/cryptoKeys/K")
    return resource_id


def _read_credentials(raw: str) -> dict[str, Any]:
    """``GOOGLE_CREDENTIALS``: a path to a JSON file, else the JSON itself (as sops reads it)."""
    text = raw
    if os.path.isfile(raw):
        try:
            with open(raw, "rb") as f:
                data = f.read(_MAX_CREDENTIALS + 1)
        except OSError as e:
            raise GcpKmsError(f"cannot read the {CREDENTIALS_ENV} file: {e.strerror}") from None
        if len(data) > _MAX_CREDENTIALS:
            raise GcpKmsError(f"the {CREDENTIALS_ENV} file is larger than 1 MiB")
        text = data.decode("utf-8", "replace")
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):  # the value is never shown: it may be a private key
        raise GcpKmsError(f"{CREDENTIALS_ENV} is neither a credentials JSON file nor JSON "
                          "credentials")
    return info


def _credentials(env: Mapping[str, str]) -> Any:
    import google.auth
    import google.oauth2.credentials

    raw = env.get(CREDENTIALS_ENV, "")
    if raw:
        info = _read_credentials(raw)
        kind = info.get("type")
        if kind == "service_account":
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=list(_SCOPES))
        if kind == "authorized_user":
            return google.oauth2.credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=list(_SCOPES))
        import warnings

        with warnings.catch_warnings():  # the user's own file (external_account, …), as sops
            warnings.simplefilter("ignore", DeprecationWarning)
            creds, _ = google.auth.load_credentials_from_dict(  # type: ignore[no-untyped-call]
                info, scopes=list(_SCOPES))
        return creds
    token = env.get(TOKEN_ENV, "")
    if token:
        return google.oauth2.credentials.Credentials(token)  # type: ignore[no-untyped-call]
    creds, _ = google.auth.default(scopes=list(_SCOPES))
    return creds


def _build(env: Mapping[str, str]) -> Any:
    """The one place the client library is touched: a KMS client over REST."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.kms_v1.services.key_management_service import KeyManagementServiceClient

    options = ClientOptions(api_endpoint=env.get(ENDPOINT_ENV) or None,
                            universe_domain=env.get(UNIVERSE_ENV) or None)
    return KeyManagementServiceClient(credentials=_credentials(env), transport="rest",
                                      client_options=options)


def _client(env: Mapping[str, str]) -> Any:
    """A client per credential and endpoint settings, kept for the life of the process (its
    credentials refresh their own tokens)."""
    key = tuple(env.get(k) for k in _ENV_KEYS)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _build(env)
        return client


def explain(e: BaseException, env: Mapping[str, str]) -> str:
    """One line saying why a call failed: no server text, no request data."""
    from google.api_core import exceptions as gx
    from google.auth import exceptions as ax

    endpoint = env.get(ENDPOINT_ENV) or "cloudkms.googleapis.com"
    if isinstance(e, GcpKmsError):
        return str(e)
    if isinstance(e, ax.DefaultCredentialsError):
        return (f"no GCP credentials were found (set {CREDENTIALS_ENV}, {TOKEN_ENV} or "
                "GOOGLE_APPLICATION_CREDENTIALS, or run 'gcloud auth application-default "
                "login')")
    if isinstance(e, ax.RefreshError):
        return "GCP rejected the credentials: no valid access token could be had for them"
    if isinstance(e, ax.TransportError):
        return "cannot reach Google's token service"
    if isinstance(e, ax.GoogleAuthError):
        return f"the GCP credentials cannot be used ({type(e).__name__})"
    if isinstance(e, gx.Unauthenticated | gx.Unauthorized):
        return "GCP rejected the credentials (401): the token is invalid or expired"
    if isinstance(e, gx.PermissionDenied | gx.Forbidden):
        return ("GCP denied access (403): the credentials may not use this key "
                "(roles/cloudkms.cryptoKeyEncrypterDecrypter)")
    if isinstance(e, gx.NotFound):
        return "the GCP KMS key does not exist (404)"
    if isinstance(e, gx.InvalidArgument | gx.FailedPrecondition | gx.BadRequest):
        return (f"GCP KMS refused the request ({e.code}): the wrapped key was made with another "
                "key or is damaged, or the key is disabled")
    if isinstance(e, gx.DeadlineExceeded | gx.GatewayTimeout):
        return f"GCP KMS at {endpoint} did not answer within {TIMEOUT:g} s"
    if isinstance(e, gx.GoogleAPICallError):
        return f"GCP KMS answered {e.code} ({type(e).__name__})"
    try:
        import requests
    except ImportError:  # pragma: no cover - the REST transport needs it
        requests = None  # type: ignore[assignment]
    if requests is not None and isinstance(e, requests.exceptions.Timeout):
        return f"GCP KMS at {endpoint} did not answer within {TIMEOUT:g} s"
    if requests is not None and isinstance(e, requests.exceptions.RequestException):
        return f"cannot reach GCP KMS at {endpoint} ({type(e).__name__})"
    return f"the GCP KMS call failed ({type(e).__name__})"


def _now() -> datetime:
    return datetime.now(UTC)


class GcpKmsRecipient:
    """Wraps a data key with one Cloud KMS key."""

    kind = KIND

    def __init__(self, resource_id: str, env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.resource_id = resource_id
        self._env: Mapping[str, str] = env if env is not None else {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"GcpKmsRecipient({self.resource_id!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        try:
            check_resource_id(self.resource_id)
            client = _client(self._env)
            out = call(lambda: client.encrypt(
                request={"name": self.resource_id, "plaintext": data_key},
                timeout=TIMEOUT, retry=None), throttled)
            blob = bytes(out.ciphertext)
            if not blob:
                raise GcpKmsError("GCP KMS returned no ciphertext")
        except Exception as e:
            raise SecretOpsError(
                f"cannot encrypt with GCP KMS key {self.resource_id}: {explain(e, self._env)}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
                hints=("check the GCP credentials and that they may encrypt with this key",),
            ) from None
        created = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return KeyEntry(KIND, {"resource_id": self.resource_id, "created_at": created,
                               "enc": base64.b64encode(blob).decode("ascii")})


def throttled(e: BaseException) -> bool:
    """HTTP 429 / ``RESOURCE_EXHAUSTED``: a quota says slow down (:mod:`secretops.keys.remote`)."""
    from google.api_core import exceptions as gx

    return isinstance(e, gx.TooManyRequests | gx.ResourceExhausted)


class GcpKmsIdentity:
    """Unwraps ``gcp_kms`` entries with whatever GCP credentials the environment provides."""

    kind = KIND

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def unwrap(self, entry: KeyEntry) -> bytes:
        resource_id = check_resource_id(str(entry.fields.get("resource_id") or ""))
        try:
            blob = base64.b64decode(entry.enc, validate=True)
        except (binascii.Error, ValueError):
            raise GcpKmsError("the entry's enc field is not valid base64") from None
        try:
            client = _client(self._env)
            out = call(lambda: client.decrypt(
                request={"name": resource_id, "ciphertext": blob}, timeout=TIMEOUT, retry=None),
                throttled)
        except Exception as e:
            raise GcpKmsError(explain(e, self._env)) from None
        return bytes(out.plaintext)


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> GcpKmsRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return GcpKmsRecipient(str(fields["resource_id"]), env)


def identity(env: Mapping[str, str]) -> GcpKmsIdentity:
    """The key-source interface: credentials are looked up when an entry is unwrapped."""
    return GcpKmsIdentity(env)


def gcp_spec(resource_id: str) -> KeySpec:
    """A resource ID as typed (spaces removed, as sops does) → the metadata's field."""
    rid = resource_id.replace(" ", "")
    try:
        check_resource_id(rid)
    except GcpKmsError as e:
        raise SecretOpsError(str(e), code=ExitCode.INVALID_KEY) from None
    return KeySpec(KIND, {"resource_id": rid})


def _group_specs(raw: Any) -> list[KeySpec]:
    """``key_groups`` entries: maps ``{resource_id: …}`` (plain IDs are accepted too)."""
    out = []
    for entry in raw if isinstance(raw, list) else split_list(raw):
        if isinstance(entry, Mapping):
            out.append(gcp_spec(str(entry.get("resource_id") or "")))
        else:
            out.append(gcp_spec(str(entry)))
    return out


_EXAMPLE = "projects/my-project/locations/global/keyRings/sops/cryptoKeys/sops-key"

SOURCE = KeySource(
    KIND,
    title="GCP KMS",
    describe=lambda f: f"GCP KMS key {f.get('resource_id', '?')}",
    identity_fields=("resource_id",),
    flag="gcp-kms",
    metavar="RESOURCE_IDS",
    help="GCP KMS key resource IDs (projects/…/cryptoKeys/NAME)",
    example=_EXAMPLE,
    group_example=[{"resource_id": _EXAMPLE}],
    env="SOPS_GCP_KMS_IDS",
    config_key="gcp_kms",
    group_key="gcp_kms",
    parse=lambda value, options: gcp_spec(value),
    parse_group=_group_specs,
    recipient=recipient,
    identity=identity,
    extra="gcp",
    requires=("google.cloud.kms_v1",),
    wire=WireKey(3, ("resource_id",)),
)
