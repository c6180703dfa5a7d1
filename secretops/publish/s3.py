"""The S3 destination of ``publish`` (``s3_bucket``, ``s3_prefix``), through boto3.

The object is ``<s3_prefix><name>`` in ``s3_bucket``, its body the encrypted file. The AWS
settings are boto3's usual chain, read from the environment as sops's Go SDK reads it: the
credentials (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID`` …), the region (``AWS_REGION``, else
``AWS_DEFAULT_REGION``) and the endpoint (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``).
Calls are bounded (timeouts, three attempts), and a failure is one line naming the object.
boto3 is imported only when an upload is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretops.publish import require, upload_error

CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30


class S3Destination:
    """A bucket and a key prefix."""

    def __init__(self, bucket: str, prefix: str, env: Mapping[str, str]) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._env = env

    def path(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def upload(self, contents: bytes, name: str) -> None:
        require("boto3", "aws", "publishing to S3")
        try:
            _client(self._env).put_object(Bucket=self.bucket, Key=self.prefix + name,
                                          Body=contents)
        except Exception as e:
            raise upload_error(_explain(e), self.path(name)) from None


def _client(env: Mapping[str, str]) -> Any:
    """The one place boto3 is touched: an S3 client from the environment's settings."""
    import boto3
    from botocore.config import Config

    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
        )
    else:
        session = boto3.Session(profile_name=env.get("AWS_PROFILE") or None)
    config = Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"total_max_attempts": 3, "mode": "standard"},
                    user_agent_extra="secretops")
    return session.client(
        "s3", config=config,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None)


def _explain(e: BaseException) -> str:
    from botocore import exceptions as bx

    from secretops.keys.awskms import explain

    if isinstance(e, bx.ParamValidationError):
        return "the request to S3 was invalid (check s3_bucket and s3_prefix)"
    return explain(e)


def destination(settings: Mapping[str, Any], env: Mapping[str, str]) -> S3Destination:
    """The destination a ``destination_rules`` entry names (see :mod:`secretops.publish`)."""
    return S3Destination(str(settings.get("s3_bucket") or ""),
                         str(settings.get("s3_prefix") or ""), env)
