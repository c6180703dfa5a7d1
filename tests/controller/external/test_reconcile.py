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
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controller.conftest import Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.proxy import CountingProxy
from tests.controller.helpers import (
    CANARY,
    events,
    healthy_throughout,
    secret,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao
from tests.helpers import assert_no_canary

CRDS = Path(__file__).resolve().parents[3] / "crds"
API = "/apis/secretops.dev/v1alpha1"
MERGE = "application/merge-patch+json"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_external(k8s_emulator)
    # rollouts: a short window; the emulator runs no workload controller, so no roll is ever
    # reported done: each frees its place in the budget after a second (test_rollout.py follows
    # the budget with workloads that report progress)
    ctl: Controller = start_controller("--key-renew-period", "0", "--rollout-window", "0.2s",
                                       "--rollout-timeout", "1s")
    return ctl


@pytest.fixture
def ns(controller: Controller, k8s: K8s) -> Iterator[str]:
    name = f"es-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    # nothing of a value in this namespace's Events and statuses, nor in the controller's log
    # (the module's teardown scans every namespace again: scan_for_canary)
    assert_no_canary(json.dumps(events(k8s, name)), f"the Events of {name}")
    for plural in ("externalsecrets", "secretstores"):
        _, body, _ = k8s.request("GET", f"{API}/namespaces/{name}/{plural}")
        assert_no_canary(json.dumps([i.get("status") for i in body.get("items") or []]),
                         f"the {plural} statuses of {name}")
    assert_no_canary(controller.logs(), "the controller log")


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


def validated_store(k8s: K8s, openbao: OpenBao, tenant: Tenant, ns: str, name: str,
                    interval: str) -> str:
    """A Valid SecretStore ``name`` validated every ``interval``, its token in Secret
    ``<name>-token``; the token."""
    token = token_for(openbao, tenant)
    create(k8s, opaque(ns, f"{name}-token", token=token))
    store = vault_store(ns, name, openbao.url, {"tokenSecretRef": {"name": f"{name}-token",
                                                                   "key": "token"}})
    store["spec"]["refreshInterval"] = interval
    create(k8s, store)
    wait_for(lambda: ready(k8s, ns, "secretstores", name).get("reason") == "Valid",
             what="store Valid")
    return token


def selector_store(k8s: K8s, openbao: OpenBao, tenant: Tenant, ns: str, name: str) -> str:
    """A Valid ClusterSecretStore ``name`` (its token in ``ns``) for the namespaces labelled
    ``team=<tenant prefix>``."""
    create(k8s, opaque(ns, "bao-token", token=token_for(openbao, tenant)))
    store = f"{name}-{tenant.prefix}"
    create(k8s, {"kind": "ClusterSecretStore", "metadata": {"name": store}, "spec": {
        "provider": {"vault": {"server": openbao.url, "auth": {"tokenSecretRef": {
            "name": "bao-token", "key": "token", "namespace": ns}}}},
        "conditions": [{"namespaceSelector": {"matchLabels": {"team": tenant.prefix}}}]}})
    wait_for(lambda: ready(k8s, None, "clustersecretstores", store).get("reason") == "Valid",
             what="ClusterSecretStore Valid")
    return store


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


def test_data_from_extract_find_and_a_template_end_to_end(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """dataFrom.extract explodes a JSON secret, dataFrom.find collects secrets under a path
    whose keys match (the regexp sees the whole key, as in ESO), data[] adds its keys, and an
    ESO-style template (converted Go forms) makes the Secret's data, type and labels; a new
    secret under the path appears at the next refresh."""
    p = tenant.prefix
    put(openbao, f"{p}/db", {"user": "app", "password": CANARY, "port": 5432})
    put(openbao, f"{p}/certs/api-cert", {"v": "C1"})
    put(openbao, f"{p}/certs/api-key", {"v": "K1"})
    put(openbao, f"{p}/certs/other", {"v": "no"})
    token_store(k8s, openbao, tenant, ns)
    es = external(ns, "from", "vault", [item("user", f"{p}/db", "user")], template={
        "type": "kubernetes.io/basic-auth",
        "metadata": {"labels": {"app": "web"}},
        "mergePolicy": "Merge",
        "data": {"username": "{{ .user }}", "dsn": "postgres://{{ .user }}:{{ .password }}"
                                                   "@db:{{ .port }}/app"}})
    es["spec"]["dataFrom"] = [{"extract": {"key": f"{p}/db"}},
                              {"find": {"path": f"{p}/certs", "name": {"regexp": "/api-[^/]*$"}}}]
    create(k8s, es)
    found_a = f"{p}/certs/api-cert".replace("/", "_")
    found_b = f"{p}/certs/api-key".replace("/", "_")

    def expected(extra: dict[str, bytes]) -> dict[str, bytes]:
        return {"user": b"app", "password": CANARY.encode(), "port": b"5432",
                "username": b"app", "dsn": f"postgres://app:{CANARY}@db:5432/app".encode(),
                found_a: b'{"v":"C1"}', found_b: b'{"v":"K1"}', **extra}

    wait_for(lambda: has(k8s, ns, "from", expected({})), what="dataFrom + template")
    s = secret(k8s, ns, "from") or {}
    assert s["type"] == "kubernetes.io/basic-auth"
    assert s["metadata"]["labels"]["app"] == "web"
    put(openbao, f"{p}/certs/api-new", {"v": "N1"})
    wait_for(lambda: has(k8s, ns, "from", expected({
        f"{p}/certs/api-new".replace("/", "_"): b'{"v":"N1"}'})), timeout=5,
        what="a new secret found at the next refresh")


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


def test_deletion_policy_delete_drops_keys_and_unmerges_as_eso(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """ESO's semantics: a Secret loses the keys of remote secrets that are gone and is deleted
    only once all are gone; merged into an existing Secret, only the merged keys are taken out
    (and keys a Merge no longer produces go too)."""
    one, two = f"{tenant.prefix}/one", f"{tenant.prefix}/two"
    put(openbao, one, {"v": CANARY})
    put(openbao, two, {"v": "second"})
    token_store(k8s, openbao, tenant, ns)
    both = [item("a", one, "v"), item("b", two, "v")]
    create(k8s, external(ns, "owned", "vault", both, deletionPolicy="Delete"))
    create(k8s, opaque(ns, "shared", mine="kept"))
    create(k8s, external(ns, "merged", "vault", both, name="shared", creationPolicy="Merge",
                         deletionPolicy="Delete"))
    wait_for(lambda: has(k8s, ns, "owned", {"a": CANARY.encode(), "b": b"second"})
             and has(k8s, ns, "shared", {"mine": b"kept", "a": CANARY.encode(),
                                         "b": b"second"}), what="Secrets written")

    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(two, mount_point="secret")
    wait_for(lambda: has(k8s, ns, "owned", {"a": CANARY.encode()})
             and has(k8s, ns, "shared", {"mine": b"kept", "a": CANARY.encode()}), timeout=5,
             what="the gone key dropped")
    assert ready(k8s, ns, "externalsecrets", "owned").get("reason") == "SecretSynced"

    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(one, mount_point="secret")
    wait_for(lambda: secret(k8s, ns, "owned") is None
             and has(k8s, ns, "shared", {"mine": b"kept"}), timeout=5,
             what="owned Secret deleted, merged keys removed")
    shared = secret(k8s, ns, "shared") or {}
    assert not any(k.startswith("secretops.dev/")
                   for k in shared["metadata"].get("annotations") or {})
    assert "secretops.dev/managed" not in (shared["metadata"].get("labels") or {})
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "merged").get("reason")
             == "SecretDeleted", what="SecretDeleted for the Merge")

    # back: merged again; then the spec no longer asks for b: the merged b goes, mine stays
    put(openbao, one, {"v": "one-back"})
    put(openbao, two, {"v": "two-back"})
    wait_for(lambda: has(k8s, ns, "shared", {"mine": b"kept", "a": b"one-back",
                                             "b": b"two-back"}), timeout=5, what="re-merged")
    status, body, _ = k8s.request(
        "PATCH", f"{API}/namespaces/{ns}/externalsecrets/merged",
        {"spec": {"data": [item("a", one, "v")]}}, MERGE)
    assert status == 200, body
    wait_for(lambda: has(k8s, ns, "shared", {"mine": b"kept", "a": b"one-back"}),
             what="a key the Merge no longer produces removed")


def test_two_externalsecrets_merge_into_one_secret_and_leave_it_one_by_one(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    one, two = f"{tenant.prefix}/m1", f"{tenant.prefix}/m2"
    put(openbao, one, {"v": CANARY})
    put(openbao, two, {"v": "two"})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, opaque(ns, "app", own="kept"))
    for es, key, remote in (("m1", "a", one), ("m2", "b", two)):
        create(k8s, external(ns, es, "vault", [item(key, remote, "v")], name="app",
                             creationPolicy="Merge", deletionPolicy="Delete"))
    wait_for(lambda: has(k8s, ns, "app", {"own": b"kept", "a": CANARY.encode(), "b": b"two"}),
             what="both merged")
    put(openbao, two, {"v": "two-again"})  # m2 writes again: m1's key must stay
    wait_for(lambda: has(k8s, ns, "app", {"own": b"kept", "a": CANARY.encode(),
                                          "b": b"two-again"}), timeout=5, what="m2 updated")
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(one, mount_point="secret")
    wait_for(lambda: has(k8s, ns, "app", {"own": b"kept", "b": b"two-again"}), timeout=5,
             what="only m1's key removed")
    assert "secretops.dev/managed" in (secret(k8s, ns, "app") or {})["metadata"]["labels"]
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(two, mount_point="secret")
    wait_for(lambda: has(k8s, ns, "app", {"own": b"kept"}), timeout=5, what="m2's key removed")
    left = (secret(k8s, ns, "app") or {})["metadata"]
    assert not any(k.startswith("secretops.dev/") for k in left.get("annotations") or {})
    assert "secretops.dev/managed" not in (left.get("labels") or {})


def test_cluster_store_refused_outside_its_namespace_selector(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/shared"
    put(openbao, key, {"v": CANARY})
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
        "team": tenant.prefix}}}, MERGE)
    outside = f"{ns}-x"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": outside}})
    store = selector_store(k8s, openbao, tenant, ns, "css")
    create(k8s, external(ns, "in", store, [item("v", key, "v")], kind="ClusterSecretStore"))
    create(k8s, external(outside, "out", store, [item("v", key, "v")],
                         kind="ClusterSecretStore"))
    wait_for(lambda: has(k8s, ns, "in", {"v": CANARY.encode()}), what="allowed namespace")
    cond = wait_for(lambda: (c := ready(k8s, outside, "externalsecrets", "out")) and c,
                    what="refused")
    assert (cond["status"], cond["reason"]) == ("False", "StoreNotAllowed")
    assert secret(k8s, outside, "out") is None
    assert CANARY not in json.dumps(events(k8s, outside))


