"""Server-side apply and ``metadata.managedFields`` on the emulator, as kube-apiserver keeps them.

Expected values follow kube's field manager (``apimachinery/pkg/util/managedfields/internal``)
and structured-merge-diff: the ``fieldsV1`` encoding (``f:``/``k:``/``v:``, ``".": {}``), which
writes own which fields, removal of fields an applier stops applying, 409 conflicts with the
apiserver's ``Status`` and causes, ``force``, and list semantics from the CRD schema
(``x-kubernetes-list-type`` map/set/atomic) or, for built-in kinds, the strategic merge keys.
Driven with plain HTTP (exact bodies), the real kubectl (``apply --server-side``,
``--force-conflicts``, client-side apply migrating to server-side) and the ``kubernetes``
client's DynamicClient.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for

APPLY = "application/apply-patch+yaml"
GROUP = "apply.secretops.dev"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "owner": {"type": "string"},
                    "size": {"type": "integer"},
                    "ports": {
                        "type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"], "properties": {
                            "name": {"type": "string"}, "port": {"type": "integer"}}},
                    },
                    "tags": {"type": "array", "x-kubernetes-list-type": "set",
                             "items": {"type": "string"}},
                    "hosts": {"type": "array", "items": {"type": "string"}},
                    "settings": {"type": "object", "additionalProperties": {"type": "string"}},
                }},
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
            }}},
        }],
    },
}
BASE = f"/apis/{GROUP}/v1/namespaces/default/widgets"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def widgets(k8s: K8s) -> K8s:
    if k8s.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                          f"widgets.{GROUP}")[0] == 404:
        k8s.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    wait_for(lambda: k8s.request("GET", BASE)[0] == 200, what="widgets served")
    return k8s


def widget(name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
            "metadata": {"name": name, **meta}, "spec": spec}


def apply(k8s: K8s, path: str, body: Any, manager: str | None,
          force: bool = False) -> tuple[int, Any]:
    query = "&".join(([f"fieldManager={manager}"] if manager else [])
                     + (["force=true"] if force else []))
    status, out, _ = k8s.request("PATCH", f"{path}?{query}", body, content_type=APPLY)
    return status, out


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_apply_creates_then_merges_and_records_the_applier(widgets: K8s) -> None:
    status, obj = apply(widgets, f"{BASE}/w1", widget("w1", {"owner": "a", "size": 1},
                                                       labels={"app": "w"}), "alice")
    assert status == 201, obj
    entry = obj["metadata"]["managedFields"]
    assert len(entry) == 1 and TIME.fullmatch(entry[0].pop("time"))
    assert entry == [{
        "manager": "alice", "operation": "Apply", "apiVersion": f"{GROUP}/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                     "f:spec": {"f:owner": {}, "f:size": {}}},
    }]
    # another applier adds a field; the live object keeps alice's
    status, obj = apply(widgets, f"{BASE}/w1", widget("w1", {"settings": {"x": "1"}}), "bob")
    assert status == 200 and obj["spec"] == {"owner": "a", "size": 1, "settings": {"x": "1"}}
    assert managers(obj)[("bob", "Apply")]["fieldsV1"] == {"f:spec": {"f:settings": {"f:x": {}}}}
    # applying the same configuration again changes nothing, not even the resourceVersion
    rv = obj["metadata"]["resourceVersion"]
    status, again = apply(widgets, f"{BASE}/w1", widget("w1", {"settings": {"x": "1"}}), "bob")
    assert status == 200 and again["metadata"]["resourceVersion"] == rv


def test_fields_an_applier_drops_are_removed_unless_another_manager_owns_them(
    widgets: K8s,
) -> None:
    apply(widgets, f"{BASE}/w2", widget("w2", {"owner": "a", "size": 2, "settings": {"k": "v"}}),
          "alice")
    apply(widgets, f"{BASE}/w2", widget("w2", {"size": 2}), "bob")  # co-owns size (same value)
    status, obj = apply(widgets, f"{BASE}/w2", widget("w2", {"owner": "a"}), "alice")
    assert status == 200
    assert obj["spec"] == {"owner": "a", "size": 2}  # settings removed, size kept for bob
    assert managers(obj)[("alice", "Apply")]["fieldsV1"] == {"f:spec": {"f:owner": {}}}
    status, obj = apply(widgets, f"{BASE}/w2", widget("w2", {}), "bob")
    assert status == 200 and obj["spec"] == {"owner": "a"}


def test_a_conflict_is_409_with_the_apiservers_status_and_force_takes_the_field(
    widgets: K8s,
) -> None:
    apply(widgets, f"{BASE}/w3", widget("w3", {"owner": "a", "size": 3}), "alice")
    status, body = apply(widgets, f"{BASE}/w3", widget("w3", {"owner": "b", "size": 4}), "bob")
    assert status == 409
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Apply failed with 2 conflicts: conflicts with "alice":\n- .spec.owner\n'
                   "- .spec.size",
        "reason": "Conflict",
        "details": {"causes": [
            {"reason": "FieldManagerConflict", "message": 'conflict with "alice"',
             "field": ".spec.owner"},
            {"reason": "FieldManagerConflict", "message": 'conflict with "alice"',
             "field": ".spec.size"},
        ]},
        "code": 409,
    }
    # an Update manager is named with its apiVersion
    status, _, _ = widgets.request("PATCH", f"{BASE}/w3?fieldManager=editor",
                                   {"spec": {"hosts": ["h"]}},
                                   content_type="application/merge-patch+json")
    assert status == 200
    status, body = apply(widgets, f"{BASE}/w3", widget("w3", {"hosts": ["other"]}), "bob")
    assert status == 409 and body["message"] == (
        f'Apply failed with 1 conflict: conflict with "editor" using {GROUP}/v1: .spec.hosts')
    status, obj = apply(widgets, f"{BASE}/w3", widget("w3", {"owner": "b"}), "bob", force=True)
    assert status == 200 and obj["spec"]["owner"] == "b"
    owned = managers(obj)
    assert owned[("alice", "Apply")]["fieldsV1"] == {"f:spec": {"f:size": {}}}
    assert owned[("bob", "Apply")]["fieldsV1"] == {"f:spec": {"f:owner": {}}}


def test_list_types_from_the_schema_map_set_and_atomic(widgets: K8s) -> None:
    apply(widgets, f"{BASE}/w4", widget("w4", {
        "ports": [{"name": "http", "port": 80}], "tags": ["a"], "hosts": ["x"]}), "alice")
    status, obj = apply(widgets, f"{BASE}/w4", widget("w4", {
        "ports": [{"name": "metrics", "port": 9090}], "tags": ["b"]}), "bob")
    assert status == 200
    assert obj["spec"]["ports"] == [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]
    assert obj["spec"]["tags"] == ["a", "b"]
    assert managers(obj)[("alice", "Apply")]["fieldsV1"] == {"f:spec": {
        "f:hosts": {},
        "f:ports": {'k:{"name":"http"}': {".": {}, "f:name": {}, "f:port": {}}},
        "f:tags": {'v:"a"': {}},
    }}
    # an atomic list is owned whole: another value is a conflict
    status, body = apply(widgets, f"{BASE}/w4", widget("w4", {"hosts": ["y"]}), "bob")
    assert status == 409 and body["details"]["causes"][0]["field"] == ".spec.hosts"
    # the same item key with another value conflicts on that item's field only
    status, body = apply(widgets, f"{BASE}/w4",
                         widget("w4", {"ports": [{"name": "http", "port": 8080}]}), "bob")
    assert status == 409
    assert [c["field"] for c in body["details"]["causes"]] == ['.spec.ports[name="http"].port']
    # alice drops her item: bob's stays
    status, obj = apply(widgets, f"{BASE}/w4", widget("w4", {"tags": ["a"]}), "alice")
    assert obj["spec"]["ports"] == [{"name": "metrics", "port": 9090}]
    assert "hosts" not in obj["spec"]


def test_updates_record_their_manager_from_the_parameter_or_the_user_agent(widgets: K8s) -> None:
    status, obj, _ = widgets.request("POST", f"{BASE}?fieldManager=creator",
                                     widget("w5", {"owner": "a", "settings": {"k": "v"}}))
    assert status == 201
    entry = obj["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (
        "creator", "Update", f"{GROUP}/v1")
    # a custom resource starts from an empty object: spec itself is added (".")
    assert entry["fieldsV1"] == {"f:spec": {".": {}, "f:owner": {}, "f:settings": {
        ".": {}, "f:k": {}}}}
    status, obj, _ = widgets.request("PATCH", f"{BASE}/w5", {"spec": {"owner": "b"}},
                                     content_type="application/merge-patch+json",
                                     headers={"User-Agent": "my-tool/1.2 (linux)"})
    assert status == 200
    owned = managers(obj)
    assert owned[("my-tool", "Update")]["fieldsV1"] == {"f:spec": {"f:owner": {}}}
    assert owned[("creator", "Update")]["fieldsV1"] == {
        "f:spec": {".": {}, "f:settings": {".": {}, "f:k": {}}}}
    # a write that changes nothing leaves the managers alone
    status, same, _ = widgets.request("PATCH", f"{BASE}/w5?fieldManager=noop",
                                      {"spec": {"owner": "b"}},
                                      content_type="application/merge-patch+json")
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert ("noop", "Update") not in managers(same)


def test_status_subresource_managers_and_reset_fields(widgets: K8s) -> None:
    apply(widgets, f"{BASE}/w6", widget("w6", {"owner": "a"}), "alice")
    body = {**widget("w6", {"owner": "ignored"}), "status": {"phase": "Ready"}}
    status, obj = apply(widgets, f"{BASE}/w6/status", body, "ctrl")
    assert status == 200 and obj["status"] == {"phase": "Ready"} and obj["spec"]["owner"] == "a"
    entry = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "ctrl")
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:phase": {}}}
    # status applied through the main resource is not owned (the strategy resets it)
    status, obj = apply(widgets, f"{BASE}/w6", {**widget("w6", {"owner": "a"}),
                                                 "status": {"phase": "x"}}, "alice")
    assert obj["status"] == {"phase": "Ready"}
    assert managers(obj)[("alice", "Apply")]["fieldsV1"] == {"f:spec": {"f:owner": {}}}


def test_apply_requests_the_apiserver_refuses(widgets: K8s) -> None:
    cfg = widget("w7", {"owner": "a"})
    status, body = apply(widgets, f"{BASE}/w7", cfg, None)
    assert (status, body["message"], body["details"]) == (
        422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
             "required for apply patch",
        {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
            {"reason": "FieldValueRequired", "message": "Required value: is required for "
             "apply patch", "field": "fieldManager"}]})
    status, body, _ = widgets.request("PATCH", f"{BASE}/w7?fieldManager=x&force=true", {},
                                      content_type="application/merge-patch+json")
    assert status == 422 and body["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for '
        "non-apply patch")
    status, body = apply(widgets, f"{BASE}/w7", {**cfg, "metadata": {
        "name": "w7", "managedFields": [{"manager": "x"}]}}, "m")
    assert (status, body["message"]) == (400, "metadata.managedFields must be nil")
    status, body = apply(widgets, f"{BASE}/w7", {**cfg, "kind": "Gadget"}, "m")
    assert (status, body["message"]) == (400, f"invalid object type: {GROUP}/v1, Kind=Gadget")
    status, body = apply(widgets, f"{BASE}/w7", widget("w7", {"owner": "a", "bogus": 1}), "m")
    assert (status, body) == (500, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"failed to create typed patch object (/w7; {GROUP}/v1, Kind=Widget): "
                   ".spec.bogus: field not declared in schema",
        "code": 500})
    status, body = apply(widgets, f"{BASE}/w7", widget("other", {}), "m")
    assert (status, body["message"]) == (
        400, "the name of the object (other) does not match the name on the URL (w7)")
    # strategic merge patch stays unsupported on custom resources
    status, body, _ = widgets.request("PATCH", f"{BASE}/w7", {},
                                      content_type="application/strategic-merge-patch+json")
    assert status == 415
    assert apply(widgets, f"{BASE}/w7/status", cfg, "m")[0] == 404


def test_managed_fields_can_be_cleared_and_then_updates_are_not_tracked(k8s: K8s) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    status, obj, _ = k8s.request("POST", f"{path}?fieldManager=a",
                                 {"metadata": {"name": "reset"}, "data": {"k": "v"}})
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["a"]
    obj["metadata"]["managedFields"] = []
    status, obj, _ = k8s.request("PUT", f"{path}/reset?fieldManager=b", obj)
    assert status == 200 and "managedFields" not in obj["metadata"]
    status, obj, _ = k8s.request("PATCH", f"{path}/reset?fieldManager=c", {"data": {"k": "w"}},
                                 content_type="application/merge-patch+json")
    assert "managedFields" not in obj["metadata"]
    # the first apply then gives everything that exists to before-first-apply
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "reset"},
           "data": {"k": "x"}}
    status, body = apply(k8s, f"{path}/reset", cfg, "d")
    assert status == 409 and body["details"]["causes"][0]["message"] == (
        'conflict with "before-first-apply" using v1')


def test_builtin_lists_merge_by_their_strategic_merge_keys(k8s: K8s) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    def deploy(containers: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": containers}}}}
    status, obj = apply(k8s, f"{path}/web", deploy([{"name": "app", "image": "app:1",
                                                     "ports": [{"containerPort": 80}]}]), "team")
    assert status == 201
    fields = managers(obj)[("team", "Apply")]["fieldsV1"]
    assert fields["f:spec"]["f:template"]["f:spec"] == {"f:containers": {
        'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
            'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}
    status, obj = apply(k8s, f"{path}/web", deploy([{"name": "sidecar", "image": "s:1"}]),
                        "mesh")
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == [
        "app", "sidecar"]


def test_kubectl_server_side_apply_conflicts_and_force_on_a_configmap_and_secret(
    k8s: K8s,
) -> None:
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa-cm\ndata:\n"
          "  a: \"1\"\n  b: \"2\"\n")
    assert k8s.kubectl("apply", "--server-side", "-f", "-", input=cm).stdout.strip() == (
        "configmap/ssa-cm serverside-applied")
    k8s.kubectl("patch", "configmap", "ssa-cm", "-p", '{"data":{"a":"9"}}')
    result = k8s.kubectl("apply", "--server-side", "-f", "-", input=cm, check=False)
    assert result.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.a' in (
        result.stderr)
    k8s.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                input=cm.replace('  b: "2"\n', ""))
    got = json.loads(k8s.kubectl("get", "cm", "ssa-cm", "-o", "json",
                                 "--show-managed-fields").stdout)
    assert got["data"] == {"a": "1"}  # b dropped from the configuration: removed
    assert [(e["manager"], e["operation"]) for e in got["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")]
    # kubectl hides managedFields client-side unless asked
    assert "managedFields" not in k8s.kubectl("get", "cm", "ssa-cm", "-o", "yaml").stdout

    secret = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa-secret\n"
              "stringData:\n  token: t0\n")
    k8s.kubectl("apply", "--server-side", "-f", "-", input=secret)
    got = json.loads(k8s.kubectl("get", "secret", "ssa-secret", "-o", "json").stdout)
    assert got["data"] == {"token": "dDA="} and got["type"] == "Opaque"


def test_kubectl_client_side_apply_then_server_side_apply_takes_over(k8s: K8s) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrate\ndata:\n  a: \"1\"\n"
    k8s.kubectl("apply", "-f", "-", input=cm)
    got = json.loads(k8s.kubectl("get", "cm", "migrate", "-o", "json",
                                 "--show-managed-fields").stdout)
    assert [(e["manager"], e["operation"]) for e in got["metadata"]["managedFields"]] == [
        ("kubectl-client-side-apply", "Update")]
    # kubectl's own server-side apply may take what its last-applied annotation recorded
    k8s.kubectl("apply", "--server-side", "-f", "-", input=cm.replace('"1"', '"2"'))
    got = json.loads(k8s.kubectl("get", "cm", "migrate", "-o", "json",
                                 "--show-managed-fields").stdout)
    assert got["data"] == {"a": "2"}
    names = {e["manager"] for e in got["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" not in names and "kubectl" in names
    last = json.loads(got["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"a": "2"}


def test_the_python_clients_server_side_apply(k8s: K8s) -> None:
    from kubernetes.dynamic import DynamicClient

    api = DynamicClient(k8s.client()).resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"},
            "data": {"k": "v"}}
    obj = api.server_side_apply(body=body, namespace="default", field_manager="py")
    assert obj.data.k == "v" and obj.metadata.managedFields[0].manager == "py"
