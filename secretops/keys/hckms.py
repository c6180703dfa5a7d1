"""HuaweiCloud KMS keys — sops's ``hckms`` entries — through KMS's REST API, signed with AK/SK.

A key is named ``REGION:KEY_ID`` (``--hckms``, ``SOPS_HUAWEICLOUD_KMS_IDS``, ``.sops.yaml``
``hckms``, or ``key_groups`` entries ``{key_id: …}``), for example
``tr-west-1:0f1e2d3c-…``. Wrapping calls KMS's ``encrypt-data`` with the data key (or a Shamir
share) in standard base64 as the plaintext, as sops does; the entry is written as sops writes
it, the ciphertext exactly as KMS returned it::

    hckms:
        - key_id: tr-west-1:0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b
          created_at: "2026-11-23T10:00:00Z"
          enc: <KMS's cipher_text>

Unwrapping calls ``decrypt-data`` with that ciphertext and the key's ID, and reads the data key
back from the base64 plaintext. Both are ``POST {endpoint}/v1.0/{project_id}/kms/…`` with a JSON
body and ``encryption_algorithm: SYMMETRIC_DEFAULT``.

**Where.** The region picks the endpoint, as HuaweiCloud's SDK (which sops uses) picks it:
``HUAWEICLOUD_SDK_REGION_KMS_<REGION>`` (the region upper-cased, ``-`` as ``_``; the first of a
comma-separated list), else the ``kms`` entry for that region in the SDK's regions file
(``HUAWEICLOUD_SDK_REGIONS_FILE``, else ``~/.huaweicloud/regions.yaml``), else the SDK's own
table of KMS regions (:data:`REGIONS`). A region in none of them is refused, as sops refuses it.

**Who.** AK/SK credentials, as the SDK's default chain reads them: ``HUAWEICLOUD_SDK_AK``,
``HUAWEICLOUD_SDK_SK`` (and ``HUAWEICLOUD_SDK_SECURITY_TOKEN`` for temporary credentials,
``HUAWEICLOUD_SDK_PROJECT_ID``), else the ``[basic]`` section of the SDK's credentials file
(``HUAWEICLOUD_SDK_CREDENTIALS_FILE``, else ``~/.huaweicloud/credentials``: ``ak``, ``sk``,
``security_token``, ``project_id``). The SDK's last link — the ECS metadata service — is not
read, and a missing project ID is not looked up in IAM: it must be given.

**Signing** is HuaweiCloud's documented ``SDK-HMAC-SHA256`` (the algorithm of the SDK's
``signer``): a canonical request (method, the path with a trailing ``/``, the query, the signed
headers, the body's SHA-256), hashed into a string to sign with the ``X-Sdk-Date`` time, and
HMAC-SHA256 with the secret key — done here in a few lines with ``hmac`` and ``hashlib``,
because HuaweiCloud's Python SDK (``huaweicloudsdkcore``) pins exact versions of unrelated
packages (``pymongo``) and would be the heaviest dependency of secretops for two HTTP calls. The
secret key never leaves this machine; requests go out through ``requests`` (the
``huaweicloud`` extra), TLS checked against ``SSL_CERT_FILE`` when it is set (what sops's Go
TLS reads), else ``requests``'s CA bundle.

Calls are bounded: 5 s to connect, 10 s to read, no retry but on HTTP 429 (back-off, and a
bounded number of calls at once: :mod:`secretops.keys.remote`); an answer over 64 KiB is
refused. Failures are one line and never hold key material nor the text a server sent back
(only KMS's error code, such as ``KMS.0205``). A failed wrap raises
:class:`~secretops.errors.SecretOpsError` (exit 23); a failed unwrap raises
:class:`HuaweiKmsError`, reported by :func:`secretops.keys.datakey.recover_data_key`.
``requests`` is imported only when a key is used.
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
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from secretops.core.metadata import KeyEntry
from secretops.errors import ExitCode, SecretOpsError
from secretops.keys import KeySource, WireKey, split_list
from secretops.keys.remote import call
from secretops.keys.specs import KeySpec

KIND = "hckms"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_ANSWER = 1 << 16
_MAX_FILE = 1 << 20  # a credentials or regions file is a few hundred bytes
ALGORITHM = "SDK-HMAC-SHA256"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_PROJECT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ERROR_CODE = re.compile(r"^[A-Za-z]{2,16}\.\d{1,6}$")

# The KMS endpoints of the SDK's region table (huaweicloudsdkkms's KmsRegion), region -> host
REGIONS = {r: f"kms.{r}.myhuaweicloud.com" for r in (
    "cn-north-4", "cn-north-1", "cn-north-2", "cn-east-2", "cn-east-3", "cn-south-1",
    "cn-south-2", "af-south-1", "cn-southwest-2", "ap-southeast-2", "ap-southeast-1",
    "ap-southeast-3", "la-south-2", "sa-brazil-1", "na-mexico-1", "la-north-2", "cn-north-9",
    "ap-southeast-4", "tr-west-1", "ae-ad-1", "my-kualalumpur-1", "ru-moscow-1", "cn-east-5",
    "cn-east-4", "me-east-1", "ap-southeast-5", "cn-south-4", "cn-north-12", "cn-north-11",
    "af-north-1", "cn-southwest-3")}
REGIONS["eu-west-101"] = "kms.eu-west-101.myhuaweicloud.eu"

_sessions: dict[int, Any] = {}  # one per process (a forked worker gets its own pool)
_sessions_lock = allocate_lock()


class HuaweiKmsError(RuntimeError):
    """HuaweiCloud KMS could not unwrap an entry (one line, no key material)."""


class Credentials(NamedTuple):
    ak: str
    sk: str
    project_id: str
    security_token: str


def parse_key_id(key_id: str) -> tuple[str, str]:
    """``REGION:KEY_ID`` → (region, key ID), as sops parses it (split at the first ``:``,
    both parts trimmed and non-empty)."""
    region, sep, uuid = key_id.strip().partition(":")
    if not sep:
        raise HuaweiKmsError(f"invalid HuaweiCloud KMS key ID {key_id!r}: the form is "
                             "REGION:KEY_ID")
    if not region.strip() or not uuid.strip():
        raise HuaweiKmsError(f"invalid HuaweiCloud KMS key ID {key_id!r}: the region and the "
                             "key's ID must both be given")
    return region.strip(), uuid.strip()


def _read_small(path: str, what: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as e:
        raise HuaweiKmsError(f"cannot read the HuaweiCloud {what} file: {e.strerror}") from None
    if len(data) > _MAX_FILE:
        raise HuaweiKmsError(f"the HuaweiCloud {what} file is larger than 1 MiB")
    return data.decode("utf-8", "replace")


def _sdk_file(env: Mapping[str, str], variable: str, name: str) -> str | None:
    path = env.get(variable) or os.path.join(env.get("HOME") or os.path.expanduser("~"),
                                             ".huaweicloud", name)
    return path if os.path.isfile(path) else None


def credentials(env: Mapping[str, str]) -> Credentials:
    """AK/SK from the environment, else the SDK's credentials file (section ``basic``)."""
    ak, sk = env.get("HUAWEICLOUD_SDK_AK", ""), env.get("HUAWEICLOUD_SDK_SK", "")
    found = {"ak": ak, "sk": sk, "project_id": env.get("HUAWEICLOUD_SDK_PROJECT_ID", ""),
             "security_token": env.get("HUAWEICLOUD_SDK_SECURITY_TOKEN", "")}
    if not (ak and sk):
        path = _sdk_file(env, "HUAWEICLOUD_SDK_CREDENTIALS_FILE", "credentials")
        if path is None:
            raise HuaweiKmsError("no HuaweiCloud credentials were found (set HUAWEICLOUD_SDK_AK, "
                                 "HUAWEICLOUD_SDK_SK and HUAWEICLOUD_SDK_PROJECT_ID, or write "
                                 "~/.huaweicloud/credentials)")
        import configparser

        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(_read_small(path, "credentials"))
        except configparser.Error:
            raise HuaweiKmsError("the HuaweiCloud credentials file is not an INI file") from None
        section = parser["basic"] if parser.has_section("basic") else {}
        found = {name: str(section.get(name, "") or "") for name in found}
        if not (found["ak"] and found["sk"]):
            raise HuaweiKmsError("the HuaweiCloud credentials file has no ak and sk in its "
                                 "[basic] section")
    if not found["project_id"]:
        raise HuaweiKmsError("no HuaweiCloud project ID: set HUAWEICLOUD_SDK_PROJECT_ID (or "
                             "project_id in the credentials file)")
    if not _PROJECT.match(found["project_id"]):
        raise HuaweiKmsError("the HuaweiCloud project ID is not of letters, digits, - and _")
    return Credentials(**found)


