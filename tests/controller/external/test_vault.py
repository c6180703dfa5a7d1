"""The Vault provider against the real OpenBao dev server, requests counted by a proxy."""

from __future__ import annotations

import uuid

import pytest
from secretops_controller.external.provider import (
    ErrorKind,
    FindRef,
    ProviderError,
    RemoteRef,
    RemoteValue,
)
from secretops_controller.external.providers.vault import (
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultConfig,
    VaultProvider,
)

from tests.controller.external.conftest import Tenant, put
from tests.controller.external.proxy import CountingProxy
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao
from tests.helpers import CANARY

pytest.importorskip("hvac")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_token_auth_reads_values_versions_and_not_found(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/db"
    put(openbao, key, {"password": "one"})
    assert put(openbao, key, {"password": CANARY, "user": "app"}) == 2
    p = VaultProvider(VaultConfig(bao_proxy.url), TokenAuth(openbao.token))
    got = p.read_many([RemoteRef(key), RemoteRef(key, "1"), RemoteRef(f"{tenant.prefix}/no")])
    assert got[RemoteRef(key)] == RemoteValue({"password": CANARY, "user": "app"}, "2")
    assert got[RemoteRef(key, "1")] == RemoteValue({"password": "one"}, "1")
    missing = got[RemoteRef(f"{tenant.prefix}/no")]
    assert isinstance(missing, ProviderError) and missing.kind == ErrorKind.NOT_FOUND
    assert p.versions([RemoteRef(key)]) == {RemoteRef(key): "2"}
    # one lookup-self for the given token, then one request per key (data or metadata)
    assert bao_proxy.count(path_part="/v1/auth/token/lookup-self") == 1
    assert bao_proxy.count(path_part="/v1/secret/data/") == 3
    assert bao_proxy.count(path_part="/v1/secret/metadata/") == 1
    assert CANARY not in repr(got)
    p.close()


def test_check_is_one_request_and_sees_a_revoked_token(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant,
        approle: tuple[str, AppRoleAuth]) -> None:
    token = openbao.client().auth.token.create(policies=[tenant.policy], ttl="1h")["auth"][
        "client_token"]
    p = VaultProvider(VaultConfig(bao_proxy.url), TokenAuth(token))
    p.check()
    p.check()
    assert bao_proxy.count(path_part="/v1/auth/token/lookup-self") == 2
    openbao.client().auth.token.revoke(token)
    with pytest.raises(ProviderError) as e:
        p.check()
    assert e.value.kind == ErrorKind.DENIED
    # AppRole: the first check is the login; a revoked token logs in again
    mount, auth = approle
    bao_proxy.reset()
    a = VaultProvider(VaultConfig(bao_proxy.url), auth)
    a.check()
    assert bao_proxy.count(path_part=f"/v1/auth/{mount}/login") == 1
    assert bao_proxy.count(path_part="lookup-self") == 0
    assert a._client is not None
    openbao.client().auth.token.revoke(a._client.token)
    a.check()
    assert a.logins == 2
    p.close()
    a.close()


def test_approle_logs_in_once_renews_before_expiry_and_relogs_only_when_needed(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant,
        approle: tuple[str, AppRoleAuth]) -> None:
    mount, auth = approle
    key = f"{tenant.prefix}/app"
    put(openbao, key, {"v": "1"})
    clock = Clock()
    calls: list[tuple[str, str, str]] = []
    p = VaultProvider(VaultConfig(bao_proxy.url), auth, clock=clock,
                      observe=lambda *c: calls.append(c))
    for _ in range(50):
        assert isinstance(p.read_many([RemoteRef(key)])[RemoteRef(key)], RemoteValue)
    assert p.logins == 1 and bao_proxy.count(path_part=f"/v1/auth/{mount}/login") == 1
    clock.t = 41.0  # past two thirds of the 60 s TTL: renew-self, no new login
    p.read_many([RemoteRef(key)])
    assert p.renewals == 1 and p.logins == 1
    assert bao_proxy.count(path_part="/v1/auth/token/renew-self") == 1
    clock.t = 200.0  # expired (as far as the provider knows): a new login
    p.read_many([RemoteRef(key)])
    assert p.logins == 2
    # the token is revoked behind the provider's back: one 403, one login, the read succeeds
    openbao.client().auth.token.revoke(p._client.token)
    assert isinstance(p.read_many([RemoteRef(key)])[RemoteRef(key)], RemoteValue)
    assert p.logins == 3
    assert ("vault", "read", "Denied") in calls and ("vault", "login", "ok") in calls
    # outside the policy: Denied, after one re-login attempt, and the message names no value
    put(openbao, "elsewhere/x", {"v": CANARY})
    with pytest.raises(ProviderError) as e:
        p.read_many([RemoteRef("elsewhere/x")])
    assert e.value.kind == ErrorKind.DENIED and "elsewhere/x" in str(e.value)
    assert CANARY not in str(e.value)
    p.close()  # revokes the token it logged in for
    assert bao_proxy.count(path_part="/v1/auth/token/revoke-self") == 1


def test_find_lists_recursively_and_filters_by_name(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant) -> None:
    for name in ("a/one", "a/deep/two", "b/three"):
        put(openbao, f"{tenant.prefix}/{name}", {"n": name})
    p = VaultProvider(VaultConfig(bao_proxy.url), TokenAuth(openbao.token))
    found = p.find(FindRef(f"{tenant.prefix}/a", None))
    assert sorted(found) == [f"{tenant.prefix}/a/deep/two", f"{tenant.prefix}/a/one"]
    only = p.find(FindRef(tenant.prefix, "two$|three$"))
    assert sorted(only) == [f"{tenant.prefix}/a/deep/two", f"{tenant.prefix}/b/three"]


def test_an_outage_is_unavailable_bounded_and_value_free(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/x"
    put(openbao, key, {"v": CANARY})
    p = VaultProvider(VaultConfig(bao_proxy.url, timeout=2.0), TokenAuth(openbao.token))
    p.read_many([RemoteRef(key)])
    bao_proxy.cut = True
    with pytest.raises(ProviderError) as e:
        p.read_many([RemoteRef(key)])
    assert e.value.kind == ErrorKind.UNAVAILABLE and e.value.transient
    assert CANARY not in str(e.value)
    bao_proxy.cut = False
    assert isinstance(p.read_many([RemoteRef(key)])[RemoteRef(key)], RemoteValue)


def test_kubernetes_auth_with_a_token_request_jwt(
        openbao: OpenBao, bao_proxy: CountingProxy, tenant: Tenant, k8s_tls: K8s) -> None:
    # the setup of tests/k8s/test_openbao_auth.py: OpenBao asks the emulator's TokenReview
    assert k8s_tls.ca_file is not None
    ns = f"x-{uuid.uuid4().hex[:8]}"
    assert k8s_tls.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    client = openbao.client()
    mount = f"k8s-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("kubernetes", path=mount)
    client.write(f"auth/{mount}/config", kubernetes_host=k8s_tls.url,
                 kubernetes_ca_cert=k8s_tls.ca_file.read_text(),
                 token_reviewer_jwt=k8s_tls.token(ns, "openbao"), disable_local_ca_jwt=True)
    client.write(f"auth/{mount}/role/app", bound_service_account_names=["app"],
                 bound_service_account_namespaces=[ns], audience="vault",
                 token_policies=[tenant.policy], token_ttl="10m")
    key = f"{tenant.prefix}/k8s"
    put(openbao, key, {"v": "from-k8s"})
    jwts: list[str] = []

    def jwt() -> str:
        jwts.append(k8s_tls.token(ns, "app", audiences=["vault"], expiration_seconds=600))
        return jwts[-1]

    p = VaultProvider(VaultConfig(bao_proxy.url), KubernetesAuth("app", jwt, mount))
    for _ in range(5):
        assert p.read_many([RemoteRef(key)])[RemoteRef(key)] == RemoteValue({"v": "from-k8s"}, "1")
    assert p.logins == 1 and len(jwts) == 1
    wrong = VaultProvider(VaultConfig(bao_proxy.url), KubernetesAuth(
        "app", lambda: k8s_tls.token(ns, "other", audiences=["vault"]), mount))
    with pytest.raises(ProviderError) as e:
        wrong.read_many([RemoteRef(key)])
    assert e.value.kind == ErrorKind.DENIED and "login" in str(e.value)
    p.close()
    client.sys.disable_auth_method(mount)
