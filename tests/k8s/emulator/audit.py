"""Request attributes as RBAC sees them, and the audit log of service-account calls.

:func:`request_info` is a port of the apiserver's ``RequestInfoFactory``: from the method, the
path and the query alone (no registry look-up) it derives the verb as RBAC names it (``get``,
``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``, ``deletecollection``), the API
group and version, the namespace, the resource, the subresource and the object name — or marks
the request as a non-resource URL (``/api``, ``/version``, ...) with the lowercase HTTP method.

:class:`AuditLog` keeps one record per request authenticated by a service-account token (other
credentials are the test's own admin calls and are not recorded): appended in O(1) to a bounded
deque (``--audit-limit``, the newest 100,000 by default) when the request arrives, its ``code``
filled in when the response is known. Beside the records it counts every call by (service
account, verb, resource or non-resource path): the counts never drop a call, whatever the
limit, and take one entry per distinct triple (a benchmark of 10,000 objects makes far more
calls than it is worth keeping records of).
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(slots=True)
class RequestInfo:
    resource_request: bool
    verb: str
    path: str
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @property
    def full_resource(self) -> str:
        """``secrets`` or ``sealedsecrets/status``: how RBAC rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    parts = [p for p in path.strip("/").split("/") if p]
    method_verb = _METHOD_VERBS.get(method.upper(), method.lower())
    non_resource = RequestInfo(False, method.lower(), path)
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    if parts[0] == "api":
        if len(parts) < 3:  # /api, /api/v1: discovery
            return non_resource
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:  # /apis, /apis/g, /apis/g/v
            return non_resource
        group, version, rest = parts[1], parts[2], parts[3:]
    info = RequestInfo(True, method_verb, path, group, version)
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        info.verb = "watch"
        rest = rest[1:]
        if not rest:
            return non_resource
    if rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    info.resource = rest[0]
    if len(rest) >= 2:
        info.name = rest[1]
    if len(rest) >= 3:
        info.subresource = rest[2]
    if not info.name and info.verb == "get":
        info.verb = "watch" if query.get("watch") in ("true", "1") else "list"
        fields = query.get("fieldSelector") or ""
        for term in fields.split(","):
            key, sep, value = term.partition("=")
            if sep and key.strip() == "metadata.name" and not value.startswith("="):
                info.name = value.strip()
    if not info.name and info.verb == "delete":
        info.verb = "deletecollection"
    return info


class AuditLog:
    """The calls made with service-account tokens, oldest first (bounded)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=limit)
        self._seq = itertools.count(1)
        self.dropped = 0
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def record(self, username: str, service_account: str, info: RequestInfo) -> dict[str, Any]:
        self.counts[(service_account, info.verb, info.full_resource or info.path)] += 1
        if len(self._records) == self._records.maxlen:
            self.dropped += 1
        entry: dict[str, Any] = {
            "seq": next(self._seq),
            "user": username,
            "serviceAccount": service_account,
            "verb": info.verb,
            "apiGroup": info.api_group,
            "apiVersion": info.api_version,
            "resource": info.full_resource,
            "namespace": info.namespace,
            "name": info.name,
            "path": info.path,
            "nonResourceURL": not info.resource_request,
            "code": None,
        }
        self._records.append(entry)
        return entry

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._records))

    def by_verb(self, service_account: str | None = None) -> dict[str, dict[str, int]]:
        """``{verb: {resource or path: calls}}`` since the last clear, none dropped."""
        out: dict[str, dict[str, int]] = {}
        for (sa, verb, what), n in sorted(self.counts.items()):
            if not service_account or sa == service_account:
                out.setdefault(verb, {})
                out[verb][what] = out[verb].get(what, 0) + n
        return out

    def clear(self) -> None:
        self._records.clear()
        self.dropped = 0
        self.counts.clear()
