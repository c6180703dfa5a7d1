"""The audit log: calls made with a service-account token, as RBAC names them.

A record is (service account, verb, API group, resource incl. subresource, namespace, name,
code); verbs follow the apiserver's request-info rules (a GET on a collection is ``list``, or
``watch`` with ``watch=true``; a DELETE on one is ``deletecollection``; a ``metadata.name`` field
selector names the object). Calls with any other credential are the test's admin and are not
recorded. The RBAC evaluator over these records is tested in ``test_rbac.py``.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.k8s import K8s, start_emulator, stop

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


@pytest.fixture
def ns(k8s: K8s) -> str:
    name = f"au-{uuid.uuid4().hex[:10]}"
    assert k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


def calls(k8s: K8s, sa: str) -> list[tuple[Any, ...]]:
    return [
        (c["verb"], c["apiGroup"], c["resource"], c["namespace"], c["name"], c["code"])
        for c in k8s.audit(sa)
    ]


def test_service_account_calls_are_recorded_with_rbac_verbs(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl")
    secrets = f"/api/v1/namespaces/{ns}/secrets"
    data = {"a": base64.b64encode(b"1").decode()}
    body = {"metadata": {"name": "s", "labels": {"x": "y"}}, "data": data}

    def call(method: str, path: str, payload: Any = None, ctype: str = "application/json") -> int:
        return k8s.request(method, path, payload, ctype, token=token)[0]

    assert call("POST", secrets, body) == 201
    assert call("GET", f"{secrets}/s") == 200
    assert call("GET", secrets) == 200
    assert call("GET", f"{secrets}?fieldSelector=metadata.name%3Ds") == 200
    assert call("GET", f"{secrets}?watch=true&timeoutSeconds=1") == 200
    assert call("PUT", f"{secrets}/s", body) == 200
    assert call("PATCH", f"{secrets}/s", {"data": {"b": data["a"]}}, SMP) == 200
    assert call("DELETE", f"{secrets}/s") == 200
    assert call("DELETE", f"{secrets}?labelSelector=x%3Dy") == 200
    assert call("GET", f"{secrets}/missing") == 404
    svc = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    assert k8s.request("POST", f"/api/v1/namespaces/{ns}/services", svc)[0] == 201  # admin
    status_patch = {"status": {"loadBalancer": {}}}
    assert call("PATCH", f"/api/v1/namespaces/{ns}/services/web/status", status_patch, MERGE) == 200
    assert call("GET", "/api/v1/namespaces") == 200
    assert call("GET", f"/api/v1/namespaces/{ns}") == 200
    assert call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments") == 200
    review = {"spec": {"token": token}}
    assert call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review) == 201

    assert calls(k8s, f"{ns}/ctrl") == [
        ("create", "", "secrets", ns, "", 201),
        ("get", "", "secrets", ns, "s", 200),
        ("list", "", "secrets", ns, "", 200),
        ("list", "", "secrets", ns, "s", 200),
        ("watch", "", "secrets", ns, "", 200),
        ("update", "", "secrets", ns, "s", 200),
        ("patch", "", "secrets", ns, "s", 200),
        ("delete", "", "secrets", ns, "s", 200),
        ("deletecollection", "", "secrets", ns, "", 200),
        ("get", "", "secrets", ns, "missing", 404),
        ("patch", "", "services/status", ns, "web", 200),
        ("list", "", "namespaces", "", "", 200),
        ("get", "", "namespaces", ns, ns, 200),
        ("list", "apps", "deployments", ns, "", 200),
        ("create", "authentication.k8s.io", "tokenreviews", "", "", 201),
    ]
    record = k8s.audit(f"{ns}/ctrl")[0]
    assert record["user"] == f"system:serviceaccount:{ns}:ctrl"
    assert record["serviceAccount"] == f"{ns}/ctrl" and record["apiVersion"] == "v1"


def test_discovery_calls_are_recorded_as_non_resource_urls(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl")
    for path in ("/api", "/apis", "/apis/apps/v1", "/version"):
        assert k8s.request("GET", path, token=token)[0] == 200
    records = k8s.audit(f"{ns}/ctrl")
    assert [(r["nonResourceURL"], r["verb"], r["path"]) for r in records] == [
        (True, "get", "/api"),
        (True, "get", "/apis"),
        (True, "get", "/apis/apps/v1"),
        (True, "get", "/version"),
    ]


def test_calls_without_a_service_account_token_are_not_recorded(k8s: K8s, ns: str) -> None:
    k8s.reset_audit()
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets")[0] == 200
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets", token="emulator-admin")[0] == 200
    assert k8s.audit() == []


def test_the_audit_log_is_per_account_and_can_be_reset(k8s: K8s, ns: str) -> None:
    one, two = k8s.token(ns, "one"), k8s.token(ns, "two")
    k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps", token=one)
    k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=two)
    assert [r["resource"] for r in k8s.audit(f"{ns}/one")] == ["configmaps"]
    assert [r["resource"] for r in k8s.audit(f"{ns}/two")] == ["secrets"]
    k8s.reset_audit()
    assert k8s.audit() == []
    status, out, _ = k8s.request("GET", "/_emulator/audit")
    assert status == 200 and out == {"items": [], "dropped": 0}


def test_counts_keep_every_call_when_the_records_are_bounded(tmp_path: Path) -> None:
    proc, small = start_emulator(tmp_path, "--audit-limit", "3")
    try:
        ns = "default"
        one, two = small.token(ns, "one"), small.token(ns, "two")
        for i in range(5):
            status, _, _ = small.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                         {"metadata": {"name": f"c{i}"}}, token=one)
            assert status == 201
            small.request("GET", f"/api/v1/namespaces/{ns}/configmaps/c{i}", token=one)
        small.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=two)
        small.request("GET", "/api", token=two)
        status, out, _ = small.request("GET", "/_emulator/audit")
        assert len(out["items"]) == 3 and out["dropped"] == 9  # the records: the newest 3
        assert small.audit_counts(f"{ns}/one") == {"create": {"configmaps": 5},
                                                   "get": {"configmaps": 5}}
        assert small.audit_counts() == {"create": {"configmaps": 5},
                                        "get": {"configmaps": 5, "/api": 1},
                                        "list": {"secrets": 1}}
        assert small.request("GET", "/_emulator/audit/counts")[1]["total"] == 12
        small.reset_audit()
        assert small.audit_counts() == {}
    finally:
        small.close()
        stop(proc)
