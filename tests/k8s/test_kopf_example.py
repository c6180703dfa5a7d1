"""kopf runs against the emulator and reacts to create, update and delete (example_operator.py).

The operator runs in-process with ``kopf.testing.KopfRunner`` (``kopf run --standalone -A``);
every expectation is polled with a deadline. The second test runs it as a service account
(its calls are audited), converging through dropped watches and bursts of 500s, and checks its
calls against ``example_operator_rbac.yaml``: every call allowed, every permission used.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from tests.fixtures.k8s import K8s, assert_least_privilege
from tests.k8s.helpers import wait_for

HERE = Path(__file__).parent
CRD_FILE = HERE.parent / "testdata" / "k8s" / "example-crd.yaml"
RBAC_FILE = HERE / "example_operator_rbac.yaml"
OPERATOR_SA = "default/example-operator"
CRS = "/apis/example.secretops.dev/v1/namespaces/default/secretrequests"
SECRETS = "/api/v1/namespaces/default/secrets"
MERGE = "application/merge-patch+json"


def _get(k8s: K8s, path: str) -> Any:
    status, body, _ = k8s.request("GET", path)
    return body if status == 200 else None


def _serve_crd(k8s: K8s) -> None:
    status, _, _ = k8s.request(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        yaml.safe_load(CRD_FILE.read_text()),
    )
    assert status in (201, 409)
    wait_for(lambda: k8s.request("GET", CRS)[0] == 200, what="CRD served")


def _request(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "example.secretops.dev/v1",
        "kind": "SecretRequest",
        "metadata": {"name": name},
        "spec": {"secretName": f"{name}-out", "data": data},
    }


def _secret_data(k8s: K8s, name: str) -> dict[str, bytes] | None:
    secret = _get(k8s, f"{SECRETS}/{name}")
    if secret is None:
        return None
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def test_operator_reacts_to_create_update_and_delete(k8s: K8s) -> None:
    _serve_crd(k8s)
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


def test_operator_converges_through_faults_with_least_privilege(
    k8s: K8s, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve_crd(k8s)
    k8s.kubectl("apply", "-f", str(RBAC_FILE))
    namespace, name = OPERATOR_SA.split("/")
    monkeypatch.setenv("KUBECONFIG", str(k8s.kubeconfig_for(namespace, name, tmp_path / "op")))
    k8s.reset_audit()
    as_operator = {"serviceAccount": OPERATOR_SA}

    def watches() -> int:
        return sum(
            1
            for c in k8s.audit(OPERATOR_SA)
            if c["verb"] == "watch" and c["resource"] == "secretrequests"
        )

    args = ["run", "--standalone", "-A", str(HERE / "example_operator.py")]
    with KopfRunner(args, timeout=60) as runner:
        assert k8s.request("POST", CRS, _request("one", a="1"))[0] == 201
        wait_for(lambda: _secret_data(k8s, "one-out") == {"a": b"1"}, what="first Secret")

        # the watch streams are cut, and the first reconnections fail with 500
        opened = watches()
        k8s.fail_next(2, 500, match={**as_operator, "verb": "watch", "resource": "secretrequests"})
        k8s.drop_watches()
        assert k8s.request("POST", CRS, _request("two", b="2"))[0] == 201
        wait_for(lambda: _secret_data(k8s, "two-out") == {"b": b"2"}, what="Secret after drop")
        assert watches() >= opened + 3  # two refused, then one served

        # a burst of 500s on everything the operator does next
        k8s.fail_next(4, 500, match=as_operator)
        k8s.request("PATCH", f"{CRS}/one", {"spec": {"data": {"a": "3"}}}, MERGE)
        wait_for(lambda: _secret_data(k8s, "one-out") == {"a": b"3"}, what="update after 500s")
        assert k8s.faults() == {"rules": [], "injected": 6}

        for cr in ("one", "two"):
            assert k8s.request("DELETE", f"{CRS}/{cr}")[0] == 200
        for cr in ("one", "two"):
            wait_for(lambda cr=cr: k8s.request("GET", f"{CRS}/{cr}")[0] == 404, what="finalized")
            wait_for(lambda cr=cr: _secret_data(k8s, f"{cr}-out") is None, what="Secret gone")
    assert runner.exception is None
    assert runner.exit_code == 0
    failed = [c for c in k8s.audit(OPERATOR_SA) if c["code"] == 500]
    assert len(failed) == 6
    assert_least_privilege(k8s.audit(OPERATOR_SA), RBAC_FILE)
