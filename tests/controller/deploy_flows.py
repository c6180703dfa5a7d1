"""The behaviours that exercise every permission of an install, for the least-privilege tests.

``tests/controller/test_deploy.py`` (the default install) and ``test_rbac_modes.py`` (SealedSecrets
only, ExternalSecrets only, namespaced) run the controller as the manifests' ServiceAccount and
drive it through these, one namespace at a time, then compare its audited calls with the
rendered RBAC (``assert_least_privilege``): a rule that none of them exercises fails its test,
so each flow covers every verb its feature's rules grant.

* :func:`sealed_flow` — seal → apply → Secret; the Secret edited (update) and deleted
  (create) by hand and restored; an immutable Secret re-created when its value changes
  (delete); the status patched and Events posted on the way.
* :func:`key_renewal` — a renewed key in the ring and the recipients ConfigMap patched.
* :func:`external_flow` — a SecretStore against OpenBao (token Secret) and an ExternalSecret,
  both as the previous version's kopf left them (its annotations, removed by the upgrade
  clean-up: patch); its Secret deleted by hand and restored; an upstream change (update,
  and rollout of a Deployment, a StatefulSet and a DaemonSet when ``rollout``); an
  ExternalSecret with ``deletionPolicy: Delete`` whose remote secret goes (delete); with
  ``cluster_store`` also a ClusterSecretStore with a namespace selector (as kopf left it too).
* :func:`vault_kubernetes_auth` — Vault Kubernetes auth as :data:`STORE_SA` of the namespace (a
  TokenRequest by the controller, the only name the token RBAC allows); with ``cluster_store``
  a ClusterSecretStore logging in as the controller itself, and a SecretStore refused that
  tried to borrow it.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from tests.controller.conftest import SYSTEM_NS, Controller
from tests.controller.helpers import (
    CANARY,
    apply,
    dump,
    seal,
    secret,
    values,
    wait_for,
)
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

SA_NAME = "secretops-controller"
SA = f"{SYSTEM_NS}/{SA_NAME}"
STORE_SA = "secretops-store-auth"  # the service account name crds/ lets stores request tokens of
ES_API = "/apis/secretops.dev/v1alpha1"
SHORT = ("--key-refresh-interval", "0.5s", "--lease-duration", "3s", "--renew-deadline", "2s",
         "--retry-period", "0.5s", "--rollout-window", "0.2s", "--rollout-timeout", "1s")


def ensure_namespace(k8s: K8s, ns: str) -> None:
    if k8s.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404:
        k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})


def start_as_service_account(k8s: K8s, tmp_path: Path, *flags: str,
                             env: dict[str, str] | None = None) -> Controller:
    """The controller with a kubeconfig of its ServiceAccount (a TokenRequest token) and the
    Pod's projected token file, as kubelet mounts it (Vault Kubernetes auth as itself)."""
    kubeconfig = k8s.kubeconfig_for(SYSTEM_NS, SA_NAME, tmp_path / "sa-kubeconfig")
    own_token = tmp_path / "serviceaccount-token"
    own_token.write_text(k8s.token(SYSTEM_NS, SA_NAME, expiration_seconds=3600))
    ctl = Controller(k8s, tmp_path, ("--kubeconfig", str(kubeconfig),
                                     "--service-account-token-file", str(own_token),
                                     *SHORT, *flags), env=dict(env or {}))
    return ctl.start()


def recipients(ctl: Controller) -> str:
    status, text = ctl.get("/v1/cert")
    assert status == 200
    return text


