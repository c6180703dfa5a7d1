"""The emulator's OwnerReferencesPermissionEnforcement admission plugin, as kube-apiserver's
(plugin/pkg/admission/gc/gc_admission.go): off by default; on, an ownerReference needs
``delete`` on the object, and a newly blocking one ``update`` on the owner's ``finalizers``,
both under the caller's RBAC as stored; the admin is never refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.k8s import K8s, start_emulator, stop

NS = "app"
PLUGIN = "OwnerReferencesPermissionEnforcement"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
FINALIZERS = "cannot set blockOwnerDeletion if an ownerReference refers to a resource you " \
             "can't set finalizers on"


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K8s]:
    proc, k8s = start_emulator(tmp_path_factory.mktemp("k8s-admission"),
                               "--enable-admission-plugins", PLUGIN)
    try:
        yield k8s
    finally:
        k8s.close()
        stop(proc)


def role(k8s: K8s, name: str, rules: list[dict[str, Any]]) -> None:
    """Role ``name`` with ``rules``, bound to ServiceAccount app/``name`` (replaced if any)."""
    for kind, body in (("roles", {"rules": rules}), ("rolebindings", {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NS}]})):
        k8s.request("DELETE", f"{RBAC}/namespaces/{NS}/{kind}/{name}")
        status, out, _ = k8s.request("POST", f"{RBAC}/namespaces/{NS}/{kind}",
                                     {"metadata": {"name": name}, **body})
        assert status == 201, out


def owner(k8s: K8s, name: str) -> dict[str, Any]:
    status, cm, _ = k8s.request("POST", f"/api/v1/namespaces/{NS}/configmaps",
                                {"metadata": {"name": name}})
    assert status == 201, cm
    meta = cm["metadata"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": meta["uid"],
            "controller": True}


def secret(name: str, *refs: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "ownerReferences": list(refs)}, "data": {}}


SECRETS = {"apiGroups": [""], "resources": ["secrets"],
           "verbs": ["get", "create", "update", "patch", "delete"]}


def test_block_owner_deletion_needs_update_on_the_owners_finalizers(enforcing: K8s) -> None:
    k8s = enforcing
    token = k8s.token(NS, "writer")
    role(k8s, "writer", [SECRETS])
    ref = owner(k8s, "owner-a")
    path = f"/api/v1/namespaces/{NS}/secrets"

    # not blocking: delete on Secrets is all it takes
    status, out, _ = k8s.request("POST", path, secret("plain", ref), token=token)
    assert status == 201, out
    # blocking: refused, with the plugin's message, and nothing stored
    status, out, _ = k8s.request("POST", path, secret("blocking", {**ref,
                                 "blockOwnerDeletion": True}), token=token)
    assert status == 403 and out["reason"] == "Forbidden", out
    assert out["message"] == f'secrets "blocking" is forbidden: {FINALIZERS}: , <nil>'
    assert k8s.request("GET", f"{path}/blocking")[0] == 404
    # an update that makes an existing reference blocking is refused the same way
    _, plain, _ = k8s.request("GET", f"{path}/plain")
    plain["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = True
    status, out, _ = k8s.request("PUT", f"{path}/plain", plain, token=token)
    assert (status, out["message"].split(": ", 1)[1]) == (
        403, f"{FINALIZERS}: , <nil>"), out
    status, out, _ = k8s.request(
        "PATCH", f"{path}/plain", {"metadata": {"ownerReferences": [
            {**ref, "blockOwnerDeletion": True}]}},
        content_type="application/merge-patch+json", token=token)
    assert status == 403, out
    # the admin (system:masters) is never refused
    status, out, _ = k8s.request("POST", path, secret("by-admin", {**ref,
                                 "blockOwnerDeletion": True}))
    assert status == 201, out

    # update on configmaps/finalizers, for that owner only: allowed
    role(k8s, "writer", [SECRETS, {"apiGroups": [""], "resources": ["configmaps/finalizers"],
                                   "resourceNames": ["owner-a"], "verbs": ["update"]}])
    status, out, _ = k8s.request("POST", path, secret("blocking", {**ref,
                                 "blockOwnerDeletion": True}), token=token)
    assert status == 201, out
    other = owner(k8s, "owner-b")
    status, out, _ = k8s.request("POST", path, secret("blocking-b", {**other,
                                 "blockOwnerDeletion": True}), token=token)
    assert status == 403, out
    # the checks are in the audit log, so a least-privilege check sees them used
    checks = [r for r in k8s.audit(f"{NS}/writer") if r.get("admission")]
    assert {(r["verb"], r["resource"], r["name"]) for r in checks} >= {
        ("delete", "secrets", "plain"), ("update", "configmaps/finalizers", "owner-a"),
        ("update", "configmaps/finalizers", "owner-b")}

    # a reference that is blocking already needs nothing more on updates that keep it
    role(k8s, "writer", [SECRETS])
    _, kept, _ = k8s.request("GET", f"{path}/blocking")
    kept["metadata"]["labels"] = {"touched": "yes"}
    status, out, _ = k8s.request("PUT", f"{path}/blocking", kept, token=token)
    assert status == 200, out


def test_owner_references_need_delete_on_the_object(enforcing: K8s) -> None:
    k8s = enforcing
    token = k8s.token(NS, "creator")
    role(k8s, "creator", [{"apiGroups": [""], "resources": ["secrets"],
                           "verbs": ["get", "create", "update"]}])
    ref = owner(k8s, "owner-c")
    path = f"/api/v1/namespaces/{NS}/secrets"
    status, out, _ = k8s.request("POST", path, secret("owned", ref), token=token)
    assert status == 403, out
    assert out["message"] == ('secrets "owned" is forbidden: cannot set an ownerRef on a '
                              "resource you can't delete: , <nil>")
    status, out, _ = k8s.request("POST", path, secret("unowned"), token=token)
    assert status == 201, out  # no ownerReferences: nothing to check
    # an owner kind the server does not serve cannot be blocking
    role(k8s, "creator", [SECRETS])
    missing = {"apiVersion": "example.com/v1", "kind": "Nothing", "name": "x", "uid": "u",
               "blockOwnerDeletion": True}
    status, out, _ = k8s.request("POST", path, secret("unmapped", missing), token=token)
    assert status == 403 and "cannot find RESTMapping for APIVersion example.com/v1 " \
                             "Kind Nothing" in out["message"], out


def test_off_by_default(k8s: K8s, tmp_path: Path) -> None:
    token = k8s.token(NS, "writer")
    role(k8s, "writer", [SECRETS])
    ref = owner(k8s, "owner-d")
    status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{NS}/secrets",
                                 secret("blocking", {**ref, "blockOwnerDeletion": True}),
                                 token=token)
    assert status == 201, out
