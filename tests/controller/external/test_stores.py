"""Store resolution: Vault Kubernetes auth (which service account logs in, and who may use the
controller's own), ``caBundle`` against a real OpenBao dev server over HTTPS, and the cache
fingerprint that keeps tenants apart."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from secretops_controller.external import stores
from secretops_controller.external.provider import (
    ErrorKind,
    ProviderError,
    RemoteRef,
    RemoteValue,
)
from secretops_controller.external.providers.vault import KubernetesAuth, VaultProvider

from tests.controller.external.conftest import put
from tests.fixtures.openbao import OpenBao
from tests.helpers import CANARY


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _store(kind: str, vault: dict[str, Any], ns: str = "team") -> dict[str, Any]:
    meta = {"name": "vault"} if kind == stores.CLUSTER_KIND else {"name": "vault",
                                                                  "namespace": ns}
    return {"kind": kind, "metadata": meta, "spec": {"provider": {"vault": vault}}}


def _secrets(found: Mapping[tuple[str, str], dict[str, str]]) -> stores.GetSecret:
    async def get(ns: str, name: str) -> Mapping[str, Any] | None:
        data = found.get((ns, name))
        return None if data is None else {"data": {k: _b64(v) for k, v in data.items()}}
    return get


class Tokens:
    """A TokenRequest stand-in that records what was asked (the controller's own is tested
    against the emulator in tests/controller/test_deploy.py)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, tuple[str, ...]]] = []

    def __call__(self, ns: str, name: str, audiences: tuple[str, ...]) -> str:
        self.asked.append((ns, name, audiences))
        return f"jwt-of-{ns}-{name}"


def resolve(store: Mapping[str, Any], es_ns: str | None = None,
            secrets: Mapping[tuple[str, str], dict[str, str]] | None = None,
            **kw: Any) -> stores.Resolved:
    return asyncio.run(stores.resolve(store, es_ns, _secrets(secrets or {}), **kw))


def _auth(resolved: stores.Resolved) -> KubernetesAuth:
    provider = resolved.make(lambda *a: None)
    assert isinstance(provider, VaultProvider)
    auth = provider._auth
    assert isinstance(auth, KubernetesAuth)
    return auth


def test_kubernetes_auth_service_account_of_the_store_namespace() -> None:
    tokens = Tokens()
    store = _store("SecretStore", {"server": "http://127.0.0.1:1", "auth": {"kubernetes": {
        "role": "r", "serviceAccountRef": {"name": "app", "audiences": ["vault"]}}}})
    auth = _auth(resolve(store, request_token=tokens))
    assert auth.mount == "kubernetes" and auth.role == "r"
    assert auth.jwt() == "jwt-of-team-app"
    assert tokens.asked == [("team", "app", ("vault",))]
    # another namespace's service account: refused, naming the field
    store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"][
        "namespace"] = "other"
    with pytest.raises(stores.StoreError) as e:
        resolve(store, request_token=tokens)
    assert e.value.reason == "InvalidStoreConfiguration"
    assert "serviceAccountRef.namespace" in e.value.message and "team" in e.value.message


def test_only_a_cluster_store_may_use_the_controllers_own_token(tmp_path: Path) -> None:
    own = tmp_path / "token"
    own.write_text("controller-jwt\n")
    vault = {"server": "http://127.0.0.1:1", "auth": {"kubernetes": {
        "role": "r", "mountPath": "k8s"}}}
    with pytest.raises(stores.StoreError) as e:
        resolve(_store("SecretStore", vault), own_token_file=str(own))
    assert "may not log in with the controller's own service account" in e.value.message
    auth = _auth(resolve(_store(stores.CLUSTER_KIND, vault), own_token_file=str(own)))
    assert auth.mount == "k8s" and auth.jwt() == "controller-jwt"
    own.write_text("rotated-by-kubelet\n")  # read at each login
    assert auth.jwt() == "rotated-by-kubelet"
    with pytest.raises(stores.StoreError, match="--service-account-token-file"):
        resolve(_store(stores.CLUSTER_KIND, vault))


def test_cluster_store_service_account_relative_to_the_externalsecret() -> None:
    tokens = Tokens()
    store = _store(stores.CLUSTER_KIND, {"server": "http://127.0.0.1:1", "auth": {
        "kubernetes": {"role": "r", "serviceAccountRef": {"name": "reader"}}}})
    with pytest.raises(stores.StoreError) as e:
        resolve(store, request_token=tokens)
    assert e.value.reason == "ValidationUnknown"
    a, b = (resolve(store, ns, request_token=tokens) for ns in ("tenant-a", "tenant-b"))
    assert a.key != b.key  # each tenant's own cache entries
    assert _auth(a).jwt() == "jwt-of-tenant-a-reader"
    assert _auth(b).jwt() == "jwt-of-tenant-b-reader"
    # a fixed namespace: one identity, one cache entry, whoever uses the store
    store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"][
        "namespace"] = "shared"
    assert resolve(store, "tenant-a", request_token=tokens).key == \
        resolve(store, "tenant-b", request_token=tokens).key


