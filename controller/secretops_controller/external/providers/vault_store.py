"""``spec.provider.vault`` of a SecretStore or ClusterSecretStore → a :class:`~.vault.VaultProvider`
factory bound to the store's credentials (Vault's entry in the provider registry).

Auth, exactly one of: ``tokenSecretRef``; ``appRole`` (``roleId`` and ``secretRef``);
``kubernetes`` (``role`` and a service-account token from ``serviceAccountRef`` — a
TokenRequest at each login —, from ``secretRef``, or, for a ClusterSecretStore only, the
controller's own token file: a namespace's store must not borrow the controller's identity).
``caBundle`` is base64 PEM, checked to load. Only KV ``v2``.

Read identity (:mod:`..storeconfig`): the :class:`~.vault.VaultConfig` (server, mount, Vault
namespace, CA) and the auth method's settings (AppRole role id and mount, Kubernetes role and
mount), with the credential itself: the token, the AppRole secret id, the service-account
token of a ``secretRef``, or *which* service account a TokenRequest is made for (its namespace,
name and audiences: two accounts never share, even in one Vault role, whose policies may be
templated on the account), or the controller's own token file. Two stores share reads only
when all of it is equal: then Vault sees the same login and grants the same policies.
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from secretops_controller.external.provider import Observe, Provider
from secretops_controller.external.providers import vault
from secretops_controller.external.storeconfig import (
    INVALID,
    Factory,
    StoreError,
    StoreSpec,
    need,
    settings,
)

# Kubernetes object names: a service account is a DNS subdomain, a namespace a DNS label. A
# name that is not one must never reach a URL (a "../" would name another namespace's account).
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


async def from_store(config: Mapping[str, Any], where: str, spec: StoreSpec) -> Factory:
    server = need(config, "server", where)
    if (config.get("version") or "v2") != "v2":
        raise StoreError(INVALID, f"{where}.version: only v2 is supported")
    ca_pem = _ca_bundle(config.get("caBundle"), f"{where}.caBundle")
    try:
        ca_path = vault.ca_file(ca_pem) if ca_pem else None
    except OSError as e:
        raise StoreError(INVALID, f"{where}.caBundle: cannot keep the CA file: {e}") from None
    cfg = vault.VaultConfig(server=server, mount=config.get("path") or "secret",
                            namespace=config.get("namespace") or None, ca_bundle=ca_path)
    auth = await _auth(config.get("auth") or {}, f"{where}.auth", spec)
    spec.identity += [*settings(cfg), *settings(auth)]

    def make(observe: Observe) -> Provider:
        return vault.VaultProvider(cfg, auth, observe=observe)

    return make, vault.NAME


async def _auth(a: Mapping[str, Any], where: str, spec: StoreSpec) -> vault.VaultAuth:
    if len([m for m in ("tokenSecretRef", "appRole", "kubernetes") if a.get(m)]) != 1:
        raise StoreError(INVALID, f"{where} must name exactly one of tokenSecretRef, appRole, "
                                  "kubernetes")
    if a.get("tokenSecretRef"):
        token = await spec.value(a["tokenSecretRef"], f"{where}.tokenSecretRef")
        spec.secrets.append(token)
        return vault.TokenAuth(token)
    if a.get("appRole"):
        ar = a["appRole"]
        role_id = need(ar, "roleId", f"{where}.appRole")
        secret_id = await spec.value(ar.get("secretRef") or {}, f"{where}.appRole.secretRef")
        spec.secrets.append(secret_id)
        return vault.AppRoleAuth(role_id, secret_id, ar.get("path") or "approle")
    k = a["kubernetes"]
    where = f"{where}.kubernetes"
    role = need(k, "role", where)
    sa, ref = k.get("serviceAccountRef"), k.get("secretRef")
    jwt: Callable[[], str]
    if sa and ref:
        raise StoreError(INVALID, f"{where}: name serviceAccountRef or secretRef, not both")
    if sa:
        jwt, identity = _service_account(sa, f"{where}.serviceAccountRef", spec)
        spec.secrets.append(identity)
    elif ref:
        sa_token = await spec.value(ref, f"{where}.secretRef")
        spec.secrets.append(sa_token)
        jwt = lambda: sa_token  # noqa: E731
    elif spec.cluster and spec.own_token_file:
        jwt = vault.jwt_from_file(spec.own_token_file)
        spec.identity.append(f"controller-token-file={spec.own_token_file}")
    elif spec.cluster:
        raise StoreError(INVALID, f"{where} names no service account and the controller has no "
                                  "token file of its own (--service-account-token-file)")
    else:
        raise StoreError(INVALID, f"{where} needs serviceAccountRef or secretRef: a SecretStore "
                                  "may not log in with the controller's own service account")
    return vault.KubernetesAuth(role, jwt, k.get("mountPath") or "kubernetes")


def _ca_bundle(text: Any, where: str) -> str | None:
    """The PEM certificates of a ``caBundle`` (base64, as ESO), checked to load."""
    if not text:
        return None
    try:
        pem = base64.b64decode(str(text), validate=True).decode("ascii")
        ssl.create_default_context(cadata=pem)
    except (ValueError, UnicodeDecodeError, ssl.SSLError):
        raise StoreError(INVALID, f"{where} is not base64-encoded PEM certificates") from None
    return pem


def _service_account(sa: Mapping[str, Any], where: str, spec: StoreSpec
                     ) -> tuple[Callable[[], str], str]:
    """A JWT source for ``serviceAccountRef`` and the identity it stands for."""
    name = need(sa, "name", where)
    if not _DNS_SUBDOMAIN.fullmatch(name):
        raise StoreError(INVALID, f"{where}.name is not a valid service account name")
    if spec.cluster:
        spec.relative.append(not sa.get("namespace"))
        ns = spec.ref_namespace(sa, where)
        if not _DNS_LABEL.fullmatch(ns):
            raise StoreError(INVALID, f"{where}.namespace is not a valid namespace name")
    else:
        ns = spec.namespace
        if sa.get("namespace") not in (None, "", spec.namespace):
            raise StoreError(INVALID, f"{where}.namespace: a SecretStore may only name a service "
                                      f"account of its own namespace {spec.namespace}")
    audiences = tuple(str(x) for x in sa.get("audiences") or ())
    request = spec.request_token
    return (lambda: request(ns, name, audiences),
            f"serviceaccount:{ns}/{name}:{','.join(audiences)}")
