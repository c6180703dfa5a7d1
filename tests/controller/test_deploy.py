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

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.conftest import SYSTEM_NS, Controller
from tests.controller.helpers import (
    CANARY,
    apply,
    dump,
    load,
    no_canary_in_cluster,
    seal,
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
SA_NAME = "secretops-controller"
SA = f"{SYSTEM_NS}/{SA_NAME}"
APP = "deploy-app"
IMAGE = "ghcr.io/secretops/secretops-controller:0.1.0"
CERT_PROXY = f"/api/v1/namespaces/{SYSTEM_NS}/services/{SA_NAME}:http/proxy/v1/cert"
ES_API = "/apis/secretops.dev/v1alpha1"


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
        ("Namespace", SYSTEM_NS), ("ServiceAccount", SA_NAME), ("ClusterRole", SA_NAME),
        ("ClusterRoleBinding", SA_NAME), ("Role", SA_NAME), ("RoleBinding", SA_NAME),
        ("Deployment", SA_NAME), ("Service", SA_NAME)])
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
    for binding in ("ClusterRoleBinding", "RoleBinding"):
        subjects = _one(rendered, binding, SA_NAME)["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SYSTEM_NS}]


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


def _recipients(ctl: Controller) -> str:
    status, text = ctl.get("/v1/cert")
    assert status == 200
    return text


def _openbao_kubernetes_auth(k8s: K8s, openbao: OpenBao) -> str:
    """OpenBao's Kubernetes auth against this emulator (TokenReview with a reviewer's token):
    role ``app`` for the service account app-reader of APP (audience vault), role
    ``controller`` for the controller's own service account."""
    assert k8s.ca_file is not None
    client = openbao.client()
    mount = f"k8s-{uuid.uuid4().hex[:8]}"
    client.sys.enable_auth_method("kubernetes", path=mount)
    client.write(f"auth/{mount}/config", kubernetes_host=k8s.url,
                 kubernetes_ca_cert=k8s.ca_file.read_text(),
                 token_reviewer_jwt=k8s.token("kube-system", "openbao", expiration_seconds=3600),
                 disable_local_ca_jwt=True)
    client.sys.create_or_update_policy(name="deploy-read", policy="""
path "secret/data/deploy/*" { capabilities = ["read"] }
path "secret/metadata/deploy/*" { capabilities = ["read"] }
""")
    client.write(f"auth/{mount}/role/app", bound_service_account_names=["app-reader"],
                 bound_service_account_namespaces=[APP], audience="vault",
                 token_policies=["deploy-read"], token_ttl="10m")
    client.write(f"auth/{mount}/role/controller", bound_service_account_names=[SA_NAME],
                 bound_service_account_namespaces=[SYSTEM_NS], token_policies=["deploy-read"],
                 token_ttl="10m")
    k8s.service_account(APP, "app-reader")
    return mount


def _vault_kubernetes_auth(k8s: K8s, openbao: OpenBao, mount: str) -> None:
    """Vault Kubernetes auth: a SecretStore logging in as a service account of its namespace
    (a TokenRequest by the controller), a ClusterSecretStore as the controller itself (its
    token file). A SecretStore that names no service account may not borrow the controller's."""
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="deploy/api", secret={"key": CANARY}, mount_point="secret")
    k8s_auth = {"mountPath": mount, "role": "app",
                "serviceAccountRef": {"name": "app-reader", "audiences": ["vault"]}}
    stores = [(f"{ES_API}/namespaces/{APP}/secretstores", "SecretStore", "bao-sa", k8s_auth),
              (f"{ES_API}/clustersecretstores", "ClusterSecretStore", "bao-own",
               {"mountPath": mount, "role": "controller"}),
              (f"{ES_API}/namespaces/{APP}/secretstores", "SecretStore", "bao-borrow",
               {"mountPath": mount, "role": "controller"})]
    for path, kind, name, auth in stores:
        status, body, _ = k8s.request("POST", path, {
            "apiVersion": "secretops.dev/v1alpha1", "kind": kind, "metadata": {"name": name},
            "spec": {"provider": {"vault": {"server": openbao.url,
                                            "auth": {"kubernetes": auth}}}}})
        assert status == 201, body
    for name, kind in (("es-sa", "SecretStore"), ("es-own", "ClusterSecretStore")):
        k8s.request("POST", f"{ES_API}/namespaces/{APP}/externalsecrets", {
            "apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": name},
            "spec": {"secretStoreRef": {"name": f"bao-{name[3:]}", "kind": kind},
                     "refreshInterval": "1h",
                     "data": [{"secretKey": "key",
                               "remoteRef": {"key": "deploy/api", "property": "key"}}]}})
        wait_for(lambda n=name: values(secret(k8s, APP, n)) == {"key": CANARY.encode()},
                 what=f"Secret {name} through Vault Kubernetes auth")

    def borrow_refused() -> bool:
        st = k8s.request("GET", f"{ES_API}/namespaces/{APP}/secretstores/bao-borrow")[1]
        ready = [c for c in (st.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"]
        return bool(ready) and ready[0]["status"] == "False" and \
            "may not log in with the controller's own service account" in ready[0]["message"]

    wait_for(borrow_refused, what="a SecretStore refused the controller's own identity")


def _external_secrets(k8s: K8s, openbao: OpenBao) -> None:
    """A SecretStore and a ClusterSecretStore (namespace selector) against OpenBao, an
    ExternalSecret on each; Secrets written, one deleted by hand and restored; an upstream
    change rolls a Deployment, a StatefulSet and a DaemonSet that read one of them."""
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="deploy/db", secret={"password": CANARY}, mount_point="secret")
    token = base64.b64encode(openbao.token.encode()).decode()
    k8s.request("POST", f"/api/v1/namespaces/{APP}/secrets", {
        "metadata": {"name": "bao-token"}, "data": {"token": token}})
    auth = {"tokenSecretRef": {"name": "bao-token", "key": "token"}}
    k8s.request("POST", f"{ES_API}/namespaces/{APP}/secretstores", {
        "apiVersion": "secretops.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "bao"},
        "spec": {"provider": {"vault": {"server": openbao.url, "auth": auth}}}})
    k8s.request("PATCH", f"/api/v1/namespaces/{APP}", {"metadata": {"labels": {
        "secrets": "bao"}}}, "application/merge-patch+json")
    k8s.request("POST", f"{ES_API}/clustersecretstores", {
        "apiVersion": "secretops.dev/v1alpha1", "kind": "ClusterSecretStore",
        "metadata": {"name": "bao"},
        "spec": {"provider": {"vault": {"server": openbao.url, "auth": {"tokenSecretRef": {
            **auth["tokenSecretRef"], "namespace": APP}}}},
            "conditions": [{"namespaceSelector": {"matchLabels": {"secrets": "bao"}}}]}})
    for name, kind in (("es-db", "SecretStore"), ("ces-db", "ClusterSecretStore")):
        k8s.request("POST", f"{ES_API}/namespaces/{APP}/externalsecrets", {
            "apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": name},
            "spec": {"secretStoreRef": {"name": "bao", "kind": kind}, "refreshInterval": "1s",
                     "data": [{"secretKey": "password",
                               "remoteRef": {"key": "deploy/db", "property": "password"}}]}})
        wait_for(lambda n=name: values(secret(k8s, APP, n)) == {"password": CANARY.encode()},
                 what=f"Secret {name} from OpenBao")
    k8s.request("DELETE", f"/api/v1/namespaces/{APP}/secrets/es-db")
    wait_for(lambda: values(secret(k8s, APP, "es-db")) == {"password": CANARY.encode()},
             what="deleted ExternalSecret Secret restored")
    # rollout (list and patch on apps workloads): a Deployment opted in with
    # secretops.dev/reload-on-change, a StatefulSet and a DaemonSet with Reloader's annotations,
    # all reading es-db, roll when the upstream value changes
    for plural, kind, notes in (
            ("deployments", "Deployment", {"secretops.dev/reload-on-change": "true"}),
            ("statefulsets", "StatefulSet", {"secret.reloader.stakater.com/reload": "es-db"}),
            ("daemonsets", "DaemonSet", {"reloader.stakater.com/auto": "true"})):
        labels = {"app": f"deploy-{plural}"}
        spec: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "web", "image": "nginx", "envFrom": [{"secretRef": {
                    "name": "es-db"}}]}]}}}
        if kind == "StatefulSet":
            spec["serviceName"] = "web"
        status, body, _ = k8s.request("POST", f"/apis/apps/v1/namespaces/{APP}/{plural}", {
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "web", "annotations": notes}, "spec": spec})
        assert status == 201, body
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path="deploy/db", secret={"password": "rotated"}, mount_point="secret")
    for plural in ("deployments", "statefulsets", "daemonsets"):
        wait_for(lambda p=plural: "secretops.dev/restartedAt" in (k8s.request(
            "GET", f"/apis/apps/v1/namespaces/{APP}/{p}/web")[1]["spec"]["template"][
            "metadata"].get("annotations") or {}), timeout=10, what=f"{plural}/web rolled")


