"""kopf runs against the emulator and reacts to create, update and delete (example_operator.py).

The operator runs in-process with ``kopf.testing.KopfRunner`` (``kopf run --standalone -A``);
every expectation is polled with a deadline.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from kopf.testing import KopfRunner

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for

HERE = Path(__file__).parent
CRD_FILE = HERE.parent / "testdata" / "k8s" / "example-crd.yaml"
CRS = "/apis/example.secretops.dev/v1/namespaces/default/secretrequests"
SECRETS = "/api/v1/namespaces/default/secrets"
MERGE = "application/merge-patch+json"


def _get(k8s: K8s, path: str) -> Any:
    status, body, _ = k8s.request("GET", path)
    return body if status == 200 else None


def test_operator_reacts_to_create_update_and_delete(k8s: K8s) -> None:
    status, _, _ = k8s.request(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        yaml.safe_load(CRD_FILE.read_text()),
    )
    assert status == 201
    wait_for(lambda: k8s.request("GET", CRS)[0] == 200, what="CRD served")
    args = ["run", "--standalone", "-A", str(HERE / "example_operator.py")]
    with KopfRunner(args, timeout=60) as runner:
        body = {
            "apiVersion": "example.secretops.dev/v1",
            "kind": "SecretRequest",
            "metadata": {"name": "demo"},
            "spec": {"secretName": "demo-out", "data": {"a": "1"}},
        }
        status, cr, _ = k8s.request("POST", CRS, body)
        assert status == 201

        secret = wait_for(lambda: _get(k8s, f"{SECRETS}/demo-out"), what="Secret created")
        assert base64.b64decode(secret["data"]["a"]) == b"1"
        owner = secret["metadata"]["ownerReferences"][0]
        assert owner["uid"] == cr["metadata"]["uid"] and owner["kind"] == "SecretRequest"
        assert owner["controller"] is True

        def ready() -> Any:
            obj = _get(k8s, f"{CRS}/demo")
            return obj if (obj.get("status") or {}).get("phase") == "Ready" else None

        handled = wait_for(ready, what="status.phase Ready")
        assert "example.secretops.dev/finalizer" in handled["metadata"]["finalizers"]

        def event() -> Any:
            _, events, _ = k8s.request(
                "GET", "/api/v1/namespaces/default/events?fieldSelector=reason%3DSecretCreated"
            )
            return events["items"]

        assert wait_for(event, what="Event posted")[0]["involvedObject"]["name"] == "demo"

        k8s.request("PATCH", f"{CRS}/demo", {"spec": {"data": {"a": "2", "b": "3"}}}, MERGE)

        def updated() -> bool:
            data = (_get(k8s, f"{SECRETS}/demo-out") or {}).get("data", {})
            return {k: base64.b64decode(v) for k, v in data.items()} == {"a": b"2", "b": b"3"}

        wait_for(updated, what="Secret updated")

        assert k8s.request("DELETE", f"{CRS}/demo")[0] == 200
        wait_for(lambda: k8s.request("GET", f"{CRS}/demo")[0] == 404, what="CR finalized and gone")
        wait_for(lambda: k8s.request("GET", f"{SECRETS}/demo-out")[0] == 404, what="Secret deleted")
    assert runner.exception is None
    assert runner.exit_code == 0
