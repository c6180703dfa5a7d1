"""The RBAC evaluator (``tests/k8s/rbac.py``) over audit records, with Kubernetes' RBAC rules.

A hand-made Role, ClusterRole and their bindings; calls are either recorded by the emulator (a
service account's real requests) or written as records directly, one behaviour per test.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.k8s import K8s, assert_least_privilege, check_rbac

MANIFESTS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ctrl, namespace: app}
rules:
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [configmaps]
    resourceNames: [settings]
    verbs: [get, update]
  - apiGroups: [example.secretops.dev]
    resources: [secretrequests/status]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ctrl, namespace: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ctrl}
subjects:
  - {kind: ServiceAccount, name: ctrl}   # namespace: the binding's
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ns-reader}
rules:
  - apiGroups: [""]
    resources: [namespaces]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ctrl-ns-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ns-reader}
subjects:
  - {kind: ServiceAccount, name: ctrl, namespace: app}
"""
SA = "app/ctrl"


def call(
    verb: str, resource: str, namespace: str = "app", name: str = "", group: str = ""
) -> dict[str, Any]:
    return {
        "user": "system:serviceaccount:app:ctrl",
        "serviceAccount": SA,
        "verb": verb,
        "apiGroup": group,
        "resource": resource,
        "namespace": namespace,
        "name": name,
        "path": "",
        "nonResourceURL": False,
    }


EVERY_PERMISSION = [
    call("get", "secrets", name="a"),
    call("list", "secrets"),
    call("watch", "secrets"),
    call("get", "configmaps", name="settings"),
    call("update", "configmaps", name="settings"),
    call("patch", "secretrequests/status", name="r", group="example.secretops.dev"),
    call("get", "namespaces", namespace="other", name="other"),
]


def test_every_call_allowed_and_every_permission_used_passes() -> None:
    report = assert_least_privilege(EVERY_PERMISSION, MANIFESTS)
    assert report.ok and not report.denied and not report.unused
    assert len(report.allowed) == len(EVERY_PERMISSION)


def test_a_verb_or_resource_not_granted_is_denied() -> None:
    report = check_rbac([call("create", "secrets"), call("get", "configmaps")], MANIFESTS)
    assert [c["verb"] for c in report.denied] == ["create", "get"]


def test_a_role_binding_grants_in_its_namespace_only() -> None:
    report = check_rbac([call("get", "secrets", namespace="elsewhere", name="a")], MANIFESTS)
    assert len(report.denied) == 1


def test_a_cluster_role_binding_grants_everywhere_and_cluster_scoped() -> None:
    records = [
        call("get", "namespaces", namespace="app", name="app"),
        call("get", "namespaces", namespace="kube-system", name="kube-system"),
    ]
    assert not check_rbac(records, MANIFESTS).denied
    assert check_rbac([call("list", "namespaces", namespace="")], MANIFESTS).denied


def test_resource_names_limit_named_calls_and_exclude_unnamed_ones() -> None:
    report = check_rbac(
        [
            call("get", "configmaps", name="settings"),
            call("get", "configmaps", name="other"),
            call("update", "configmaps"),  # no name: resourceNames never match
        ],
        MANIFESTS,
    )
    assert [(c["name"]) for c in report.denied] == ["other", ""]


def test_a_subresource_is_a_resource_of_its_own() -> None:
    group = "example.secretops.dev"
    report = check_rbac(
        [
            call("patch", "secretrequests/status", name="r", group=group),
            call("patch", "secretrequests", name="r", group=group),
        ],
        MANIFESTS,
    )
    assert [c["resource"] for c in report.denied] == ["secretrequests"]
    wildcard = MANIFESTS.replace("[secretrequests/status]", "['*/status']")
    assert not check_rbac([call("patch", "secretrequests/status", group=group)], wildcard).denied


def test_group_subjects_and_wildcards_match() -> None:
    manifests = MANIFESTS.replace(
        "- {kind: ServiceAccount, name: ctrl}   # namespace: the binding's",
        "- {kind: Group, name: 'system:serviceaccounts:app'}",
    ).replace("verbs: [get, list, watch]", "verbs: ['*']")
    assert not check_rbac([call("delete", "secrets", name="a")], manifests).denied


def test_unused_permissions_are_reported() -> None:
    report = check_rbac(EVERY_PERMISSION[1:-1], MANIFESTS, service_account=SA)
    assert report.unused == [
        "Role app/ctrl rule[0] (via RoleBinding app/ctrl): get core/secrets",
        "ClusterRole ns-reader rule[0] (via ClusterRoleBinding ctrl-ns-reader): "
        "get core/namespaces",
    ]
    with pytest.raises(AssertionError, match="unused: Role app/ctrl rule\\[0\\]"):
        assert_least_privilege(EVERY_PERMISSION[1:], MANIFESTS)


def test_default_discovery_grants_allow_discovery_and_are_never_unused() -> None:
    discovery = {**call("get", ""), "nonResourceURL": True, "path": "/apis/apps/v1"}
    private = {**discovery, "path": "/metrics"}
    report = check_rbac([*EVERY_PERMISSION, discovery, private], MANIFESTS)
    assert report.denied == [private] and not report.unused


def test_recorded_calls_of_a_service_account_are_checked(k8s: K8s) -> None:
    ns = f"rb-{uuid.uuid4().hex[:8]}"
    token = k8s.token(ns, "ctrl")
    k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "settings"}})
    k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=token)
    k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps/settings", token=token)
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/settings", token=token)
    manifests = MANIFESTS.replace("namespace: app", f"namespace: {ns}")
    report = check_rbac(k8s.audit(f"{ns}/ctrl"), manifests, service_account=f"{ns}/ctrl")
    assert [(c["verb"], c["resource"]) for c in report.denied] == [("delete", "configmaps")]
    assert [u.rsplit(": ", 1)[1] for u in report.unused] == [
        "get core/secrets",
        "watch core/secrets",
        "update core/configmaps 'settings'",
        "patch example.secretops.dev/secretrequests/status",
        "get core/namespaces",
    ]
