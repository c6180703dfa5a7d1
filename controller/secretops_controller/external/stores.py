"""SecretStore / ClusterSecretStore → a provider bound to resolved credentials.

:func:`resolve` reads a store object (as stored: a dict), finds its provider in the one table
(:data:`~.providers.REGISTRY`, keyed by the name under ``spec.provider``), lets the provider's
module read its configuration and the Secrets its auth refers to (:class:`~.storeconfig.StoreSpec`)
and returns a :class:`Resolved`: the scheduler's :class:`~.scheduler.StoreKey` (whose
fingerprint is the store's read identity, :func:`read_identity`: stores with the same
provider, settings and credentials share cache entries; with different credentials, never)
and a factory for the provider. :func:`allowed` applies a ClusterSecretStore's
``spec.conditions``.

Errors are :class:`StoreError` with a fixed reason and a message naming fields and Secrets,
never a value.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from secretops_controller.external.provider import Observe, Provider
from secretops_controller.external.providers import REGISTRY
from secretops_controller.external.scheduler import StoreKey, fingerprint
from secretops_controller.external.storeconfig import (
    CLUSTER_KIND,
    INVALID,
    NAMESPACED_KIND,
    GetSecret,
    RequestToken,
    StoreError,
    StoreSpec,
    no_token_requests,
)

NOT_ALLOWED = "StoreNotAllowed"
# namespace -> its labels (None: not seen by the namespace watch yet, or deleted)
GetLabels = Callable[[str], Awaitable[Mapping[str, str] | None]]


@dataclass(frozen=True)
class Resolved:
    key: StoreKey
    provider_name: str
    make: Callable[[Observe], Provider]


async def resolve(store: Mapping[str, Any], es_namespace: str | None,
                  get_secret: GetSecret, *, request_token: RequestToken = no_token_requests,
                  own_token_file: str | None = None) -> Resolved:
    """The provider of ``store`` with its credentials (read for ``es_namespace`` where a
    ClusterSecretStore's refs name no namespace; ``request_token`` for service-account tokens,
    ``own_token_file``: the controller's own, for a ClusterSecretStore only)."""
    kind = str(store.get("kind") or NAMESPACED_KIND)
    meta = store.get("metadata") or {}
    spec = StoreSpec(kind, str(meta.get("namespace") or ""), es_namespace, get_secret,
                     request_token, own_token_file)
    name = str(meta.get("name"))
    provider = ((store.get("spec") or {}).get("provider")) or {}
    named = [p for p in REGISTRY if provider.get(p)]
    if len(named) != 1:
        raise StoreError(INVALID, "spec.provider must name exactly one of "
                                  + ", ".join(REGISTRY))
    make, provider_name = await REGISTRY[named[0]](provider[named[0]],
                                                   f"spec.provider.{named[0]}", spec)
    return Resolved(StoreKey(kind, spec.namespace, name, read_identity(named[0], spec)),
                    provider_name, make)


def read_identity(provider: str, spec: StoreSpec) -> str:
    """The keyed hash of who reads: the provider, the settings its reads depend on and the
    credentials it read (:class:`StoreSpec`). Not the store's kind, namespace or name, nor
    the Secrets the credentials came from: stores equal in all that reads share a cache;
    differing in any credential, they never do. Keyed per process (:func:`fingerprint`), so
    the hash tells nothing of the credentials, and only it outlives the resolution."""
    return fingerprint("read-identity", provider, str(len(spec.identity)), *spec.identity,
                       *spec.secrets)


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), list(e.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


async def allowed(store: Mapping[str, Any], namespace: str, get_labels: GetLabels) -> bool:
    """Whether an ExternalSecret in ``namespace`` may use this ClusterSecretStore: any of
    ``spec.conditions`` matches (names, regexes, label selector); no conditions: everyone.
    A namespace whose labels are not known (its watch event has not come yet) matches no
    ``namespaceSelector`` — not even ``NotIn`` / ``DoesNotExist``, which an unlabelled one
    would: :class:`StoreError` says so when nothing else allowed it (its watch event registers
    the namespace's ExternalSecrets again)."""
    conditions = (store.get("spec") or {}).get("conditions") or []
    if not conditions:
        return True
    labels: Mapping[str, str] | None = None
    unknown = False
    for c in conditions:
        if namespace in (c.get("namespaces") or []):
            return True
        for rx in c.get("namespaceRegexes") or []:
            try:
                if re.search(rx, namespace):
                    return True
            except re.error:
                continue
        selector = c.get("namespaceSelector")
        if selector is not None and not unknown:
            if labels is None:
                labels = await get_labels(namespace)
                unknown = labels is None
            if labels is not None and _selector_matches(selector, labels):
                return True
    if unknown:
        name = str((store.get("metadata") or {}).get("name"))
        raise StoreError(NOT_ALLOWED, (
            f"ClusterSecretStore {name}: namespace {namespace} not seen by the namespace watch "
            "yet, so no namespaceSelector condition matches it (tried again when it is)"))
    return False

__all__ = ["CLUSTER_KIND", "NAMESPACED_KIND", "NOT_ALLOWED", "GetLabels", "GetSecret",
           "RequestToken", "Resolved", "StoreError", "allowed", "read_identity", "resolve"]