def endpoint(region: str, env: Mapping[str, str]) -> str:
    """The KMS endpoint for ``region`` (``https://host[:port]``), found as the SDK finds it."""
    override = env.get("HUAWEICLOUD_SDK_REGION_KMS_" + region.replace("-", "_").upper(), "")
    url = override.split(",")[0].strip() or _from_regions_file(region, env)
    if not url:
        if region not in REGIONS:
            raise HuaweiKmsError(f"HuaweiCloud KMS has no region {region!r} (name its endpoint "
                                 "in HUAWEICLOUD_SDK_REGION_KMS_"
                                 f"{region.replace('-', '_').upper()})")
        url = "https://" + REGIONS[region]
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path.strip("/"):
        raise HuaweiKmsError(f"the KMS endpoint for {region} is not an http(s) URL of a host")
    return f"{parts.scheme}://{parts.netloc}"


def _from_regions_file(region: str, env: Mapping[str, str]) -> str:
    path = _sdk_file(env, "HUAWEICLOUD_SDK_REGIONS_FILE", "regions.yaml")
    if path is None:
        return ""
    from secretops.yamlload import load  # the one YAML reader, with the input limits

    try:
        data = load(_read_small(path, "regions"), "the HuaweiCloud regions file", config=True)
    except SecretOpsError:
        raise HuaweiKmsError("the HuaweiCloud regions file is not YAML") from None
    services = {str(k).upper(): v for k, v in data.items()} if isinstance(data, dict) else {}
    for entry in services.get("KMS") or []:
        if isinstance(entry, dict) and entry.get("id") == region:
            urls = [*(entry.get("endpoints") or []), entry.get("endpoint") or ""]
            return next((str(u) for u in urls if u), "")
    return ""