def test_cluster_store_conditions_follow_watched_namespace_labels(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """A namespaceSelector condition is matched against the namespaces as watched: no read of
    the namespace per ExternalSecret (before: a GET each), and a label change takes effect at
    once — the namespace's ExternalSecrets of ClusterSecretStores are registered again."""
    key = f"{tenant.prefix}/labels"
    put(openbao, key, {"v": CANARY})
    other = f"{ns}-y"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": other}})
    names = [ns, other]
    k8s.delay(1, count=1000, match={"verb": "get", "resource": "namespaces", "name": names})
    try:
        k8s.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
            "team": tenant.prefix}}}, MERGE)
        store = selector_store(k8s, openbao, tenant, ns, "cssl")
        for i in range(4):
            create(k8s, external(ns, f"in{i}", store, [item("v", key, "v")],
                                 kind="ClusterSecretStore"))
        create(k8s, external(other, "out", store, [item("v", key, "v")],
                             kind="ClusterSecretStore"))
        for i in range(4):
            wait_for(lambda n=f"in{i}": has(k8s, ns, n, {"v": CANARY.encode()}),
                     what="allowed namespace")
        wait_for(lambda: ready(k8s, other, "externalsecrets", "out").get(
            "reason") == "StoreNotAllowed", what="refused")
        # labelled now: allowed, without any change to the ExternalSecret
        k8s.request("PATCH", f"/api/v1/namespaces/{other}", {"metadata": {"labels": {
            "team": tenant.prefix}}}, MERGE)
        wait_for(lambda: has(k8s, other, "out", {"v": CANARY.encode()}), timeout=10,
                 what="allowed once its namespace is labelled")
        # the label removed: refused again
        k8s.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
            "team": None}}}, MERGE)
        wait_for(lambda: ready(k8s, ns, "externalsecrets", "in0").get(
            "reason") == "StoreNotAllowed", timeout=10, what="refused once unlabelled")
        [rule] = [r for r in k8s.faults()["rules"] if r["match"].get("name") == names]
    finally:
        k8s.clear_faults()
    assert rule["remaining"] == 1000, "a namespace was read for an ExternalSecret"


