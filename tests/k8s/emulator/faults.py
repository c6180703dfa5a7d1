"""The fault mode: failing, delaying and cutting requests on a test's demand.

Rules are added with ``POST /_emulator/faults`` and removed with ``DELETE /_emulator/faults``:

* ``{"fail_next": N, "status": 500, "match": {...}}`` — the next N matching requests get that
  status with the apiserver's ``Status`` body (500 InternalError, 429 TooManyRequests with a
  ``Retry-After`` header and ``details.retryAfterSeconds``, 503 ServiceUnavailable, 504 Timeout,
  or any other 4xx/5xx); ``"retry_after"`` sets the seconds for 429/503 (default 1);
* ``{"delay_ms": D, "count": N, "match": {...}}`` — the next N matching requests (or every one
  when ``count`` is absent) wait D ms before they are served;
* ``{"list_scan": N}`` — a paged LIST with a selector looks at N keys per page at most (0:
  as etcd3, as many as it takes to fill the page), so a sparse selector gets pages with fewer
  than ``limit`` items, even none, and a ``continue`` token (:mod:`.listing`); cleared with
  the rules;
* ``{"drop_watches": true}`` — every open watch stream is cut now (the connection is aborted, as
  when a load balancer or the apiserver goes away); new watches are served normally.

``match`` narrows a rule by request attributes (see :mod:`.audit`): ``verb``, ``apiGroup``,
``resource`` (``secrets`` matches the resource and its subresources, ``secrets/status`` only the
subresource), ``namespace``, ``name``, ``user`` (``admin`` for calls without a service-account
token) and ``serviceAccount`` (``ns/name``); a value may be a list of alternatives. A request is
checked against the few active rules only — the cost does not depend on the stored objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import errors
from .audit import RequestInfo
from .errors import ApiError

_MATCH_KEYS = ("verb", "apiGroup", "resource", "namespace", "name", "user", "serviceAccount")


@dataclass
class Rule:
    kind: str  # "fail" or "delay"
    remaining: int | None  # None: every matching request
    match: dict[str, list[str]]
    status: int = 500
    retry_after: int = 1
    delay: float = 0.0

    def matches(self, info: RequestInfo, user: str, service_account: str) -> bool:
        for key, wanted in self.match.items():
            if key == "resource":
                if info.full_resource not in wanted and info.resource not in wanted:
                    return False
                continue
            value = {
                "verb": info.verb,
                "apiGroup": info.api_group,
                "namespace": info.namespace,
                "name": info.name,
                "user": user,
                "serviceAccount": service_account,
            }[key]
            if value not in wanted:
                return False
        return True

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "remaining": self.remaining, "match": self.match}
        if self.kind == "fail":
            out["status"] = self.status
        else:
            out["delay_ms"] = round(self.delay * 1000)
        return out


@dataclass
class Faults:
    rules: list[Rule] = field(default_factory=list)
    injected: int = 0  # failures served so far (a test can check its faults were hit)
    list_scan: int = 0  # keys a selecting LIST page looks at, at most (0: no bound)

    def add(self, body: Any) -> bool:
        """Add the rules in ``body``; returns whether the watches are to be dropped."""
        if not isinstance(body, dict):
            raise errors.bad_request("a fault is a JSON object")
        unknown = set(body) - {
            "fail_next",
            "status",
            "retry_after",
            "match",
            "delay_ms",
            "count",
            "drop_watches",
            "list_scan",
        }
        if unknown:
            raise errors.bad_request(f"unknown fault fields: {sorted(unknown)}")
        raw_match = body.get("match") or {}
        if not isinstance(raw_match, dict) or set(raw_match) - set(_MATCH_KEYS):
            raise errors.bad_request(f"match takes the keys {list(_MATCH_KEYS)}")
        match = {k: (list(v) if isinstance(v, list) else [v]) for k, v in raw_match.items()}
        if "fail_next" in body:
            status = int(body.get("status", 500))
            if not 400 <= status <= 599:
                raise errors.bad_request("status must be a 4xx or 5xx code")
            self.rules.append(
                Rule(
                    "fail",
                    int(body["fail_next"]),
                    match,
                    status=status,
                    retry_after=int(body.get("retry_after", 1)),
                )
            )
        if "delay_ms" in body:
            count = body.get("count")
            self.rules.append(
                Rule(
                    "delay",
                    None if count is None else int(count),
                    match,
                    delay=float(body["delay_ms"]) / 1000,
                )
            )
        if "list_scan" in body:
            scan = body["list_scan"]
            if not isinstance(scan, int) or isinstance(scan, bool) or scan < 0:
                raise errors.bad_request("list_scan must be an integer >= 0")
            self.list_scan = scan
        return bool(body.get("drop_watches"))

    def clear(self) -> None:
        self.rules.clear()
        self.injected = 0
        self.list_scan = 0

    def pick(
        self, info: RequestInfo, user: str, service_account: str
    ) -> tuple[float, ApiError | None, dict[str, str]]:
        """(seconds to wait, error to answer with or None, headers) for this request."""
        delay = 0.0
        failure: ApiError | None = None
        headers: dict[str, str] = {}
        for rule in list(self.rules):
            if rule.kind == "fail" and failure is not None:
                continue
            if not rule.matches(info, user, service_account):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self.rules.remove(rule)
            if rule.kind == "delay":
                delay += rule.delay
            else:
                failure, headers = _failure(rule)
                self.injected += 1
        return delay, failure, headers


def _failure(rule: Rule) -> tuple[ApiError, dict[str, str]]:
    code = rule.status
    why = "injected by the emulator's fault mode"
    headers: dict[str, str] = {}
    if code == 429:
        headers["Retry-After"] = str(rule.retry_after)
        return (
            ApiError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"causes": [{"message": why}], "retryAfterSeconds": rule.retry_after},
            ),
            headers,
        )
    if code == 503:
        headers["Retry-After"] = str(rule.retry_after)
        return (
            ApiError(
                503,
                "ServiceUnavailable",
                f"the server is currently unable to handle the request ({why})",
                {"retryAfterSeconds": rule.retry_after},
            ),
            headers,
        )
    if code == 504:
        return ApiError(504, "Timeout", f"the server was unable to return a response ({why})"), {}
    if code == 500:
        return (
            ApiError(
                500,
                "InternalError",
                f"Internal error occurred: {why}",
                {"causes": [{"message": why}]},
            ),
            {},
        )
    reason = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        410: "Expired",
        422: "Invalid",
    }.get(code, "InternalError" if code >= 500 else "BadRequest")
    return ApiError(code, reason, f"{reason} ({why})"), {}
