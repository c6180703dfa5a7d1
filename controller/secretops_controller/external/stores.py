"""SecretStore / ClusterSecretStore → a provider bound to resolved credentials.

:func:`resolve` reads a store object (as stored: a dict) and the Secrets its auth refers to,
applies the documented defaults (``path: secret``, AppRole ``path: approle``), and returns a
:class:`Resolved`: the scheduler's :class:`~.scheduler.StoreKey` (whose fingerprint covers the
configuration *and* the credentials, so tenants never share cache entries) and a factory for
the provider. :func:`allowed` applies a ClusterSecretStore's ``spec.conditions``.

Errors are :class:`StoreError` with a fixed reason and a message naming fields and Secrets,
never a value.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from secretops_controller.external.provider import ErrorKind, Observe, Provider, ProviderError
from secretops_controller.external.providers import aws, vault
from secretops_controller.external.scheduler import StoreKey, fingerprint

CLUSTER_KIND = "ClusterSecretStore"
NAMESPACED_KIND = "SecretStore"

# (namespace, name) -> the Secret (None: missing); namespace -> its labels (None: missing)
GetSecret = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
GetLabels = Callable[[str], Awaitable[Mapping[str, str] | None]]
# (namespace, service account, audiences) -> a fresh token from a TokenRequest. Called from a
# provider's worker thread at each Vault login, never on the event loop.
RequestToken = Callable[[str, str, tuple[str, ...]], str]


class StoreError(Exception):
    """The store cannot be used; ``reason`` is one of the fixed store/ExternalSecret reasons."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Resolved:
    key: StoreKey
    provider_name: str
    make: Callable[[Observe], Provider]


def _need(obj: Mapping[str, Any], field: str, where: str) -> str:
    v = obj.get(field)
    if not isinstance(v, str) or not v:
        raise StoreError("InvalidStoreConfiguration", f"{where}.{field} is required")
    return v


def _cluster_ref_namespace(ref: Mapping[str, Any], where: str, es_ns: str | None) -> str:
    """The namespace a ClusterSecretStore's reference points into: its own ``namespace``, else
    the ExternalSecret's (unknown while validating the store alone)."""
    ns = ref.get("namespace") or es_ns
    if not ns:
        raise StoreError("ValidationUnknown", f"{where} names no namespace: it is read from "
                                              "the namespace of each ExternalSecret")
    return str(ns)


async def _secret_value(ref: Mapping[str, Any], where: str, kind: str, store_ns: str,
                        es_ns: str | None, get_secret: GetSecret) -> str:
    name = _need(ref, "name", where)
    key = _need(ref, "key", where)
    # a SecretStore reads its own namespace only
    ns = _cluster_ref_namespace(ref, where, es_ns) if kind == CLUSTER_KIND else store_ns
    secret = await get_secret(str(ns), name)
    if secret is None:
        raise StoreError("InvalidStoreConfiguration", f"{where}: Secret {ns}/{name} not found")
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        raise StoreError("InvalidStoreConfiguration",
                         f"{where}: Secret {ns}/{name} has no key {key!r}")
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        raise StoreError("InvalidStoreConfiguration",
                         f"{where}: Secret {ns}/{name} key {key!r} is not UTF-8 text") from None


# Kubernetes object names: a service account is a DNS subdomain, a namespace a DNS label. A
# name that is not one must never reach a URL (a "../" would name another namespace's account).
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _no_token_requests(namespace: str, name: str, audiences: tuple[str, ...]) -> str:
    raise ProviderError(ErrorKind.DENIED, f"no TokenRequest for serviceaccount {namespace}/"
                                          f"{name}: not connected to a cluster")