def test_a_namespace_first_seen_after_the_first_list_lets_its_refused_externalsecrets_in(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """A namespace created while the namespace watch is away (cut, and its resumption held up
    here) is not known when its ExternalSecret registers: refused. When the watch sees it,
    its ExternalSecrets of ClusterSecretStores are registered again and sync."""
    key = f"{tenant.prefix}/late-ns"
    put(openbao, key, {"v": CANARY})
    store = selector_store(k8s, openbao, tenant, ns, "cssn")
    late = f"{ns}-late"
    # a cut watch resumes from its last version (kube.Kube.watch): hold that request up
    k8s.delay(5000, count=1, match={"verb": "watch", "resource": "namespaces"})
    k8s.drop_watches()
    try:
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {
            "name": late, "labels": {"team": tenant.prefix}}})
        create(k8s, external(late, "es", store, [item("v", key, "v")],
                             kind="ClusterSecretStore"))
        wait_for(lambda: ready(k8s, late, "externalsecrets", "es").get(
            "reason") == "StoreNotAllowed", what="refused: its namespace not watched yet")
        wait_for(lambda: has(k8s, late, "es", {"v": CANARY.encode()}), timeout=15,
                 what="synced once the namespace is listed")
    finally:
        k8s.clear_faults()


def test_a_namespace_not_watched_yet_matches_no_namespace_selector(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """A ClusterSecretStore for every namespace not labelled ``tier=untrusted`` (NotIn). An
    untrusted namespace and its ExternalSecret created while the namespace watch is away: its
    labels are not known, and an unknown namespace matches no selector — refused, saying so
    (before: taken as unlabelled, so NotIn let it in and it synced). Once the namespace is
    listed, it is registered again and refused for its labels."""
    key = f"{tenant.prefix}/untrusted"
    put(openbao, key, {"v": CANARY})
    create(k8s, opaque(ns, "bao-token", token=token_for(openbao, tenant)))
    store = f"cssu-{tenant.prefix}"
    create(k8s, {"kind": "ClusterSecretStore", "metadata": {"name": store}, "spec": {
        "provider": {"vault": {"server": openbao.url, "auth": {"tokenSecretRef": {
            "name": "bao-token", "key": "token", "namespace": ns}}}},
        "conditions": [{"namespaceSelector": {"matchExpressions": [
            {"key": "tier", "operator": "NotIn", "values": ["untrusted"]}]}}]}})
    wait_for(lambda: ready(k8s, None, "clustersecretstores", store).get("reason") == "Valid",
             what="ClusterSecretStore Valid")
    late = f"{ns}-untrusted"
    # a cut watch resumes from its last version (kube.Kube.watch): hold that request up
    k8s.delay(3000, count=1, match={"verb": "watch", "resource": "namespaces"})
    k8s.drop_watches()
    try:
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {
            "name": late, "labels": {"tier": "untrusted"}}})
        create(k8s, external(late, "es", store, [item("v", key, "v")],
                             kind="ClusterSecretStore"))
        cond = wait_for(lambda: (c := ready(k8s, late, "externalsecrets", "es")) and c,
                        what="a condition")
        assert cond["reason"] == "StoreNotAllowed", cond
        assert "not seen by the namespace watch yet" in cond["message"]
        wait_for(lambda: "may not be used from namespace" in ready(
            k8s, late, "externalsecrets", "es").get("message", ""), timeout=15,
            what="refused for its labels once listed")
    finally:
        k8s.clear_faults()
    assert secret(k8s, late, "es") is None


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