def sealed_flow(k8s: K8s, ctl: Controller, tmp_path: Path, ns: str) -> None:
    cert = tmp_path / f"cert-{ns}.txt"
    cert.write_text(recipients(ctl))
    apply(k8s, seal(cert, "-n", ns, "--name", "db", "--from-literal", f"password={CANARY}"))
    wait_for(lambda: values(secret(k8s, ns, "db")) == {"password": CANARY.encode()},
             what=f"Secret {ns}/db created")
    # a hand-edited Secret is put back (update), a deleted one re-created (create)
    k8s.request("PATCH", f"/api/v1/namespaces/{ns}/secrets/db",
                {"data": {"password": "ZWRpdGVk"}}, "application/merge-patch+json")
    wait_for(lambda: values(secret(k8s, ns, "db")) == {"password": CANARY.encode()},
             what=f"edited Secret {ns}/db restored")
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/db")
    wait_for(lambda: values(secret(k8s, ns, "db")) == {"password": CANARY.encode()},
             what=f"deleted Secret {ns}/db re-created")
    # an immutable Secret whose value changes is deleted and created again (delete)
    source = {"apiVersion": "v1", "kind": "Secret", "immutable": True,
              "metadata": {"name": "frozen", "namespace": ns}, "stringData": {"token": "one"}}
    (tmp_path / f"frozen-{ns}.yaml").write_text(dump(source))
    sealed_file = tmp_path / f"frozen-sealed-{ns}.yaml"
    sealed_file.write_text(seal(cert, str(tmp_path / f"frozen-{ns}.yaml")))
    apply(k8s, sealed_file.read_text())
    wait_for(lambda: values(secret(k8s, ns, "frozen")) == {"token": b"one"},
             what=f"immutable Secret {ns}/frozen created")
    seal(cert, "--merge-into", str(sealed_file), "-n", ns, "--name", "frozen",
         "--from-literal", "token=two")
    apply(k8s, sealed_file.read_text())
    wait_for(lambda: values(secret(k8s, ns, "frozen")) == {"token": b"two"},
             what=f"immutable Secret {ns}/frozen re-created")
    assert (secret(k8s, ns, "frozen") or {}).get("immutable") is True


def key_renewal(k8s: K8s, ctl: Controller, tmp_path: Path, ns: str) -> None:
    """A new key in the ring (--key-renew-period short), the ConfigMap patched, and a Secret
    sealed for it unsealed in ``ns``."""
    first = recipients(ctl)
    renewed = str(wait_for(lambda: (t := recipients(ctl)) != first and t, timeout=15,
                           what="a renewed key on /v1/cert"))
    cm = f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/secretops-sealing-recipients"
    wait_for(lambda: k8s.request("GET", cm)[1]["data"]["recipients.txt"] == renewed,
             what="the ConfigMap republished")
    new_cert = tmp_path / "renewed.txt"
    new_cert.write_text(renewed)
    apply(k8s, seal(new_cert, "-n", ns, "--name", "renewed", "--from-literal", f"v={CANARY}"))
    wait_for(lambda: values(secret(k8s, ns, "renewed")) == {"v": CANARY.encode()},
             what="Secret sealed for the renewed key")


def _post(k8s: K8s, path: str, body: dict[str, Any]) -> None:
    status, out, _ = k8s.request("POST", path, body)
    assert status == 201, out


def _bao_put(openbao: OpenBao, path: str, data: dict[str, str]) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data,
                                                           mount_point="secret")


def _external_secret(name: str, store: str, kind: str, key: str, prop: str,
                     **target: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"secretStoreRef": {"name": store, "kind": kind},
                            "refreshInterval": "1s",
                            "data": [{"secretKey": prop, "remoteRef": {"key": key,
                                                                       "property": prop}}]}
    if target:
        spec["target"] = target
    return {"apiVersion": "secretops.dev/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": name}, "spec": spec}


# what the previous version's kopf kept on each store and ExternalSecret it handled (removed by
# the upgrade clean-up, docs/controller.md#upgrade-notes)
OLD_KOPF = {"secretops.dev/last-handled-configuration": '{"spec":{}}',
            "secretops.dev/kopf-managed": "yes"}


def _reason(k8s: K8s, path: str) -> str | None:
    """The reason of the object's Ready condition."""
    st, body, _ = k8s.request("GET", path)
    ready = [c for c in ((body.get("status") or {}).get("conditions") or [] if st == 200 else [])
             if c.get("type") == "Ready"]
    return str(ready[0].get("reason")) if ready else None


def _annotations(k8s: K8s, path: str) -> dict[str, str]:
    return dict(k8s.request("GET", path)[1]["metadata"].get("annotations") or {})


