"""The deploy manifests (``crds/``, a kustomize base) and the controller's least privilege.

* ``kubectl kustomize crds/`` (the real kubectl's built-in kustomize) renders every object, and
  the Deployment carries the security settings, probes and downward-API variables it claims;
* ``kubectl apply -k crds/`` against the emulator (HTTPS mode, so kubectl and every client send
  bearer tokens) creates them all;
* the controller process runs **as the manifests' ServiceAccount** (a TokenRequest token in a
  kubeconfig), is driven through its behaviours — seal → apply → Secret; a hand-edited and a
  deleted Secret restored; an immutable Secret re-created when its value changes; key renewal
  with a short period; ``seal --fetch-cert`` through the Service's ``http`` port; a
  SecretStore and a ClusterSecretStore (namespace selector) against OpenBao, each with an
  ExternalSecret whose Secret is written, then deleted by hand and restored; an upstream change
  that rolls a Deployment, a StatefulSet and a DaemonSet (our and Reloader's annotations);
  Vault Kubernetes auth (OpenBao asks the emulator's TokenReview) as a namespace's service
  account (a TokenRequest by the controller) and as the controller itself (its token file) —
  and its recorded calls are checked against the rendered RBAC: every call allowed, every permission
  used (leader election on, as by default, with short Lease periods so it renews).
* ``controller/Dockerfile`` is parsed for its essentials (it is not built here: no Docker).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.conftest import SYSTEM_NS, scan_for_canary
from tests.controller.deploy_flows import (
    SA,
    SA_NAME,
    ensure_namespace,
    external_flow,
    key_renewal,
    openbao_kubernetes_auth,
    recipients,
    sealed_flow,
    start_as_service_account,
    vault_kubernetes_auth,
)
from tests.controller.helpers import (
    CANARY,
    apply,
    load,
    secret,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s, assert_least_privilege
from tests.fixtures.openbao import OpenBao
from tests.helpers import secretops

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "crds"
DOCKERFILE = ROOT / "controller" / "Dockerfile"
APP = "deploy-app"
IMAGE = "ghcr.io/secretops/secretops-controller:0.1.0"
CERT_PROXY = f"/api/v1/namespaces/{SYSTEM_NS}/services/{SA_NAME}:http/proxy/v1/cert"


@pytest.fixture(scope="module")
def rendered(k8s_tls_emulator: K8s) -> list[dict[str, Any]]:
    out = k8s_tls_emulator.kubectl("kustomize", str(BASE)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_kustomize_renders_the_base(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert kinds == sorted([
        ("CustomResourceDefinition", "sealedsecrets.secretops.dev"),
        ("CustomResourceDefinition", "secretstores.secretops.dev"),
        ("CustomResourceDefinition", "clustersecretstores.secretops.dev"),
        ("CustomResourceDefinition", "externalsecrets.secretops.dev"),
        ("Namespace", SYSTEM_NS), ("ServiceAccount", SA_NAME),
        *[(kind, name) for kind in ("ClusterRole", "ClusterRoleBinding") for name in (
            "secretops-sealed-secrets", "secretops-external-secrets",
            "secretops-cluster-secret-stores", "secretops-rollout", "secretops-token-requests")],
        *[(kind, name) for kind in ("Role", "RoleBinding")
          for name in (SA_NAME, "secretops-key-ring", "secretops-fingerprint-key",
                       "secretops-cluster-secret-stores")],
        ("Deployment", SA_NAME), ("Service", SA_NAME), ("NetworkPolicy", SA_NAME)])
    for doc in rendered:
        if doc["kind"] not in ("CustomResourceDefinition", "Namespace", "ClusterRole",
                               "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == SYSTEM_NS, doc["kind"]
        for rule in doc.get("rules") or []:  # no wildcard anywhere
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]

    deploy = _one(rendered, "Deployment", SA_NAME)
    assert deploy["spec"]["replicas"] == 1
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SA_NAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [c] = pod["containers"]
    assert c["image"] == IMAGE
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert set(c["resources"]) == {"requests", "limits"}
    # the container's args are flags the controller accepts
    from secretops_controller.__main__ import parser

    parser().parse_args(c["args"])

    service = _one(rendered, "Service", SA_NAME)
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["name"] == "http"
    for doc in rendered:
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert doc["subjects"] == [
                {"kind": "ServiceAccount", "name": SA_NAME, "namespace": SYSTEM_NS}]


def test_network_policy_admits_only_the_api_server_and_prometheus(
        rendered: list[dict[str, Any]]) -> None:
    """The unauthenticated endpoints are reachable only from kube-system (the API server's
    service proxy, through konnectivity or a self-hosted API server) and from Prometheus;
    kubelet's probes come from the Pod's own node, which a NetworkPolicy always admits."""
    deploy = _one(rendered, "Deployment", SA_NAME)
    policy = _one(rendered, "NetworkPolicy", SA_NAME)["spec"]
    assert policy["podSelector"]["matchLabels"] == deploy["spec"]["template"]["metadata"][
        "labels"]
    assert policy["policyTypes"] == ["Ingress"]  # egress: the API server, Vault, AWS vary
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    # every peer is selected by namespace name (a label only the API server sets) and
    # nothing is open to all: no empty peer, no ipBlock
    peers = rule["from"]
    assert all(set(p) <= {"namespaceSelector", "podSelector"} and p.get("namespaceSelector")
               for p in peers)
    named = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]:
             p.get("podSelector") for p in peers}
    assert named == {"kube-system": None,
                     "monitoring": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["http"]  # the one port it guards


def test_apply_k_creates_every_object(k8s_tls: K8s, rendered: list[dict[str, Any]]) -> None:
    k8s_tls.kubectl("apply", "-k", str(BASE))
    for crd in ("sealedsecrets", "secretstores", "clustersecretstores", "externalsecrets"):
        k8s_tls.kubectl("wait", "--for=condition=Established", f"crd/{crd}.secretops.dev")
    paths = {
        "Namespace": "/api/v1/namespaces/{name}",
        "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                    "{name}",
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}",
        "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{name}",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{name}",
        "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
        "Service": "/api/v1/namespaces/{ns}/services/{name}",
        "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}",
    }
    for doc in rendered:
        meta = doc["metadata"]
        path = paths[doc["kind"]].format(ns=meta.get("namespace"), name=meta["name"])
        status, body, _ = k8s_tls.request("GET", path)
        assert status == 200, (doc["kind"], meta["name"], body)
        assert body["metadata"]["labels"]["app.kubernetes.io/part-of"] == "secretops"
    # applying again changes nothing
    again = k8s_tls.kubectl("apply", "-k", str(BASE)).stdout
    assert "configured" not in again and "created" not in again, again


def test_controller_as_its_service_account_uses_exactly_its_rbac(
        k8s_tls: K8s, rendered: list[dict[str, Any]], tmp_path: Path,
        openbao: OpenBao) -> None:
    k8s_tls.kubectl("apply", "-k", str(BASE))
    for crd in ("secretstores", "clustersecretstores", "externalsecrets"):
        k8s_tls.kubectl("wait", "--for=condition=Established", f"crd/{crd}.secretops.dev")
    ensure_namespace(k8s_tls, APP)
    bao_k8s_mount = openbao_kubernetes_auth(k8s_tls, openbao, [APP])
    k8s_tls.reset_audit()
    ctl = start_as_service_account(k8s_tls, tmp_path, "--key-renew-period", "2s")
    try:
        # the Service's http port reaches /v1/cert through the API server's service proxy
        # (emulator-only: where the port goes is set on the Service, not in the controller)
        k8s_tls.request("PATCH", f"/api/v1/namespaces/{SYSTEM_NS}/services/{SA_NAME}",
                        {"metadata": {"annotations": {
                            "emulator.secretops.dev/forward-to": f"http=127.0.0.1:{ctl.port}"}}},
                        "application/merge-patch+json")
        assert k8s_tls.kubectl("get", "--raw", CERT_PROXY).stdout.strip() == \
            recipients(ctl).strip()
        fetched = secretops("seal", "--fetch-cert", "-n", APP, "--name", "fetched",
                            "--from-literal", f"password={CANARY}")
        assert fetched.code == 0, fetched.err
        assert CANARY not in fetched.text
        apply(k8s_tls, fetched.text)
        wait_for(lambda: values(secret(k8s_tls, APP, "fetched")) == {"password": CANARY.encode()},
                 what="Secret sealed with --fetch-cert")

        sealed_flow(k8s_tls, ctl, tmp_path, APP)
        key_renewal(k8s_tls, ctl, tmp_path, APP)
        external_flow(k8s_tls, openbao, APP, cluster_store=True)
        vault_kubernetes_auth(k8s_tls, openbao, bao_k8s_mount, APP, cluster_store=True)
    finally:
        ctl.stop()
    scan_for_canary(k8s_tls, [ctl])

    records = k8s_tls.audit(SA)
    assert records, "the controller's calls were not audited as its ServiceAccount"
    leases = {r["verb"] for r in records if r["resource"] == "leases"}
    assert leases == {"get", "create", "update"}, leases  # the controller led and renewed
    # OwnerReferencesPermissionEnforcement ran on the Secrets it wrote with ownerReferences (and
    # passed: no blockOwnerDeletion, so no finalizers permission is needed)
    checked = {(r["verb"], r["resource"]) for r in records if r.get("admission")}
    assert checked == {("delete", "secrets")}, checked
    for name in ("db", "es-db"):
        refs = (secret(k8s_tls, APP, name) or {"metadata": {}})["metadata"].get(
            "ownerReferences")
        assert refs and all("blockOwnerDeletion" not in r for r in refs), (name, refs)
    assert_least_privilege(records, rendered, service_account=SA)


def test_dockerfile_essentials() -> None:
    """Parsed, not built (no Docker here): stages, non-root USER, ENTRYPOINT."""
    text = DOCKERFILE.read_text()
    lines = [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    assert len(froms) >= 2 and all("python:3.11-slim" in f for f in froms), froms
    users = [ln.split(None, 1)[1] for ln in lines if ln.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    [entry] = [ln for ln in lines if ln.upper().startswith("ENTRYPOINT ")]
    assert "secretops-controller" in entry
    # what it copies from the repository exists
    for ln in lines:
        if ln.upper().startswith("COPY ") and "--from" not in ln:
            *sources, _ = ln.split()[1:]
            for src in sources:
                assert (ROOT / src).exists(), src
    # the deployment's numeric user matches the image's
    deploy = load((BASE / "deployment.yaml").read_text())
    uid = deploy["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert users[-1].split(":")[0] == str(uid)