def test_stores_are_validated_again_periodically(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """spec.refreshInterval of a store: a revoked token turns the store not Ready without any
    change to it; a new token in the Secret makes it Valid again, and its ExternalSecret syncs
    with the new credentials."""
    key = f"{tenant.prefix}/revalidated"
    put(openbao, key, {"v": CANARY})
    token = validated_store(k8s, openbao, tenant, ns, "rev", "1s")
    create(k8s, external(ns, "rev", "rev", [item("v", key, "v")], interval="1h"))
    wait_for(lambda: has(k8s, ns, "rev", {"v": CANARY.encode()}), what="synced")
    openbao.client().auth.token.revoke(token)
    cond = wait_for(lambda: (c := ready(k8s, ns, "secretstores", "rev")).get(
        "status") == "False" and c, timeout=10, what="store not Ready after revocation")
    assert cond["reason"] == "InvalidProviderConfig" and "permission denied" in cond["message"]
    assert [e for e in events(k8s, ns, "rev") if e["reason"] == "InvalidProviderConfig"]
    put(openbao, key, {"v": "with-the-new-token"})
    new = base64.b64encode(token_for(openbao, tenant).encode()).decode()
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/rev-token",
                {"data": {"token": new}}, MERGE)
    wait_for(lambda: ready(k8s, ns, "secretstores", "rev").get("reason") == "Valid",
             timeout=10, what="store Valid with the new token")
    wait_for(lambda: has(k8s, ns, "rev", {"v": b"with-the-new-token"}), timeout=10,
             what="the ExternalSecret read with the new credentials")