def external_flow(k8s: K8s, openbao: OpenBao, ns: str, *, cluster_store: bool = False,
                  rollout: bool = True) -> None:
    base = f"deploy/{ns}"
    _bao_put(openbao, f"{base}/db", {"password": CANARY})
    token = base64.b64encode(openbao.token.encode()).decode()
    _post(k8s, f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "bao-token"},
                                                    "data": {"token": token}})
    auth = {"tokenSecretRef": {"name": "bao-token", "key": "token"}}
    # an ExternalSecret applied before its store (`kubectl apply -f dir/` in name order): the
    # controller reads the store it has not watched yet (the RBAC's `get` on stores), reports
    # it missing, and syncs once the store's own event comes
    early = _external_secret("es-early", "bao", "SecretStore", f"{base}/db", "password")
    _post(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets", early)
    wait_for(lambda: _reason(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets/es-early")
             == "StoreNotReady", what="an ExternalSecret whose store is not there yet")
    _post(k8s, f"{ES_API}/namespaces/{ns}/secretstores", {
        "apiVersion": "secretops.dev/v1alpha1", "kind": "SecretStore",
        "metadata": {"name": "bao", "annotations": OLD_KOPF},
        "spec": {"provider": {"vault": {"server": openbao.url, "auth": auth}}}})
    wait_for(lambda: values(secret(k8s, ns, "es-early")) == {"password": CANARY.encode()},
             what=f"Secret {ns}/es-early once its store came")
    stores = [("es-db", "SecretStore")]
    if cluster_store:
        early = _external_secret("es-early-c", f"bao-{ns}", "ClusterSecretStore",
                                 f"{base}/db", "password")
        _post(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets", early)
        wait_for(lambda: _reason(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets/es-early-c")
                 == "StoreNotReady", what="an ExternalSecret whose ClusterSecretStore is not "
                                          "there yet")
        k8s.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
            "secrets": "bao"}}}, "application/merge-patch+json")
        _post(k8s, f"{ES_API}/clustersecretstores", {
            "apiVersion": "secretops.dev/v1alpha1", "kind": "ClusterSecretStore",
            "metadata": {"name": f"bao-{ns}", "annotations": OLD_KOPF},
            "spec": {"provider": {"vault": {"server": openbao.url, "auth": {"tokenSecretRef": {
                **auth["tokenSecretRef"], "namespace": ns}}}},
                "conditions": [{"namespaceSelector": {"matchLabels": {"secrets": "bao"}}}]}})
        stores.append(("ces-db", "ClusterSecretStore"))
    for name, kind in stores:
        store = "bao" if kind == "SecretStore" else f"bao-{ns}"
        es = _external_secret(name, store, kind, f"{base}/db", "password")
        es["metadata"]["annotations"] = OLD_KOPF
        _post(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets", es)
        wait_for(lambda n=name: values(secret(k8s, ns, n)) == {"password": CANARY.encode()},
                 what=f"Secret {ns}/{name} from OpenBao")
    upgraded = [f"{ES_API}/namespaces/{ns}/secretstores/bao",
                *(f"{ES_API}/namespaces/{ns}/externalsecrets/{n}" for n, _ in stores)]
    if cluster_store:
        upgraded.append(f"{ES_API}/clustersecretstores/bao-{ns}")
    for path in upgraded:
        wait_for(lambda p=path: not _annotations(k8s, p), what=f"{path}: kopf's removed")
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/es-db")
    wait_for(lambda: values(secret(k8s, ns, "es-db")) == {"password": CANARY.encode()},
             what="deleted ExternalSecret Secret restored")
    # deletionPolicy Delete: the remote secret goes, so does the Secret (delete)
    _bao_put(openbao, f"{base}/gone", {"k": "v"})
    _post(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets",
          _external_secret("es-gone", "bao", "SecretStore", f"{base}/gone", "k",
                           deletionPolicy="Delete"))
    wait_for(lambda: values(secret(k8s, ns, "es-gone")) == {"k": b"v"},
             what=f"Secret {ns}/es-gone")
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"{base}/gone", mount_point="secret")
    wait_for(lambda: secret(k8s, ns, "es-gone") is None, what=f"Secret {ns}/es-gone deleted")
    if rollout:
        _workloads(k8s, ns)
    _bao_put(openbao, f"{base}/db", {"password": "rotated"})
    wait_for(lambda: values(secret(k8s, ns, "es-db")) == {"password": b"rotated"},
             what=f"Secret {ns}/es-db updated")
    for plural in ("deployments", "statefulsets", "daemonsets") if rollout else ():
        wait_for(lambda p=plural: "secretops.dev/restartedAt" in (k8s.request(
            "GET", f"/apis/apps/v1/namespaces/{ns}/{p}/web")[1]["spec"]["template"][
            "metadata"].get("annotations") or {}), timeout=10, what=f"{ns}: {plural}/web rolled")


