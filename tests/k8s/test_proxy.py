"""``services/proxy``: the API forwards ``.../services/<name>[:port]/proxy/<path>`` to a local port.

Where a Service's port goes is emulator-only configuration in the test's manifest (the
``emulator.secretops.dev/forward-to`` annotation, or a numeric ``targetPort`` on 127.0.0.1; see
docs/testing.md). Everything else is what the apiserver does: the method, path, query and body
are passed on, the answer comes back as the backend sent it, the port is resolved by number or
name, and a Service that cannot be reached is 503.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from tests.fixtures.k8s import K8s, free_port

FORWARD = "emulator.secretops.dev/forward-to"


class Echo(BaseHTTPRequestHandler):
    """A tiny backend: ``/healthz`` says ok, anything else echoes the request as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path == "/healthz":
            payload, ctype, status = b"ok", "text/plain", 200
        else:
            echo = {
                "method": self.command,
                "path": self.path,
                "body": body,
                "authorization": self.headers.get("Authorization"),
            }
            payload, ctype = json.dumps(echo).encode(), "application/json"
            status = 418 if self.path.startswith("/teapot") else 200
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Backend", "echo")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def ns(k8s: K8s) -> str:
    name = f"p-{uuid.uuid4().hex[:10]}"
    assert k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


def service(
    k8s: K8s, ns: str, name: str, ports: list[dict[str, Any]], forward: str | None = None
) -> None:
    meta: dict[str, Any] = {"name": name}
    if forward is not None:
        meta["annotations"] = {FORWARD: forward}
    body = {"metadata": meta, "spec": {"ports": ports}}
    assert k8s.request("POST", f"/api/v1/namespaces/{ns}/services", body)[0] == 201


def test_requests_are_forwarded_with_method_path_query_and_body(
    k8s: K8s, ns: str, backend: int
) -> None:
    service(k8s, ns, "ctrl", [{"name": "http", "port": 8080}], f"127.0.0.1:{backend}")
    base = f"/api/v1/namespaces/{ns}/services/ctrl:8080/proxy"
    status, out, headers = k8s.request("GET", f"{base}/v1/status?verbose=1", token="admin")
    assert status == 200 and headers["X-Backend"] == "echo"
    assert out == {
        "method": "GET",
        "path": "/v1/status?verbose=1",
        "body": "",
        "authorization": None,  # the caller's credentials are not passed on
    }
    for method in ("POST", "PUT", "DELETE"):
        status, out, _ = k8s.request(method, f"{base}/items/1", {"n": 1})
        assert status == 200 and out["method"] == method and out["path"] == "/items/1"
        assert json.loads(out["body"]) == {"n": 1}
    status, out, _ = k8s.request("GET", f"{base}/teapot")
    assert status == 418 and out["path"] == "/teapot"  # the backend's status comes back as is


def test_numeric_target_port_and_port_names_resolve(k8s: K8s, ns: str, backend: int) -> None:
    service(k8s, ns, "direct", [{"name": "web", "port": 80, "targetPort": backend}])
    for ident in ("direct:80", "direct:web", "http:direct:80"):
        status, body, _ = k8s.request(
            "GET", f"/api/v1/namespaces/{ns}/services/{ident}/proxy/healthz"
        )
        assert (status, body) == (200, "ok"), ident
    service(k8s, ns, "single", [{"port": 80, "targetPort": backend}])  # one unnamed port
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/services/single/proxy/healthz")[0] == 200


def test_a_per_port_annotation_picks_the_target(k8s: K8s, ns: str, backend: int) -> None:
    ports = [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]
    service(k8s, ns, "multi", ports, f"http=127.0.0.1:1,9090=127.0.0.1:{backend}")
    path = f"/api/v1/namespaces/{ns}/services/multi:metrics/proxy/healthz"
    assert k8s.request("GET", path)[:2] == (200, "ok")


def test_the_kubernetes_client_and_kubectl_reach_the_backend(
    k8s: K8s, ns: str, backend: int
) -> None:
    service(k8s, ns, "y", [{"port": 8080}], f"127.0.0.1:{backend}")
    api = client.CoreV1Api(k8s.client())
    assert api.connect_get_namespaced_service_proxy_with_path("y:8080", ns, "healthz") == "ok"
    out = k8s.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/services/y:8080/proxy/healthz")
    assert out.stdout == "ok"


def test_missing_service_is_404_and_unreachable_ones_are_503(k8s: K8s, ns: str) -> None:
    status, out, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/services/none:80/proxy/")
    assert status == 404 and out["message"] == 'services "none" not found'
    closed = free_port()  # nothing listens there
    service(k8s, ns, "down", [{"name": "http", "port": 80, "targetPort": closed}])
    status, out, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/services/down:80/proxy/")
    assert status == 503 and out["reason"] == "ServiceUnavailable"
    assert out["message"].startswith("error trying to reach service")
    status, out, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/services/down:81/proxy/")
    assert status == 503 and out["message"] == 'no service port 81 found for service "down"'
    service(k8s, ns, "named", [{"name": "http", "port": 80, "targetPort": "http"}])
    status, out, _ = k8s.request("GET", f"/api/v1/namespaces/{ns}/services/named:http/proxy/")
    assert status == 503 and out["message"] == 'no endpoints available for service "named:http"'
    service(k8s, ns, "remote", [{"port": 80}], "10.0.0.1:80")  # only loopback is forwarded to
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/services/remote/proxy/")[0] == 503


def test_proxy_calls_are_audited_as_the_proxy_subresource(k8s: K8s, ns: str, backend: int) -> None:
    service(k8s, ns, "ctrl", [{"port": 8080}], f"127.0.0.1:{backend}")
    token = k8s.token(ns, "cli")
    path = f"/api/v1/namespaces/{ns}/services/ctrl:8080/proxy/healthz"
    assert k8s.request("GET", path, token=token)[:2] == (200, "ok")
    assert k8s.request("POST", path, {}, token=token)[0] == 200
    records = k8s.audit(f"{ns}/cli")
    assert [(r["verb"], r["resource"], r["name"]) for r in records] == [
        ("get", "services/proxy", "ctrl:8080"),
        ("create", "services/proxy", "ctrl:8080"),
    ]
