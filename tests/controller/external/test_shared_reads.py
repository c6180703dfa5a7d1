"""Shared reads across stores, end to end: the controller process against the emulator, the real
OpenBao dev server and moto, every provider request counted by a proxy at the provider side.

One SecretStore in each of five namespaces with the same credentials — the common ESO set-up —
reads each remote key once per refresh interval, not once per store; a store with other
credentials never gets another's cached value (docs/external-secrets.md, "Shared reads across
stores"; docs/security.md, "Shared reads across stores").

The ExternalSecrets here refresh every hour: the first sync is a whole refresh interval's reads,
counted exactly, with no timing in the assertions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.controller.conftest import Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.proxy import CountingProxy
from tests.controller.external.test_reconcile import (
    API,
    MERGE,
    REGION,
    aws_store,
    create,
    es_status,
    external,
    has,
    item,
    opaque,
    ready,
    token_for,
    vault_store,
)
from tests.controller.helpers import CANARY, metrics, secret, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

STORES, KEYS = 5, 20
READ = "/v1/secret/data/"


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_external(k8s_emulator)
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


def namespaces(k8s: K8s, count: int) -> list[str]:
    out = []
    for _ in range(count):
        name = f"sr-{uuid.uuid4().hex[:8]}"
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        out.append(name)
    return out


def gauges(ctl: Controller) -> tuple[float, float]:
    m = metrics(ctl)
    return (m["secretops_externalsecret_cache_entries"],
            m.get("secretops_externalsecret_store_refs", 0.0))


def all_valid(k8s: K8s, nss: list[str], store: str) -> bool:
    return all(ready(k8s, ns, "secretstores", store).get("reason") == "Valid" for ns in nss)


def test_five_namespaced_approle_stores_read_each_key_once_per_interval(
        k8s: K8s, controller: Controller, openbao: OpenBao, tenant: Tenant,
        approle: Any, bao_proxy: CountingProxy) -> None:
    mount, auth = approle
    keys = [f"{tenant.prefix}/k{k:02d}" for k in range(KEYS)]
    for k in keys:
        put(openbao, k, {"v": f"value-of-{k}"})
    nss = namespaces(k8s, STORES)
    for ns in nss:
        create(k8s, opaque(ns, "approle", **{"secret-id": auth.secret_id}))
        create(k8s, vault_store(ns, "vault", bao_proxy.url, {"appRole": {
            "path": mount, "roleId": auth.role_id,
            "secretRef": {"name": "approle", "key": "secret-id"}}}))
    wait_for(lambda: all_valid(k8s, nss, "vault"), what="the five SecretStores Valid")
    entries0, refs0 = gauges(controller)
    bao_proxy.reset()
    for ns in nss:
        for k, key in enumerate(keys):
            create(k8s, external(ns, f"es{k:02d}", "vault", [item("v", key, "v")],
                                 interval="1h"))
    for ns in nss:
        for k, key in enumerate(keys):
            wait_for(lambda n=ns, k=k, key=key: has(k8s, n, f"es{k:02d}", {
                "v": f"value-of-{key}".encode()}), what=f"Secret {ns}/es{k:02d}")
    # one refresh interval's reads: each key once for the five stores (it was 100: 5 x 20),
    # and no login (the one login of the shared identity was made when the stores validated)
    reads = [p for _, p, _ in bao_proxy.requests if p.startswith(READ)]
    assert sorted(reads) == sorted(f"{READ}{k}" for k in keys), len(reads)
    assert bao_proxy.count(path_part="/v1/auth/") == 0
    entries, refs = gauges(controller)
    assert (entries - entries0, refs - refs0) == (KEYS, STORES * KEYS)

    # one read serves the five: a force-sync in one namespace updates all five Secrets
    bao_proxy.reset()
    put(openbao, keys[3], {"v": "rotated"})
    k8s.request("PATCH", f"{API}/namespaces/{nss[0]}/externalsecrets/es03", {
        "metadata": {"annotations": {"secretops.dev/force-sync": "1"}}}, content_type=MERGE)
    for ns in nss:
        wait_for(lambda n=ns: has(k8s, n, "es03", {"v": b"rotated"}), what=f"{ns}/es03")
    assert bao_proxy.count(path_part=READ) == 1


def test_five_namespaced_aws_stores_read_each_key_once_per_interval(
        k8s: K8s, controller: Controller, moto_server: str,
        moto_proxy: CountingProxy) -> None:
    import boto3

    make: Any = boto3.client
    sm = make("secretsmanager", region_name=REGION, endpoint_url=moto_server,
              aws_access_key_id="testing", aws_secret_access_key="testing")
    prefix = f"sr{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}/k{k:02d}" for k in range(KEYS)]
    for k in keys:
        sm.create_secret(Name=k, SecretString=f"value-of-{k}")
    nss = namespaces(k8s, STORES)
    for ns in nss:
        create(k8s, opaque(ns, "aws", id="testing", secret="testing"))
        create(k8s, aws_store(ns, "sm", "SecretsManager", moto_proxy.url))
    wait_for(lambda: all_valid(k8s, nss, "sm"), what="the five SecretStores Valid")
    moto_proxy.reset()
    for ns in nss:
        for k, key in enumerate(keys):
            create(k8s, external(ns, f"es{k:02d}", "sm", [item("v", key)], interval="1h"))
    for ns in nss:
        for k, key in enumerate(keys):
            wait_for(lambda n=ns, k=k, key=key: has(k8s, n, f"es{k:02d}", {
                "v": f"value-of-{key}".encode()}), what=f"Secret {ns}/es{k:02d}")
    read = moto_proxy.keys_read("secretsmanager.BatchGetSecretValue") + moto_proxy.keys_read(
        "secretsmanager.GetSecretValue")
    assert sorted(read) == sorted(keys), read  # each key once (it was 100: 5 x 20)


# ---- never across credentials ------------------------------------------------------------------
def denied(k8s: K8s, ns: str, name: str) -> bool:
    cond = ready(k8s, ns, "externalsecrets", name)
    return cond.get("status") == "False" and "permission denied" in str(cond.get("message"))


@pytest.fixture
def two_tenants(k8s: K8s, openbao: OpenBao, tenant: Tenant) -> Iterator[tuple[str, str, str]]:
    """Namespaces ``a`` (a token that may read the key) and ``b`` (a valid token without that
    right), and the key, holding the canary."""
    key = f"{tenant.prefix}/db"
    put(openbao, key, {"password": CANARY})
    a, b = namespaces(k8s, 2)
    create(k8s, opaque(a, "vault-token", token=token_for(openbao, tenant)))
    lacking = openbao.client().auth.token.create(policies=["default"], ttl="1h")
    create(k8s, opaque(b, "vault-token", token=lacking["auth"]["client_token"]))
    yield a, b, key
    assert secret(k8s, b, "db") is None


def test_a_store_with_other_credentials_is_denied_not_served_the_cached_value(
        k8s: K8s, controller: Controller, openbao: OpenBao,
        bao_proxy: CountingProxy, two_tenants: tuple[str, str, str]) -> None:
    a, b, key = two_tenants
    for ns in (a, b):  # same server, same mount, same key: only the token differs
        create(k8s, vault_store(ns, "vault", bao_proxy.url,
                                {"tokenSecretRef": {"name": "vault-token", "key": "token"}}))
    create(k8s, external(a, "db", "vault", [item("password", key, "password")],
                         interval="1h"))
    wait_for(lambda: has(k8s, a, "db", {"password": CANARY.encode()}), what="a's Secret")
    bao_proxy.reset()
    create(k8s, external(b, "db", "vault", [item("password", key, "password")],
                         interval="1h"))
    wait_for(lambda: denied(k8s, b, "db"), what="b's ExternalSecret denied")
    # b's own reads went to OpenBao with b's token (and were refused): nothing came from
    # a's entry
    assert bao_proxy.count(path_part=f"{READ}{key}") >= 1  # (retried after the denial)
    assert "remoteVersions" not in es_status(k8s, b, "db")


def test_a_cluster_store_read_with_each_namespaces_token_never_shares_across_them(
        k8s: K8s, controller: Controller, bao_proxy: CountingProxy,
        two_tenants: tuple[str, str, str]) -> None:
    """One ClusterSecretStore whose token Secret is read in each ExternalSecret's namespace."""
    a, b, key = two_tenants
    name = f"vault-{uuid.uuid4().hex[:6]}"
    store = vault_store("", name, bao_proxy.url,
                        {"tokenSecretRef": {"name": "vault-token", "key": "token"}})
    store["kind"] = "ClusterSecretStore"
    del store["metadata"]["namespace"]
    create(k8s, store)
    create(k8s, external(a, "db", name, [item("password", key, "password")], interval="1h",
                         kind="ClusterSecretStore"))
    wait_for(lambda: has(k8s, a, "db", {"password": CANARY.encode()}), what="a's Secret")
    bao_proxy.reset()
    create(k8s, external(b, "db", name, [item("password", key, "password")], interval="1h",
                         kind="ClusterSecretStore"))
    wait_for(lambda: denied(k8s, b, "db"), what="b's ExternalSecret denied")
    assert bao_proxy.count(path_part=f"{READ}{key}") >= 1  # (retried after the denial)
