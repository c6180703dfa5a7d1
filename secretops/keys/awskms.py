"""AWS KMS recipients and identities, through boto3 — sops's ``kms`` entries.

Wrapping calls KMS ``Encrypt`` with ``KeyId`` = the key's ARN, the 32-byte data key (or a
Shamir share) as plaintext, and as ``EncryptionContext`` only the context the user gave (nothing
is added). The entry is written as sops writes it::

    kms:
        - arn: arn:aws:kms:eu-west-1:111122223333:key/…
          role: arn:aws:iam::111122223333:role/sops      # omitted when empty
          context: {app: web}                           # omitted when empty, keys sorted
          created_at: "2026-11-23T10:00:00Z"
          enc: <std base64 of the CiphertextBlob>
          aws_profile: ""

Unwrapping calls ``Decrypt`` with that blob, the entry's context and ``KeyId`` = its ARN. As in
sops, the region is the one in the ARN (not ``AWS_REGION``); ``role`` is assumed through STS
first (session name ``secretops@<hostname>``, as sops uses ``sops@<hostname>``); ``aws_profile``
selects a profile of the shared AWS config. Everything else — credentials, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL_STS`` — is boto3's usual
chain, read from the ``env`` mapping the caller passes where boto3 allows it.

Calls are bounded: a 5 s connect timeout, a 10 s read timeout and two attempts, so an
unreachable endpoint fails in seconds rather than hanging. A throttled call
(``ThrottlingException``) is tried again with back-off, and a many-file run makes a bounded
number of calls at once (:mod:`secretops.keys.remote`). One client is kept per region,
profile, role and environment for the life of the process (assumed-role clients are rebuilt
shortly before their credentials expire).

Failures are one line, never contain key material, and say what to fix: no credentials, an
unreachable endpoint, access denied, or a wrong encryption context. A failed wrap raises
:class:`~secretops.errors.SecretOpsError` (exit 23) naming the ARN; a failed unwrap raises
:class:`KmsError`, which :func:`secretops.keys.datakey.recover_data_key` reports under the key's ARN
(decrypt then exits 128 if no other key fits).

boto3 is imported only when a client is first needed.
"""

from __future__ import annotations

import base64
import binascii
import re
from _thread import allocate_lock  # threading.Lock without importing threading (--help)
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from secretops.core.metadata import KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeyOption, KeySource, WireKey
from secretops.keys.remote import call
from secretops.keys.specs import KeySpec

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

KIND = "kms"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_ATTEMPTS = 2  # in all, the first try included
# sops's pattern: the region is the ARN's fourth field; keys and aliases are both accepted.
_ARN = re.compile(r"^arn:aws[\w-]*:kms:(?P<region>[^:]+):[0-9]+:(key|alias)/.+$")
_SESSION_NAME_BAD = re.compile(r"[^a-zA-Z0-9=,.@-]+")
_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_STS")
_RENEW_BEFORE = timedelta(minutes=5)

_clients: dict[tuple[str | None, ...], tuple[KMSClient, datetime | None]] = {}
_clients_lock = allocate_lock()


class KmsError(RuntimeError):
    """KMS could not unwrap an entry (the message is one line and holds no key material)."""


def region_of(arn: str) -> str:
    """The region named in a KMS key or alias ARN, as sops reads it."""
    m = _ARN.match(arn)
    if m is None:
        raise SecretOpsError(
            f"invalid AWS KMS key ARN {arn!r}",
            code=ExitCode.INVALID_KEY,
            hints=("the form is arn:aws:kms:REGION:ACCOUNT:key/KEY_ID (or :alias/NAME)",),
        )
    return m.group("region")


def session_name() -> str:
    """``secretops@<hostname>``, cleaned and cut to STS's 64 characters (sops: ``sops@…``)."""
    import socket

    return ("secretops@" + _SESSION_NAME_BAD.sub("", socket.gethostname()))[:64]


def _config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        user_agent_extra="secretops",
    )


def _endpoint(env: Mapping[str, str], service: str) -> str | None:
    return env.get(f"AWS_ENDPOINT_URL_{service}") or env.get("AWS_ENDPOINT_URL") or None


