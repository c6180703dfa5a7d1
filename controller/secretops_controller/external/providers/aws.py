"""AWS Secrets Manager and SSM Parameter Store, read in batches.

* Secrets Manager: current values through ``BatchGetSecretValue`` (up to 20 ids per call;
  moto supports it). A ref with a version is read alone with ``GetSecretValue`` —
  ``uuid/<id>`` selects a ``VersionId``, anything else a ``VersionStage`` (as ESO). If the
  endpoint does not know ``BatchGetSecretValue`` the provider falls back to one
  ``GetSecretValue`` per key and remembers it. ``versions`` uses the same batch call (20
  per call; values are dropped at once).
* Parameter Store: ``GetParameters`` with decryption, up to 10 names per call (``name:N`` for a
  pinned version); ``versions`` uses ``DescribeParameters`` (up to 50 names per call, no
  decryption).

Credentials: an access key (``auth.secretRef``) or, with none, boto3's default chain (env,
web identity / IRSA, instance role); then optionally ``role`` assumed through STS, the temporary
credentials renewed before they expire. Timeouts are bounded; throttling is retried by
botocore's ``standard`` retry mode. Errors name the service, the operation, the key and AWS's
error code, never a value.

Read identity (:mod:`..storeconfig`): service, region, endpoint, role and the access key (key
id, secret key, session token); stores without a key use the controller's own default chain,
one identity for all of them (each could read the same with it anyway).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, cast

from secretops_controller.external.provider import (
    ErrorKind,
    FindRef,
    Observe,
    Provider,
    ProviderError,
    RemoteRef,
    RemoteValue,
    Result,
    chunks,
    no_observe,
)
from secretops_controller.external.storeconfig import (
    INVALID,
    Factory,
    StoreError,
    StoreSpec,
    need,
    settings,
)

SM_BATCH = 20  # BatchGetSecretValue: at most 20 SecretIdList entries
SSM_BATCH = 10  # GetParameters: at most 10 names
SSM_DESCRIBE_BATCH = 50  # DescribeParameters filter values
ROLE_REFRESH_MARGIN = 300.0  # renew assumed-role credentials 5 minutes before they expire

_NOT_FOUND = {"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"}
_DENIED = {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
           "InvalidClientTokenId", "ExpiredTokenException", "SignatureDoesNotMatch",
           "DecryptionFailure", "KMSAccessDeniedException"}
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException",
              "RequestLimitExceeded", "ThrottledException"}
Service = Literal["SecretsManager", "ParameterStore"]
_UNKNOWN_OP = {"UnknownOperationException", "InvalidAction", "UnknownOperation"}


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AwsConfig:
    service: Service
    region: str
    endpoint: str | None = None
    credentials: AwsCredentials | None = None  # None: boto3's default chain (IRSA included)
    role: str | None = None
    timeout: float = 10.0
    max_attempts: int = 3


def _error(e: Exception, service: str, op: str, key: str) -> ProviderError:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    where = f"aws {service}: {op}" + (f" {key}" if key else "")
    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", "Unknown"))
        if code in _NOT_FOUND:
            return ProviderError(ErrorKind.NOT_FOUND, f"{where}: not found ({code})")
        if code in _DENIED:
            return ProviderError(ErrorKind.DENIED, f"{where}: access denied ({code})")
        if code in _THROTTLED:
            return ProviderError(ErrorKind.THROTTLED, f"{where}: throttled ({code})")
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        kind = ErrorKind.UNAVAILABLE if status >= 500 else ErrorKind.INVALID
        return ProviderError(kind, f"{where}: {code}")
    if isinstance(e, NoCredentialsError):
        return ProviderError(ErrorKind.DENIED, f"{where}: no credentials found")
    if isinstance(e, ConnectTimeoutError | ReadTimeoutError):
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: timed out")
    if isinstance(e, EndpointConnectionError):
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: cannot reach the endpoint")
    if isinstance(e, BotoCoreError | OSError):
        return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: {type(e).__name__}")
    return ProviderError(ErrorKind.UNAVAILABLE, f"{where}: unexpected {type(e).__name__}")


def _client(config: AwsConfig, service: str, creds: AwsCredentials | None) -> Any:
    """The one place a boto3 client is built: explicit region, endpoint, timeouts, retries."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=creds.access_key_id if creds else None,
        aws_secret_access_key=creds.secret_access_key if creds else None,
        aws_session_token=creds.session_token if creds else None,
        region_name=config.region,
    )
    make: Any = session.client  # the service is a plain str, not one of the stubs' literals
    return make(service, endpoint_url=config.endpoint, config=Config(
        connect_timeout=config.timeout, read_timeout=config.timeout,
        retries={"mode": "standard", "max_attempts": config.max_attempts}))


