"""The fault mode: failed, throttled, delayed and cut requests, as clients see them.

Faults are test-only controls (``/_emulator/faults``, helpers on ``K8s``), but what a client
sees is what an apiserver under trouble sends: a ``Status`` body with the code (500
InternalError, 429 TooManyRequests with ``Retry-After``), a slow answer, or a watch connection
that breaks without the end of its chunked stream. kopf converging through them is in
``test_kopf_example.py``.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client, watch

from tests.fixtures.k8s import K8s
from tests.k8s.helpers import wait_for


@pytest.fixture
def ns(k8s: K8s) -> str:
    name = f"f-{uuid.uuid4().hex[:10]}"
    assert k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


@pytest.fixture(autouse=True)
def no_faults_left(k8s: K8s) -> Any:
    yield
    k8s.clear_faults()


def test_fail_next_answers_matching_requests_with_a_500_status(k8s: K8s, ns: str) -> None:
    k8s.fail_next(2, 500, match={"verb": "list", "resource": "secrets", "namespace": ns})
    secrets, configmaps = f"/api/v1/namespaces/{ns}/secrets", f"/api/v1/namespaces/{ns}/configmaps"
    assert k8s.request("GET", configmaps)[0] == 200  # does not match
    assert k8s.request("GET", f"{secrets}/x")[0] == 404  # a get, not a list
    for _ in range(2):
        status, body, _ = k8s.request("GET", secrets)
        assert status == 500 and body["kind"] == "Status" and body["reason"] == "InternalError"
        assert body["code"] == 500 and body["message"].startswith("Internal error occurred")
    assert k8s.request("GET", secrets)[0] == 200  # the next request is served again
    assert k8s.faults() == {"rules": [], "injected": 2}


def test_429_carries_retry_after_which_the_client_honours(k8s: K8s, ns: str) -> None:
    k8s.fail_next(1, 429, match={"resource": "configmaps"}, retry_after=2)
    status, body, headers = k8s.request("GET", f"/api/v1/namespaces/{ns}/configmaps")
    assert status == 429 and headers["Retry-After"] == "2"
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 2
    # the kubernetes client (urllib3) waits Retry-After seconds and retries a 429 by itself
    k8s.fail_next(1, 429, match={"resource": "configmaps"}, retry_after=1)
    started = time.monotonic()
    assert client.CoreV1Api(k8s.client()).list_namespaced_config_map(ns).items == []
    assert time.monotonic() - started >= 1 and k8s.faults()["injected"] == 2


def test_faults_can_target_one_service_account(k8s: K8s, ns: str) -> None:
    token = k8s.token(ns, "ctrl")
    k8s.fail_next(1, 503, match={"serviceAccount": f"{ns}/ctrl"})
    path = f"/api/v1/namespaces/{ns}/secrets"
    assert k8s.request("GET", path)[0] == 200  # the test's admin calls are not hit
    status, body, headers = k8s.request("GET", path, token=token)
    assert status == 503 and body["reason"] == "ServiceUnavailable" and "Retry-After" in headers
    assert k8s.request("GET", path, token=token)[0] == 200


def test_delay_slows_the_matching_requests(k8s: K8s, ns: str) -> None:
    k8s.delay(300, count=1, match={"resource": "configmaps", "verb": "list"})
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}/secrets")[0] == 200  # not matched
    assert len(k8s.faults()["rules"]) == 1
    started = time.monotonic()
    assert k8s.request("GET", path)[0] == 200
    assert time.monotonic() - started >= 0.3
    assert k8s.faults()["rules"] == []  # count=1: the next ones are not delayed


def test_drop_watches_cuts_open_streams_and_new_ones_work(k8s: K8s, ns: str) -> None:
    k8s.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "c"}})
    api = client.CoreV1Api(k8s.client())
    seen: list[str] = []

    def stream() -> None:
        try:
            for event in watch.Watch().stream(api.list_namespaced_config_map, ns):
                seen.append(event["type"])
            seen.append("closed cleanly")
        except Exception as e:  # what a client sees when the connection breaks
            seen.append(type(e).__name__)

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    wait_for(lambda: seen, what="the initial ADDED event")
    k8s.drop_watches()
    reader.join(10)
    assert seen == ["ADDED", "ProtocolError"]  # urllib3: "Response ended prematurely"

    parts = urlsplit(k8s.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=5")
    resp = conn.getresponse()
    assert resp.status == 200 and b'"ADDED"' in resp.readline()  # a new watch is served
    conn.close()


def test_clearing_faults_and_refusing_unknown_ones(k8s: K8s, ns: str) -> None:
    k8s.fail_next(5, 500)
    k8s.delay(100)
    assert [r["kind"] for r in k8s.faults()["rules"]] == ["fail", "delay"]
    k8s.clear_faults()
    assert k8s.faults() == {"rules": [], "injected": 0}
    assert k8s.request("GET", f"/api/v1/namespaces/{ns}")[0] == 200
    status, body, _ = k8s.request("POST", "/_emulator/faults", {"fail_nxt": 1})
    assert status == 400 and "unknown fault fields" in body["message"]