def _build(region: str, profile: str, role: str,
           env: Mapping[str, str]) -> tuple[KMSClient, datetime | None]:
    """The one place boto3 is touched: a KMS client for this region, profile and role."""
    import boto3

    if profile:
        session = boto3.Session(profile_name=profile)
    elif env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
        )
    else:
        session = boto3.Session(profile_name=env.get("AWS_PROFILE") or None)
    config = _config()
    expires: datetime | None = None
    if role:
        sts = session.client("sts", region_name=region, config=config,
                             endpoint_url=_endpoint(env, "STS"))
        try:
            creds = sts.assume_role(RoleArn=role, RoleSessionName=session_name())["Credentials"]
        except Exception as e:
            raise KmsError(f"cannot assume role {role}: {explain(e)}") from None
        expires = creds["Expiration"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
    client = session.client("kms", region_name=region, config=config,
                            endpoint_url=_endpoint(env, "KMS"))
    return client, expires


def _client(region: str, profile: str, role: str, env: Mapping[str, str]) -> KMSClient:
    """A cached client; assumed-role ones are renewed before their credentials run out."""
    key = (region, profile, role, *(env.get(k) for k in _ENV_KEYS))
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None:
            client, expires = cached
            if expires is None or datetime.now(UTC) < expires - _RENEW_BEFORE:
                return client
        built = _build(region, profile, role, env)
        _clients[key] = built
        return built[0]


def explain(e: BaseException) -> str:
    """One line saying why an AWS call failed, without request data (which holds the key)."""
    from botocore import exceptions as bx

    if isinstance(e, KmsError):
        return str(e)
    if isinstance(e, bx.NoCredentialsError):
        return ("no AWS credentials were found (set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or give the key an aws_profile)")
    if isinstance(e, bx.ProfileNotFound):
        return f"AWS profile not configured: {e}"
    if isinstance(e, bx.PartialCredentialsError):
        return f"AWS credentials are incomplete: {e}"
    if isinstance(e, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return f"AWS did not answer in time: {e}"
    if isinstance(e, bx.EndpointConnectionError | bx.ConnectionError):
        return f"cannot reach AWS: {e}"
    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {})
        code, msg = err.get("Code", "?"), err.get("Message", "")
        if code == "InvalidCiphertextException":
            return ("KMS refused to decrypt: the encryption context does not match the one the "
                    "key was wrapped with, or the wrapped key is damaged")
        if code == "IncorrectKeyException":
            return "KMS refused to decrypt: the wrapped key was made with another KMS key"
        if code in ("AccessDeniedException", "AccessDenied"):
            return f"AWS denied access: {msg}"
        if code == "NotFoundException":
            return f"the KMS key does not exist: {msg}"
        if code in ("UnrecognizedClientException", "InvalidClientTokenId",
                    "InvalidSignatureException", "ExpiredToken", "ExpiredTokenException"):
            return f"AWS rejected the credentials ({code})"
        return f"{code}: {msg}" if msg else str(code)
    if isinstance(e, bx.ParamValidationError):
        return "the request to KMS was invalid"  # its text may quote parameters: not shown
    if isinstance(e, bx.BotoCoreError):
        return f"{type(e).__name__}: {e}"
    return type(e).__name__


# What AWS answers when a caller goes over a request quota (KMS: ThrottlingException).
_THROTTLED = frozenset(("ThrottlingException", "Throttling", "TooManyRequestsException",
                        "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException",
                        "SlowDown"))


def throttled(e: BaseException) -> bool:
    """Is ``e`` AWS saying "slow down"? (:func:`secretops.keys.remote.call` then backs off.)"""
    from botocore.exceptions import ClientError

    return isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") in _THROTTLED


def _context(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise KmsError("the entry's encryption context is not a map")
    return {str(k): str(v) for k, v in value.items()}


def _now() -> datetime:
    return datetime.now(UTC)


class KmsRecipient:
    """Wraps a data key with one KMS key (optionally through a role and a profile)."""

    kind = KIND

    def __init__(self, arn: str, role: str = "", context: Mapping[str, str] | None = None,
                 aws_profile: str = "", env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.arn = arn
        self.region = region_of(arn)
        self.role = role
        self.context = dict(context or {})
        self.aws_profile = aws_profile
        self._env: Mapping[str, str] = env if env is not None else {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"KmsRecipient({self.arn!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        try:
            kms = _client(self.region, self.aws_profile, self.role, self._env)
            if self.context:
                out = call(lambda: kms.encrypt(KeyId=self.arn, Plaintext=data_key,
                                               EncryptionContext=self.context), throttled)
            else:
                out = call(lambda: kms.encrypt(KeyId=self.arn, Plaintext=data_key), throttled)
        except Exception as e:
            raise SecretOpsError(
                f"cannot encrypt with AWS KMS key {self.arn}: {explain(e)}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
                hints=("check the AWS credentials, the region in the ARN, and that they allow "
                       "kms:Encrypt on this key",),
            ) from None
        created = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return KeyEntry(KIND, {
            "arn": self.arn,
            "role": self.role,
            "context": dict(self.context),
            "created_at": created,
            "enc": base64.b64encode(out["CiphertextBlob"]).decode("ascii"),
            "aws_profile": self.aws_profile,
        })


class KmsIdentity:
    """Unwraps ``kms`` entries with whatever AWS credentials this environment provides."""

    kind = KIND

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def unwrap(self, entry: KeyEntry) -> bytes:
        f = entry.fields
        arn = str(f.get("arn") or "")
        try:
            region = region_of(arn)
        except SecretOpsError as e:
            raise KmsError(e.message) from None
        try:
            blob = base64.b64decode(entry.enc, validate=True)
        except (binascii.Error, ValueError):
            raise KmsError("the entry's enc field is not valid base64") from None
        context = _context(f.get("context"))
        try:
            kms = _client(region, str(f.get("aws_profile") or ""), str(f.get("role") or ""),
                          self._env)
            if context:
                out = call(lambda: kms.decrypt(CiphertextBlob=blob, KeyId=arn,
                                               EncryptionContext=context), throttled)
            else:
                out = call(lambda: kms.decrypt(CiphertextBlob=blob, KeyId=arn), throttled)
        except Exception as e:
            raise KmsError(explain(e)) from None
        return bytes(out["Plaintext"])


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> KmsRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return KmsRecipient(
        str(fields["arn"]),
        role=str(fields.get("role") or ""),
        context=_context(fields.get("context")),
        aws_profile=str(fields.get("aws_profile") or ""),
        env=env,
    )


def identity(env: Mapping[str, str]) -> KmsIdentity:
    """The key-source interface: AWS credentials are looked up when an entry is unwrapped."""
    return KmsIdentity(env)


def parse_context(text: str | Mapping[str, Any] | None) -> dict[str, str]:
    """``--encryption-context k1:v1,k2:v2``, read exactly as sops reads it: every pair is one
    ``key:value`` (no empty pair, no second ``:``), nothing trimmed; exit 6 when malformed.
    A mapping (from the library API) is taken as it is."""
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    out: dict[str, str] = {}
    if not text:
        return out
    for pair in text.split(","):
        parts = pair.split(":")
        if len(parts) != 2:
            raise SecretOpsError(
                "invalid KMS encryption context: expected key:value pairs separated by commas",
                code=ExitCode.INVALID_KMS_ENCRYPTION_CONTEXT,
            )
        out[parts[0]] = parts[1]
    return out


def kms_spec(arn: str, context: Mapping[str, Any] | None = None, aws_profile: str = "",
             role: str = "") -> KeySpec:
    """``ARN`` or ``ARN+ROLE_ARN`` with its context and profile → the metadata's fields."""
    arn = arn.strip()
    if "+" in arn and not role:
        arn, _, role = arn.partition("+")
    if not arn.startswith("arn:"):
        raise SecretOpsError(f"invalid AWS KMS key ARN {arn!r}", code=ExitCode.INVALID_KEY)
    ctx = {str(k): str(v) for k, v in (context or {}).items()}
    return KeySpec(KIND, {"arn": arn, "role": role.strip(), "context": ctx,
                          "aws_profile": aws_profile or ""})


def _spec(value: str, options: Mapping[str, Any]) -> KeySpec:
    return kms_spec(value, options.get("encryption_context"), options.get("aws_profile") or "")


def _group_specs(raw: Any) -> list[KeySpec]:
    """``key_groups`` entries: maps ``{arn, role, context, aws_profile}`` (or plain ARNs)."""
    out = []
    for entry in raw or []:
        if isinstance(entry, Mapping):
            out.append(kms_spec(str(entry.get("arn", "")), entry.get("context"),
                                str(entry.get("aws_profile") or ""), str(entry.get("role") or "")))
        else:
            out.append(kms_spec(str(entry)))
    return out


SOURCE = KeySource(
    KIND,
    title="AWS KMS",
    describe=lambda f: f"AWS KMS key {f.get('arn', '?')}",
    identity_fields=("arn", "role", "context", "aws_profile"),
    remove_fields=("arn", "role"),  # --rm-kms ARN removes the key whatever its role
    flag="kms",
    short="k",
    metavar="ARNS",
    help="AWS KMS key ARNs (ARN+ROLE_ARN to assume a role)",
    example="arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    group_example=[{"arn": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-"
                           "1234567890ab"}],
    env="SOPS_KMS_ARN",
    config_key="kms",
    group_key="kms",
    parse=_spec,
    parse_group=_group_specs,
    options=(
        KeyOption("encryption_context", metavar="K:V,…", parse=parse_context,
                  help="KMS encryption context for every --kms key.",
                  rotate_help="KMS encryption context for keys added with --add-kms."),
        KeyOption("aws_profile", metavar="NAME", config_key="aws_profile",
                  help="AWS profile for the --kms keys.",
                  rotate_help="AWS profile for keys added with --add-kms."),
    ),
    recipient=recipient,
    identity=identity,
    extra="aws",
    requires=("boto3",),
    wire=WireKey(1, ("arn", "role", "context", "aws_profile"), maps=("context",)),
)