class _Aws:
    service = ""
    name = ""

    def __init__(self, config: AwsConfig, *, clock: Callable[[], float] = time.time,
                 observe: Observe = no_observe) -> None:
        self.config = config
        self._clock = clock
        self._observe = observe
        self._client: Any = None
        self._expires: float | None = None
        self._lock = threading.Lock()  # one client (and one AssumeRole) at a time

    def _api(self) -> Any:
        with self._lock:
            return self._make_api()

    def _make_api(self) -> Any:
        if self._client is not None and (self._expires is None
                                         or self._clock() < self._expires - ROLE_REFRESH_MARGIN):
            return self._client
        creds = self.config.credentials
        if self.config.role:
            sts = _client(self.config, "sts", creds)
            out = self._call(sts, "AssumeRole", "", lambda: sts.assume_role(
                RoleArn=self.config.role, RoleSessionName="secretops"))["Credentials"]
            exp: datetime = out["Expiration"]
            self._expires = exp.astimezone(UTC).timestamp()
            creds = AwsCredentials(out["AccessKeyId"], out["SecretAccessKey"],
                                   out["SessionToken"])
        self._client = _client(self.config, self.service, creds)
        return self._client

    def _call(self, _client: Any, op: str, key: str, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except Exception as e:
            err = _error(e, self.name, op, key)
            self._observe(self.name, op, err.kind.value)
            raise err from None
        self._observe(self.name, op, "ok")
        return out

    def close(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.close()


def _sm_value(item: dict[str, Any]) -> RemoteValue:
    if "SecretString" in item:
        raw = str(item["SecretString"]).encode()
    else:
        raw = bytes(item.get("SecretBinary") or b"")
    return RemoteValue(raw, str(item["VersionId"]))


class SecretsManagerProvider(_Aws):
    """Secrets Manager; boto3 clients are thread-safe, so calls may overlap."""

    service = "secretsmanager"
    name = "aws-secretsmanager"

    def __init__(self, config: AwsConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.batch_supported = True

    def _batch(self, ids: Sequence[str]) -> dict[str, dict[str, Any] | ProviderError]:
        """``BatchGetSecretValue`` for up to 20 ids: {id: item | NOT_FOUND/other error}."""
        api = self._api()
        out = self._call(api, "BatchGetSecretValue", "", lambda: api.batch_get_secret_value(
            SecretIdList=list(ids)))
        items = out.get("SecretValues") or []
        result: dict[str, dict[str, Any] | ProviderError] = {}
        for sid in ids:
            item = next((i for i in items if sid in (i.get("Name"), i.get("ARN"))), None)
            if item is not None:
                result[sid] = item
        for err in out.get("Errors") or []:
            sid = str(err.get("SecretId"))
            code = str(err.get("ErrorCode"))
            fake = _client_error(code)
            result[sid] = _error(fake, self.name, "BatchGetSecretValue", sid)
        for sid in ids:  # an id neither returned nor reported: treat as missing
            result.setdefault(sid, ProviderError(
                ErrorKind.NOT_FOUND, f"aws {self.name}: BatchGetSecretValue {sid}: not found"))
        return result

    def _get(self, ref: RemoteRef) -> RemoteValue | ProviderError:
        api = self._api()
        args: dict[str, Any] = {"SecretId": ref.key}
        if ref.version is None:
            args["VersionStage"] = "AWSCURRENT"  # moto: plain reads miss a moved stage
        elif ref.version.startswith("uuid/"):
            args["VersionId"] = ref.version.removeprefix("uuid/")
        else:
            args["VersionStage"] = ref.version
        try:
            return _sm_value(self._call(api, "GetSecretValue", ref.key,
                                        lambda: api.get_secret_value(**args)))
        except ProviderError as e:
            if e.kind != ErrorKind.NOT_FOUND:
                raise
            return e

    def _current(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, dict[str, Any] | Result]:
        out: dict[RemoteRef, dict[str, Any] | Result] = {}
        if self.batch_supported:
            try:
                for chunk in chunks(list(refs), SM_BATCH):
                    got = self._batch([r.key for r in chunk])
                    out.update({r: got[r.key] for r in chunk})
                return out
            except ProviderError as e:
                if not any(c in e.message for c in _UNKNOWN_OP):
                    raise
                self.batch_supported = False  # an endpoint without BatchGetSecretValue
        for ref in refs:
            if ref not in out:
                out[ref] = self._get(ref)
        return out

    def read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]:
        out: dict[RemoteRef, Result] = {}
        current = [r for r in refs if r.version is None]
        for ref, got in self._current(current).items():
            out[ref] = _sm_value(got) if isinstance(got, dict) else got
        for ref in refs:
            if ref.version is not None:
                out[ref] = self._get(ref)
        return out

    def versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]:
        out: dict[RemoteRef, str | ProviderError] = {}
        for ref, got in self._current([r for r in refs if r.version is None]).items():
            if isinstance(got, dict):
                out[ref] = str(got["VersionId"])
            elif isinstance(got, RemoteValue):
                out[ref] = got.version
            else:
                out[ref] = got
        for ref in refs:
            if ref.version is not None:
                got1 = self._get(ref)
                out[ref] = got1.version if isinstance(got1, RemoteValue) else got1
        return out

    def find(self, query: FindRef) -> dict[str, RemoteValue]:
        """``BatchGetSecretValue`` with a name-prefix filter (all secrets without a path)."""
        api = self._api()
        args: dict[str, Any] = {"MaxResults": SM_BATCH}
        if query.path:
            args["Filters"] = [{"Key": "name", "Values": [query.path]}]
        else:
            args["Filters"] = [{"Key": "all", "Values": [""]}]
        found: dict[str, RemoteValue] = {}
        while True:
            page = self._call(api, "BatchGetSecretValue", query.path or "",
                              partial(api.batch_get_secret_value, **args))
            for item in page.get("SecretValues") or []:
                name = str(item["Name"])
                if (not query.path or name.startswith(query.path)) and query.matches(name):
                    found[name] = _sm_value(item)
            if not page.get("NextToken"):
                return found
            args["NextToken"] = page["NextToken"]


    def write(self, key: str, prop: str | None, value: str) -> str:
        """Rotation write-back: ``PutSecretValue`` (a JSON object's ``prop`` set, the other
        properties kept; the whole string without ``prop``); ``CreateSecret`` if absent."""
        api = self._api()
        got = self._get(RemoteRef(key))
        if isinstance(got, ProviderError):  # NOT_FOUND (others raised)
            body = json.dumps({prop: value}) if prop else value
            out = self._call(api, "CreateSecret", key, lambda: api.create_secret(
                Name=key, SecretString=body))
            return str(out.get("VersionId", ""))
        if prop:
            try:
                doc = json.loads(cast(bytes, got.value))
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                raise ProviderError(ErrorKind.INVALID, (
                    f"aws {self.name}: write {key}: not a JSON object, cannot set property "
                    f"{prop}"))
            doc[prop] = value
            body = json.dumps(doc)
        else:
            body = value
        out = self._call(api, "PutSecretValue", key, lambda: api.put_secret_value(
            SecretId=key, SecretString=body))
        return str(out.get("VersionId", ""))


def _client_error(code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": ""}}, "BatchGetSecretValue")


class ParameterStoreProvider(_Aws):
    service = "ssm"
    name = "aws-parameterstore"

    def read_many(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, Result]:
        api = self._api()
        out: dict[RemoteRef, Result] = {}
        for chunk in _ssm_chunks(refs, SSM_BATCH):
            names = [r.key if r.version is None else f"{r.key}:{r.version}" for r in chunk]
            page = self._call(api, "GetParameters", "", partial(api.get_parameters,
                                                                 Names=names, WithDecryption=True))
            by_name = {str(p["Name"]): p for p in page.get("Parameters") or []}
            for ref, name in zip(chunk, names, strict=True):
                p = by_name.get(ref.key)
                if p is None or (ref.version is not None and str(p["Version"]) != ref.version):
                    out[ref] = ProviderError(ErrorKind.NOT_FOUND,
                                             f"aws {self.name}: GetParameters {name}: not found")
                else:
                    out[ref] = RemoteValue(str(p["Value"]).encode(), str(p["Version"]))
        return out

    def versions(self, refs: Sequence[RemoteRef]) -> dict[RemoteRef, str | ProviderError]:
        api = self._api()
        out: dict[RemoteRef, str | ProviderError] = {}
        current = sorted({r.key for r in refs if r.version is None})
        seen: dict[str, str] = {}
        for chunk in chunks(current, SSM_DESCRIBE_BATCH):
            args: dict[str, Any] = {"ParameterFilters": [
                {"Key": "Name", "Option": "Equals", "Values": list(chunk)}], "MaxResults": 50}
            while True:
                page = self._call(api, "DescribeParameters", "",
                                  partial(api.describe_parameters, **args))
                seen.update({str(p["Name"]): str(p["Version"]) for p in page["Parameters"]})
                if not page.get("NextToken"):
                    break
                args["NextToken"] = page["NextToken"]
        for ref in refs:
            if ref.version is not None:
                out[ref] = ref.version
            elif ref.key in seen:
                out[ref] = seen[ref.key]
            else:
                out[ref] = ProviderError(ErrorKind.NOT_FOUND,
                                         f"aws {self.name}: DescribeParameters {ref.key}: "
                                         "not found")
        return out

    def find(self, query: FindRef) -> dict[str, RemoteValue]:
        """``GetParametersByPath`` (recursive, decrypted) under the path, or ``/``."""
        api = self._api()
        args: dict[str, Any] = {"Path": query.path or "/", "Recursive": True,
                                "WithDecryption": True, "MaxResults": 10}
        found: dict[str, RemoteValue] = {}
        while True:
            page = self._call(api, "GetParametersByPath", args["Path"],
                              partial(api.get_parameters_by_path, **args))
            for p in page.get("Parameters") or []:
                if query.matches(str(p["Name"])):
                    found[str(p["Name"])] = RemoteValue(str(p["Value"]).encode(),
                                                        str(p["Version"]))
            if not page.get("NextToken"):
                return found
            args["NextToken"] = page["NextToken"]


    def write(self, key: str, prop: str | None, value: str) -> str:
        """Rotation write-back: ``PutParameter`` (SecureString, overwrite). The new version."""
        if prop:
            raise ProviderError(ErrorKind.INVALID, (
                f"aws {self.name}: write {key}: a parameter has no properties"))
        api = self._api()
        out = self._call(api, "PutParameter", key, lambda: api.put_parameter(
            Name=key, Value=value, Type="SecureString", Overwrite=True))
        return str(out.get("Version", ""))


def _ssm_chunks(refs: Sequence[RemoteRef], size: int) -> list[list[RemoteRef]]:
    """Chunks of at most ``size`` with each name at most once (results are matched by name)."""
    out: list[list[RemoteRef]] = []
    for ref in refs:
        for chunk in out:
            if len(chunk) < size and all(r.key != ref.key for r in chunk):
                chunk.append(ref)
                break
        else:
            out.append([ref])
    return out


def provider(config: AwsConfig, **kw: Any) -> SecretsManagerProvider | ParameterStoreProvider:
    """The provider for ``config.service``."""
    if config.service == "SecretsManager":
        return SecretsManagerProvider(config, **kw)
    return ParameterStoreProvider(config, **kw)


async def from_store(config: Mapping[str, Any], where: str, spec: StoreSpec) -> Factory:
    """``spec.provider.aws`` of a store → a factory of the provider with its credentials: an
    access key from ``auth.secretRef``, else boto3's default chain; ``role`` assumed."""
    service = need(config, "service", where)
    if service not in ("SecretsManager", "ParameterStore"):
        raise StoreError(INVALID, f"{where}.service must be SecretsManager or ParameterStore")
    region = need(config, "region", where)
    creds = None
    ref = ((config.get("auth") or {}).get("secretRef")) or {}
    if ref:
        at = f"{where}.auth.secretRef"
        key_id = await spec.value(ref.get("accessKeyIDSecretRef") or {},
                                  f"{at}.accessKeyIDSecretRef")
        secret_key = await spec.value(ref.get("secretAccessKeySecretRef") or {},
                                      f"{at}.secretAccessKeySecretRef")
        session = (await spec.value(ref["sessionTokenSecretRef"], f"{at}.sessionTokenSecretRef")
                   if ref.get("sessionTokenSecretRef") else None)
        spec.secrets += [key_id, secret_key, session or ""]
        creds = AwsCredentials(key_id, secret_key, session)
    aws_config = AwsConfig(service=cast(Service, service), region=region,
                           endpoint=config.get("endpoint") or None, credentials=creds,
                           role=config.get("role") or None)
    # read identity: service, region, endpoint, role and the access key (its secret parts are
    # in spec.secrets); without a key, the controller's own default chain, the same for all
    spec.identity += settings(aws_config)

    def make(observe: Observe) -> Provider:
        return provider(aws_config, observe=observe)

    return make, f"aws {service}"