def _workloads(k8s: K8s, ns: str) -> None:
    """A Deployment opted in with secretops.dev/reload-on-change, a StatefulSet and a DaemonSet
    with Reloader's annotations, all reading es-db."""
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
        _post(k8s, f"/apis/apps/v1/namespaces/{ns}/{plural}", {
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "web", "annotations": notes}, "spec": spec})


def openbao_kubernetes_auth(k8s: K8s, openbao: OpenBao, namespaces: list[str]) -> str:
    """OpenBao's Kubernetes auth against this emulator (TokenReview with a reviewer's token):
    role ``app`` for :data:`STORE_SA` of ``namespaces`` (audience vault), role ``controller``
    for the controller's own service account."""
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
    client.write(f"auth/{mount}/role/app", bound_service_account_names=[STORE_SA],
                 bound_service_account_namespaces=namespaces, audience="vault",
                 token_policies=["deploy-read"], token_ttl="10m")
    client.write(f"auth/{mount}/role/controller", bound_service_account_names=[SA_NAME],
                 bound_service_account_namespaces=[SYSTEM_NS], token_policies=["deploy-read"],
                 token_ttl="10m")
    for ns in namespaces:
        k8s.service_account(ns, STORE_SA)
    return mount


def store_ready(k8s: K8s, path: str) -> dict[str, Any] | None:
    """A store's Ready condition, if it has one."""
    st = k8s.request("GET", path)[1]
    ready = [c for c in (st.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
    return ready[0] if ready else None


def vault_kubernetes_auth(k8s: K8s, openbao: OpenBao, mount: str, ns: str, *,
                          cluster_store: bool = False) -> None:
    """A SecretStore logging in as :data:`STORE_SA` of ``ns`` (a TokenRequest by the
    controller); with ``cluster_store``, a ClusterSecretStore as the controller itself (its
    token file) and a SecretStore that may not borrow the controller's identity."""
    _bao_put(openbao, f"deploy/{ns}/api", {"key": CANARY})
    k8s_auth = {"mountPath": mount, "role": "app",
                "serviceAccountRef": {"name": STORE_SA, "audiences": ["vault"]}}
    stores = [(f"{ES_API}/namespaces/{ns}/secretstores", "SecretStore", "bao-sa", k8s_auth)]
    if cluster_store:
        stores += [(f"{ES_API}/clustersecretstores", "ClusterSecretStore", "bao-own",
                    {"mountPath": mount, "role": "controller"}),
                   (f"{ES_API}/namespaces/{ns}/secretstores", "SecretStore", "bao-borrow",
                    {"mountPath": mount, "role": "controller"})]
    for path, kind, name, auth in stores:
        _post(k8s, path, {"apiVersion": "secretops.dev/v1alpha1", "kind": kind,
                          "metadata": {"name": name}, "spec": {"provider": {"vault": {
                              "server": openbao.url, "auth": {"kubernetes": auth}}}}})
    names = [("es-sa", "bao-sa", "SecretStore")]
    if cluster_store:
        names.append(("es-own", "bao-own", "ClusterSecretStore"))
    for name, store, kind in names:
        _post(k8s, f"{ES_API}/namespaces/{ns}/externalsecrets",
              _external_secret(name, store, kind, f"deploy/{ns}/api", "key"))
        wait_for(lambda n=name: values(secret(k8s, ns, n)) == {"key": CANARY.encode()},
                 what=f"Secret {ns}/{name} through Vault Kubernetes auth")
    if cluster_store:
        def borrow_refused() -> bool:
            ready = store_ready(k8s, f"{ES_API}/namespaces/{ns}/secretstores/bao-borrow")
            return ready is not None and ready["status"] == "False" and \
                "may not log in with the controller's own service account" in ready["message"]

        wait_for(borrow_refused, what="a SecretStore refused the controller's own identity")


__all__ = ["SA", "SA_NAME", "STORE_SA", "ensure_namespace", "external_flow", "key_renewal",
           "openbao_kubernetes_auth", "recipients", "sealed_flow", "start_as_service_account",
           "store_ready", "vault_kubernetes_auth"]
