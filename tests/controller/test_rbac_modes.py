"""Least privilege in each install of ``deploy/``: SealedSecrets only, ExternalSecrets only,
namespaced (the default install, ``crds/``, is ``test_deploy.py``'s).

Each test renders the install with the real kubectl's kustomize, applies it to a fresh HTTPS
emulator, runs the controller **as the install's ServiceAccount with the switches its
Deployment sets** (the literal ``env`` of the rendered Deployment), drives every behaviour that
install supports (:mod:`tests.controller.deploy_flows`), and checks the audited calls against the
rendered RBAC: every call allowed, every permission used. The emulator does not enforce RBAC at
run time, so what a real cluster would refuse is found by that check, and what the controller
must not even try (a feature that is off, a namespace it does not watch) is asserted on the
audit log directly; a test shows the check does catch calls outside the namespaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.conftest import SYSTEM_NS, scan_for_canary
from tests.controller.deploy_flows import (
    ES_API,
    SA,
    STORE_SA,
    ensure_namespace,
    external_flow,
    key_renewal,
    openbao_kubernetes_auth,
    recipients,
    sealed_flow,
    start_as_service_account,
    store_ready,
    vault_kubernetes_auth,
)
from tests.controller.helpers import CANARY, apply, seal, wait_for
from tests.fixtures.k8s import (
    OPENSHIFT_ADMISSION,
    K8s,
    assert_least_privilege,
    check_rbac,
    start_emulator,
    stop,
)
from tests.fixtures.openbao import OpenBao

ROOT = Path(__file__).resolve().parents[2]
INSTALLS = {"default": ROOT / "crds", "sealed-secrets": ROOT / "deploy" / "sealed-secrets",
            "external-secrets": ROOT / "deploy" / "external-secrets",
            "namespaced": ROOT / "deploy" / "namespaced",
            "sharded": ROOT / "deploy" / "sharded"}
WATCHED = ["team-a", "team-b"]
OUTSIDE = "outside"


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[K8s]:
    """A fresh HTTPS emulator per test: the RBAC objects of one install never mix with
    another's."""
    directory = tmp_path / "k8s"
    directory.mkdir()
    proc, k8s = start_emulator(directory, *OPENSHIFT_ADMISSION, tls=True)
    monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig))
    try:
        yield k8s
        assert k8s.malformed() == [], "the controller sent malformed requests"
    finally:
        k8s.close()
        stop(proc)


def render(k8s: K8s, install: str) -> list[dict[str, Any]]:
    out = k8s.kubectl("kustomize", str(INSTALLS[install])).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def install(k8s: K8s, name: str) -> list[dict[str, Any]]:
    """Render and apply ``name``; wait for its CRDs. The rendered objects."""
    docs = render(k8s, name)
    k8s.kubectl("apply", "-k", str(INSTALLS[name]))
    for d in docs:
        if d["kind"] == "CustomResourceDefinition":
            k8s.kubectl("wait", "--for=condition=Established", f"crd/{d['metadata']['name']}")
    return docs


