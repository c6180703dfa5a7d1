"""API errors as a real kube-apiserver reports them: an HTTP code and a ``Status`` body.

Every failure the emulator returns is an :class:`ApiError`; :meth:`ApiError.status` renders the
``meta/v1 Status`` object (``kind``, ``apiVersion``, ``status: Failure``, ``message``, ``reason``,
``details``, ``code``) that clients such as kopf, client-go and the Python client parse.
The constructors below reproduce the messages of the apiserver's ``k8s.io/apimachinery`` errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cause:
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    message: str
    field: str = ""

    def as_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    # the Status's ListMeta: a 410 to a stale continue token carries a fresh token in it
    list_meta: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.list_meta),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:  # an error that is no StatusError: Go's omitempty drops the reason
            del body["reason"]
        if self.details:
            body["details"] = self.details
        return body

    def body(self) -> bytes:
        return json.dumps(self.status()).encode()


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(resource: str, group: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        _details(resource, group, name),
    )


def no_such_resource() -> ApiError:
    return ApiError(
        404,
        "NotFound",
        "the server could not find the requested resource",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        _details(resource, group, name),
    )


def conflict(resource: str, group: str, name: str, why: str | None = None) -> ApiError:
    why = why or (
        "the object has been modified; please apply your changes to the latest "
        "version and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        _details(resource, group, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        f'{_qualified(resource, group)} "{name}" is forbidden: {why}',
        _details(resource, group, name),
    )


def method_not_allowed(verb: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb})",
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type}) - "
        f"accepted media types include: {', '.join(accepted)}",
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid: ``<Kind>[.group] "name" is invalid: field: detail[, field: detail]``."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [c.as_dict() for c in causes]
    return ApiError(
        422, "Invalid", f'{_qualified(kind, group)} "{name}" is invalid: {text}', details
    )


def unprocessable(message: str) -> ApiError:
    """422 for a patch that cannot be applied (e.g. a failed JSON-patch ``test``)."""
    return ApiError(
        422,
        "Invalid",
        f"the server rejected our request due to an error in our request: {message}",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]},
    )


def server_error(message: str) -> ApiError:
    """500 for an error that is not an API status (``ErrorToAPIStatus``'s default branch)."""
    return ApiError(500, "", message)


def storage_initializing() -> ApiError:
    """A CRD's cacher before its first list completes (``retryAfterSeconds`` 1)."""
    return ApiError(429, "TooManyRequests", "storage is (re)initializing", {"retryAfterSeconds": 1})


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