def test_a_rotated_token_reaches_a_new_externalsecret_before_the_stores_next_validation(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """The credentials of a store are resolved once per store version, not per ExternalSecret.
    A token rotated in its Secret (the old one revoked) is read again at the first denial: a
    new ExternalSecret syncs, and so does the one already synced, long before the store's next
    validation (its refreshInterval: 1h here). Before, both stayed denied until then."""
    old, new = f"{tenant.prefix}/cred-old", f"{tenant.prefix}/cred-new"
    put(openbao, old, {"v": CANARY})
    put(openbao, new, {"v": "second"})
    token = validated_store(k8s, openbao, tenant, ns, "cred", "1h")
    create(k8s, external(ns, "first", "cred", [item("v", old, "v")]))
    wait_for(lambda: has(k8s, ns, "first", {"v": CANARY.encode()}), what="first synced")
    rotated = base64.b64encode(token_for(openbao, tenant).encode()).decode()
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/cred-token",
                {"data": {"token": rotated}}, MERGE)
    openbao.client().auth.token.revoke(token)
    create(k8s, external(ns, "second", "cred", [item("v", new, "v")]))
    wait_for(lambda: has(k8s, ns, "second", {"v": b"second"}), timeout=10,
             what="the new ExternalSecret read with the rotated token")
    put(openbao, old, {"v": "after-rotation"})
    wait_for(lambda: has(k8s, ns, "first", {"v": b"after-rotation"}), timeout=10,
             what="the first ExternalSecret read with the rotated token")


def test_an_upgraded_externalsecret_syncs_with_one_status_write(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """An ExternalSecret that still carries the previous version's kopf annotations: their
    removal (a patch) moves its resourceVersion on, and the status write that follows is
    guarded with the version that patch returned — one status write, not a 409 and a sync
    again (before: two writes per upgraded ExternalSecret)."""
    key = f"{tenant.prefix}/upgraded"
    put(openbao, key, {"v": CANARY})
    token_store(k8s, openbao, tenant, ns, "up")
    wait_for(lambda: ready(k8s, ns, "secretstores", "up").get("reason") == "Valid",
             what="store Valid")
    # the key is cached already (another ExternalSecret reads it): the upgraded one's sync
    # writes its status from its watch event's body, guarded by that body's resourceVersion
    create(k8s, external(ns, "first", "up", [item("v", key, "v")], interval="1h"))
    wait_for(lambda: has(k8s, ns, "first", {"v": CANARY.encode()}), what="first synced")
    k8s.delay(1, count=1000, match={"verb": "patch", "resource": "externalsecrets/status",
                                    "namespace": ns, "name": "old"})
    try:
        es = external(ns, "old", "up", [item("v", key, "v")], interval="1h")
        es["metadata"]["annotations"] = {
            "secretops.dev/last-handled-configuration": '{"spec":{}}',
            "secretops.dev/kopf-managed": "yes"}
        create(k8s, es)
        wait_for(lambda: ready(k8s, ns, "externalsecrets", "old").get(
            "reason") == "SecretSynced", what="synced")
        wait_for(lambda: not get(k8s, f"{API}/namespaces/{ns}/externalsecrets/old")[
            "metadata"].get("annotations"), what="kopf's annotations removed")
        [rule] = [r for r in k8s.faults()["rules"] if r["match"].get("name") == ["old"]]
    finally:
        k8s.clear_faults()
    assert 1000 - rule["remaining"] == 1, "status writes"


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


# ---- rollout ---------------------------------------------------------------------------------
def workload(ns: str, kind: str, name: str, annotations: dict[str, str] | None = None, *,
             env_secret: str | None = None, volume_secret: str | None = None,
             projected_secret: str | None = None, paused: bool = False) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if env_secret:
        container["env"] = [{"name": "P", "valueFrom": {"secretKeyRef": {
            "name": env_secret, "key": "password"}}}]
    volumes: list[dict[str, Any]] = []
    if volume_secret:
        volumes.append({"name": "s", "secret": {"secretName": volume_secret}})
    if projected_secret:
        volumes.append({"name": "p", "projected": {"sources": [
            {"secret": {"name": projected_secret}}]}})
    spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": {
        "metadata": {"labels": labels},
        "spec": {"containers": [container], "volumes": volumes}}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
            "spec": spec}


PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def create_workload(k8s: K8s, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    status, body, _ = k8s.request(
        "POST", f"/apis/apps/v1/namespaces/{meta['namespace']}/{PLURALS[obj['kind']]}", obj)
    assert status == 201, body


def template_annotations(k8s: K8s, ns: str, kind: str, name: str) -> dict[str, str]:
    obj = get(k8s, f"/apis/apps/v1/namespaces/{ns}/{PLURALS[kind]}/{name}")
    return dict(obj["spec"]["template"]["metadata"].get("annotations") or {})


def restarted(k8s: K8s, ns: str, kind: str, name: str) -> str | None:
    return template_annotations(k8s, ns, kind, name).get("secretops.dev/restartedAt")


def test_rollout_of_workloads_when_the_secret_changes(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/roll"
    put(openbao, key, {"password": CANARY})
    token_store(k8s, openbao, tenant, ns)
    reloader_named = {"secret.reloader.stakater.com/reload": "unrelated, db"}
    auto = {"reloader.stakater.com/auto": "true"}
    ours = {"secretops.dev/reload-on-change": "true"}
    rolls = [("Deployment", "named", workload(ns, "Deployment", "named", reloader_named)),
             ("Deployment", "ours", workload(ns, "Deployment", "ours", ours,
                                             volume_secret="db")),
             ("StatefulSet", "listed", workload(ns, "StatefulSet", "listed")),
             ("DaemonSet", "auto", workload(ns, "DaemonSet", "auto", auto,
                                            projected_secret="db"))]
    stays = [("Deployment", "paused", workload(ns, "Deployment", "paused", auto,
                                               env_secret="db", paused=True)),
             ("Deployment", "other", workload(ns, "Deployment", "other", {**auto, **ours},
                                              env_secret="other-secret")),
             ("Deployment", "ignored", workload(ns, "Deployment", "ignored", {
                 **auto, "reloader.stakater.com/ignore": "true"}, env_secret="db")),
             ("StatefulSet", "unlisted", workload(ns, "StatefulSet", "unlisted"))]
    for _, _, obj in rolls + stays:
        create_workload(k8s, obj)
    es = external(ns, "db", "vault", [item("password", key, "password")])
    es["spec"]["rollout"] = {"workloads": [{"kind": "StatefulSet", "name": "listed"},
                                           {"kind": "Deployment", "name": "absent"}]}
    create(k8s, es)
    wait_for(lambda: has(k8s, ns, "db", {"password": CANARY.encode()}), what="Secret created")
    wait_for(lambda: es_status(k8s, ns, "db").get("refreshTime"), what="status")
    # the first creation of the Secret rolls nothing (a few refreshes pass meanwhile)
    put(openbao, f"{tenant.prefix}/unrelated", {"x": "1"})
    time.sleep(2.5)
    for kind, name, _ in rolls + stays:
        assert restarted(k8s, ns, kind, name) is None, (kind, name)

    put(openbao, key, {"password": "rotated"})
    wait_for(lambda: has(k8s, ns, "db", {"password": b"rotated"}), timeout=5,
             what="Secret updated")
    for kind, name, _ in rolls:
        wait_for(lambda k=kind, n=name: restarted(k8s, ns, k, n), timeout=5,
                 what=f"{kind} {name} rolled")
    digest = (secret(k8s, ns, "db") or {})["metadata"]["annotations"]["secretops.dev/data-hash"]
    assert template_annotations(k8s, ns, "Deployment", "ours")[
        "secretops.dev/secret-hash-db"] == digest
    for kind, name, _ in stays:
        assert restarted(k8s, ns, kind, name) is None, (kind, name)
    skipped = wait_for(lambda: events(k8s, ns, "paused", "RolloutSkipped"),
                       what="RolloutSkipped Event on the paused Deployment")
    assert skipped[0]["type"] == "Warning"
    assert skipped[0]["involvedObject"]["kind"] == "Deployment"
    rolled = wait_for(lambda: events(k8s, ns, "db", "WorkloadsRolled"), what="rolled Event")
    assert "StatefulSet/listed (listed)" in rolled[0]["message"]
    for _, name, _ in rolls:  # one Event on each workload; then, never reported done (the
        # emulator has no workload controller), each frees its place after --rollout-timeout
        assert len(events(k8s, ns, name, "RolloutStarted")) == 1, name
        wait_for(lambda n=name: [e for e in events(k8s, ns, n, "RolloutFailed")
                                 if "--rollout-timeout" in e["message"]],
                 what=f"{name}: not done within the timeout")
    wait_for(lambda: [e for e in events(k8s, ns, "db", "RolloutFailed")
                      if "Deployment/absent" in e["message"]], what="missing listed workload")

    # a second change rolls again (a new restartedAt)
    first = restarted(k8s, ns, "DaemonSet", "auto")
    put(openbao, key, {"password": "again"})
    wait_for(lambda: restarted(k8s, ns, "DaemonSet", "auto") != first, timeout=5,
             what="rolled again")


# ---- scheduled rotation ----------------------------------------------------------------------
def nowhere_but_the_secret(k8s: K8s, controller: Controller, ns: str, value: str) -> None:
    assert value not in controller.logs()
    assert value not in json.dumps(events(k8s, ns))
    assert value not in json.dumps(es_status(k8s, ns, "rot"))


def rotating(ns: str, store: str, key: str, prop: str | None, schedule: str,
             **generator: Any) -> dict[str, Any]:
    es = external(ns, "rot", store, [item("password", key, prop)])
    ref = {"key": key, **({"property": prop} if prop else {})}
    es["spec"]["rotation"] = {"schedule": schedule, "remoteRef": ref, "generator": generator}
    return es


def test_scheduled_rotation_writes_to_openbao_then_syncs_and_rolls(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant, controller: Controller) -> None:
    key = f"{tenant.prefix}/rot"
    put(openbao, key, {"password": CANARY, "user": "app"})
    client = openbao.client()
    policy = f"{tenant.prefix}-rw"
    client.sys.create_or_update_policy(name=policy, policy=f"""
path "secret/data/{tenant.prefix}/*" {{ capabilities = ["create", "read", "update"] }}
path "secret/metadata/{tenant.prefix}/*" {{ capabilities = ["read"] }}
""")
    token = client.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]
    create(k8s, opaque(ns, "rw-token", token=token))
    create(k8s, vault_store(ns, "rw", openbao.url,
                            {"tokenSecretRef": {"name": "rw-token", "key": "token"}}))
    create_workload(k8s, workload(ns, "Deployment", "app", {
        "secretops.dev/reload-on-change": "true"}, env_secret="rot"))
    es = rotating(ns, "rw", key, "password", "2s", length=24, digits=3, symbols=2,
                  symbolCharacters="#%")
    es["spec"]["data"].append(item("user", key, "user"))
    create(k8s, es)

    def pw() -> bytes:
        return values(secret(k8s, ns, "rot")).get("password", b"")

    wait_for(lambda: pw() == CANARY.encode() or (pw() and es_status(k8s, ns, "rot").get(
        "lastRotationTime")), what="Secret created")
    first = bytes(wait_for(lambda: (p := pw()) not in (b"", CANARY.encode()) and p,
                           timeout=10, what="rotated value synced"))
    assert len(first) == 24 and sum(c in b"0123456789" for c in first) >= 3
    assert sum(c in b"#%" for c in first) >= 2
    stored = client.secrets.kv.v2.read_secret_version(path=key, mount_point="secret",
                                                      raise_on_deleted_version=True)["data"]
    assert stored["metadata"]["version"] >= 2
    assert stored["data"]["user"] == "app"  # the other properties are kept
    assert values(secret(k8s, ns, "rot"))["user"] == b"app"
    assert es_status(k8s, ns, "rot").get("lastRotationTime")
    wait_for(lambda: restarted(k8s, ns, "Deployment", "app"), timeout=5, what="rolled")
    wait_for(lambda: events(k8s, ns, "rot", "SecretRotated"), what="SecretRotated Event")
    # and again at the next interval
    second = bytes(wait_for(lambda: (p := pw()) != first and p, timeout=10,
                            what="rotated again"))
    for v in (first, second):
        nowhere_but_the_secret(k8s, controller, ns, v.decode())


def test_scheduled_rotation_writes_to_secrets_manager(
        k8s: K8s, ns: str, moto_server: str, controller: Controller) -> None:
    import boto3

    kw: dict[str, Any] = {"region_name": REGION, "endpoint_url": moto_server,
                          "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sm = boto3.client("secretsmanager", **kw)
    name = f"{ns}/rot"
    sm.create_secret(Name=name, SecretString=json.dumps({"password": CANARY, "user": "app"}))
    create(k8s, opaque(ns, "aws", id="testing", secret="testing"))
    create(k8s, aws_store(ns, "sm", "SecretsManager", moto_server))
    create(k8s, rotating(ns, "sm", name, "password", "1s", length=16, noUpper=True))

    def pw() -> bytes:
        return values(secret(k8s, ns, "rot")).get("password", b"")

    rotated = bytes(wait_for(lambda: (p := pw()) not in (b"", CANARY.encode()) and p,
                             timeout=10, what="rotated value synced"))
    assert len(rotated) == 16 and rotated == rotated.lower()
    doc = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert doc["user"] == "app"
    assert es_status(k8s, ns, "rot").get("lastRotationTime")
    versions = sm.list_secret_version_ids(SecretId=name)["Versions"]
    assert len(versions) >= 2
    nowhere_but_the_secret(k8s, controller, ns, rotated.decode())


def test_rotation_refused_without_a_property_for_vault(
        k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    key = f"{tenant.prefix}/noprop"
    put(openbao, key, {"password": CANARY})
    token_store(k8s, openbao, tenant, ns)
    es = rotating(ns, "vault", key, None, "1s")
    es["spec"]["data"] = [item("password", key, "password")]
    create(k8s, es)
    wait_for(lambda: has(k8s, ns, "rot", {"password": CANARY.encode()}), what="synced")
    failed = wait_for(lambda: events(k8s, ns, "rot", "RotationFailed"), timeout=5,
                      what="RotationFailed")
    assert "remoteRef.property is required" in failed[0]["message"]
    assert not es_status(k8s, ns, "rot").get("lastRotationTime")


def test_template_failures_carry_no_value_and_a_slow_one_blocks_nothing(
        controller: Controller, k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant) -> None:
    """The template belongs to whoever edits the ExternalSecret, who may not read the Secret:
    jinja2's messages once put the reversed value (``values[password[::-1]]``) into the Ready
    condition. Now a failure reads as fixed text; what is left is the one bit "it failed"
    (the oracle below), and a slow template is cut off while another ExternalSecret syncs and
    /healthz answers every poll within 1 s."""
    key = f"{tenant.prefix}/db"
    put(openbao, key, {"password": CANARY, "user": "app"})
    token_store(k8s, openbao, tenant, ns)
    data = [item("password", key, "password"), item("user", key, "user")]
    templates = {
        "reversed": "{{ values[password[::-1]] }}",
        "upper": "{{ values[password | upper] }}",
        "spaced": '{{ values[password | list | join(" ")] }}',
        "oracle-hit": '{% if password.startswith("canary") %}{{ nope }}{% endif %}',
        "oracle-miss": '{% if password.startswith("#") %}{{ nope }}{% endif %}ok',
    }
    for name, text in templates.items():
        create(k8s, external(ns, name, "vault", data, template={"data": {"x": text}}))
    undefined = ('spec.target.template.data["x"]: the template uses an undefined name, key '
                 "or attribute")
    hidden = ("spec.target.template.data: a template fails with the actual values but renders "
              "with empty ones: what failed is not shown, since it depends on the values")
    for name in ("reversed", "upper", "spaced", "oracle-hit"):
        cond = wait_for(lambda n=name: (c := ready(k8s, ns, "externalsecrets", n)).get(
            "reason") == "TemplateError" and c, what=f"{name} fails")
        assert cond["message"] == (hidden if name == "oracle-hit" else undefined), cond
    wait_for(lambda: has(k8s, ns, "oracle-miss", {"x": b"ok"}), what="the oracle's other bit")

    spin = "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}"

    def scenario() -> None:
        create(k8s, external(ns, "spin", "vault", data, template={"data": {"x": spin}}))
        create(k8s, external(ns, "fine", "vault", data,
                             template={"data": {"dsn": "db://{{ .user }}@host"}}))
        wait_for(lambda: has(k8s, ns, "fine", {"dsn": b"db://app@host"}), timeout=15,
                 what="another ExternalSecret synced meanwhile")
        cond = wait_for(lambda: (c := ready(k8s, ns, "externalsecrets", "spin")).get(
            "reason") == "TemplateError" and c, timeout=15, what="the slow template cut off")
        assert cond["message"] == ("spec.target.template.data: the template did not finish "
                                   "within the time limit (2 s)"), cond

    healthy_throughout(controller, scenario)
