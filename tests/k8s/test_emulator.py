"""The emulator against the Kubernetes API conventions, one test per behaviour, over plain HTTP.

Each expectation is what a real kube-apiserver returns (codes, ``Status`` bodies, metadata
rules), so this file doubles as the list of what the emulator reproduces faithfully.
The ``kubernetes`` client, kubectl and kopf are exercised in the sibling modules.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.k8s import K8s, start_emulator, stop
from tests.k8s.helpers import wait_for, watch_events

CRD_FILE = Path(__file__).parents[1] / "testdata" / "k8s" / "example-crd.yaml"
CR_BASE = "/apis/example.secretops.dev/v1"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"


@pytest.fixture
def ns(k8s: K8s) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    status, _, _ = k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201
    return name


@pytest.fixture
def crd(k8s: K8s) -> dict[str, Any]:
    """The example CRD, created once per module and served."""
    body = yaml.safe_load(CRD_FILE.read_text())
    status, obj, _ = k8s.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body
    )
    assert status in (201, 409), obj
    wait_for(lambda: k8s.request("GET", f"{CR_BASE}/secretrequests")[0] == 200, what="CRD served")
    return body


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def cr(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.secretops.dev/v1",
        "kind": "SecretRequest",
        "metadata": {"name": name},
        "spec": {"secretName": f"{name}-secret", **spec},
    }


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 80}],
                        },
                        {"name": "sidecar", "image": "side:1"},
                    ]
                },
            },
        },
    }


def assert_status(body: Any, code: int, reason: str) -> None:
    assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
    assert body["status"] == "Failure" and body["code"] == code and body["reason"] == reason, body
    assert body["message"]


# ---- store, CRUD, resourceVersion ----------------------------------------------------------------
def test_create_is_201_with_uid_timestamp_and_resource_version(k8s: K8s, ns: str) -> None:
    status, obj, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("s", a="1"))
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == ns and meta["name"] == "s"
    assert uuid.UUID(meta["uid"]) and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert "generation" not in meta  # Secrets have none; workloads and custom resources do
    assert obj["kind"] == "Secret" and obj["apiVersion"] == "v1" and obj["type"] == "Opaque"
    status, dep, _ = k8s.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("d")
    )
    assert status == 201 and dep["metadata"]["generation"] == 1 and dep["spec"]["replicas"] == 1


def test_resource_version_is_cluster_wide_and_monotonic(k8s: K8s, ns: str) -> None:
    seen = []
    for i, path in enumerate(["secrets", "configmaps", "secrets", "serviceaccounts"]):
        body = {"metadata": {"name": f"o{i}"}}
        status, obj, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/{path}", body)
        assert status == 201
        seen.append(int(obj["metadata"]["resourceVersion"]))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_generate_name_gives_a_unique_suffix(k8s: K8s, ns: str) -> None:
    names = set()
    for _ in range(3):
        status, obj, _ = k8s.request(
            "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"generateName": "cm-"}}
        )
        assert status == 201 and obj["metadata"]["generateName"] == "cm-"
        assert obj["metadata"]["name"].startswith("cm-") and len(obj["metadata"]["name"]) == 8
        names.add(obj["metadata"]["name"])
    assert len(names) == 3
    status, body, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {}})
    assert_status(body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_create_existing_is_409_already_exists(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("dup"))
    status, body, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("dup"))
    assert status == 409
    assert_status(body, 409, "AlreadyExists")
    assert body["message"] == 'secrets "dup" already exists'
    assert body["details"] == {"name": "dup", "kind": "secrets"}


def test_get_missing_is_404_not_found_with_group(k8s: K8s, ns: str) -> None:
    status, body, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/nope")
    assert status == 404
    assert_status(body, 404, "NotFound")
    assert body["message"] == 'secrets "nope" not found'
    status, body, _ = k8s.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    status, body, _ = k8s.request("GET", "/apis/nothing.example/v1/things")
    assert status == 404 and body["reason"] == "NotFound"


def test_create_in_missing_namespace_is_404(k8s: K8s) -> None:
    status, body, _ = k8s.request("POST", "/api/v1/namespaces/absent/secrets", secret("s"))
    assert status == 404 and body["message"] == 'namespaces "absent" not found'


def test_create_with_resource_version_or_wrong_namespace_is_400(k8s: K8s, ns: str) -> None:
    body = secret("rv")
    body["metadata"]["resourceVersion"] = "5"
    status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", body)
    assert status == 400 and out["reason"] == "BadRequest"
    body = secret("other")
    body["metadata"]["namespace"] = "default"
    status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", body)
    assert status == 400 and "does not match the namespace" in out["message"]


def test_put_replaces_and_stale_resource_version_is_409_conflict(k8s: K8s, ns: str) -> None:
    _, obj, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "c"}, "data": {"a": "1"}},
    )
    stale = obj["metadata"]["resourceVersion"]
    obj["data"] = {"b": "2"}
    status, new, _ = k8s.request("PUT", f"/api/v1/namespaces/{ns}/configmaps/c", obj)
    assert status == 200 and new["data"] == {"b": "2"}
    assert int(new["metadata"]["resourceVersion"]) > int(stale)
    assert new["metadata"]["uid"] == obj["metadata"]["uid"]
    obj["data"] = {"c": "3"}  # still carries the stale resourceVersion
    status, body, _ = k8s.request("PUT", f"/api/v1/namespaces/{ns}/configmaps/c", obj)
    assert status == 409
    assert_status(body, 409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    del obj["metadata"]["resourceVersion"]  # no resourceVersion: an unconditional update
    status, new, _ = k8s.request("PUT", f"/api/v1/namespaces/{ns}/configmaps/c", obj)
    assert status == 200 and new["data"] == {"c": "3"}


def test_put_of_missing_object_is_404_and_name_mismatch_is_400(k8s: K8s, ns: str) -> None:
    status, _, _ = k8s.request(
        "PUT", f"/api/v1/namespaces/{ns}/configmaps/x", {"metadata": {"name": "x"}}
    )
    assert status == 404
    k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "y"}})
    status, body, _ = k8s.request(
        "PUT", f"/api/v1/namespaces/{ns}/configmaps/y", {"metadata": {"name": "z"}}
    )
    assert status == 400 and body["reason"] == "BadRequest"


def test_update_that_changes_nothing_keeps_the_resource_version(k8s: K8s, ns: str) -> None:
    _, obj, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "same"}, "data": {"a": "1"}},
    )
    status, new, _ = k8s.request(
        "PATCH", f"/api/v1/namespaces/{ns}/configmaps/same", {"data": {"a": "1"}}, MERGE
    )
    assert (
        status == 200 and new["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    )


def test_dry_run_validates_but_stores_nothing(k8s: K8s, ns: str) -> None:
    status, obj, _ = k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/secrets?dryRun=All", secret("dry")
    )
    assert status == 201 and obj["metadata"]["name"] == "dry"
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/dry")[0] == 404


# ---- patches ------------------------------------------------------------------------------------
def test_merge_patch_merges_maps_deletes_nulls_and_checks_resource_version(
    k8s: K8s, ns: str
) -> None:
    _, obj, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "m", "labels": {"a": "1", "b": "2"}}},
    )
    path = f"/api/v1/namespaces/{ns}/configmaps/m"
    status, new, _ = k8s.request(
        "PATCH", path, {"metadata": {"labels": {"b": None, "c": "3"}}}, MERGE
    )
    assert status == 200 and new["metadata"]["labels"] == {"a": "1", "c": "3"}
    stale = {
        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"], "labels": {"d": "4"}}
    }
    status, body, _ = k8s.request("PATCH", path, stale, MERGE)
    assert status == 409 and body["reason"] == "Conflict"


def test_json_patch_applies_and_a_failed_test_is_422(k8s: K8s, ns: str) -> None:
    _, obj, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "j"}, "data": {"a": "1"}},
    )
    path = f"/api/v1/namespaces/{ns}/configmaps/j"
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/f"]},
        {"op": "replace", "path": "/data/a", "value": "2"},
    ]
    status, new, _ = k8s.request("PATCH", path, ops, JSONPATCH)
    assert status == 200 and new["data"] == {"a": "2"}
    assert new["metadata"]["finalizers"] == ["example.dev/f"]
    status, body, _ = k8s.request("PATCH", path, ops, JSONPATCH)  # rv moved on: the test fails
    assert status == 422 and body["kind"] == "Status" and body["code"] == 422
    status, body, _ = k8s.request("PATCH", path, [{"op": "remove", "path": "/data/zz"}], JSONPATCH)
    assert status == 422
    k8s.request("PATCH", path, [{"op": "remove", "path": "/metadata/finalizers"}], JSONPATCH)


def test_strategic_merge_patch_merges_pod_template_lists_by_key(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("web"))
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"secretops.dev/restartedAt": "now"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:2",
                            "env": [{"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "name": "http"}],
                        }
                    ],
                    "volumes": [{"name": "s", "secret": {"secretName": "x"}}],
                },
            }
        }
    }
    status, new, _ = k8s.request("PATCH", path, patch, SMP)
    assert status == 200, new
    tpl = new["spec"]["template"]
    containers = {c["name"]: c for c in tpl["spec"]["containers"]}
    assert list(containers) == ["app", "sidecar"]  # merged by name, the sidecar kept
    assert containers["app"]["image"] == "app:2"
    assert containers["app"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert containers["app"]["ports"] == [{"containerPort": 80, "name": "http"}]
    assert tpl["spec"]["volumes"] == [{"name": "s", "secret": {"secretName": "x"}}]
    assert tpl["metadata"]["annotations"] == {"secretops.dev/restartedAt": "now"}
    assert new["metadata"]["generation"] == 2


def test_strategic_merge_patch_directives(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("dir"))
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/dir"
    delete = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
    }
    _, new, _ = k8s.request("PATCH", path, delete, SMP)
    assert [c["name"] for c in new["spec"]["template"]["spec"]["containers"]] == ["app"]
    replace = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "only", "image": "only:1"}, {"$patch": "replace"}]}
            }
        }
    }
    _, new, _ = k8s.request("PATCH", path, replace, SMP)
    assert new["spec"]["template"]["spec"]["containers"] == [{"name": "only", "image": "only:1"}]
    _, new, _ = k8s.request("PATCH", path, {"metadata": {"finalizers": ["a/b"]}}, SMP)
    _, new, _ = k8s.request("PATCH", path, {"metadata": {"finalizers": ["c/d"]}}, SMP)
    assert new["metadata"]["finalizers"] == ["a/b", "c/d"]  # merged as a set
    _, new, _ = k8s.request(
        "PATCH", path, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/b", "c/d"]}}, SMP
    )
    assert not new["metadata"]["finalizers"]


def test_unknown_patch_type_is_415(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "u"}})
    status, body, _ = k8s.request(
        "PATCH", f"/api/v1/namespaces/{ns}/configmaps/u", {}, "text/plain"
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_protobuf_bodies_are_decoded_for_built_in_kinds(k8s: K8s, ns: str) -> None:
    # an envelope without typeMeta or object: a Secret of the URL's kind with no name, as the
    # apiserver's protobuf decoder defaults it (test_protobuf.py covers kubectl's bodies)
    status, body, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        b"k8s\x00\x0a\x00",
        "application/vnd.kubernetes.protobuf",
    )
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"


# ---- kind-specific rules -------------------------------------------------------------------------
def test_secret_string_data_is_folded_into_base64_data(k8s: K8s, ns: str) -> None:
    body = {
        "metadata": {"name": "sd"},
        "data": {"a": base64.b64encode(b"old").decode()},
        "stringData": {"a": "new", "b": "plain"},
    }
    status, obj, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", body)
    assert status == 201 and "stringData" not in obj
    assert {k: base64.b64decode(v).decode() for k, v in obj["data"].items()} == {
        "a": "new",
        "b": "plain",
    }
    _, obj, _ = k8s.request(
        "PATCH", f"/api/v1/namespaces/{ns}/secrets/sd", {"stringData": {"c": "3"}}, MERGE
    )
    assert base64.b64decode(obj["data"]["c"]) == b"3" and "stringData" not in obj


def test_secret_bad_base64_is_400_and_immutable_secret_is_422(k8s: K8s, ns: str) -> None:
    status, body, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "bad"}, "data": {"a": "%%%"}},
    )
    assert status == 400 and body["reason"] == "BadRequest"
    k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/secrets", {**secret("imm", a="1"), "immutable": True}
    )
    status, body, _ = k8s.request(
        "PATCH", f"/api/v1/namespaces/{ns}/secrets/imm", {"stringData": {"a": "2"}}, MERGE
    )
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "data"


def test_invalid_names_and_labels_are_422_with_field(k8s: K8s, ns: str) -> None:
    status, body, _ = k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "Not_Valid"}}
    )
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["message"].startswith(
        'ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value'
    )
    status, body, _ = k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "ok", "labels": {"a": "no spaces"}}},
    )
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.labels"


def test_generation_bumps_on_spec_changes_only(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("gen"))
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/gen"
    _, obj, _ = k8s.request("PATCH", path, {"metadata": {"labels": {"x": "y"}}}, MERGE)
    assert obj["metadata"]["generation"] == 1
    _, obj, _ = k8s.request("PATCH", path, {"spec": {"replicas": 3}}, MERGE)
    assert obj["metadata"]["generation"] == 2
    _, obj, _ = k8s.request("PATCH", path, {"status": {"replicas": 3}}, MERGE)  # main endpoint
    assert "status" not in obj or obj["status"].get("replicas") is None
    _, obj, _ = k8s.request("PATCH", path + "/status", {"status": {"observedGeneration": 2}}, MERGE)
    assert obj["status"] == {"observedGeneration": 2} and obj["metadata"]["generation"] == 2


# ---- lists and selectors -------------------------------------------------------------------------
def test_list_has_kind_api_version_and_resource_version(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "l1"}})
    status, body, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps")
    assert status == 200 and body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
    assert int(body["metadata"]["resourceVersion"]) >= 1
    assert [i["metadata"]["name"] for i in body["items"]] == ["l1"]
    _, body, _ = k8s.request("GET", "/api/v1/configmaps")  # all namespaces
    assert any(i["metadata"]["namespace"] == ns for i in body["items"])


def test_label_selectors(k8s: K8s, ns: str) -> None:
    for name, labels in [("a", {"env": "prod", "tier": "web"}), ("b", {"env": "dev"}), ("c", {})]:
        k8s.request(
            "POST",
            f"/api/v1/namespaces/{ns}/configmaps",
            {"metadata": {"name": name, "labels": labels}},
        )

    def names(selector: str) -> list[str]:
        from urllib.parse import quote

        status, body, _ = k8s.request(
            "GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector={quote(selector)}"
        )
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert names("env=prod") == ["a"]
    assert names("env==dev") == ["b"]
    assert names("env!=prod") == ["b", "c"]
    assert names("env in (prod,dev)") == ["a", "b"]
    assert names("env notin (prod)") == ["b", "c"]
    assert names("tier") == ["a"]
    assert names("!tier") == ["b", "c"]
    assert names("env=prod,tier=web") == ["a"]
    status, _body, _ = k8s.request(
        "GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector=a%20b%20c"
    )
    assert status == 400


def test_field_selectors(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("f1"))
    k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/secrets", {**secret("f2"), "type": "kubernetes.io/tls"}
    )
    _, body, _ = k8s.request(
        "GET", f"/api/v1/namespaces/{ns}/secrets?fieldSelector=metadata.name%3Df2"
    )
    assert [i["metadata"]["name"] for i in body["items"]] == ["f2"]
    _, body, _ = k8s.request(
        "GET", f"/api/v1/secrets?fieldSelector=metadata.namespace%3D{ns},type%3DOpaque"
    )
    assert [i["metadata"]["name"] for i in body["items"]] == ["f1"]
    _, body, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets?fieldSelector=type!%3DOpaque")
    assert [i["metadata"]["name"] for i in body["items"]] == ["f2"]
    status, body, _ = k8s.request(
        "GET", f"/api/v1/namespaces/{ns}/configmaps?fieldSelector=data.x%3D1"
    )
    assert status == 400 and body["message"] == "field label not supported: data.x"


# ---- discovery -----------------------------------------------------------------------------------
def test_discovery_documents(k8s: K8s) -> None:
    _, api, _ = k8s.request("GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    _, core, _ = k8s.request("GET", "/api/v1")
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert {"namespaces", "secrets", "configmaps", "events", "serviceaccounts", "services"} <= set(
        by_name
    )
    assert by_name["secrets"]["namespaced"] and not by_name["namespaces"]["namespaced"]
    assert "watch" in by_name["secrets"]["verbs"] and by_name["secrets"]["kind"] == "Secret"
    _, groups, _ = k8s.request("GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
    } <= names
    _, apps, _ = k8s.request("GET", "/apis/apps")
    assert apps["kind"] == "APIGroup" and apps["preferredVersion"]["groupVersion"] == "apps/v1"
    _, res, _ = k8s.request("GET", "/apis/apps/v1")
    assert {"deployments", "deployments/status", "statefulsets", "daemonsets"} <= {
        r["name"] for r in res["resources"]
    }
    _, version, _ = k8s.request("GET", "/version")
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    assert k8s.request("GET", "/version/")[0] == 200  # the Python client's VersionApi adds a slash


# ---- custom resources ----------------------------------------------------------------------------
def test_crd_is_served_at_once_and_established(k8s: K8s, crd: dict[str, Any]) -> None:
    _, res, _ = k8s.request("GET", "/apis/example.secretops.dev/v1")
    entries = {r["name"]: r for r in res["resources"]}
    assert entries["secretrequests"]["kind"] == "SecretRequest"
    assert entries["secretrequests"]["shortNames"] == ["sreq"]
    assert "secretrequests/status" in entries
    _, group, _ = k8s.request("GET", "/apis/example.secretops.dev")
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]

    def established() -> bool:
        _, obj, _ = k8s.request(
            "GET",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
            "secretrequests.example.secretops.dev",
        )
        conds = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
        return conds.get("Established") == "True" and conds.get("NamesAccepted") == "True"

    wait_for(established, what="Established")


def test_a_new_crds_lists_and_watches_are_429_while_its_storage_initialises(k8s: K8s) -> None:
    body = yaml.safe_load(CRD_FILE.read_text())
    plural = f"r{uuid.uuid4().hex[:8]}"
    body["metadata"]["name"] = f"{plural}.example.secretops.dev"
    body["spec"]["names"] = {**body["spec"]["names"], "plural": plural, "singular": plural,
                             "kind": f"K{plural}", "listKind": f"K{plural}List", "shortNames": []}
    status, _, _ = k8s.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                               body)
    assert status == 201
    seen: list[int] = []

    def listed() -> bool:
        code, out, headers = k8s.request("GET", f"{CR_BASE}/{plural}")
        if code != 404 and (not seen or seen[-1] != code):
            seen.append(code)
        if code == 429:
            assert out["message"] == "storage is (re)initializing"
            assert out["reason"] == "TooManyRequests"
            assert out["details"]["retryAfterSeconds"] == 1 and headers["Retry-After"] == "1"
        return code == 200

    wait_for(listed, what="the new resource listed")
    assert seen == [429, 200]


def test_a_new_crds_watches_are_429_too(tmp_path: Path) -> None:
    proc, slow = start_emulator(tmp_path, "--cache-init-seconds", "60")
    try:
        body = yaml.safe_load(CRD_FILE.read_text())
        slow.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body)
        wait_for(lambda: slow.request("GET", f"{CR_BASE}/secretrequests")[0] != 404,
                 what="served")
        status, out, _ = slow.request("GET", f"{CR_BASE}/secretrequests?watch=true")
        assert status == 429 and out["message"] == "storage is (re)initializing"
        # Reading one object goes to etcd, not the cache: a plain 404.
        assert slow.request("GET", f"{CR_BASE}/namespaces/default/secretrequests/x")[0] == 404
    finally:
        slow.close()
        stop(proc)


FORMATS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "formats.example.secretops.dev"},
    "spec": {
        "group": "example.secretops.dev",
        "scope": "Namespaced",
        "names": {"plural": "formats", "singular": "format", "kind": "Format",
                  "listKind": "FormatList"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
            "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object", "properties": {
                    "caBundle": {"type": "string", "format": "byte"},
                    "at": {"type": "string", "format": "date-time"},
                    "day": {"type": "string", "format": "date"},
                    "count": {"type": "integer", "format": "int64"},
                    "free": {"type": "string", "format": "no-such-format"},
                }}}}}}],
    },
}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"caBundle": "not base64!"}, "spec.caBundle"),
        ({"caBundle": "YWJj"[:3]}, "spec.caBundle"),  # unpadded
        ({"caBundle": ""}, "spec.caBundle"),  # govalidator's IsBase64 refuses the empty string
        ({"at": "yesterday"}, "spec.at"),
        ({"at": "2026-12-07 10:00:00Z"}, "spec.at"),  # a space, not T
        ({"at": "2026-12-07T25:00:00Z"}, "spec.at"),
        ({"at": "2026-12-07T10:00:00"}, "spec.at"),  # no zone
        ({"day": "2026-02-30"}, "spec.day"),
    ],
)
def test_crd_string_formats_are_enforced_as_the_apiserver_does(
    k8s: K8s, ns: str, spec: dict[str, Any], field: str
) -> None:
    k8s.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", FORMATS_CRD)
    path = f"{CR_BASE}/namespaces/{ns}/formats"
    wait_for(lambda: k8s.request("GET", path)[0] == 200, what="formats served")
    body = {"apiVersion": "example.secretops.dev/v1", "kind": "Format",
            "metadata": {"name": "f"}, "spec": spec}
    status, out, _ = k8s.request("POST", path, body)
    assert status == 422, out
    (cause,) = out["details"]["causes"]
    value = next(iter(spec.values()))
    fmt = {"caBundle": "byte", "at": "date-time", "day": "date"}[field.split(".")[1]]
    assert cause == {
        "reason": "FieldValueTypeInvalid",
        "field": field,
        "message": f'Invalid value: "{value}": {field} in body must be of type {fmt}: "{value}"',
    }
    good = {"caBundle": "YWJj", "at": "2026-12-07t10:00:00.123456+01:00", "day": "2024-02-29",
            "count": 5, "free": "anything"}
    body["spec"] = good
    status, out, _ = k8s.request("POST", path, body)
    assert status == 201, out
    k8s.request("DELETE", f"{path}/f")


def test_invalid_crd_is_rejected_with_field_paths(k8s: K8s) -> None:
    body = yaml.safe_load(CRD_FILE.read_text())
    body["metadata"]["name"] = "wrong.example.secretops.dev"
    body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "x"
    ] = {}
    del body["spec"]["versions"][1]["schema"]
    status, out, _ = k8s.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body
    )
    assert status == 422 and out["reason"] == "Invalid"
    fields = {c["field"] for c in out["details"]["causes"]}
    assert "metadata.name" in fields
    assert "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type" in fields
    assert "spec.versions[1].schema.openAPIV3Schema" in fields


def test_custom_resource_schema_validation_is_422_with_field_paths(
    k8s: K8s, ns: str, crd: Any
) -> None:
    path = f"{CR_BASE}/namespaces/{ns}/secretrequests"
    status, body, _ = k8s.request("POST", path, cr("bad", replicas="three", mode="Weird"))
    assert status == 422
    assert_status(body, 422, "Invalid")
    assert body["message"].startswith('SecretRequest.example.secretops.dev "bad" is invalid: ')
    causes = {c["field"]: c for c in body["details"]["causes"]}
    assert causes["spec.replicas"]["message"] == (
        'Invalid value: "string": spec.replicas in body must be of type integer: "string"'
    )
    assert causes["spec.mode"]["reason"] == "FieldValueNotSupported"
    assert causes["spec.mode"]["message"] == (
        'Unsupported value: "Weird": supported values: "Opaque", "Immutable"'
    )
    no_name = cr("noname")
    del no_name["spec"]["secretName"]
    status, body, _ = k8s.request("POST", path, no_name)
    assert status == 422 and body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.secretName"}
    ]
    status, body, _ = k8s.request("POST", path, cr("neg", replicas=-1))
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.replicas"


def test_custom_resources_are_pruned_defaulted_and_strict_refuses_unknown(
    k8s: K8s, ns: str, crd: Any
) -> None:
    path = f"{CR_BASE}/namespaces/{ns}/secretrequests"
    body = cr("p", unknown=1, extra={"free": {"form": True}})
    status, obj, headers = k8s.request("POST", path, body)
    assert status == 201
    assert obj["spec"] == {
        "secretName": "p-secret",
        "mode": "Opaque",
        "extra": {"free": {"form": True}},
    }
    assert 'unknown field \\"spec.unknown\\"' in headers["Warning"]
    status, out, _ = k8s.request("POST", path + "?fieldValidation=Strict", cr("q", unknown=1))
    assert status == 400 and out["message"] == 'strict decoding error: unknown field "spec.unknown"'
    assert obj["metadata"]["generation"] == 1


def test_status_subresource_is_kept_apart_from_spec(k8s: K8s, ns: str, crd: Any) -> None:
    path = f"{CR_BASE}/namespaces/{ns}/secretrequests"
    body = {**cr("st"), "status": {"phase": "Ignored"}}
    _, obj, _ = k8s.request("POST", path, body)
    assert "status" not in obj  # status on create is dropped
    _, obj, _ = k8s.request(
        "PATCH", f"{path}/st", {"spec": {"replicas": 2}, "status": {"phase": "X"}}, MERGE
    )
    assert (
        obj["spec"]["replicas"] == 2 and "status" not in obj and obj["metadata"]["generation"] == 2
    )
    _, obj, _ = k8s.request(
        "PATCH",
        f"{path}/st/status",
        {
            "spec": {"replicas": 9},
            "metadata": {"labels": {"no": "no"}},
            "status": {"phase": "Ready", "observedGeneration": 2},
        },
        MERGE,
    )
    assert obj["status"] == {"phase": "Ready", "observedGeneration": 2}
    assert obj["spec"]["replicas"] == 2 and "labels" not in obj["metadata"]
    assert obj["metadata"]["generation"] == 2  # status writes never bump generation
    _, obj, _ = k8s.request("PATCH", f"{path}/st", {"metadata": {"labels": {"a": "b"}}}, MERGE)
    assert obj["metadata"]["generation"] == 2  # nor do metadata changes
    status, body, _ = k8s.request(
        "PATCH", f"{path}/st/status", {"status": {"conditions": [{"type": "A"}]}}, MERGE
    )
    assert status == 422 and body["details"]["causes"][0]["field"] == "status.conditions[0].status"
    _, got, _ = k8s.request("GET", f"{path}/st/status")
    assert got["status"]["phase"] == "Ready"


def test_strategic_merge_patch_is_415_for_custom_resources(k8s: K8s, ns: str, crd: Any) -> None:
    path = f"{CR_BASE}/namespaces/{ns}/secretrequests"
    k8s.request("POST", path, cr("smp"))
    status, body, _ = k8s.request("PATCH", f"{path}/smp", {"spec": {"replicas": 1}}, SMP)
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_other_served_version_differs_only_in_api_version(k8s: K8s, ns: str, crd: Any) -> None:
    k8s.request("POST", f"{CR_BASE}/namespaces/{ns}/secretrequests", cr("v"))
    status, obj, _ = k8s.request(
        "GET", f"/apis/example.secretops.dev/v1beta1/namespaces/{ns}/secretrequests/v"
    )
    assert status == 200 and obj["apiVersion"] == "example.secretops.dev/v1beta1"
    assert obj["spec"]["secretName"] == "v-secret"


def test_deleting_a_crd_removes_its_resource_and_objects(k8s: K8s, ns: str) -> None:
    body = yaml.safe_load(CRD_FILE.read_text())
    body["metadata"]["name"] = "tempthings.example.secretops.dev"
    body["spec"]["names"] = {"plural": "tempthings", "kind": "TempThing"}
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert k8s.request("POST", crds, body)[0] == 201
    path = f"{CR_BASE}/namespaces/{ns}/tempthings"
    wait_for(lambda: k8s.request("GET", path)[0] == 200, what="tempthings served")
    k8s.request("POST", path, {**cr("t1"), "kind": "TempThing"})
    assert k8s.request("DELETE", f"{crds}/tempthings.example.secretops.dev")[0] == 200
    wait_for(lambda: k8s.request("GET", path)[0] == 404, what="tempthings gone")
    _, res, _ = k8s.request("GET", "/apis/example.secretops.dev/v1")
    assert "tempthings" not in {r["name"] for r in res.get("resources", [])}


# ---- deletion, finalizers, garbage collection ---------------------------------------------------
def test_delete_returns_status_for_builtins_and_the_object_for_custom_resources(
    k8s: K8s, ns: str, crd: Any
) -> None:
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("del"))
    status, body, _ = k8s.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/del")
    assert status == 200 and body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["name"] == "del" and body["details"]["kind"] == "secrets"
    assert k8s.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/del")[0] == 404
    k8s.request("POST", f"{CR_BASE}/namespaces/{ns}/secretrequests", cr("delcr"))
    status, body, _ = k8s.request("DELETE", f"{CR_BASE}/namespaces/{ns}/secretrequests/delcr")
    assert status == 200 and body["kind"] == "SecretRequest"


def test_finalizers_hold_deletion_until_removed(k8s: K8s, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/fin"
    k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "fin", "finalizers": ["example.dev/hold"]}},
    )
    status, obj, _ = k8s.request("DELETE", path)
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    status, obj, _ = k8s.request("GET", path)
    assert status == 200 and obj["metadata"]["deletionTimestamp"]  # still there, being deleted
    status, body, _ = k8s.request(
        "PATCH", path, {"metadata": {"finalizers": ["example.dev/hold", "x.dev/new"]}}, MERGE
    )
    assert status == 422 and "no new finalizers" in body["message"]
    status, obj, _ = k8s.request("PATCH", path, {"metadata": {"finalizers": None}}, MERGE)
    assert status == 200
    assert k8s.request("GET", path)[0] == 404


def test_owner_deletion_collects_dependents_in_the_background(k8s: K8s, ns: str) -> None:
    _, owner, _ = k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "owner"}}
    )
    _, other, _ = k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "other"}}
    )

    def ref(o: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
            "controller": False,
        }

    k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            **secret("only-child"),
            "metadata": {"name": "only-child", "ownerReferences": [ref(owner)]},
        },
    )
    k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {
            **secret("shared"),
            "metadata": {"name": "shared", "ownerReferences": [ref(owner), ref(other)]},
        },
    )
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/owner")
    wait_for(
        lambda: k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/only-child")[0] == 404,
        what="dependent collected",
    )

    def shared_refs() -> Any:
        _, obj, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/shared")
        refs = obj["metadata"].get("ownerReferences")
        return refs if refs and len(refs) == 1 else None

    assert wait_for(shared_refs, what="dangling reference removed")[0]["name"] == "other"


def test_orphan_propagation_keeps_dependents(k8s: K8s, ns: str) -> None:
    _, owner, _ = k8s.request(
        "POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "o"}}
    )
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": owner["metadata"]["uid"]}
    k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "kid", "ownerReferences": [ref]}},
    )
    k8s.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/o?propagationPolicy=Orphan")
    wait_for(
        lambda: k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps/o")[0] == 404,
        what="owner gone",
    )
    _, kid, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/kid")
    assert "ownerReferences" not in kid["metadata"]


def test_namespace_deletion_terminates_then_removes_its_objects(k8s: K8s, ns: str) -> None:
    k8s.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "held", "finalizers": ["example.dev/hold"]}},
    )
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("plain"))
    status, obj, _ = k8s.request("DELETE", f"/api/v1/namespaces/{ns}")
    assert status == 200 and obj["status"]["phase"] == "Terminating"
    wait_for(
        lambda: k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets/plain")[0] == 404,
        what="emptied",
    )
    status, body, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("late"))
    assert status == 403 and body["reason"] == "Forbidden"
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}")[0] == 200  # held by the finalizer
    k8s.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/configmaps/held",
        {"metadata": {"finalizers": None}},
        MERGE,
    )
    wait_for(
        lambda: k8s.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404, what="namespace gone"
    )
    status, body, _ = k8s.request("DELETE", "/api/v1/namespaces/default")
    assert status == 403


def test_delete_collection_deletes_the_selected_objects(k8s: K8s, ns: str) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    for name, app in [("a", "x"), ("b", "x"), ("c", "y")]:
        k8s.request("POST", base, {"metadata": {"name": name, "labels": {"app": app}}})
    status, body, _ = k8s.request("DELETE", f"{base}?labelSelector=app%3Dx")
    assert status == 200 and sorted(i["metadata"]["name"] for i in body["items"]) == ["a", "b"]
    _, left, _ = k8s.request("GET", base)
    assert [i["metadata"]["name"] for i in left["items"]] == ["c"]


# ---- watch ---------------------------------------------------------------------------------------
def test_watch_starts_with_current_objects_then_streams_changes(k8s: K8s, ns: str) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    k8s.request("POST", base, {"metadata": {"name": "w0"}})
    _, lst, _ = k8s.request("GET", base)
    rv = lst["metadata"]["resourceVersion"]
    k8s.request("POST", base, {"metadata": {"name": "w1"}})
    k8s.request("PATCH", f"{base}/w1", {"data": {"a": "1"}}, MERGE)
    k8s.request("DELETE", f"{base}/w1")
    events = watch_events(k8s.url, f"{base}?watch=true&resourceVersion={rv}", count=3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"),
        ("MODIFIED", "w1"),
        ("DELETED", "w1"),
    ]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    events = watch_events(k8s.url, f"{base}?watch=true&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w0")]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("watch=true&timeoutSeconds=300.0", 'parsing "300.0": invalid syntax'),
        ("timeoutSeconds=1e3", 'parsing "1e3": invalid syntax'),
        ("limit=5.5", 'parsing "5.5": invalid syntax'),
        ("limit=99999999999999999999", "value out of range"),
    ],
)
def test_integer_query_parameters_are_typed_as_the_apiserver_types_them(
    k8s: K8s, ns: str, query: str, message: str
) -> None:
    # A real kube-apiserver refused every kopf watch sent with timeoutSeconds=300.0.
    status, body, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps?{query}")
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"].startswith("strconv.ParseInt: ") and message in body["message"]
    empty_and_signed = "limit=%2B5&timeoutSeconds="
    status, _, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps?{empty_and_signed}")
    assert status == 200


def test_watch_bookmarks_come_before_the_timeout_only_when_the_resource_moved(
    k8s: K8s, ns: str
) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    _, lst, _ = k8s.request("GET", base)
    start = lst["metadata"]["resourceVersion"]
    query = f"?watch=true&allowWatchBookmarks=true&timeoutSeconds=3&resourceVersion={start}"
    # Only another resource changes: the cacher has nothing newer to bookmark.
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "other"}})
    assert watch_events(k8s.url, base + query) == []
    # Its own resource changed after the start: one bookmark, 2 s before the close, carrying that
    # resource's version (not the cluster's newer one).
    _, cm, _ = k8s.request("POST", base, {"metadata": {"name": "moved"}})
    k8s.request("POST", f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "later"}})
    events = watch_events(k8s.url, base + query)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    mark = events[-1]["object"]
    assert mark["kind"] == "ConfigMap"
    assert mark["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
    # A timeout under 2 s gets no bookmark at all, as the apiserver's cache watcher.
    events = watch_events(k8s.url, base + query.replace("timeoutSeconds=3", "timeoutSeconds=1"))
    assert [e["type"] for e in events] == ["ADDED"]


def test_watch_from_a_version_the_server_has_not_reached_times_out(k8s: K8s, ns: str) -> None:
    events = watch_events(
        k8s.url, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion=999999999"
    )
    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert status["code"] == 504 and status["reason"] == "Timeout"
    assert status["message"].startswith("Timeout: Too large resource version: 999999999, current:")


def test_watch_from_before_the_resource_cache_began_is_410_expired(k8s: K8s, ns: str) -> None:
    events = watch_events(
        k8s.url, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion=1"
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    assert events[0]["object"]["message"].startswith("too old resource version: 1 (")


def test_watch_with_send_initial_events_ends_them_with_a_bookmark(k8s: K8s, ns: str) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    k8s.request("POST", base, {"metadata": {"name": "i0"}})
    events = watch_events(
        k8s.url,
        f"{base}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan",
        count=2,
    )
    assert events[0]["type"] == "ADDED" and events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_selector_transitions_are_added_and_deleted(k8s: K8s, ns: str) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps"
    _, lst, _ = k8s.request("GET", base)
    k8s.request("POST", base, {"metadata": {"name": "sel", "labels": {"pick": "no"}}})
    k8s.request("PATCH", f"{base}/sel", {"metadata": {"labels": {"pick": "yes"}}}, MERGE)
    k8s.request("PATCH", f"{base}/sel", {"data": {"a": "1"}}, MERGE)
    k8s.request("PATCH", f"{base}/sel", {"metadata": {"labels": {"pick": "no"}}}, MERGE)
    events = watch_events(
        k8s.url,
        f"{base}?watch=true&labelSelector=pick%3Dyes"
        f"&resourceVersion={lst['metadata']['resourceVersion']}",
        count=3,
    )
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_from_a_compacted_version_is_410_gone(tmp_path: Path) -> None:
    proc, small = start_emulator(tmp_path, "--history", "5")
    try:
        for i in range(10):
            small.request(
                "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"c{i}"}}
            )
        events = watch_events(
            small.url, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=2"
        )
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        status = events[0]["object"]
        assert (
            status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
        )
        assert status["message"].startswith("too old resource version: 2")
        _status_code, body, _ = small.request("GET", "/api/v1/namespaces/default/configmaps")
        latest = body["metadata"]["resourceVersion"]
        events = watch_events(
            small.url,
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
            f"&resourceVersion={int(latest) - 2}",
        )
        assert [e["type"] for e in events] == ["ADDED", "ADDED"]  # still in the history
    finally:
        small.close()
        stop(proc)


# ---- update strategies: leases, custom resources, create-on-update ------------------------------
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


def lease(name: str, renew: str = "2026-12-07T10:00:00.123456Z", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, **meta},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": renew}}


def test_a_lease_put_needs_a_resource_version_and_creates_a_missing_lease(
    k8s: K8s, ns: str
) -> None:
    base = LEASES.format(ns=ns)
    # A PUT to a missing Lease creates it (AllowCreateOnUpdate), even carrying a resourceVersion.
    status, made, _ = k8s.request("PUT", f"{base}/l1", lease("l1", resourceVersion="12345"))
    assert status == 201 and made["metadata"]["resourceVersion"] != "12345"
    # An existing Lease: no unconditional update.
    status, out, _ = k8s.request("PUT", f"{base}/l1", lease("l1"))
    assert status == 422 and out["reason"] == "Invalid"
    assert out["message"] == (
        'leases.coordination.k8s.io "l1" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )
    assert out["details"]["kind"] == "leases"
    assert out["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
        "message": "Invalid value: 0x0: must be specified for an update"}]
    rv = made["metadata"]["resourceVersion"]
    status, _, _ = k8s.request("PUT", f"{base}/l1", lease("l1", resourceVersion=rv))
    assert status == 200
    # A ConfigMap may be updated unconditionally, and a PUT to a missing one is 404.
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    k8s.request("POST", cms, {"metadata": {"name": "c"}})
    assert k8s.request("PUT", f"{cms}/c", {"metadata": {"name": "c"}, "data": {"a": "1"}})[0] == 200
    assert k8s.request("PUT", f"{cms}/missing", {"metadata": {"name": "missing"}})[0] == 404


def test_two_candidates_writing_one_lease_version_one_wins(k8s: K8s, ns: str) -> None:
    """Leader election and shards rest on this: a PUT carrying a resourceVersion that is no
    longer the Lease's is 409 Conflict, so of two candidates that read the same version only
    the first write lands."""
    base = LEASES.format(ns=ns)
    status, made, _ = k8s.request("POST", base, lease("race"))
    assert status == 201
    rv = made["metadata"]["resourceVersion"]
    first = lease("race", resourceVersion=rv)
    first["spec"]["holderIdentity"] = "b"
    status, won, _ = k8s.request("PUT", f"{base}/race", first)
    assert status == 200 and won["spec"]["holderIdentity"] == "b"
    second = lease("race", resourceVersion=rv)
    second["spec"]["holderIdentity"] = "c"
    status, out, _ = k8s.request("PUT", f"{base}/race", second)
    assert status == 409 and out["reason"] == "Conflict"
    assert out["message"].startswith('Operation cannot be fulfilled on leases.coordination.k8s.io '
                                     '"race": the object has been modified')
    assert k8s.request("GET", f"{base}/race")[1]["spec"]["holderIdentity"] == "b"


def test_a_custom_resource_put_needs_a_resource_version(k8s: K8s, ns: str, crd: Any) -> None:
    path = f"{CR_BASE}/namespaces/{ns}/secretrequests"
    status, made, _ = k8s.request("POST", path, cr("u1"))
    assert status == 201, made
    status, out, _ = k8s.request("PUT", f"{path}/u1", cr("u1"))
    assert status == 422
    assert out["message"].startswith(
        'secretrequests.example.secretops.dev "u1" is invalid: metadata.resourceVersion'
    )
    assert k8s.request("PUT", f"{path}/missing", cr("missing"))[0] == 404


@pytest.mark.parametrize(
    ("renew", "tail"),
    [
        ("2026-12-07T10:00:00Z", 'cannot parse "Z" as ".000000"'),
        ("2026-12-07T10:00:00.123Z", 'cannot parse ".123Z" as ".000000"'),
        ("2026-12-07T10:00:00.123456789Z", 'cannot parse "789Z" as "Z07:00"'),
    ],
)
def test_a_lease_micro_time_needs_exactly_six_fractional_digits(
    k8s: K8s, ns: str, renew: str, tail: str
) -> None:
    status, out, _ = k8s.request("POST", LEASES.format(ns=ns), lease("m", renew=renew))
    assert status == 400 and out["reason"] == "BadRequest"
    assert out["message"] == (
        'Lease in version "v1" cannot be handled as a Lease: parsing time '
        f'"{renew}" as "2006-01-02T15:04:05.000000Z07:00": {tail}'
    )


# ---- Events -----------------------------------------------------------------------------------
def test_an_event_in_another_namespace_than_its_object_is_refused(k8s: K8s, ns: str) -> None:
    body = {"metadata": {"generateName": "e-"}, "reason": "R", "message": "m", "type": "Normal",
            "involvedObject": {"kind": "ConfigMap", "name": "c", "namespace": "default"}}
    status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/events", body)
    assert status == 422
    assert out["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "involvedObject.namespace",
        "message": 'Invalid value: "default": does not match event.namespace'}]
    # About a cluster-scoped object: only in "default" (or without a namespace).
    cluster = {**body, "involvedObject": {"kind": "Namespace", "name": ns}}
    assert k8s.request("POST", f"/api/v1/namespaces/{ns}/events", cluster)[0] == 422
    assert k8s.request("POST", "/api/v1/namespaces/default/events", cluster)[0] == 201
    # With eventTime (kopf's Events): the reporting fields are required.
    timed = {**body, "involvedObject": {**body["involvedObject"], "namespace": ns},
             "eventTime": "2026-12-07T10:00:00.000000Z"}
    status, out, _ = k8s.request("POST", f"/api/v1/namespaces/{ns}/events", timed)
    assert status == 422
    assert {c["field"] for c in out["details"]["causes"]} == {
        "reportingComponent", "reportingInstance", "action"}
    timed.update(reportingComponent="kopf", reportingInstance="pod-1", action="Sync")
    assert k8s.request("POST", f"/api/v1/namespaces/{ns}/events", timed)[0] == 201


def test_core_and_events_k8s_io_events_are_one_storage(k8s: K8s, ns: str) -> None:
    core = f"/api/v1/namespaces/{ns}/events"
    v1 = f"/apis/events.k8s.io/v1/namespaces/{ns}/events"
    _, lst, _ = k8s.request("GET", v1)
    start = lst["metadata"]["resourceVersion"]
    status, made, _ = k8s.request("POST", core, {
        "metadata": {"name": "from-core"}, "reason": "Synced", "message": "done", "type": "Normal",
        "involvedObject": {"kind": "ConfigMap", "name": "c", "namespace": ns},
        "source": {"component": "me"}, "count": 1,
        "firstTimestamp": "2026-12-07T10:00:00Z", "lastTimestamp": "2026-12-07T10:00:00Z"})
    assert status == 201, made
    status, seen, _ = k8s.request("GET", f"{v1}/from-core")
    assert status == 200 and seen["apiVersion"] == "events.k8s.io/v1"
    assert seen["regarding"] == made["involvedObject"] and seen["note"] == "done"
    assert seen["deprecatedSource"] == {"component": "me"} and seen["deprecatedCount"] == 1
    assert "message" not in seen and "involvedObject" not in seen
    status, made2, _ = k8s.request("POST", v1, {
        "metadata": {"name": "from-v1"}, "eventTime": "2026-12-07T10:00:00.000000Z",
        "reason": "R", "action": "A", "note": "n", "type": "Warning",
        "reportingController": "secretops.dev/controller", "reportingInstance": "pod-1",
        "regarding": {"kind": "ConfigMap", "name": "c", "namespace": ns}})
    assert status == 201, made2
    _, both, _ = k8s.request("GET", core)
    names = {i["metadata"]["name"]: i for i in both["items"]}
    assert set(names) == {"from-core", "from-v1"}
    assert names["from-v1"]["message"] == "n"
    assert names["from-v1"]["reportingComponent"] == "secretops.dev/controller"
    events = watch_events(k8s.url, f"{v1}?watch=true&resourceVersion={start}", count=2)
    assert [(e["object"]["apiVersion"], e["object"]["metadata"]["name"]) for e in events] == [
        ("events.k8s.io/v1", "from-core"), ("events.k8s.io/v1", "from-v1")]
    assert k8s.request("DELETE", f"{v1}/from-core")[0] == 200
    assert k8s.request("GET", f"{core}/from-core")[0] == 404


def test_events_k8s_io_applies_its_strict_rules(k8s: K8s, ns: str) -> None:
    v1 = f"/apis/events.k8s.io/v1/namespaces/{ns}/events"
    status, out, _ = k8s.request("POST", v1, {
        "metadata": {"name": "old-style"}, "reason": "R", "type": "Info", "deprecatedCount": 3,
        "regarding": {"kind": "ConfigMap", "name": "c", "namespace": ns}})
    assert status == 422
    assert {c["field"] for c in out["details"]["causes"]} == {"eventTime", "type",
                                                              "deprecatedCount"}


def test_without_kube_controllers_nothing_is_collected(tmp_path: Path) -> None:
    """A bare apiserver (--no-controllers): no garbage collector, no namespace controller."""
    proc, bare = start_emulator(tmp_path, "--no-controllers")
    try:
        bare.request("POST", "/api/v1/namespaces", {"metadata": {"name": "gone"}})
        base = "/api/v1/namespaces/gone/configmaps"
        _, owner, _ = bare.request("POST", base, {"metadata": {"name": "owner"}})
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
               "uid": owner["metadata"]["uid"]}
        bare.request("POST", base, {"metadata": {"name": "child", "ownerReferences": [ref]}})
        assert bare.request("DELETE", f"{base}/owner")[0] == 200
        assert bare.request("DELETE", "/api/v1/namespaces/gone")[0] == 200
        wait_for(lambda: bare.request("GET", f"{base}/owner")[0] == 404, what="owner deleted")
        _, child, _ = bare.request("GET", f"{base}/child")  # no GC: the dependent stays
        assert child["metadata"]["ownerReferences"] == [ref]
        _, ns, _ = bare.request("GET", "/api/v1/namespaces/gone")
        assert ns["status"]["phase"] == "Terminating"
    finally:
        bare.close()
        stop(proc)