def switches(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The literal environment the install's Deployment gives the controller."""
    [deploy] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


def touched(records: list[dict[str, Any]]) -> set[str]:
    return {r["namespace"] for r in records if r.get("namespace")}


def test_sealed_secrets_only(cluster: K8s, tmp_path: Path) -> None:
    docs = install(cluster, "sealed-secrets")
    env = switches(docs)
    assert env["SECRETOPS_EXTERNAL_SECRETS"] == "false"
    ensure_namespace(cluster, "app")
    cluster.reset_audit()
    ctl = start_as_service_account(cluster, tmp_path, "--key-renew-period", "2s", env=env)
    try:
        sealed_flow(cluster, ctl, tmp_path, "app")
        key_renewal(cluster, ctl, tmp_path, "app")
    finally:
        ctl.stop()
    scan_for_canary(cluster, [ctl])
    records = cluster.audit(SA)
    # nothing of the external-secrets half: no store, ExternalSecret, workload or token call
    assert {r["resource"] for r in records} <= {
        "sealedsecrets", "sealedsecrets/status", "secrets", "events", "configmaps", "leases",
        ""}, {r["resource"] for r in records}
    assert_least_privilege(records, docs, service_account=SA)


def test_external_secrets_only(cluster: K8s, tmp_path: Path, openbao: OpenBao) -> None:
    docs = install(cluster, "external-secrets")
    env = switches(docs)
    assert env["SECRETOPS_SEALED_SECRETS"] == "false"
    ensure_namespace(cluster, "app")
    mount = openbao_kubernetes_auth(cluster, openbao, ["app"])
    cluster.reset_audit()
    ctl = start_as_service_account(cluster, tmp_path, env=env)
    try:
        assert ctl.get("/v1/cert")[0] == 404  # no key ring, no sealing endpoints
        external_flow(cluster, openbao, "app", cluster_store=True)
        vault_kubernetes_auth(cluster, openbao, mount, "app", cluster_store=True)
    finally:
        ctl.stop()
    scan_for_canary(cluster, [ctl])
    records = cluster.audit(SA)
    # no key ring, no recipients ConfigMap, no SealedSecret: the cluster-wide Secret rule would
    # allow reading the key ring, so its absence is asserted, not left to the RBAC check. The
    # one Secret of its namespace it reads is the fingerprint key, by name (made once: a create)
    fingerprint_key = [r for r in records if r["namespace"] == SYSTEM_NS
                       and r["resource"] == "secrets" and (
                           r["verb"] == "create"
                           or (r["verb"] == "get" and r["name"] == "secretops-fingerprint-key"))]
    assert fingerprint_key
    assert not [r for r in records if r["namespace"] == SYSTEM_NS
                and r["resource"] in ("secrets", "configmaps") and r not in fingerprint_key]
    assert not [r for r in records if r["resource"].startswith("sealedsecrets")]
    assert_least_privilege(records, docs, service_account=SA)


def _outside_objects(k8s: K8s, ctl: Any, tmp_path: Path, openbao: OpenBao) -> None:
    """A SealedSecret and an ExternalSecret in a namespace the controller does not watch."""
    cert = tmp_path / "outside-cert.txt"
    cert.write_text(recipients(ctl))
    apply(k8s, seal(cert, "-n", OUTSIDE, "--name", "db", "--from-literal", f"p={CANARY}"))
    k8s.request("POST", f"{ES_API}/namespaces/{OUTSIDE}/secretstores", {
        "apiVersion": "secretops.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "bao"}, "spec": {"provider": {"vault": {
            "server": openbao.url, "auth": {"tokenSecretRef": {"name": "t", "key": "t"}}}}}})


def test_namespaced(cluster: K8s, tmp_path: Path, openbao: OpenBao) -> None:
    for ns in (*WATCHED, OUTSIDE):  # the tenants' namespaces exist before the install
        ensure_namespace(cluster, ns)
    docs = install(cluster, "namespaced")
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    env = switches(docs)
    assert env["SECRETOPS_WATCH_NAMESPACES"].split(",") == WATCHED
    mount = openbao_kubernetes_auth(cluster, openbao, WATCHED)
    cluster.reset_audit()
    ctl = start_as_service_account(cluster, tmp_path, "--key-renew-period", "2s", env=env)
    try:
        _outside_objects(cluster, ctl, tmp_path, openbao)
        for ns in WATCHED:
            sealed_flow(cluster, ctl, tmp_path, ns)
            external_flow(cluster, openbao, ns)
            vault_kubernetes_auth(cluster, openbao, mount, ns)
        key_renewal(cluster, ctl, tmp_path, WATCHED[0])
        # ClusterSecretStores are off here: an ExternalSecret naming one is told so
        cluster.request("POST", f"{ES_API}/namespaces/{WATCHED[0]}/externalsecrets", {
            "apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": "wants-cluster-store"},
            "spec": {"secretStoreRef": {"name": "any", "kind": "ClusterSecretStore"},
                     "data": [{"secretKey": "k", "remoteRef": {"key": "k"}}]}})
        wait_for(lambda: "--no-cluster-secret-stores" in str(store_ready(
            cluster, f"{ES_API}/namespaces/{WATCHED[0]}/externalsecrets/wants-cluster-store")),
            what="the ExternalSecret told ClusterSecretStores are off")
    finally:
        ctl.stop()
    scan_for_canary(cluster, [ctl])
    records = cluster.audit(SA)
    assert touched(records) == {*WATCHED, SYSTEM_NS}
    # cluster-scoped calls: discovery only (no CRD, namespace or ClusterSecretStore call)
    assert {r["path"] for r in records if not r["namespace"]} <= {
        r["path"] for r in records if r["nonResourceURL"]}
    for kind in ("sealedsecrets", "secretstores"):  # untouched: no status, no annotation
        obj = cluster.request("GET", f"{ES_API}/namespaces/{OUTSIDE}/{kind}/"
                                     f"{'db' if kind == 'sealedsecrets' else 'bao'}")[1]
        assert "status" not in obj, obj
        assert not [a for a in obj["metadata"].get("annotations") or {}
                    if a.startswith("secretops.dev/")], obj
    assert_least_privilege(records, docs, service_account=SA)


