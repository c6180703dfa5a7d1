"""The ExternalSecret reconcile loop, end to end: the controller process (leader election off
is not needed: one replica leads) against the Kubernetes API emulator, the real OpenBao dev
server (KV v2; token and AppRole) and moto (Secrets Manager, Parameter Store).

Refresh intervals are 1 s (by configuration, not sleeps); every wait polls with a deadline.
The canary plaintext is a remote value throughout: it must reach the Secret and nothing else
(logs, Events, statuses).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import Controller, prepare_cluster
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.proxy import CountingProxy
from tests.controller.helpers import CANARY, events, secret, values, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

CRDS = Path(__file__).resolve().parents[3] / "crds"
API = "/apis/secretops.dev/v1alpha1"
MERGE = "application/merge-patch+json"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_cluster(k8s_emulator)
    for f in ("secretstore.yaml", "clustersecretstore.yaml", "externalsecret.yaml"):
        k8s_emulator.kubectl("apply", "-f", str(CRDS / f))
    for crd in ("secretstores", "clustersecretstores", "externalsecrets"):
        k8s_emulator.kubectl("wait", "--for=condition=Established",
                             f"crd/{crd}.secretops.dev")
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


@pytest.fixture
def ns(controller: Controller, k8s: K8s) -> Iterator[str]:
    name = f"es-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    # nothing of a value in this namespace's Events and statuses, nor in the controller's log
    assert CANARY not in json.dumps(events(k8s, name))
    for plural in ("externalsecrets", "secretstores"):
        _, body, _ = k8s.request("GET", f"{API}/namespaces/{name}/{plural}")
        assert CANARY not in json.dumps([i.get("status") for i in body.get("items") or []])
    assert CANARY not in controller.logs()


# ---- helpers ---------------------------------------------------------------------------------
def create(k8s: K8s, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    if obj["kind"] == "Secret":
        p = f"/api/v1/namespaces/{meta['namespace']}/secrets"
    elif obj["kind"] == "ClusterSecretStore":
        p = f"{API}/clustersecretstores"
    else:
        plural = {"SecretStore": "secretstores", "ExternalSecret": "externalsecrets"}[obj["kind"]]
        p = f"{API}/namespaces/{meta['namespace']}/{plural}"
    status, body, _ = k8s.request("POST", p, {"apiVersion": "v1" if obj["kind"] == "Secret"
                                              else "secretops.dev/v1alpha1", **obj})
    assert status == 201, body


def opaque(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def vault_store(ns: str, name: str, server: str, auth: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "SecretStore", "metadata": {"name": name, "namespace": ns},
            "spec": {"provider": {"vault": {"server": server, "auth": auth}}}}


def external(ns: str, name: str, store: str, data: list[dict[str, Any]], /, *,
             interval: str = "1s", kind: str = "SecretStore", **target: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"secretStoreRef": {"name": store, "kind": kind},
                            "refreshInterval": interval, "data": data}
    if target:
        spec["target"] = target
    return {"kind": "ExternalSecret", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def item(secret_key: str, key: str, prop: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"key": key}
    if prop:
        ref["property"] = prop
    return {"secretKey": secret_key, "remoteRef": ref}


def get(k8s: K8s, p: str) -> dict[str, Any]:
    status, body, _ = k8s.request("GET", p)
    return dict(body) if status == 200 else {}


def ready(k8s: K8s, ns: str | None, plural: str, name: str) -> dict[str, Any]:
    p = f"{API}/{plural}/{name}" if ns is None else f"{API}/namespaces/{ns}/{plural}/{name}"
    for c in (get(k8s, p).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return {}


def es_status(k8s: K8s, ns: str, name: str) -> dict[str, Any]:
    return dict(get(k8s, f"{API}/namespaces/{ns}/externalsecrets/{name}").get("status") or {})


def has(k8s: K8s, ns: str, name: str, expected: dict[str, bytes]) -> bool:
    return values(secret(k8s, ns, name)) == expected


def token_for(openbao: OpenBao, tenant: Tenant) -> str:
    out = openbao.client().auth.token.create(policies=[tenant.policy], ttl="1h")
    return str(out["auth"]["client_token"])


def token_store(k8s: K8s, openbao: OpenBao, tenant: Tenant, ns: str, name: str = "vault",
                server: str | None = None) -> None:
    create(k8s, opaque(ns, f"{name}-token", token=token_for(openbao, tenant)))
    create(k8s, vault_store(ns, name, server or openbao.url,
                            {"tokenSecretRef": {"name": f"{name}-token", "key": "token"}}))


# ---- Vault -----------------------------------------------------------------------------------
def test_vault_token_sync_rotation_force_sync_and_drift(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/db"
    put(openbao, key, {"password": CANARY, "user": "app"})
    token_store(k8s, openbao, tenant, ns)
    wait_for(lambda: ready(k8s, ns, "secretstores", "vault").get("reason") == "Valid",
             what="SecretStore Valid")
    create(k8s, external(ns, "db", "vault", [item("password", key, "password"),
                                             item("user", key, "user")]))
    wait_for(lambda: has(k8s, ns, "db", {"password": CANARY.encode(), "user": b"app"}),
             what="Secret created")
    s = secret(k8s, ns, "db") or {}
    [ref] = s["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("ExternalSecret", "db", True)
    assert "secretops.dev/data-hash" in s["metadata"]["annotations"]
    cond = wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", "db")).get(
        "reason") == "SecretSynced" and c, what="Ready SecretSynced")
    assert cond["status"] == "True"
    status = es_status(k8s, ns, "db")
    assert status["remoteVersions"] == {key: "1"}
    assert status["refreshTime"] and status["syncedResourceVersion"].startswith("1-")

    # upstream rotation: updated within the 1 s interval (a few seconds of slack here)
    put(openbao, key, {"password": "rotated", "user": "app"})
    wait_for(lambda: has(k8s, ns, "db", {"password": b"rotated", "user": b"app"}),
             timeout=5, what="Secret updated after rotation")
    wait_for(lambda: es_status(k8s, ns, "db").get("remoteVersions") == {key: "2"},
             what="remoteVersions 2")

    # deleted or edited by hand: restored at once (the scheduler alone would not notice)
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/db")
    wait_for(lambda: has(k8s, ns, "db", {"password": b"rotated", "user": b"app"}),
             timeout=5, what="deleted Secret restored")
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/db",
                {"data": {"password": base64.b64encode(b"edited").decode()}}, MERGE)
    wait_for(lambda: has(k8s, ns, "db", {"password": b"rotated", "user": b"app"}),
             timeout=5, what="edited Secret restored")

    # force-sync: an ExternalSecret refreshed hourly reads again when the annotation changes
    other = f"{tenant.prefix}/api"
    put(openbao, other, {"k": "one"})
    create(k8s, external(ns, "hourly", "vault", [item("k", other, "k")], interval="1h"))
    wait_for(lambda: has(k8s, ns, "hourly", {"k": b"one"}), what="hourly Secret created")
    put(openbao, other, {"k": "two"})
    k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/hourly",
                {"metadata": {"annotations": {"secretops.dev/force-sync": "1"}}}, MERGE)
    wait_for(lambda: has(k8s, ns, "hourly", {"k": b"two"}), timeout=5, what="force-synced")
    assert [e for e in events(k8s, ns, "db") if e["reason"] == "SecretSynced"]


def test_approle_store_and_creation_policies(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant,
        approle: tuple[str, Any]) -> None:
    mount, auth = approle
    key = f"{tenant.prefix}/app"
    put(openbao, key, {"v": CANARY})
    create(k8s, opaque(ns, "approle", secret_id=auth.secret_id))
    create(k8s, vault_store(ns, "bao", openbao.url, {"appRole": {
        "path": mount, "roleId": auth.role_id,
        "secretRef": {"name": "approle", "key": "secret_id"}}}))
    wait_for(lambda: ready(k8s, ns, "secretstores", "bao").get("reason") == "Valid",
             what="AppRole store Valid")

    # Merge: into an existing Secret, whose other keys stay; none → SecretMissing
    create(k8s, opaque(ns, "existing", other="kept"))
    create(k8s, external(ns, "merge", "bao", [item("v", key, "v")],
                         name="existing", creationPolicy="Merge"))
    wait_for(lambda: has(k8s, ns, "existing", {"other": b"kept", "v": CANARY.encode()}),
             what="merged")
    assert not (secret(k8s, ns, "existing") or {})["metadata"].get("ownerReferences")
    create(k8s, external(ns, "merge-none", "bao", [item("v", key, "v")],
                         name="absent", creationPolicy="Merge"))
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "merge-none").get("reason")
             == "SecretMissing", what="SecretMissing")
    assert secret(k8s, ns, "absent") is None

    # Orphan: written, no ownerReference; None: nothing written, still Ready
    create(k8s, external(ns, "orphan", "bao", [item("v", key, "v")], creationPolicy="Orphan"))
    wait_for(lambda: has(k8s, ns, "orphan", {"v": CANARY.encode()}), what="orphan Secret")
    assert not (secret(k8s, ns, "orphan") or {})["metadata"].get("ownerReferences")
    create(k8s, external(ns, "none", "bao", [item("v", key, "v")], creationPolicy="None"))
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "none").get("reason") == "SecretSynced",
             what="None synced")
    assert secret(k8s, ns, "none") is None


def test_deletion_policy_delete_when_the_remote_key_disappears(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/gone"
    put(openbao, key, {"v": CANARY})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, external(ns, "del", "vault", [item("v", key, "v")], deletionPolicy="Delete"))
    create(k8s, external(ns, "keep", "vault", [item("v", key, "v")]))
    wait_for(lambda: has(k8s, ns, "del", {"v": CANARY.encode()})
             and has(k8s, ns, "keep", {"v": CANARY.encode()}), what="Secrets created")
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(key, mount_point="secret")
    wait_for(lambda: secret(k8s, ns, "del") is None, timeout=5, what="Secret deleted")
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "del").get("reason") == "SecretDeleted",
             what="SecretDeleted")
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "keep").get("reason")
             == "SecretSyncedError", what="Retain reports the missing key")
    assert has(k8s, ns, "keep", {"v": CANARY.encode()})  # Retain (the default) keeps it
    put(openbao, key, {"v": "back"})
    wait_for(lambda: has(k8s, ns, "del", {"v": b"back"}), timeout=5, what="Secret back")


def test_cluster_store_refused_outside_its_namespace_selector(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/shared"
    put(openbao, key, {"v": CANARY})
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
        "team": tenant.prefix}}}, MERGE)
    outside = f"{ns}-x"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": outside}})
    create(k8s, opaque(ns, "bao-token", token=token_for(openbao, tenant)))
    store = f"css-{tenant.prefix}"
    create(k8s, {"kind": "ClusterSecretStore", "metadata": {"name": store}, "spec": {
        "provider": {"vault": {"server": openbao.url, "auth": {"tokenSecretRef": {
            "name": "bao-token", "key": "token", "namespace": ns}}}},
        "conditions": [{"namespaceSelector": {"matchLabels": {"team": tenant.prefix}}}]}})
    wait_for(lambda: ready(k8s, None, "clustersecretstores", store).get("reason") == "Valid",
             what="ClusterSecretStore Valid")
    create(k8s, external(ns, "in", store, [item("v", key, "v")], kind="ClusterSecretStore"))
    create(k8s, external(outside, "out", store, [item("v", key, "v")],
                         kind="ClusterSecretStore"))
    wait_for(lambda: has(k8s, ns, "in", {"v": CANARY.encode()}), what="allowed namespace")
    cond = wait_for(lambda: (c := ready(k8s, outside, "externalsecrets", "out")) and c,
                    what="refused")
    assert (cond["status"], cond["reason"]) == ("False", "StoreNotAllowed")
    assert secret(k8s, outside, "out") is None
    assert CANARY not in json.dumps(events(k8s, outside))


def test_provider_outage_keeps_the_last_good_secret_and_recovers(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, bao_proxy: CountingProxy) -> None:
    key = f"{tenant.prefix}/flaky"
    put(openbao, key, {"v": CANARY})
    token_store(k8s, openbao, tenant, ns, server=bao_proxy.url)
    create(k8s, external(ns, "flaky", "vault", [item("v", key, "v")]))
    wait_for(lambda: has(k8s, ns, "flaky", {"v": CANARY.encode()}), what="synced")
    bao_proxy.cut = True
    put(openbao, key, {"v": "after"})
    cond = wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", "flaky")).get(
        "status") == "False" and c, timeout=10, what="condition False")
    assert cond["reason"] == "ProviderUnavailable"
    assert has(k8s, ns, "flaky", {"v": CANARY.encode()})  # the last good Secret stays
    # deleted during the outage: restored from the last good values
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/flaky")
    wait_for(lambda: has(k8s, ns, "flaky", {"v": CANARY.encode()}), timeout=5,
             what="restored during the outage")
    bao_proxy.cut = False
    wait_for(lambda: has(k8s, ns, "flaky", {"v": b"after"}), timeout=10, what="recovered")
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "flaky").get("status") == "True",
             what="Ready again")
    assert [e for e in events(k8s, ns, "flaky") if e["reason"] == "ProviderUnavailable"]


def test_invalid_credentials_and_missing_store(
        k8s: K8s, ns: str, openbao: OpenBao) -> None:
    create(k8s, opaque(ns, "bad-token", token="not-a-token"))
    create(k8s, vault_store(ns, "bad", openbao.url,
                            {"tokenSecretRef": {"name": "bad-token", "key": "token"}}))
    cond = wait_for(lambda: (c := ready(k8s, ns, "secretstores", "bad")) and c,
                    what="store condition")
    assert (cond["status"], cond["reason"]) == ("False", "InvalidProviderConfig")
    create(k8s, external(ns, "lost", "nowhere", [item("v", "x", "v")]))
    cond = wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", "lost")) and c,
                    what="ExternalSecret condition")
    assert (cond["status"], cond["reason"]) == ("False", "StoreNotReady")


# ---- AWS (moto) ------------------------------------------------------------------------------
def aws_store(ns: str, name: str, service: str, endpoint: str) -> dict[str, Any]:
    return {"kind": "SecretStore", "metadata": {"name": name, "namespace": ns}, "spec": {
        "provider": {"aws": {"service": service, "region": REGION, "endpoint": endpoint,
                             "auth": {"secretRef": {
                                 "accessKeyIDSecretRef": {"name": "aws", "key": "id"},
                                 "secretAccessKeySecretRef": {"name": "aws", "key": "secret"},
                             }}}}}}


def test_aws_secrets_manager_and_parameter_store(
        k8s: K8s, ns: str, moto_server: str) -> None:
    import boto3

    kw: dict[str, Any] = {"region_name": REGION, "endpoint_url": moto_server,
                          "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sm, ssm = boto3.client("secretsmanager", **kw), boto3.client("ssm", **kw)
    name = f"{ns}/db"
    sm.create_secret(Name=name, SecretString=json.dumps({"password": CANARY}))
    param = f"/{ns}/token"
    ssm.put_parameter(Name=param, Value=CANARY, Type="SecureString")
    create(k8s, opaque(ns, "aws", id="testing", secret="testing"))
    create(k8s, aws_store(ns, "sm", "SecretsManager", moto_server))
    create(k8s, aws_store(ns, "ssm", "ParameterStore", moto_server))
    for store in ("sm", "ssm"):
        wait_for(lambda s=store: ready(k8s, ns, "secretstores", s).get("reason") == "Valid",
                 what=f"{store} Valid")
    create(k8s, external(ns, "from-sm", "sm", [item("password", name, "password")]))
    create(k8s, external(ns, "from-ssm", "ssm", [item("token", param)]))
    wait_for(lambda: has(k8s, ns, "from-sm", {"password": CANARY.encode()}), what="SM")
    wait_for(lambda: has(k8s, ns, "from-ssm", {"token": CANARY.encode()}), what="SSM")
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"password": "rotated"}))
    ssm.put_parameter(Name=param, Value="rotated", Type="SecureString", Overwrite=True)
    wait_for(lambda: has(k8s, ns, "from-sm", {"password": b"rotated"}), timeout=5,
             what="SM rotated")
    wait_for(lambda: has(k8s, ns, "from-ssm", {"token": b"rotated"}), timeout=5,
             what="SSM rotated")
