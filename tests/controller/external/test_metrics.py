"""The metrics users alert on, read from a running controller's ``/metrics`` (docs/metrics.md):
the per-object condition gauges of both halves (1 for the current status, 0 for the others,
series dropped with the object), provider calls by provider, operation and result,
``secretops_build_info``; no label carries a value."""

from __future__ import annotations

import platform
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from secretops_controller.external.provider import RemoteRef
from secretops_controller.external.providers.vault import TokenAuth, VaultConfig, VaultProvider
from secretops_controller.metrics import Metrics

from tests.controller.conftest import Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.test_reconcile import (
    API,
    create,
    external,
    item,
    ready,
    token_store,
)
from tests.controller.helpers import CANARY, apply, dump, seal, synced, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao
from tests.helpers import assert_no_canary

SAMPLE = re.compile(r'^([a-z_]+)\{([^}]*)\} (\S+)$')


@pytest.fixture(scope="module")
def controller(k8s_emulator: K8s, start_controller: Any) -> Controller:
    prepare_external(k8s_emulator)
    ctl: Controller = start_controller("--key-renew-period", "0")
    return ctl


@pytest.fixture
def ns(controller: Controller, k8s: K8s) -> Iterator[str]:
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    k8s.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name


def samples(ctl: Controller, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The series of ``name`` on ``/metrics``: {labels: value}."""
    status, text = ctl.get("/metrics")
    assert status == 200
    assert_no_canary(text, "/metrics")
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name:
            labels = frozenset(tuple(kv.split("=", 1)) for kv in re.findall(
                r'[a-z_]+="[^"]*"', m.group(2)))
            out[frozenset((k, v.strip('"')) for k, v in labels)] = float(m.group(3))
    return out


def condition(ctl: Controller, name: str, namespace: str, obj: str) -> dict[str, float]:
    """{status: value} of one object's series of a condition gauge."""
    return {dict(labels)["status"]: v for labels, v in samples(ctl, name).items()
            if dict(labels)["namespace"] == namespace and dict(labels)["name"] == obj}


def test_provider_calls_counted_by_provider_operation_result(openbao: OpenBao) -> None:
    metrics = Metrics()
    p = VaultProvider(VaultConfig(openbao.url), TokenAuth(openbao.token),
                      observe=metrics.observe_provider_call)
    p.read_many([RemoteRef("metrics/none")])

    def value(operation: str, result: str) -> float | None:
        return metrics.registry.get_sample_value(
            "secretops_provider_calls_total",
            {"provider": "vault", "operation": operation, "result": result})

    assert value("lookup-self", "ok") == 1
    assert value("read", "NotFound") == 1


def test_condition_gauges_follow_objects_and_build_info(
        controller: Controller, k8s: K8s, ns: str, openbao: OpenBao, tenant: Tenant,
        tmp_path: Path) -> None:
    [info] = samples(controller, "secretops_build_info").items()
    labels, value = info
    assert value == 1 and dict(labels)["python_version"] == platform.python_version()
    assert dict(labels)["version"]

    # an ExternalSecret: Ready True, then False (its key gone), then no series once deleted
    key = f"{tenant.prefix}/metrics"
    put(openbao, key, {"password": CANARY})
    token_store(k8s, openbao, tenant, ns)
    create(k8s, external(ns, "db", "vault", [item("password", key, "password")]))
    gauge = "secretops_externalsecret_status_condition"
    wait_for(lambda: condition(controller, gauge, ns, "db") == {
        "True": 1, "False": 0}, what="Ready True on /metrics")
    assert {dict(labels)["condition"] for labels in samples(controller, gauge)} == {"Ready"}
    create(k8s, external(ns, "broken", "vault", [item("password", f"{key}-none", "password")]))
    wait_for(lambda: ready(k8s, ns, "externalsecrets", "broken").get("status") == "False",
             what="Ready False")
    wait_for(lambda: condition(controller, gauge, ns, "broken") == {
        "True": 0, "False": 1}, what="Ready False on /metrics")
    calls = samples(controller, "secretops_provider_calls_total")
    assert {dict(labels)["result"] for labels in calls} >= {"ok", "NotFound"}
    assert {dict(labels)["provider"] for labels in calls} == {"vault"}
    for name in ("db", "broken"):
        k8s.request("DELETE", f"{API}/namespaces/{ns}/externalsecrets/{name}")
    wait_for(lambda: not condition(controller, gauge, ns, "db")
             and not condition(controller, gauge, ns, "broken"), what="series dropped")

    # a SealedSecret: Synced True, then gone with it
    status, text = controller.get("/v1/cert")
    assert status == 200
    cert = tmp_path / "cert.txt"
    cert.write_text(text)
    source: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "sealed-db", "namespace": ns},
                              "stringData": {"password": CANARY}}
    (tmp_path / "secret.yaml").write_text(dump(source))
    apply(k8s, seal(cert, str(tmp_path / "secret.yaml")))
    wait_for(lambda: synced(k8s, ns, "sealed-db"), what="Synced")
    sealed_gauge = "secretops_sealedsecret_condition"
    wait_for(lambda: condition(controller, sealed_gauge, ns, "sealed-db") == {
        "True": 1, "False": 0}, what="Synced True on /metrics")
    assert {dict(labels)["condition"] for labels in samples(controller, sealed_gauge)} == {
        "Synced"}
    k8s.request("DELETE", f"{API}/namespaces/{ns}/sealedsecrets/sealed-db")
    wait_for(lambda: not condition(controller, sealed_gauge, ns, "sealed-db"),
             what="SealedSecret series dropped")


def test_condition_gauge_series_and_their_removal() -> None:
    """True and False always; Unknown once it was the status (then 0 after); all gone with
    the object."""
    metrics = Metrics()
    gauge, r = metrics.external_condition, metrics.registry

    def series() -> dict[str, float | None]:
        return {s: r.get_sample_value("secretops_externalsecret_status_condition", {
            "namespace": "ns", "name": "db", "condition": "Ready", "status": s})
                for s in ("True", "False", "Unknown")}

    gauge.set("ns", "db", "Ready", "True")
    assert series() == {"True": 1, "False": 0, "Unknown": None}
    gauge.set("ns", "db", "Ready", "Unknown")
    assert series() == {"True": 0, "False": 0, "Unknown": 1}
    gauge.set("ns", "db", "Ready", "False")
    assert series() == {"True": 0, "False": 1, "Unknown": 0}
    gauge.forget("ns", "db")
    assert series() == {"True": None, "False": None, "Unknown": None}
    gauge.forget("ns", "db")  # twice is harmless
