"""The official ``kubernetes`` Python client works against the emulator unchanged.

CoreV1Api, AppsV1Api, CustomObjectsApi, CoordinationV1Api, EventsV1Api, RbacAuthorizationV1Api,
ApiextensionsV1Api, VersionApi, the DynamicClient (discovery-driven) and ``watch.Watch``.
"""

from __future__ import annotations

import base64
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for

CRD_FILE = Path(__file__).parents[1] / "testdata" / "k8s" / "example-crd.yaml"
GROUP, VERSION, PLURAL = "example.secretops.dev", "v1", "secretrequests"


@pytest.fixture
def api(k8s: K8s) -> Any:
    return k8s.client()


@pytest.fixture
def ns(api: Any) -> str:
    name = f"c-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    return name


@pytest.fixture
def crd(api: Any) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(yaml.safe_load(CRD_FILE.read_text()))
    except ApiException as e:
        assert e.status == 409
    objs = client.CustomObjectsApi(api)
    wait_for(
        lambda: objs.list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None, what="served"
    )


def test_core_v1_secrets_crud(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name="s", labels={"app": "x"}), string_data={"token": "t0p"}
    )
    created = core.create_namespaced_secret(ns, body)
    assert created.metadata.uid and created.metadata.resource_version
    assert base64.b64decode(created.data["token"]) == b"t0p" and created.string_data is None
    with pytest.raises(ApiException) as err:
        core.create_namespaced_secret(ns, body)
    assert err.value.status == 409 and '"reason":"AlreadyExists"' in err.value.body.replace(" ", "")
    got = core.read_namespaced_secret("s", ns)
    got.data["more"] = base64.b64encode(b"1").decode()
    replaced = core.replace_namespaced_secret("s", ns, got)
    assert set(replaced.data) == {"token", "more"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_secret("s", ns, got)  # got carries the old resourceVersion
    assert err.value.status == 409
    patched = core.patch_namespaced_secret("s", ns, {"metadata": {"labels": {"b": "2"}}})
    assert patched.metadata.labels == {"app": "x", "b": "2"}
    listed = core.list_namespaced_secret(ns, label_selector="app=x")
    assert [s.metadata.name for s in listed.items] == ["s"] and listed.metadata.resource_version
    status = core.delete_namespaced_secret("s", ns)  # returned untyped: a Status or the object
    assert status["kind"] == "Status" and status["status"] == "Success"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_secret("s", ns)
    assert err.value.status == 404


def test_core_v1_configmaps_services_accounts_events(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
    )
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sa"))
    )
    svc = client.V1Service(
        metadata=client.V1ObjectMeta(name="svc"),
        spec=client.V1ServiceSpec(
            selector={"app": "x"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
        ),
    )
    assert core.create_namespaced_service(ns, svc).spec.ports[0].port == 80
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="ev-"),
        reason="Synced",
        message="ok",
        type="Normal",
        involved_object=client.V1ObjectReference(kind="ConfigMap", name="c", namespace=ns),
    )
    made = core.create_namespaced_event(ns, event)
    assert made.metadata.name.startswith("ev-")
    found = core.list_namespaced_event(ns, field_selector="involvedObject.name=c,reason=Synced")
    assert [e.metadata.name for e in found.items] == [made.metadata.name]