def _canonical_uri(path: str) -> str:
    uri = "/".join(quote(part, safe="~") for part in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes, ak: str, sk: str
         ) -> str:
    """The ``Authorization`` value for a request (every header in ``headers`` is signed;
    ``X-Sdk-Date`` must be among them)."""
    import hashlib  # here, not at the top: reading the record (every encrypt) needs neither
    import hmac

    parts = urlsplit(url)
    query = "&".join(sorted(
        f"{quote(k, safe='~')}={quote(v, safe='~')}"
        for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)))
    names = sorted(h.lower() for h in headers)
    values = {h.lower(): v.strip() for h, v in headers.items()}
    canonical = "\n".join([
        method.upper(), _canonical_uri(parts.path), query,
        "".join(f"{n}:{values[n]}\n" for n in names), ";".join(names),
        hashlib.sha256(body).hexdigest()])
    date = values["x-sdk-date"]
    to_sign = f"{ALGORITHM}\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={signature}"


def _session() -> Any:
    """The one place ``requests`` is set up: a session per process, kept for its pool."""
    import requests

    with _sessions_lock:
        session = _sessions.get(os.getpid())
        if session is None:
            session = _sessions[os.getpid()] = requests.Session()
        return session


class _Refused(Exception):
    """KMS answered with an error status (its code only: the message may echo the request)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(status)
        self.status = status
        self.code = code


def _post(region: str, operation: str, payload: dict[str, str], env: Mapping[str, str],
          now: datetime) -> dict[str, Any]:
    """One signed KMS call; the JSON answer."""
    creds = credentials(env)
    base = endpoint(region, env)
    url = f"{base}/v1.0/{creds.project_id}/kms/{operation}"
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json;charset=UTF-8", "Host": urlsplit(base).netloc,
               "X-Project-Id": creds.project_id, "X-Sdk-Date": now.strftime(_DATE_FORMAT)}
    if creds.security_token:
        headers["X-Security-Token"] = creds.security_token
    headers["Authorization"] = sign("POST", url, headers, body, creds.ak, creds.sk)
    with _session().post(url, data=body, headers=headers, stream=True, allow_redirects=False,
                       timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                       verify=env.get("SSL_CERT_FILE") or True) as r:
        raw = r.raw.read(MAX_ANSWER + 1, decode_content=True)
        status = r.status_code
    if len(raw) > MAX_ANSWER:
        raise HuaweiKmsError("HuaweiCloud KMS answered with more than 64 KiB")
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status != 200:
        error = answer.get("error", answer) if isinstance(answer, dict) else {}
        code = str(error.get("error_code") or "") if isinstance(error, dict) else ""
        raise _Refused(status, code if _ERROR_CODE.match(code) else "")
    if not isinstance(answer, dict):
        raise HuaweiKmsError("HuaweiCloud KMS answered with something other than JSON")
    return answer


def explain(e: BaseException, region: str) -> str:
    """One line saying why a call failed: no server text, no request data."""
    if isinstance(e, HuaweiKmsError):
        return str(e)
    if isinstance(e, _Refused):
        code = f" {e.code}" if e.code else ""
        if e.status == 401:
            return (f"HuaweiCloud rejected the request's signature or credentials "
                    f"(401{code}): check the AK/SK and the machine's clock")
        if e.status == 403:
            return f"HuaweiCloud denied access (403{code}): the credentials may not use this key"
        if e.status == 404:
            return f"the key or the project does not exist in {region} (404{code})"
        if e.status == 400:
            return (f"HuaweiCloud KMS refused the request (400{code}): the wrapped key was made "
                    "with another key or is damaged, or the key is disabled")
        return f"HuaweiCloud KMS answered {e.status}{code}"
    import requests

    if isinstance(e, requests.exceptions.SSLError):
        return (f"TLS to HuaweiCloud KMS in {region} failed: its certificate is not trusted "
                "(SSL_CERT_FILE names a CA bundle)")
    if isinstance(e, requests.exceptions.Timeout):
        return f"HuaweiCloud KMS in {region} did not answer within {READ_TIMEOUT:g} s"
    if isinstance(e, requests.exceptions.RequestException):
        return f"cannot reach HuaweiCloud KMS in {region} ({type(e).__name__})"
    return f"the HuaweiCloud KMS call failed ({type(e).__name__})"


def throttled(e: BaseException) -> bool:
    """HTTP 429: KMS's request limit says slow down (:mod:`secretops.keys.remote`)."""
    return isinstance(e, _Refused) and e.status == 429