async def resolve(store: Mapping[str, Any], es_namespace: str | None,
                  get_secret: GetSecret, *, request_token: RequestToken = _no_token_requests,
                  own_token_file: str | None = None) -> Resolved:
    """The provider of ``store`` with its credentials (read for ``es_namespace`` where a
    ClusterSecretStore's refs name no namespace).

    Vault Kubernetes auth logs in with the token of ``serviceAccountRef`` (``request_token``
    at each login), of ``secretRef``, or — a ClusterSecretStore only, since a namespace's own
    store must not borrow the controller's identity — the controller's (``own_token_file``)."""
    kind = str(store.get("kind") or NAMESPACED_KIND)
    meta = store.get("metadata") or {}
    store_ns = str(meta.get("namespace") or "")
    name = str(meta.get("name"))
    provider = ((store.get("spec") or {}).get("provider")) or {}
    if len([p for p in ("vault", "aws") if provider.get(p)]) != 1:
        raise StoreError("InvalidStoreConfiguration",
                         "spec.provider must name exactly one of vault, aws")
    config_text = json.dumps(provider, sort_keys=True)

    relative: list[bool] = []  # a ClusterSecretStore ref read in the ExternalSecret's namespace

    async def value(ref: Mapping[str, Any], where: str) -> str:
        relative.append(kind == CLUSTER_KIND and not ref.get("namespace"))
        return await _secret_value(ref, where, kind, store_ns, es_namespace, get_secret)

    secrets: list[str] = []
    make: Callable[[Observe], Provider]
    if provider.get("vault"):
        v = provider["vault"]
        w = "spec.provider.vault"
        server = _need(v, "server", w)
        if (v.get("version") or "v2") != "v2":
            raise StoreError("InvalidStoreConfiguration", f"{w}.version: only v2 is supported")
        ca_pem = _ca_bundle(v.get("caBundle"), f"{w}.caBundle")
        try:
            ca_path = vault.ca_file(ca_pem) if ca_pem else None
        except OSError as e:
            raise StoreError("InvalidStoreConfiguration", f"{w}.caBundle: cannot keep the CA "
                                                          f"file: {e}") from None
        cfg = vault.VaultConfig(server=server, mount=v.get("path") or "secret",
                                namespace=v.get("namespace") or None, ca_bundle=ca_path)
        a = v.get("auth") or {}
        auth: vault.VaultAuth
        if len([m for m in ("tokenSecretRef", "appRole", "kubernetes") if a.get(m)]) != 1:
            raise StoreError("InvalidStoreConfiguration", f"{w}.auth must name exactly one of "
                                                          "tokenSecretRef, appRole, kubernetes")
        if a.get("tokenSecretRef"):
            token = await value(a["tokenSecretRef"], f"{w}.auth.tokenSecretRef")
            secrets.append(token)
            auth = vault.TokenAuth(token)
        elif a.get("appRole"):
            ar = a["appRole"]
            role_id = _need(ar, "roleId", f"{w}.auth.appRole")
            secret_id = await value(ar.get("secretRef") or {}, f"{w}.auth.appRole.secretRef")
            secrets.append(secret_id)
            auth = vault.AppRoleAuth(role_id, secret_id, ar.get("path") or "approle")
        else:
            k = a["kubernetes"]
            where = f"{w}.auth.kubernetes"
            role = _need(k, "role", where)
            sa, ref = k.get("serviceAccountRef"), k.get("secretRef")
            jwt: Callable[[], str]
            if sa and ref:
                raise StoreError("InvalidStoreConfiguration",
                                 f"{where}: name serviceAccountRef or secretRef, not both")
            if sa:
                jwt, identity = _service_account(sa, f"{where}.serviceAccountRef", kind,
                                                 store_ns, es_namespace, request_token, relative)
                secrets.append(identity)
            elif ref:
                sa_token = await value(ref, f"{where}.secretRef")
                secrets.append(sa_token)
                jwt = lambda: sa_token  # noqa: E731
            elif kind == CLUSTER_KIND and own_token_file:
                jwt = vault.jwt_from_file(own_token_file)
            elif kind == CLUSTER_KIND:
                raise StoreError("InvalidStoreConfiguration",
                                 f"{where} names no service account and the controller has "
                                 "no token file of its own (--service-account-token-file)")
            else:
                raise StoreError("InvalidStoreConfiguration",
                                 f"{where} needs serviceAccountRef or secretRef: a SecretStore "
                                 "may not log in with the controller's own service account")
            auth = vault.KubernetesAuth(role, jwt, k.get("mountPath") or "kubernetes")

        def make_vault(observe: Observe) -> Provider:
            return vault.VaultProvider(cfg, auth, observe=observe)

        make, provider_name = make_vault, vault.NAME
    else:
        v = provider["aws"]
        w = "spec.provider.aws"
        service = _need(v, "service", w)
        if service not in ("SecretsManager", "ParameterStore"):
            raise StoreError("InvalidStoreConfiguration",
                             f"{w}.service must be SecretsManager or ParameterStore")
        region = _need(v, "region", w)
        creds = None
        ref = ((v.get("auth") or {}).get("secretRef")) or {}
        if ref:
            where = f"{w}.auth.secretRef"
            key_id = await value(ref.get("accessKeyIDSecretRef") or {},
                                 f"{where}.accessKeyIDSecretRef")
            secret_key = await value(ref.get("secretAccessKeySecretRef") or {},
                                     f"{where}.secretAccessKeySecretRef")
            session = (await value(ref["sessionTokenSecretRef"],
                                   f"{where}.sessionTokenSecretRef")
                       if ref.get("sessionTokenSecretRef") else None)
            secrets += [key_id, secret_key, session or ""]
            creds = aws.AwsCredentials(key_id, secret_key, session)
        acfg = aws.AwsConfig(service=service,  # type: ignore[arg-type]
                             region=region, endpoint=v.get("endpoint") or None,
                             credentials=creds, role=v.get("role") or None)

        def make_aws(observe: Observe) -> Provider:
            return aws.provider(acfg, observe=observe)

        make, provider_name = make_aws, f"aws {service}"
    # The cache key: which store, and a keyed hash of its configuration and credentials (and,
    # for a ClusterSecretStore, of the namespace its namespace-relative refs were read in).
    scope = (es_namespace or "") if any(relative) else ""
    fp = fingerprint(kind, store_ns, name, config_text, scope, *secrets)
    return Resolved(StoreKey(kind, store_ns, name, fp), provider_name, make)


