"""The Google Cloud Storage destination of ``publish`` (``gcs_bucket``, ``gcs_prefix``), through
google-cloud-storage.

The object is ``<gcs_prefix><name>`` in ``gcs_bucket``, its body the encrypted file, shown as
``gcs://BUCKET/PREFIXNAME`` as sops shows it. Its content type is the one sops's Go client
sniffs for such a file: an encrypted sops file is text, so ``text/plain; charset=utf-8``
(:func:`content_type`).

Credentials are Application Default Credentials, as sops's Go client reads them
(``GOOGLE_APPLICATION_CREDENTIALS``, the file ``gcloud auth application-default login`` writes,
the metadata server on Google Cloud); sops's ``GOOGLE_CREDENTIALS`` is for its KMS keys only, and
is not read here either. ``STORAGE_EMULATOR_HOST`` (``host:port`` or a URL) sends the upload to
an emulator without credentials, as both clients do.

Calls are bounded (10 s to connect, 30 s to read; a failed upload is not retried, as none of a
plain object write is by default), and a failure is one line naming the object, never what a
server sent back. The library is imported only when an upload is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretops.publish import require, upload_error

CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


class GcsDestination:
    """A bucket and an object name prefix."""

    def __init__(self, bucket: str, prefix: str, env: Mapping[str, str]) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._env = env

    def path(self, name: str) -> str:
        return f"gcs://{self.bucket}/{self.prefix}{name}"

    def upload(self, contents: bytes, name: str) -> None:
        require("google.cloud.storage", "gcs", "publishing to GCS")
        try:
            blob = _client(self._env).bucket(self.bucket).blob(self.prefix + name)
            blob.upload_from_string(contents, content_type=content_type(contents),
                                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        except Exception as e:
            raise upload_error(_explain(e), self.path(name)) from None


def content_type(contents: bytes) -> str:
    """What Go's ``http.DetectContentType`` (which sops's upload leaves the type to) says of an
    encrypted sops file: text unless its first 512 bytes hold a byte Go calls binary. (Go also
    knows signatures such as ``<?xml`` and ``%PDF-``, which no encrypted sops file starts
    with.)"""
    binary = any(b <= 0x08 or b == 0x0B or 0x0E <= b <= 0x1A or 0x1C <= b <= 0x1F
                 for b in contents[:512])
    return "application/octet-stream" if binary else "text/plain; charset=utf-8"


def _client(env: Mapping[str, str]) -> Any:
    """The one place the client library is touched: a Storage client for the environment."""
    from google.api_core.client_options import ClientOptions
    from google.cloud.storage import Client  # type: ignore[import-untyped]

    emulator = env.get(EMULATOR_ENV, "")
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        url = emulator if "://" in emulator else "http://" + emulator
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return Client(project="<none>", credentials=anonymous,
                      client_options=ClientOptions(api_endpoint=url))
    # no project: an upload needs none, and looking one up could reach the metadata server
    return Client(project="<none>")


def _explain(e: BaseException) -> str:
    from google.api_core import exceptions as gx
    from google.auth import exceptions as ax

    if isinstance(e, ax.DefaultCredentialsError):
        return ("no GCP credentials were found (set GOOGLE_APPLICATION_CREDENTIALS or run "
                "'gcloud auth application-default login')")
    if isinstance(e, ax.GoogleAuthError):
        return f"the GCP credentials cannot be used ({type(e).__name__})"
    if isinstance(e, gx.NotFound):
        return "the bucket does not exist (404)"
    if isinstance(e, gx.Forbidden | gx.PermissionDenied):
        return "GCS denied access (403): the credentials may not write to this bucket"
    if isinstance(e, gx.Unauthorized | gx.Unauthenticated):
        return "GCS rejected the credentials (401)"
    if isinstance(e, gx.GoogleAPICallError):
        return f"GCS answered {e.code} ({type(e).__name__})"
    import requests

    if isinstance(e, requests.exceptions.Timeout):
        return f"GCS did not answer within {READ_TIMEOUT} s"
    if isinstance(e, requests.exceptions.RequestException):
        return f"cannot reach GCS ({type(e).__name__})"
    return f"the upload failed ({type(e).__name__})"


def destination(settings: Mapping[str, Any], env: Mapping[str, str]) -> GcsDestination:
    """The destination a ``destination_rules`` entry names (see :mod:`secretops.publish`)."""
    return GcsDestination(str(settings.get("gcs_bucket") or ""),
                          str(settings.get("gcs_prefix") or ""), env)
