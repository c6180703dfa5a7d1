"""Rollouts across leader changes and restarts (docs/external-secrets.md, "Rollout of
workloads"): a new leader rolls nothing that was rolled — a new leader restarting everything is
Reloader's #810 — and a rollout its predecessor had queued but not sent is sent once.

Controllers with leader election (short Lease) against one emulator and the real OpenBao; the
first leader is killed with SIGKILL while a rollout waits in its queue (its budget of one is
held by a roll the emulator never reports done), then the next stops gracefully.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.controller.conftest import Controller, prepare_external
from tests.controller.external.conftest import Tenant, put
from tests.controller.external.rollouts import (
    DATA_HASH,
    PENDING,
    carries,
    deployment,
    generation,
    namespace,
    rolled_for,
    secret_notes,
)
from tests.controller.external.test_reconcile import (
    API,
    MERGE,
    create,
    create_workload,
    external,
    has,
    item,
    token_store,
)
from tests.controller.helpers import leads, metrics, wait_for
from tests.fixtures.k8s import K8s
from tests.fixtures.openbao import OpenBao

FLAGS = ("--key-renew-period", "0", "--rollout-window", "0.2s", "--rollout-concurrency", "1",
         "--rollout-timeout", "300s", "--lease-duration", "3s", "--renew-deadline", "2s",
         "--retry-period", "0.2s")


@pytest.fixture(scope="module")
def cluster(k8s_emulator: K8s) -> K8s:
    prepare_external(k8s_emulator)
    return k8s_emulator


def metric(ctl: Controller, name: str) -> float:
    return metrics(ctl).get(name, 0.0)


def change(k8s: K8s, openbao: OpenBao, ns: str, es: str, key: str, value: str) -> None:
    put(openbao, key, {"password": value})
    status, body, _ = k8s.request("PATCH", f"{API}/namespaces/{ns}/externalsecrets/{es}", {
        "metadata": {"annotations": {"secretops.dev/force-sync": value}}}, MERGE)
    assert status == 200, body
    wait_for(lambda: has(k8s, ns, es, {"password": value.encode()}), what=f"{es} holds {value}")


def test_a_new_leader_rolls_only_what_its_predecessor_left_pending_and_only_once(
        cluster: K8s, k8s: K8s, start_controller: Any, openbao: OpenBao,
        tenant: Tenant) -> None:
    first = start_controller(*FLAGS, env={"POD_NAME": "first"})
    wait_for(lambda: leads(first), what="the first controller leads")
    ns = namespace(k8s)
    token_store(k8s, openbao, tenant, ns)
    keys = {es: f"{tenant.prefix}/{es}" for es in ("db", "other")}
    for es, key in keys.items():
        put(openbao, key, {"password": "one"})
        create(k8s, external(ns, es, "vault", [item("password", key, "password")],
                             interval="1h"))
    create_workload(k8s, deployment(ns, "web", "db"))
    create_workload(k8s, deployment(ns, "worker", "other"))
    for es in keys:
        wait_for(lambda e=es: has(k8s, ns, e, {"password": b"one"}), what=f"Secret {es}")
    before = {w: generation(k8s, ns, w) for w in ("web", "worker")}
    second = start_controller(*FLAGS, env={"POD_NAME": "second"})
    assert leads(second) is False

    # worker rolls and holds the budget of one; web's roll waits in the first leader's queue
    change(k8s, openbao, ns, "other", keys["other"], "two")
    wait_for(lambda: carries(k8s, ns, "worker", "other"), what="worker rolled")
    change(k8s, openbao, ns, "db", keys["db"], "two")
    wait_for(lambda: metric(first, "secretops_rollouts_queued") == 1, what="web queued")
    notes = secret_notes(k8s, ns, "db")
    assert notes[PENDING] == notes[DATA_HASH]  # the change not rolled yet, on the Secret
    assert PENDING not in secret_notes(k8s, ns, "other")  # worker's roll was sent
    first.kill()

    wait_for(lambda: leads(second), what="the second controller leads")
    wait_for(lambda: rolled_for(k8s, ns, "web", "db"), what="web rolled by the new leader")
    assert generation(k8s, ns, "web") == before["web"] + 1
    assert generation(k8s, ns, "worker") == before["worker"] + 1  # not rolled again
    assert metric(second, "secretops_rollout_changes_total") == 1  # db's pending change only

    # a leader change with nothing pending (and a fresh process: a restart) rolls nothing
    third = start_controller(*FLAGS, env={"POD_NAME": "third"})
    second.stop()
    wait_for(lambda: leads(third), what="the third controller leads")
    synced = 'secretops_externalsecret_syncs_total{reason="SecretSynced"}'
    wait_for(lambda: metric(third, synced) >= 2, what="both ExternalSecrets synced again")
    assert metric(third, "secretops_rollout_changes_total") == 0
    assert {w: generation(k8s, ns, w) for w in before} == {w: g + 1 for w, g in before.items()}
    third.stop()
