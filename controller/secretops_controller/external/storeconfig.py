"""What a provider reads from its store to be built: the store's spec and its credentials.

A provider module turns ``spec.provider.<kind>`` of a SecretStore or ClusterSecretStore into a
factory of providers bound to the store's credentials (its ``from_store`` function, listed in
:data:`secretops_controller.external.providers.REGISTRY`). What it may read is given as a
:class:`StoreSpec`: the store's scope, a reader of the Secrets its auth refers to (a
SecretStore reads its own namespace only; a ClusterSecretStore a ref's ``namespace``, else the
ExternalSecret's), and a way to ask the API server for a service-account token.

A provider also says *who reads*: the store's **read identity** is everything its reads depend
on — the non-secret settings it was built with, in ``identity`` (:func:`settings`: server,
mount, region, auth method, role, the service account a token is requested for...), and the
credential material it read, in ``secrets``. Stores whose identities are equal send the same
requests with the same credentials and get the same answers, so they share one cache entry
per remote key and one provider (:mod:`.stores` keeps only a keyed hash of the identity).

Errors are :class:`StoreError` with a fixed reason and a message naming fields and Secrets,
never a value.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from secretops_controller.external.provider import ErrorKind, Observe, Provider, ProviderError

CLUSTER_KIND = "ClusterSecretStore"
NAMESPACED_KIND = "SecretStore"
INVALID = "InvalidStoreConfiguration"

# (namespace, name) -> the Secret (None: missing)
GetSecret = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
# (namespace, service account, audiences) -> a fresh token from a TokenRequest. Called from a
# provider's worker thread at each login, never on the event loop.
RequestToken = Callable[[str, str, tuple[str, ...]], str]
# what a provider module's from_store returns: a factory (given the metrics observer) and the
# provider's name for messages
Factory = tuple[Callable[[Observe], Provider], str]


class StoreError(Exception):
    """The store cannot be used; ``reason`` is one of the fixed store/ExternalSecret reasons."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def no_token_requests(namespace: str, name: str, audiences: tuple[str, ...]) -> str:
    raise ProviderError(ErrorKind.DENIED, f"no TokenRequest for serviceaccount {namespace}/"
                                          f"{name}: not connected to a cluster")


def need(obj: Mapping[str, Any], name: str, where: str) -> str:
    """The non-empty string field ``name`` of ``obj`` (``where`` names ``obj`` in messages)."""
    v = obj.get(name)
    if not isinstance(v, str) or not v:
        raise StoreError(INVALID, f"{where}.{name} is required")
    return v


@dataclass
class StoreSpec:
    """One store being resolved: its kind and namespace, the ExternalSecret's namespace (None
    while the store is validated alone), and what may be read for its credentials.

    ``identity``: the non-secret settings the provider's reads depend on; ``secrets``: every
    credential a provider read. Both go into the read identity's keyed hash (the cache key),
    so stores with different credentials or settings never share an entry; ``relative``:
    whether each ref of a ClusterSecretStore was read in the ExternalSecret's namespace."""

    kind: str
    namespace: str
    es_namespace: str | None
    get_secret: GetSecret
    request_token: RequestToken = no_token_requests
    own_token_file: str | None = None
    identity: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    relative: list[bool] = field(default_factory=list)

    @property
    def cluster(self) -> bool:
        return self.kind == CLUSTER_KIND

    def ref_namespace(self, ref: Mapping[str, Any], where: str) -> str:
        """The namespace a ClusterSecretStore's reference points into: its own
        ``namespace``, else the ExternalSecret's (unknown while validating the store alone)."""
        ns = ref.get("namespace") or self.es_namespace
        if not ns:
            raise StoreError("ValidationUnknown", f"{where} names no namespace: it is read from "
                                                  "the namespace of each ExternalSecret")
        return str(ns)

    async def value(self, ref: Mapping[str, Any], where: str) -> str:
        """The text in key ``ref.key`` of Secret ``ref.name`` (a SecretStore: its own
        namespace; a ClusterSecretStore: ``ref.namespace``, else the ExternalSecret's)."""
        self.relative.append(self.cluster and not ref.get("namespace"))
        name = need(ref, "name", where)
        key = need(ref, "key", where)
        ns = self.ref_namespace(ref, where) if self.cluster else self.namespace
        secret = await self.get_secret(ns, name)
        if secret is None:
            raise StoreError(INVALID, f"{where}: Secret {ns}/{name} not found")
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            raise StoreError(INVALID, f"{where}: Secret {ns}/{name} has no key {key!r}")
        try:
            return base64.b64decode(raw).decode()
        except (ValueError, UnicodeDecodeError):
            raise StoreError(INVALID, f"{where}: Secret {ns}/{name} key {key!r} is not UTF-8 "
                                      "text") from None


def settings(obj: Any) -> list[str]:
    """The non-secret settings of a provider's configuration or auth dataclass, for its read
    identity: its type and every field shown in its ``repr`` (credential fields are
    ``repr=False`` and go to ``StoreSpec.secrets`` instead). Taken from the object the provider
    is built with, so a setting added later joins the identity without anyone listing it."""
    return [type(obj).__name__, *(f"{f.name}={getattr(obj, f.name)!r}"
                                  for f in dataclasses.fields(obj) if f.repr)]


__all__ = ["CLUSTER_KIND", "NAMESPACED_KIND", "Factory", "GetSecret", "RequestToken",
           "StoreError", "StoreSpec", "need", "no_token_requests", "settings"]