def test_kubernetes_auth_secret_ref_and_exclusive_choices() -> None:
    vault: dict[str, Any] = {"server": "http://127.0.0.1:1", "auth": {"kubernetes": {
        "role": "r", "secretRef": {"name": "sa-token", "key": "token"}}}}
    found = {("team", "sa-token"): {"token": "long-lived-jwt"}}
    one = resolve(_store("SecretStore", vault), secrets=found)
    assert _auth(one).jwt() == "long-lived-jwt"
    other = resolve(_store("SecretStore", vault),
                    secrets={("team", "sa-token"): {"token": "another-jwt"}})
    assert one.key != other.key  # the credentials are part of the cache key
    vault["auth"]["kubernetes"]["serviceAccountRef"] = {"name": "app"}
    with pytest.raises(stores.StoreError, match="not both"):
        resolve(_store("SecretStore", vault), secrets=found)
    del vault["auth"]["kubernetes"]["role"]
    with pytest.raises(stores.StoreError, match=r"auth\.kubernetes\.role is required"):
        resolve(_store("SecretStore", vault), secrets=found)


def test_without_a_cluster_token_requests_fail_as_denied() -> None:
    store = _store("SecretStore", {"server": "http://127.0.0.1:1", "auth": {"kubernetes": {
        "role": "r", "serviceAccountRef": {"name": "app"}}}})
    with pytest.raises(ProviderError) as e:
        _auth(resolve(store)).jwt()
    assert e.value.kind == ErrorKind.DENIED and "team/app" in e.value.message


def test_ca_bundle_trusts_a_private_ca(openbao_tls: OpenBao) -> None:
    assert openbao_tls.ca_file is not None
    put(openbao_tls, "tls/db", {"password": CANARY})
    found = {("team", "t"): {"token": openbao_tls.token}}
    vault: dict[str, Any] = {"server": openbao_tls.url,
                             "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}
    ref = RemoteRef("tls/db")
    # without the CA the server's certificate is not trusted: unavailable, no value anywhere
    untrusted = resolve(_store("SecretStore", vault), secrets=found).make(lambda *a: None)
    with pytest.raises(ProviderError) as e:
        untrusted.read_many([ref])
    assert e.value.kind == ErrorKind.UNAVAILABLE and CANARY not in str(e.value), e.value.message
    untrusted.close()
    vault["caBundle"] = _b64(openbao_tls.ca_file.read_text())
    trusted = resolve(_store("SecretStore", vault), secrets=found)
    provider = trusted.make(lambda *a: None)
    value = provider.read_many([ref])[ref]
    assert isinstance(value, RemoteValue) and value.value == {"password": CANARY}
    provider.close()
    assert trusted.key != resolve(_store("SecretStore", {**vault, "caBundle": None}),
                                  secrets=found).key
    # not base64, or base64 of something that is not a certificate: refused, naming the field
    for bad in ("%%%", _b64("not a certificate")):
        with pytest.raises(stores.StoreError) as err:
            resolve(_store("SecretStore", {**vault, "caBundle": bad}), secrets=found)
        assert err.value.reason == "InvalidStoreConfiguration"
        assert "spec.provider.vault.caBundle" in err.value.message


def test_a_service_account_name_cannot_reach_another_namespace() -> None:
    """A name is checked before it becomes part of a TokenRequest URL: '../' would otherwise
    name any service account of any namespace (the controller may create tokens for all)."""
    tokens = Tokens()
    for kind, ref in (
            ("SecretStore", {"name": "../../kube-system/serviceaccounts/admin"}),
            ("SecretStore", {"name": "app/token?x="}),
            (stores.CLUSTER_KIND, {"name": "app", "namespace": "../kube-system"}),
            (stores.CLUSTER_KIND, {"name": "Admin"})):
        store = _store(kind, {"server": "http://127.0.0.1:1", "auth": {"kubernetes": {
            "role": "r", "serviceAccountRef": ref}}})
        with pytest.raises(stores.StoreError) as e:
            resolve(store, "team", request_token=tokens)
        assert e.value.reason == "InvalidStoreConfiguration", ref
    assert tokens.asked == []