def test_controller_as_its_service_account_uses_exactly_its_rbac(
        k8s_tls: K8s, rendered: list[dict[str, Any]], tmp_path: Path,
        openbao: OpenBao) -> None:
    k8s_tls.kubectl("apply", "-k", str(BASE))
    for crd in ("secretstores", "clustersecretstores", "externalsecrets"):
        k8s_tls.kubectl("wait", "--for=condition=Established", f"crd/{crd}.secretops.dev")
    if k8s_tls.request("GET", f"/api/v1/namespaces/{APP}")[0] == 404:
        k8s_tls.request("POST", "/api/v1/namespaces", {"metadata": {"name": APP}})
    kubeconfig = k8s_tls.kubeconfig_for(SYSTEM_NS, SA_NAME, tmp_path / "sa-kubeconfig")
    # the Pod's projected token, as kubelet mounts it (Vault Kubernetes auth as the controller)
    own_token = tmp_path / "serviceaccount-token"
    own_token.write_text(k8s_tls.token(SYSTEM_NS, SA_NAME, expiration_seconds=3600))
    bao_k8s_mount = _openbao_kubernetes_auth(k8s_tls, openbao)
    k8s_tls.reset_audit()
    ctl = Controller(k8s_tls, tmp_path, (
        "--kubeconfig", str(kubeconfig), "--service-account-token-file", str(own_token),
        "--key-renew-period", "2s",
        "--key-refresh-interval", "0.5s", "--lease-duration", "3s", "--renew-deadline", "2s",
        "--retry-period", "0.5s"))
    try:
        ctl.start()
        cert = tmp_path / "cluster.txt"
        cert.write_text(_recipients(ctl))

        # the Service's http port reaches /v1/cert through the API server's service proxy
        # (emulator-only: where the port goes is set on the Service, not in the controller)
        k8s_tls.request("PATCH", f"/api/v1/namespaces/{SYSTEM_NS}/services/{SA_NAME}",
                        {"metadata": {"annotations": {
                            "emulator.secretops.dev/forward-to": f"http=127.0.0.1:{ctl.port}"}}},
                        "application/merge-patch+json")
        assert k8s_tls.kubectl("get", "--raw", CERT_PROXY).stdout.strip() == \
            cert.read_text().strip()
        fetched = secretops("seal", "--fetch-cert", "-n", APP, "--name", "db",
                            "--from-literal", f"password={CANARY}")
        assert fetched.code == 0, fetched.err
        assert CANARY not in fetched.text

        # seal → apply → Secret
        apply(k8s_tls, fetched.text)
        wait_for(lambda: values(secret(k8s_tls, APP, "db")) == {"password": CANARY.encode()},
                 what="Secret db created")

        # a hand-edited Secret is put back (update), a deleted one re-created (create)
        k8s_tls.request("PATCH", f"/api/v1/namespaces/{APP}/secrets/db",
                        {"data": {"password": "ZWRpdGVk"}}, "application/merge-patch+json")
        wait_for(lambda: values(secret(k8s_tls, APP, "db")) == {"password": CANARY.encode()},
                 what="edited Secret restored")
        k8s_tls.request("DELETE", f"/api/v1/namespaces/{APP}/secrets/db")
        wait_for(lambda: values(secret(k8s_tls, APP, "db")) == {"password": CANARY.encode()},
                 what="deleted Secret re-created")

        # an immutable Secret whose value changes is deleted and created again (delete)
        source = {"apiVersion": "v1", "kind": "Secret", "immutable": True,
                  "metadata": {"name": "frozen", "namespace": APP},
                  "stringData": {"token": "one"}}
        (tmp_path / "frozen.yaml").write_text(dump(source))
        sealed_file = tmp_path / "frozen-sealed.yaml"
        sealed_file.write_text(seal(cert, str(tmp_path / "frozen.yaml")))
        apply(k8s_tls, sealed_file.read_text())
        wait_for(lambda: values(secret(k8s_tls, APP, "frozen")) == {"token": b"one"},
                 what="immutable Secret created")
        seal(cert, "--merge-into", str(sealed_file), "-n", APP, "--name", "frozen",
             "--from-literal", "token=two")
        apply(k8s_tls, sealed_file.read_text())
        wait_for(lambda: values(secret(k8s_tls, APP, "frozen")) == {"token": b"two"},
                 what="immutable Secret re-created")
        assert (secret(k8s_tls, APP, "frozen") or {}).get("immutable") is True

        # key renewal with a short period: a new key in the ring, the ConfigMap patched
        first = cert.read_text()
        renewed = str(wait_for(lambda: (t := _recipients(ctl)) != first and t, timeout=15,
                               what="a renewed key on /v1/cert"))
        cm = f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/secretops-sealing-recipients"
        wait_for(lambda: k8s_tls.request("GET", cm)[1]["data"]["recipients.txt"] == renewed,
                 what="the ConfigMap republished")
        new_cert = tmp_path / "new.txt"
        new_cert.write_text(renewed)
        apply(k8s_tls, seal(new_cert, "-n", APP, "--name", "renewed",
                            "--from-literal", f"v={CANARY}"))
        wait_for(lambda: values(secret(k8s_tls, APP, "renewed")) == {"v": CANARY.encode()},
                 what="Secret sealed for the renewed key")

        _external_secrets(k8s_tls, openbao)
        _vault_kubernetes_auth(k8s_tls, openbao, bao_k8s_mount)
    finally:
        ctl.stop()
    assert CANARY not in ctl.logs()
    no_canary_in_cluster(k8s_tls, APP)

    records = k8s_tls.audit(SA)
    assert records, "the controller's calls were not audited as its ServiceAccount"
    leases = {r["verb"] for r in records if r["resource"] == "leases"}
    assert leases == {"get", "create", "update"}, leases  # the controller led and renewed
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