def test_the_rbac_check_catches_calls_outside_the_namespaces(cluster: K8s,
                                                             tmp_path: Path) -> None:
    """A controller told to watch one more namespace than its Roles cover: the emulator serves
    it (no RBAC at run time), and the audit check reports every call there as denied."""
    for ns in (*WATCHED, OUTSIDE):
        ensure_namespace(cluster, ns)
    docs = install(cluster, "namespaced")
    env = {**switches(docs), "SECRETOPS_WATCH_NAMESPACES": ",".join([*WATCHED, OUTSIDE])}
    cluster.reset_audit()
    ctl = start_as_service_account(cluster, tmp_path, env=env)
    try:
        wait_for(lambda: any(r["namespace"] == OUTSIDE and r["verb"] == "watch"
                             for r in cluster.audit(SA)), what="a watch in the extra namespace")
    finally:
        ctl.stop()
    report = check_rbac(cluster.audit(SA), docs, service_account=SA)
    assert report.denied, "calls outside the Roles' namespaces went unnoticed"
    assert {r["namespace"] for r in report.denied} == {OUTSIDE}


def test_a_forbidden_token_request_is_a_condition(cluster: K8s, tmp_path: Path,
                                                  openbao: OpenBao) -> None:
    """Stores naming service accounts the token RBAC does not list — another account of the
    namespace, and (a ClusterSecretStore) kube-system's — make the controller ask; RBAC refuses
    (the check says so; the fault mode answers the 403 the API server would), and each store
    reports it in its Ready condition while the controller keeps working."""
    docs = install(cluster, "default")
    ensure_namespace(cluster, "app")
    mount = openbao_kubernetes_auth(cluster, openbao, ["app"])
    cluster.fail_next(1000, 403, match={"resource": "serviceaccounts/token",
                                        "name": ["default", "kube-proxy"], "serviceAccount": SA})
    cluster.reset_audit()
    ctl = start_as_service_account(cluster, tmp_path)
    try:
        for path, kind, name, ref in (
                (f"{ES_API}/namespaces/app/secretstores", "SecretStore", "wrong-sa",
                 {"name": "default"}),
                (f"{ES_API}/clustersecretstores", "ClusterSecretStore", "kube-system-sa",
                 {"name": "kube-proxy", "namespace": "kube-system"})):
            cluster.request("POST", path, {
                "apiVersion": "secretops.dev/v1alpha1", "kind": kind, "metadata": {"name": name},
                "spec": {"provider": {"vault": {"server": openbao.url, "auth": {"kubernetes": {
                    "mountPath": mount, "role": "app", "serviceAccountRef": ref}}}}}})
            wait_for(lambda p=f"{path}/{name}": "forbidden" in str(store_ready(cluster, p)),
                     what=f"{kind} {name}: the forbidden TokenRequest in its condition")
            ready = store_ready(cluster, f"{path}/{name}") or {}
            assert ready["status"] == "False" and ready["reason"] == "InvalidProviderConfig"
            assert "docs/controller.md" in ready["message"]
        # the controller goes on: a store with the allowed name still works
        vault_kubernetes_auth(cluster, openbao, mount, "app")
        assert ctl.get("/healthz")[0] == 200
    finally:
        ctl.stop()
    report = check_rbac(cluster.audit(SA), docs, service_account=SA)
    denied = {(r["namespace"], r["name"]) for r in report.denied}
    assert denied == {("app", "default"), ("kube-system", "kube-proxy")}, report.explain()
    assert all(r["resource"] == "serviceaccounts/token" for r in report.denied)
    assert any(r["name"] == STORE_SA for r, _ in report.allowed)