def _ca_bundle(text: Any, where: str) -> str | None:
    """The PEM certificates of a ``caBundle`` (base64, as ESO), checked to load."""
    if not text:
        return None
    try:
        pem = base64.b64decode(str(text), validate=True).decode("ascii")
        ssl.create_default_context(cadata=pem)
    except (ValueError, UnicodeDecodeError, ssl.SSLError):
        raise StoreError("InvalidStoreConfiguration",
                         f"{where} is not base64-encoded PEM certificates") from None
    return pem


def _service_account(sa: Mapping[str, Any], where: str, kind: str, store_ns: str,
                     es_ns: str | None, request_token: RequestToken, relative: list[bool]
                     ) -> tuple[Callable[[], str], str]:
    """A JWT source for ``serviceAccountRef`` and the identity it stands for."""
    name = _need(sa, "name", where)
    if not _DNS_SUBDOMAIN.fullmatch(name):
        raise StoreError("InvalidStoreConfiguration",
                         f"{where}.name is not a valid service account name")
    if kind == CLUSTER_KIND:
        relative.append(not sa.get("namespace"))
        ns = _cluster_ref_namespace(sa, where, es_ns)
        if not _DNS_LABEL.fullmatch(ns):
            raise StoreError("InvalidStoreConfiguration",
                             f"{where}.namespace is not a valid namespace name")
    else:
        ns = store_ns
        if sa.get("namespace") not in (None, "", store_ns):
            raise StoreError("InvalidStoreConfiguration",
                             f"{where}.namespace: a SecretStore may only name a service "
                             f"account of its own namespace {store_ns}")
    audiences = tuple(str(x) for x in sa.get("audiences") or ())
    namespace = str(ns)
    return (lambda: request_token(namespace, name, audiences),
            f"serviceaccount:{namespace}/{name}:{','.join(audiences)}")


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
    ``spec.conditions`` matches (names, regexes, label selector); no conditions: everyone."""
    conditions = (store.get("spec") or {}).get("conditions") or []
    if not conditions:
        return True
    labels: Mapping[str, str] | None = None
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
        if selector is not None:
            if labels is None:
                labels = await get_labels(namespace) or {}
            if _selector_matches(selector, labels):
                return True
    return False