def _now() -> datetime:
    return datetime.now(UTC)


class HuaweiKmsRecipient:
    """Wraps a data key with one HuaweiCloud KMS key."""

    kind = KIND

    def __init__(self, key_id: str, env: Mapping[str, str] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.key_id = key_id
        self._env: Mapping[str, str] = env if env is not None else {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"HuaweiKmsRecipient({self.key_id!r})"

    def wrap(self, data_key: bytes) -> KeyEntry:
        region = "?"
        try:
            region, uuid = parse_key_id(self.key_id)
            payload = {"key_id": uuid, "plain_text": base64.b64encode(data_key).decode(),
                       "encryption_algorithm": "SYMMETRIC_DEFAULT"}
            out = call(lambda: _post(region, "encrypt-data", payload, self._env,
                                     self._clock().astimezone(UTC)), throttled)
            enc = out.get("cipher_text")
            if not isinstance(enc, str) or not enc:
                raise HuaweiKmsError("HuaweiCloud KMS returned no ciphertext")
        except Exception as e:
            raise SecretOpsError(
                f"cannot encrypt with HuaweiCloud KMS key {self.key_id}: {explain(e, region)}",
                code=ExitCode.ERROR_ENCRYPTING_TREE,
                hints=("check the HuaweiCloud credentials and that they may use this key",),
            ) from None
        created = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return KeyEntry(KIND, {"key_id": self.key_id, "created_at": created, "enc": enc})


class HuaweiKmsIdentity:
    """Unwraps ``hckms`` entries with the HuaweiCloud credentials of this environment."""

    kind = KIND

    def __init__(self, env: Mapping[str, str], clock: Callable[[], datetime] = _now) -> None:
        self._env = env
        self._clock = clock

    def unwrap(self, entry: KeyEntry) -> bytes:
        region, uuid = parse_key_id(str(entry.fields.get("key_id") or ""))
        payload = {"cipher_text": entry.enc, "encryption_algorithm": "SYMMETRIC_DEFAULT",
                   "key_id": uuid}
        try:
            out = call(lambda: _post(region, "decrypt-data", payload, self._env,
                                     self._clock().astimezone(UTC)), throttled)
        except Exception as e:
            raise HuaweiKmsError(explain(e, region)) from None
        try:
            return base64.b64decode(str(out.get("plain_text") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise HuaweiKmsError("HuaweiCloud KMS returned a plaintext that is not base64 (was "
                                 "the entry written by sops?)") from None


def recipient(fields: Mapping[str, Any], env: Mapping[str, str]) -> HuaweiKmsRecipient:
    """The key-source interface (see :mod:`secretops.keys`)."""
    return HuaweiKmsRecipient(str(fields["key_id"]), env)


def identity(env: Mapping[str, str]) -> HuaweiKmsIdentity:
    """The key-source interface: credentials are looked up when an entry is unwrapped."""
    return HuaweiKmsIdentity(env)


def hckms_spec(key_id: str) -> KeySpec:
    """``REGION:KEY_ID`` as typed → the metadata's field (trimmed, as sops keeps it)."""
    try:
        parse_key_id(key_id)
    except HuaweiKmsError as e:
        raise SecretOpsError(str(e), code=ExitCode.INVALID_KEY) from None
    return KeySpec(KIND, {"key_id": key_id.strip()})


def _group_specs(raw: Any) -> list[KeySpec]:
    """``key_groups`` entries: maps ``{key_id: …}`` (plain IDs are accepted too)."""
    return [hckms_spec(str(e.get("key_id") or "") if isinstance(e, Mapping) else str(e))
            for e in (raw if isinstance(raw, list) else split_list(raw))]


_EXAMPLE = "tr-west-1:0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"

SOURCE = KeySource(
    KIND,
    title="HuaweiCloud KMS",
    describe=lambda f: f"HuaweiCloud KMS key {f.get('key_id', '?')}",
    identity_fields=("key_id",),
    flag="hckms",
    metavar="KEY_IDS",
    help="HuaweiCloud KMS key IDs (REGION:KEY_ID)",
    example=_EXAMPLE,
    group_example=[{"key_id": _EXAMPLE}],
    env="SOPS_HUAWEICLOUD_KMS_IDS",
    config_key="hckms",
    group_key="hckms",
    parse=lambda value, options: hckms_spec(value),
    parse_group=_group_specs,
    recipient=recipient,
    identity=identity,
    extra="huaweicloud",
    requires=("requests",),
    wire=WireKey(7, ("key_id",)),
)
