"""Protobuf request bodies: what the real kubectl's ``create`` sends for built-in kinds.

Each ``kubectl create ...`` form runs twice: as kubectl sends it (protobuf, ``Content-Type:
application/vnd.kubernetes.protobuf``) into one namespace, and as JSON (the same command's
``--dry-run=client -o json`` through ``kubectl create -f -``) into another; the stored objects
must be the same. Plain HTTP checks the edges: a custom resource's protobuf body is the
apiserver's 400, bytes that are not protobuf are 400, and a field the emulator does not decode is
a 415 naming it rather than being dropped.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for

PROTOBUF = "application/vnd.kubernetes.protobuf"
CREATES = {
    "secret": ["secret", "generic", "{name}", "--from-literal=user=admin",
               "--from-literal=token=s3cr3t", "--type=example.dev/token"],
    "docker-registry": ["secret", "docker-registry", "{name}", "--docker-server=r.example",
                        "--docker-username=u", "--docker-password=p"],
    "configmap": ["configmap", "{name}", "--from-literal=a=1", "--from-literal=b=two"],
    "serviceaccount": ["serviceaccount", "{name}"],
    "deployment": ["deployment", "{name}", "--image=registry.example/app:1", "--port=8080",
                   "--replicas=3", "--", "serve", "--verbose"],
    "service": ["service", "clusterip", "{name}", "--tcp=80:8080", "--tcp=443:8443"],
    "role": ["role", "{name}", "--verb=get,list", "--resource=secrets",
             "--resource-name=one"],
    "rolebinding": ["rolebinding", "{name}", "--role=reader", "--serviceaccount=default:sa",
                    "--group=devs"],
    "clusterrole": ["clusterrole", "{name}", "--verb=get", "--resource=configmaps",
                    "--non-resource-url=/healthz"],
    "clusterrolebinding": ["clusterrolebinding", "{name}", "--clusterrole=view",
                           "--user=jane"],
}
_VOLATILE = ("uid", "resourceVersion", "creationTimestamp", "namespace")


def _stable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k not in _VOLATILE}
    meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"}
                             for e in meta.get("managedFields", [])]
    return {**obj, "metadata": meta}


def _namespaces(k8s: K8s, *names: str) -> None:
    for ns in names:
        if k8s.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404:
            k8s.kubectl("create", "namespace", ns)


@pytest.mark.parametrize("form", sorted(CREATES))
def test_kubectl_create_sends_protobuf_and_stores_what_json_stores(k8s: K8s, form: str) -> None:
    _namespaces(k8s, "pb", "js")
    cluster = form.startswith("cluster")
    name = f"made-{form}"
    args = [a.format(name=name) for a in CREATES[form]]
    scope = [] if cluster else ["-n", "pb"]
    cut = args.index("--") if "--" in args else len(args)  # flags before a container command
    k8s.kubectl("create", *args[:cut], *scope, *args[cut:])  # protobuf
    sent = k8s.kubectl("create", *args[:cut], "--dry-run=client", "-o", "json",
                       *args[cut:]).stdout
    kind = json.loads(sent)["kind"].lower()
    if cluster:  # one name per cluster: the JSON twin gets another, compared without it
        sent = sent.replace(f'"{name}"', f'"{name}-json"')
    k8s.kubectl("create", "-f", "-", *([] if cluster else ["-n", "js"]), input=sent)  # JSON
    made = json.loads(k8s.kubectl("get", kind, name, *scope, "-o", "json",
                                  "--show-managed-fields").stdout)
    twin = json.loads(k8s.kubectl("get", kind, f"{name}-json" if cluster else name,
                                  *([] if cluster else ["-n", "js"]), "-o", "json",
                                  "--show-managed-fields").stdout)
    if cluster:
        twin["metadata"]["name"] = name
    assert _stable(made) == _stable(twin)
    # an object of nothing but a name has no owned fields, hence no entry
    for entry in made["metadata"].get("managedFields", []):
        assert (entry["manager"], entry["operation"]) == ("kubectl-create", "Update")


def test_kubectl_really_sends_protobuf(k8s: K8s) -> None:
    out = k8s.kubectl("create", "configmap", "wire", "--from-literal=k=v", "-v=9")
    assert f'-H "Content-Type: {PROTOBUF}"' in out.stderr
    assert "6b 38 73 00" in out.stderr  # the k8s\x00 magic of the body kubectl logged
    got = json.loads(k8s.kubectl("get", "configmap", "wire", "-o", "json").stdout)
    assert got["data"] == {"k": "v"}


def test_kubectl_create_namespace_and_secret_contents(k8s: K8s) -> None:
    k8s.kubectl("create", "namespace", "made-by-protobuf")
    ns = json.loads(k8s.kubectl("get", "ns", "made-by-protobuf", "-o", "json").stdout)
    assert ns["status"] == {"phase": "Active"} and ns["spec"] == {"finalizers": ["kubernetes"]}
    k8s.kubectl("create", "secret", "generic", "bin", "--from-literal=k=\u00e9\u00e8",
                "--from-file=blob=/dev/null")
    secret = json.loads(k8s.kubectl("get", "secret", "bin", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["k"]).decode() == "\u00e9\u00e8"
    assert secret["data"]["blob"] == "" and secret["type"] == "Opaque"


def test_kubectl_create_token_and_auth_whoami(k8s: K8s) -> None:
    k8s.kubectl("create", "serviceaccount", "tokened")
    token = k8s.kubectl("create", "token", "tokened", "--audience=vault",
                        "--duration=2h").stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == ["vault"] and claims["exp"] - claims["iat"] == 7200
    assert claims["sub"] == "system:serviceaccount:default:tokened"
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": token, "audiences": ["vault"]}}
    status, out, _ = k8s.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
    assert status == 201 and out["status"]["authenticated"] is True
    who = json.loads(k8s.kubectl("auth", "whoami", "-o", "json").stdout)
    assert who["kind"] == "SelfSubjectReview"
    assert who["status"]["userInfo"]["username"] == "admin"


def _field(num: int, payload: bytes | int) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
            n >>= 7
            if not n:
                return out
    if isinstance(payload, int):
        return varint(num << 3) + varint(payload)
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return b"k8s\x00" + _field(1, type_meta) + _field(2, raw)


def _post(k8s: K8s, path: str, body: bytes) -> tuple[int, Any]:
    status, out, _ = k8s.request("POST", path, body, content_type=PROTOBUF)
    return status, out


def test_protobuf_edges_answered_as_the_apiserver_or_refused_loudly(k8s: K8s) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    meta = _field(1, _field(1, b"edge"))
    status, out = _post(k8s, path, _envelope("v1", "ConfigMap", meta + _field(99, 0)))
    assert status == 201 and out["metadata"]["name"] == "edge"  # a zero unknown field: no data
    status, out = _post(k8s, path, _envelope("v1", "ConfigMap", _field(
        1, _field(1, b"edge2")) + _field(99, 7)))
    assert status == 415 and "does not decode field 99 of ConfigMap" in out["message"]
    assert k8s.request("GET", f"{path}/edge2")[0] == 404
    status, out = _post(k8s, path, b'{"metadata":{"name":"x"}}')
    assert (status, out["message"]) == (400, "provided data does not appear to be a protobuf "
                                              "message, expected prefix [107 56 115 0]")
    status, out = _post(k8s, path, b"k8s\x00\x0a\xff")
    assert status == 400 and out["reason"] == "BadRequest"


def test_a_custom_resource_in_protobuf_is_the_apiservers_400(k8s: K8s) -> None:
    from tests.k8s.test_kubectl import DATA

    k8s.kubectl("apply", "-f", str(DATA / "example-crd.yaml"))
    path = "/apis/example.secretops.dev/v1/namespaces/default/secretrequests"
    wait_for(lambda: k8s.request("GET", path)[0] == 200, what="served")
    body = _envelope("example.secretops.dev/v1", "SecretRequest", _field(1, _field(1, b"pb")))
    status, out = _post(k8s, path, body)
    assert (status, out["reason"], out["message"]) == (
        400, "BadRequest",
        'SecretRequest in version "v1" cannot be handled as a SecretRequest: object '
        "*unstructured.Unstructured does not implement the protobuf marshalling interface and "
        "cannot be encoded to a protobuf message")