def test_namespaced_with_cluster_secret_stores(cluster: K8s, tmp_path: Path,
                                               openbao: OpenBao) -> None:
    """A user's own namespaced install (written here as a user would: the repository's crds/,
    the namespaced component, one namespace's Roles) that keeps ClusterSecretStores: one narrow
    ClusterRole, whose namespaces rule names the watched namespace (as the component's comment
    says to): a cluster-wide list of the namespaces is forbidden, the namespaceSelector watch
    works. A ClusterSecretStore that points at a Secret or a service account of a namespace the
    controller does not watch is refused before any call, in its condition."""
    for ns in (WATCHED[0], OUTSIDE):
        ensure_namespace(cluster, ns)
    mine = tmp_path / "my-install"
    mine.mkdir()
    rel = Path(*[".."] * len(mine.relative_to("/").parts)).as_posix()
    (mine / "kustomization.yaml").write_text(f"""\
resources:
  - {rel}{ROOT}/crds
  - {rel}{ROOT}/deploy/namespaced/{WATCHED[0]}
components:
  - {rel}{ROOT}/crds/components/namespaced
patches:
  - target: {{kind: Deployment, name: secretops-controller}}
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {{name: SECRETOPS_WATCH_NAMESPACES, value: {WATCHED[0]}}}
  - target: {{kind: ClusterRole, name: secretops-cluster-secret-stores}}
    patch: |
      - {{op: replace, path: /rules/2/resourceNames, value: [{WATCHED[0]}]}}
""")
    INSTALLS["mine"] = mine
    try:
        docs = install(cluster, "mine")
    finally:
        del INSTALLS["mine"]
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole") == [
        "secretops-cluster-secret-stores"]
    env = switches(docs)
    ns = WATCHED[0]
    mount = openbao_kubernetes_auth(cluster, openbao, [ns])
    cluster.reset_audit()
    ctl = start_as_service_account(cluster, tmp_path, "--key-renew-period", "2s", env=env)
    try:
        sealed_flow(cluster, ctl, tmp_path, ns)
        key_renewal(cluster, ctl, tmp_path, ns)
        external_flow(cluster, openbao, ns, cluster_store=True)
        vault_kubernetes_auth(cluster, openbao, mount, ns, cluster_store=True)
        for name, auth in (
                ("reads-outside", {"tokenSecretRef": {"name": "t", "key": "t",
                                                      "namespace": OUTSIDE}}),
                ("token-outside", {"kubernetes": {"mountPath": mount, "role": "app",
                                                  "serviceAccountRef": {
                                                      "name": STORE_SA, "namespace": OUTSIDE}}})):
            cluster.request("POST", f"{ES_API}/clustersecretstores", {
                "apiVersion": "secretops.dev/v1alpha1", "kind": "ClusterSecretStore",
                "metadata": {"name": name},
                "spec": {"provider": {"vault": {"server": openbao.url, "auth": auth}}}})
            path = f"{ES_API}/clustersecretstores/{name}"
            wait_for(lambda p=path: "not one the controller watches" in str(
                store_ready(cluster, p)), what=f"ClusterSecretStore {name} refused")
    finally:
        ctl.stop()
    records = cluster.audit(SA)
    assert touched(records) == {ns, SYSTEM_NS}
    assert_least_privilege(records, docs, service_account=SA)
    # the namespace watch was made (by name) and allowed; the same list cluster-wide is not
    lists = [r for r in records if r["resource"] == "namespaces" and r["verb"] == "list"]
    assert lists and {r["name"] for r in lists} == {ns}
    anywhere = [{**r, "name": ""} for r in lists[:1]]
    assert check_rbac(anywhere, docs, service_account=SA).denied == anywhere


def test_sharded(cluster: K8s, tmp_path: Path, openbao: OpenBao) -> None:
    """deploy/sharded (issue 20): two replicas of the install's ServiceAccount with its six
    shards share every shard Lease, named one by one in the Role, and handle the tenants'
    namespaces between them: every call allowed, every permission used (each shard's Lease
    read and renewed)."""
    tenants = ["shard-a", "shard-b", "shard-c", "shard-d"]
    for ns in tenants:
        ensure_namespace(cluster, ns)
    docs = install(cluster, "sharded")
    env = switches(docs)
    assert env["SECRETOPS_SHARDS"] == "6"
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    assert [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    mount = openbao_kubernetes_auth(cluster, openbao, tenants)
    cluster.reset_audit()
    replicas = []
    try:
        for name in ("replica-1", "replica-2"):
            replicas.append(start_as_service_account(
                cluster, tmp_path, "--key-renew-period", "2s",
                env={**env, "POD_NAME": name}))
        for i, ns in enumerate(tenants):
            ctl = replicas[i % 2]  # either one serves the certificate
            sealed_flow(cluster, ctl, tmp_path, ns)
            external_flow(cluster, openbao, ns, cluster_store=i == 0)
            vault_kubernetes_auth(cluster, openbao, mount, ns)
        key_renewal(cluster, replicas[0], tmp_path, tenants[0])
    finally:
        for ctl in replicas:
            ctl.stop()
    scan_for_canary(cluster, replicas)
    records = cluster.audit(SA)
    leases = {r["name"] for r in records if r["resource"] == "leases" and r["verb"] == "update"}
    assert leases == {"secretops-controller", *(f"secretops-controller-shard-{i}"
                                                for i in range(1, 6))}
    assert_least_privilege(records, docs, service_account=SA)