def test_apps_v1_deployment_strategic_merge_patch(api: Any, ns: str) -> None:
    apps = client.AppsV1Api(api)
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(name="app", image="app:1"),
                        client.V1Container(name="side", image="side:1"),
                    ]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(ns, dep)
    assert created.metadata.generation == 1 and created.spec.replicas == 1
    # a rollout restart, as kubectl and the controller's rollout do it
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}},
                "spec": {"containers": [{"name": "app", "image": "app:2"}]},
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", ns, patch)
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [
        ("app", "app:2"),
        ("side", "side:1"),
    ]
    assert patched.metadata.generation == 2
    status = apps.patch_namespaced_deployment_status(
        "web", ns, {"status": {"observedGeneration": 2}}
    )
    assert status.status.observed_generation == 2
    for kind in ("stateful_set", "daemon_set"):
        body = {
            "metadata": {"name": kind.replace("_", "")},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
        getattr(apps, f"create_namespaced_{kind}")(ns, body)
    assert len(apps.list_namespaced_stateful_set(ns).items) == 1
    assert len(apps.list_namespaced_daemon_set(ns).items) == 1


def test_custom_objects_api(api: Any, ns: str, crd: None) -> None:
    objs = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SecretRequest",
        "metadata": {"name": "r"},
        "spec": {"secretName": "out"},
    }
    made = objs.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    assert made["spec"]["mode"] == "Opaque" and made["metadata"]["generation"] == 1
    objs.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "r", {"spec": {"replicas": 2}})
    st = objs.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "r", {"status": {"phase": "Ready", "observedGeneration": 2}}
    )
    assert st["status"]["phase"] == "Ready" and st["metadata"]["generation"] == 2
    listed = objs.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    assert listed["kind"] == "SecretRequestList" and [
        i["metadata"]["name"] for i in listed["items"]
    ] == ["r"]
    with pytest.raises(ApiException) as err:
        objs.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            {**body, "metadata": {"name": "bad"}, "spec": {"replicas": "x"}},
        )
    assert err.value.status == 422
    objs.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "r")
    with pytest.raises(ApiException) as err:
        objs.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "r")
    assert err.value.status == 404


def test_leases_roles_and_events_v1(api: Any, ns: str, k8s: K8s) -> None:
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease(
        ns,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
        ),
    )
    lease.spec.holder_identity = "b"
    assert coord.replace_namespaced_lease("leader", ns, lease).spec.holder_identity == "b"
    with pytest.raises(ApiException) as err:  # the stale copy loses the race
        coord.replace_namespaced_lease("leader", ns, lease)
    assert err.value.status == 409
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        ns,
        {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        },
    )
    rbac.create_cluster_role({"metadata": {"name": f"cr-{ns}"}, "rules": []})
    assert rbac.read_namespaced_role("r", ns).rules[0].resources == ["secrets"]
    events = client.EventsV1Api(api)
    body = {
        "metadata": {"generateName": "e-"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reason": "R",
        "action": "A",
        "reportingController": "c",
        "reportingInstance": "i",
        "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "x", "namespace": ns},
    }
    # This client turns eventTime into a datetime and sends isoformat() ("...+00:00"), which a
    # real apiserver cannot decode as a MicroTime: the emulator refuses it the same way.
    with pytest.raises(ApiException) as err:
        events.create_namespaced_event(ns, body)
    assert err.value.status == 400 and "cannot be handled as a Event" in err.value.body
    status, made, _ = k8s.request("POST", f"/apis/events.k8s.io/v1/namespaces/{ns}/events", body)
    assert status == 201 and made["metadata"]["name"].startswith("e-")
    assert events.read_namespaced_event(made["metadata"]["name"], ns).reason == "R"


def test_version_and_dynamic_client(api: Any, ns: str, crd: None) -> None:
    assert client.VersionApi(api).get_code().major == "1"
    dyn = dynamic.DynamicClient(api)
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    secrets.create(body={"metadata": {"name": "dyn"}, "stringData": {"a": "b"}}, namespace=ns)
    assert secrets.get(name="dyn", namespace=ns).data.a == base64.b64encode(b"b").decode()
    custom = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="SecretRequest")
    assert custom.namespaced and custom.name == PLURAL


def test_watch_stream(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(
            core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=10
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}})
    core.patch_namespaced_config_map("w", ns, {"data": {"a": "1"}})
    core.delete_namespaced_config_map("w", ns)
    thread.join(15)
    assert not thread.is_alive()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
